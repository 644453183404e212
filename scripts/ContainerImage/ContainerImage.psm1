# ContainerImage: cmdlets over providerd's local HTTP API v1.
#
# Every call goes through Invoke-ContainerImageCall here, and through the
# route table, the transport and the objects of ContainerProviderApi.psm1,
# which the PackageManagement provider (ContainerImageProvider.psm1) imports
# too. The endpoint is $env:CONTAINERPROVIDER_ENDPOINT, else providerd's
# local API: its unix socket or named pipe on PowerShell 7, whose access is
# the credential, and http://127.0.0.1:5050 on Windows PowerShell, where the
# bearer token is $env:CONTAINERPROVIDER_TOKEN, else the first line of
# $env:CONTAINERPROVIDER_TOKEN_FILE or of the token file providerd makes in
# its default root, when this user may read it (an administrator can). No
# cmdlet takes the token: -Credential is a registry's, as in
# PackageManagement (Register-ContainerImageSource -Credential).

Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'ContainerProviderApi.psm1') -DisableNameChecking

function Invoke-ContainerImageCall {
    # One call of providerd for a cmdlet. Call is the splat of
    # Invoke-ContainerProviderApi. With View, the answer (or its list under
    # Key) is written as objects of that view, those for which Where holds;
    # without, the answer is returned. A failure is written as the
    # cmdlet's non-terminating error, and nothing is returned.
    param(
        [Parameter(Mandatory = $true)]
        [System.Management.Automation.PSCmdlet]$Cmdlet,
        [Parameter(Mandatory = $true)]
        [hashtable]$Call,
        [string]$View,
        [string]$Key,
        [scriptblock]$Where
    )
    try {
        $answer = Invoke-ContainerProviderApi @Call
    }
    catch {
        $Cmdlet.WriteError($_)
        return
    }
    if (-not $View) {
        return $answer
    }
    $items = if ($Key) { @(Get-JsonValue $answer $Key) } else { @($answer) }
    foreach ($item in $items) {
        if ($null -ne $item -and (-not $Where -or (& $Where $item))) {
            ConvertTo-ContainerProviderObject -View $View -InputObject $item
        }
    }
}

function Get-VersionQuery {
    # OneGet's version options of a cmdlet's bound parameters, as the API
    # names them.
    param(
        [hashtable]$Bound
    )
    $q = @{}
    foreach ($k in @('RequiredVersion', 'MinimumVersion', 'MaximumVersion')) {
        if ($Bound.ContainsKey($k)) {
            $q[$k.Substring(0, 1).ToLowerInvariant() + $k.Substring(1)] = [string]$Bound[$k]
        }
    }
    if ($Bound.ContainsKey('AllVersions')) {
        $q['allVersions'] = [bool]$Bound['AllVersions']
    }
    return $q
}

function Test-NameMatch {
    param(
        [string]$Value,
        [string[]]$Patterns
    )
    if (-not $Patterns -or $Patterns.Count -eq 0) {
        return $true
    }
    foreach ($p in $Patterns) {
        if ($Value -like $p) {
            return $true
        }
    }
    return $false
}

function Get-ContainerReference {
    # What the API takes for a container: a name or id string, or the ID
    # (else the Name) of a container object.
    param(
        [object]$Container
    )
    if ($Container -is [string]) {
        return $Container
    }
    if ($Container.PSObject.Properties['ID'] -and $Container.ID) {
        return [string]$Container.ID
    }
    return [string]$Container.Name
}

function Complete-ImageJob {
    # Follows install job Id to its end. Success writes the job's message
    # ("Downloaded in 0 hours, 0 minutes, 10 seconds.") to the host, and the
    # image with PassThru; failure, or a cancellation from elsewhere, is the
    # cmdlet's error. With CancelOnStop, Ctrl+C cancels the job.
    param(
        [System.Management.Automation.PSCmdlet]$Cmdlet,
        [string]$Id,
        [switch]$CancelOnStop,
        [switch]$PassThru
    )
    try {
        $job = Wait-ContainerProviderJob -Id $Id -CancelOnStop:$CancelOnStop
    }
    catch {
        $Cmdlet.WriteError($_)
        return
    }
    $message = Get-JsonValue $job 'message'
    if ($job.state -eq 'succeeded') {
        if ($message) {
            Write-Host $message
        }
        $result = Get-JsonValue $job 'result'
        if ($PassThru -and $null -ne $result) {
            $Cmdlet.WriteObject((ConvertTo-ContainerProviderObject ContainerImage $result))
        }
        return
    }
    $Cmdlet.WriteError((ConvertFrom-JobFailure -Job $job -Target (Get-JsonValue (Get-JsonValue $job 'request') 'name')))
}

function Find-ContainerImage {
    <#
    .SYNOPSIS
    Finds container images in the registered sources.
    .DESCRIPTION
    Searches every source (or the one named by -Source) for images whose name
    matches -Name, with OneGet's version options. Shows Name, Version, Source
    and Description.
    .EXAMPLE
    PS C:\> Find-ContainerImage

    Name                 Version                 Description
    NanoServer           10.0.10586.0            Container OS Image of Windows Server 2016 Techn...
    WindowsServerCore    10.0.10586.0            Container OS Image of Windows Server 2016 Techn...
    .EXAMPLE
    PS C:\> Find-ContainerImage -Name Nano* -AllVersions
    .NOTES
    While providerd's index of a source is incomplete or stale, the answer
    may miss images: each such source is named on the warning stream before
    the images.
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImageInfo')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [SupportsWildcards()]
        [string[]]$Name,
        [string]$MinimumVersion,
        [string]$MaximumVersion,
        [Alias('Version')]
        [string]$RequiredVersion,
        [switch]$AllVersions,
        [string]$Source
    )
    begin {
        # A warning is written once per call, not once per name.
        $warned = @{}
    }
    process {
        foreach ($n in @(if ($Name) { $Name } else { '' })) {
            $q = Get-VersionQuery $PSBoundParameters
            $q['name'] = $n
            $q['source'] = $Source
            $res = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'FindImages'; Query = $q; Target = $n }
            foreach ($w in @(Get-JsonValue $res 'warnings')) {
                if (-not [string]::IsNullOrEmpty([string]$w) -and -not $warned.ContainsKey([string]$w)) {
                    $warned[[string]$w] = $true
                    $PSCmdlet.WriteWarning([string]$w)
                }
            }
            @(Get-JsonValue $res 'images') | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-ContainerProviderObject ContainerImageInfo $_ }
        }
    }
}

function Install-ContainerImage {
    <#
    .SYNOPSIS
    Installs a container image, with its parent images, from the sources or from a saved file.
    .DESCRIPTION
    Starts an install job in providerd and follows its event stream with
    Write-Progress until it ends with "Downloaded in H hours, M minutes, S
    seconds." (singular for 1); -Verbose shows each step ("Installing parent
    image ..."). Ctrl+C cancels the job, and the data downloaded so far is
    kept for the next install. The job runs on in providerd if the session
    drops: Get-ContainerImageJob and Wait-ContainerImageJob -Id re-attach to
    it. With -Path, the file made by Save-ContainerImage is streamed to
    providerd and installed (offline install). The installed images are
    written only with -PassThru.
    .EXAMPLE
    PS C:\> Install-ContainerImage -Name NanoServer -Version 10.0.10586.0
    Downloaded in 0 hours, 0 minutes, 10 seconds.
    .EXAMPLE
    PS C:\> Install-ContainerImage -Name WindowsServerCore -Version 10.0.10586.0
    Downloaded in 0 hours, 2 minutes, 28 seconds.
    .EXAMPLE
    PS C:\> Find-ContainerImage -Name NanoServer | Install-ContainerImage
    .EXAMPLE
    PS C:\> 'NanoServer', 'WindowsServerCore' | Install-ContainerImage
    .EXAMPLE
    PS C:\> Install-ContainerImage -Path C:\images\NanoServer-10-0-10586-0.tar -PassThru
    .NOTES
    A piped string is a -Name, and an object with a Name property (what
    Find-ContainerImage writes) is an -InputObject, installed with its
    Version and Source.
    #>
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Name')]
    [OutputType('ContainerProvider.ContainerImage')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'Name')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObject')]
        [object[]]$InputObject,
        [Parameter(Mandatory = $true, ParameterSetName = 'Path')]
        [string]$Path,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MinimumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MaximumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [Alias('Version')]
        [string]$RequiredVersion,
        [Parameter(ParameterSetName = 'Name')]
        [Parameter(ParameterSetName = 'InputObject')]
        [string]$Source,
        [Parameter(ParameterSetName = 'Name')]
        [Parameter(ParameterSetName = 'InputObject')]
        [switch]$Force,
        [Parameter(ParameterSetName = 'Name')]
        [Parameter(ParameterSetName = 'InputObject')]
        [switch]$NoDependencies,
        [switch]$PassThru
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Path') {
            $file = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
            if (-not $PSCmdlet.ShouldProcess($file, 'Install container images from file')) {
                return
            }
            if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {
                $PSCmdlet.WriteError((New-ContainerProviderError -Code NotFound -Message ('The file {0} does not exist.' -f $file) -Target $file))
                return
            }
            $images = @(Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'LoadImage'; InFile = $file; Activity = ('Installing container images from {0}' -f $file); Target = $file } -View ContainerImage -Key images)
            foreach ($img in $images) {
                Write-Verbose ('Installed {0} {1} from {2}' -f $img.Name, $img.Version, $file)
            }
            if ($PassThru) {
                $images
            }
            return
        }
        $requests = New-Object System.Collections.Generic.List[object]
        if ($PSCmdlet.ParameterSetName -eq 'InputObject') {
            foreach ($o in $InputObject) {
                $src = $Source
                if (-not $src -and $o.PSObject.Properties['Source']) {
                    $src = [string]$o.Source
                }
                $requests.Add([ordered]@{ name = [string]$o.Name; requiredVersion = [string]$o.Version; source = $src })
            }
        }
        else {
            foreach ($n in $Name) {
                $requests.Add([ordered]@{ name = $n; requiredVersion = $RequiredVersion; minimumVersion = $MinimumVersion; maximumVersion = $MaximumVersion; source = $Source })
            }
        }
        foreach ($req in $requests) {
            $req['force'] = [bool]$Force
            $req['noParents'] = [bool]$NoDependencies
            $label = ('{0} {1}' -f $req.name, $req.requiredVersion).Trim()
            if (-not $PSCmdlet.ShouldProcess($label, 'Install container image')) {
                continue
            }
            $job = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'InstallImage'; Body = $req; Target = $req.name }
            if ($job) {
                Write-Verbose ('Install job {0} started; Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $job.id)
                Complete-ImageJob -Cmdlet $PSCmdlet -Id $job.id -CancelOnStop -PassThru:$PassThru
            }
        }
    }
}

function Get-ContainerImage {
    <#
    .SYNOPSIS
    Lists the installed container images.
    .DESCRIPTION
    Shows Name, Publisher, Version and IsOSImage. ParentImage is a property:
    select it to see the parent of each image.
    .EXAMPLE
    PS C:\> Get-ContainerImage

    Name                    Publisher       Version         IsOSImage
    NanoServer              CN=Microsoft    10.0.10586.0    True
    WindowsServerCoreIIS    CN=Demo         1.0.0.0         False
    .EXAMPLE
    PS C:\> Get-ContainerImage | select Name, ParentImage

    NanoServerIIS     ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']
    .NOTES
    ParentImage is an object with Name, Publisher, Version and Digest, which
    prints as the 2016 module's did.
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImage')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [SupportsWildcards()]
        [string[]]$Name,
        [Parameter(Position = 1)]
        [string]$Publisher,
        [Parameter(Position = 2)]
        [string]$Version,
        [object]$ChildOf
    )
    process {
        foreach ($n in @(if ($Name) { $Name } else { '' })) {
            $q = @{ name = $n; publisher = $Publisher; requiredVersion = $Version }
            if ($ChildOf) {
                $q['childOf'] = if ($ChildOf -is [string]) { $ChildOf } else { [string]$ChildOf.Digest }
            }
            Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetImages'; Query = $q; Target = $n } -View ContainerImage -Key images
        }
    }
}

function Remove-ContainerImage {
    <#
    .SYNOPSIS
    Removes installed container images.
    .DESCRIPTION
    Removes images by name with version options, or the images piped from
    Get-ContainerImage. Each image a name selects is confirmed on its own
    (ConfirmImpact High); -WhatIf lists them and removes nothing. The
    confirmed images, of every name and every piped object, are removed
    together in one request by their digests, so that a parent and its
    child can go in one command, and an image installed after the
    confirmation is never taken with them. -Force skips the confirmation
    only: an image that a container or a child image depends on is never
    removed, and the error names the dependents. The removed images are
    written only with -PassThru.
    .EXAMPLE
    PS C:\> Get-ContainerImage -Name newimage | Remove-ContainerImage -Force
    .EXAMPLE
    PS C:\> Remove-ContainerImage -Name DemoImage -RequiredVersion 1.0.0.0
    .EXAMPLE
    PS C:\> Remove-ContainerImage -Name * -WhatIf
    .EXAMPLE
    PS C:\> 'DemoImage' | Remove-ContainerImage -PassThru
    .NOTES
    A piped string is a -Name; a piped image (what Get-ContainerImage
    writes) is an -Image, removed by its digest.
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'High', DefaultParameterSetName = 'Name')]
    [OutputType('ContainerProvider.ContainerImage')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'Name')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MinimumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MaximumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [Alias('Version')]
        [string]$RequiredVersion,
        [Parameter(ParameterSetName = 'Name')]
        [switch]$AllVersions,
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'Image')]
        [Alias('InputObject')]
        [object[]]$Image,
        [switch]$Force,
        [switch]$PassThru
    )
    begin {
        if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) {
            $ConfirmPreference = 'None'
        }
        $confirmed = New-Object System.Collections.Generic.List[string]
    }
    process {
        $targets = @()
        if ($PSCmdlet.ParameterSetName -eq 'Image') {
            $targets = @($Image | ForEach-Object { @{ Label = ('{0} {1}' -f $_.Name, $_.Version); Digest = [string]$_.Digest } })
        }
        else {
            foreach ($n in $Name) {
                # The plan: every image the name selects, removed by none.
                $q = Get-VersionQuery $PSBoundParameters
                $q['name'] = $n
                $q['force'] = $true
                $q['whatIf'] = $true
                $plan = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'RemoveImages'; Query = $q; Target = $n }
                $targets += @(Get-JsonValue $plan 'removed' | Where-Object { $null -ne $_ } | ForEach-Object { @{ Label = ('{0} {1}' -f $_.name, $_.version); Digest = [string]$_.digest } })
            }
        }
        foreach ($t in $targets) {
            if ($PSCmdlet.ShouldProcess($t.Label, 'Remove container image') -and -not $confirmed.Contains($t.Digest)) {
                $confirmed.Add($t.Digest)
            }
        }
    }
    end {
        if ($confirmed.Count -eq 0) {
            return
        }
        $removed = @(Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'RemoveImages'; Query = @{ id = ($confirmed -join ',') }; Target = ('{0} image(s)' -f $confirmed.Count) } -View ContainerImage -Key removed)
        foreach ($img in $removed) {
            Write-Verbose ('Removed {0} {1}' -f $img.Name, $img.Version)
        }
        if ($PassThru) {
            $removed
        }
    }
}

function Save-ContainerImage {
    <#
    .SYNOPSIS
    Saves a container image, with its parents, to an archive file on this computer.
    .DESCRIPTION
    The archive comes over providerd's HTTP API and is streamed to the file,
    with progress, so Save works in a remote session too. When -Path is a
    folder (an existing one, or a path that ends with a separator), the file
    is named as cimage save names it, <Name>-<version with dashes>.tar
    (NanoServer-10-0-10586-0.tar; a '/' in the name becomes '_'), the
    version being the one the save selects. With several names, -Path
    names a folder. A missing folder is
    created only with -Force; an existing file is overwritten only with
    -Force; a read-only file is an error. -WhatIf names the file and checks
    and writes nothing. The destination is -Path, which may hold wildcards
    that match an existing item, or -LiteralPath, one of them; -Destination
    is another name of -Path, as in ContainerProvider 0.5.
    .EXAMPLE
    PS C:\> Save-ContainerImage -Name NanoServer -RequiredVersion 10.0.10586.0 -Path C:\images\NanoServer.tar
    .EXAMPLE
    PS C:\> Get-ContainerImage -Name NanoServer | Save-ContainerImage -Path C:\images\ -Force
    .EXAMPLE
    PS C:\> 'NanoServer', 'WindowsServerCore' | Save-ContainerImage -Destination C:\images\
    .NOTES
    A piped string is a -Name; a piped object with a Name property (what
    Find- and Get-ContainerImage write) is an -InputObject, saved with its
    Version, or by its digest when it is an installed image.
    #>
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Name')]
    [OutputType([System.IO.FileInfo])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'Name')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObject')]
        [object]$InputObject,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MinimumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [string]$MaximumVersion,
        [Parameter(ParameterSetName = 'Name')]
        [Alias('Version')]
        [string]$RequiredVersion,
        # -Path or -LiteralPath, one of them: as options of both sets rather
        # than sets of their own, so that a piped string binds to -Name
        # with either.
        [Parameter(Position = 1)]
        [SupportsWildcards()]
        [Alias('Destination')]
        [string]$Path,
        [Alias('PSPath')]
        [string]$LiteralPath,
        [string]$Source,
        [switch]$Force
    )
    begin {
        if ([string]::IsNullOrEmpty($Path) -eq [string]::IsNullOrEmpty($LiteralPath)) {
            $PSCmdlet.ThrowTerminatingError((New-ContainerProviderError -Code InvalidArgument -Message 'Give the destination as -Path (or -Destination) or as -LiteralPath, one of them.' -Target $null))
        }
    }
    process {
        # One save request per name, or the one piped object.
        $requests = @()
        if ($PSCmdlet.ParameterSetName -eq 'InputObject') {
            $req = [ordered]@{}
            if ($InputObject.PSObject.Properties['Digest'] -and $InputObject.Digest -and $InputObject.PSTypeNames -contains 'ContainerProvider.ContainerImage') {
                $req['id'] = [string]$InputObject.Digest
            }
            else {
                $req['name'] = [string]$InputObject.Name
                $req['requiredVersion'] = [string]$InputObject.Version
                if ($InputObject.PSObject.Properties['Source'] -and $InputObject.Source) {
                    $req['source'] = [string]$InputObject.Source
                }
            }
            $requests = @($req)
        }
        else {
            $requests = @($Name | ForEach-Object { [ordered]@{ name = $_; requiredVersion = $RequiredVersion; minimumVersion = $MinimumVersion; maximumVersion = $MaximumVersion } })
        }

        # The destination: wildcards only with -Path, and only against
        # what exists.
        if ($LiteralPath) {
            $dest = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($LiteralPath)
        }
        else {
            # Ignore, not SilentlyContinue: a path that does not exist yet
            # is no error, not even in the caller's -ErrorVariable.
            $resolved = @(Resolve-Path -Path $Path -ErrorAction Ignore)
            if ($resolved.Count -gt 1) {
                $PSCmdlet.WriteError((New-ContainerProviderError -Code InvalidArgument -Message ('The path {0} matches more than one item.' -f $Path) -Target $Path))
                return
            }
            $dest = if ($resolved.Count -eq 1) { $resolved[0].ProviderPath } else { $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path) }
        }
        $isFolder = (Test-Path -LiteralPath $dest -PathType Container) -or $dest.EndsWith([System.IO.Path]::DirectorySeparatorChar) -or $dest.EndsWith([System.IO.Path]::AltDirectorySeparatorChar)
        foreach ($req in $requests) {
            if ($Source) {
                $req['source'] = $Source
            }
            # The plan names the image the save selects, and the file name
            # providerd gives its archive, as cimage save does:
            # <Name>-<version with dashes>.tar.
            $req['whatIf'] = $true
            $plan = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'SaveImage'; Body = $req; Target = $req['name'] }
            $req.Remove('whatIf')
            if (-not $plan) {
                continue
            }
            $label = '{0} {1}' -f $plan.image.name, $plan.image.version
            $file = $dest
            if ($isFolder) {
                $file = Join-Path $dest ([string]$plan.path)
            }
            if (-not $req.Contains('id')) {
                # The save takes the version the plan named, so that a newer
                # version published in between is not saved instead.
                $req['requiredVersion'] = [string]$plan.image.version
                $req.Remove('minimumVersion')
                $req.Remove('maximumVersion')
            }
            if (-not $PSCmdlet.ShouldProcess($file, ('Save container image {0}' -f $label))) {
                continue
            }
            $folder = Split-Path -Parent $file
            if ($folder -and -not (Test-Path -LiteralPath $folder -PathType Container)) {
                if (-not $Force) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code NotFound -Message ('The folder {0} does not exist. Use -Force to create it.' -f $folder) -Target $folder))
                    continue
                }
                # Literally: New-Item has no -LiteralPath.
                $null = [System.IO.Directory]::CreateDirectory($folder)
            }
            if (Test-Path -LiteralPath $file -PathType Leaf) {
                if ((Get-Item -LiteralPath $file -Force).IsReadOnly) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code PermissionDenied -Message ('The file {0} is read-only. Clear its read-only attribute or choose another path.' -f $file) -Target $file))
                    continue
                }
                if (-not $Force) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code AlreadyExists -Message ('The file {0} already exists. Use -Force to overwrite it.' -f $file) -Target $file))
                    continue
                }
            }
            # The archive goes to a partial file first, so that a failed or
            # aborted transfer never leaves a truncated archive under the
            # name (Invoke-ContainerProviderApi removes what it wrote).
            $partial = $file + '.partial'
            try {
                $null = Invoke-ContainerProviderApi -Route SaveImage -Body $req -OutFile $partial -Activity ('Saving {0} to {1}' -f $label, $file) -Target $label
                Move-Item -LiteralPath $partial -Destination $file -Force -ErrorAction Stop
                Get-Item -LiteralPath $file -ErrorAction Stop
            }
            catch {
                Remove-Item -LiteralPath $partial -Force -ErrorAction Ignore
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function New-ContainerImage {
    <#
    .SYNOPSIS
    Makes a new container image from a container.
    .DESCRIPTION
    Packs the container's directory as a new layer on top of its image.
    -Publisher Demo is stored as CN=Demo, and -Version 1.0 as 1.0.0.0.
    .EXAMPLE
    PS C:\> New-ContainerImage -Container $container -Publisher Demo -Name DemoImage -Version 1.0
    .EXAMPLE
    PS C:\> New-ContainerImage -Container web1 -Publisher Demo -Name WindowsServerCoreIIS -Version 1.0
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.ContainerImage')]
    param(
        [Parameter(Mandatory = $true, ValueFromPipeline = $true)]
        [object]$Container,
        [Parameter(Mandatory = $true)]
        [string]$Name,
        [Parameter(Mandatory = $true)]
        [string]$Publisher,
        [Parameter(Mandatory = $true)]
        [string]$Version,
        [string]$Description,
        [switch]$Force
    )
    process {
        if ($PSCmdlet.ShouldProcess(('{0} {1}' -f $Name, $Version), 'New container image')) {
            $req = [ordered]@{ container = (Get-ContainerReference $Container); name = $Name; publisher = $Publisher; version = $Version; description = $Description; force = [bool]$Force }
            Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'CommitImage'; Body = $req; Target = $Name } -View ContainerImage
        }
    }
}

function New-Container {
    <#
    .SYNOPSIS
    Creates a container on top of an installed image.
    .EXAMPLE
    PS C:\> $container = New-Container -ContainerImageName WindowsServerCore -Name demo
    .EXAMPLE
    PS C:\> Get-ContainerImage -Name NanoServer | New-Container -Name web1
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.Container')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]
        [Alias('ContainerImageName', 'ContainerImage')]
        [object]$Image,
        [string]$Name
    )
    process {
        $img = if ($Image -is [string]) { $Image } else { [string]$Image.Digest }
        if ($PSCmdlet.ShouldProcess($img, 'New container')) {
            Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'NewContainer'; Body = ([ordered]@{ image = $img; name = $Name }); Target = $img } -View Container
        }
    }
}

function Get-Container {
    <#
    .SYNOPSIS
    Lists containers.
    .EXAMPLE
    PS C:\> Get-Container

    Name    State      ParentImageName
    demo    Stopped    WindowsServerCore
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.Container')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [SupportsWildcards()]
        [string[]]$Name
    )
    process {
        Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetContainers' } -View Container -Key containers -Where { param($c) Test-NameMatch -Value $c.name -Patterns $Name }
    }
}

function Set-ContainerState {
    # What Start-, Stop- and Remove-Container do to each container: Route
    # with the container as {ref}, confirmed as Action; with PassThru, the
    # container as the answer gives it.
    param(
        [System.Management.Automation.PSCmdlet]$Cmdlet,
        [object[]]$Container,
        [string]$Route,
        [string]$Action,
        [hashtable]$Query = @{},
        [switch]$PassThru
    )
    foreach ($c in $Container) {
        $ref = Get-ContainerReference $c
        if ($Cmdlet.ShouldProcess($ref, $Action)) {
            $res = Invoke-ContainerImageCall -Cmdlet $Cmdlet -Call @{ Route = $Route; PathValues = @{ ref = $ref }; Query = $Query; Target = $ref }
            if ($PassThru -and $res) {
                ConvertTo-ContainerProviderObject Container $res
            }
        }
    }
}

function Start-Container {
    <#
    .SYNOPSIS
    Starts a container.
    .EXAMPLE
    PS C:\> Start-Container -Container $container
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.Container')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]
        [Alias('Name')]
        [object[]]$Container,
        [switch]$PassThru
    )
    process {
        Set-ContainerState -Cmdlet $PSCmdlet -Container $Container -Route StartContainer -Action 'Start container' -PassThru:$PassThru
    }
}

function Stop-Container {
    <#
    .SYNOPSIS
    Stops a container.
    .EXAMPLE
    PS C:\> Stop-Container -Container $container
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.Container')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]
        [Alias('Name')]
        [object[]]$Container,
        [switch]$PassThru
    )
    process {
        Set-ContainerState -Cmdlet $PSCmdlet -Container $Container -Route StopContainer -Action 'Stop container' -PassThru:$PassThru
    }
}

function Remove-Container {
    <#
    .SYNOPSIS
    Removes a container.
    .DESCRIPTION
    A running container is removed only with -Force, which also skips the
    confirmation.
    .EXAMPLE
    PS C:\> Get-Container -Name demo | Remove-Container -Force
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'High')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]
        [Alias('Name')]
        [object[]]$Container,
        [switch]$Force
    )
    begin {
        if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) {
            $ConfirmPreference = 'None'
        }
    }
    process {
        Set-ContainerState -Cmdlet $PSCmdlet -Container $Container -Route RemoveContainer -Action 'Remove container' -Query @{ force = [bool]$Force }
    }
}

function Register-ContainerImageSource {
    <#
    .SYNOPSIS
    Registers a registry as a source of container images.
    .DESCRIPTION
    Registers the registry at -Location under -Name in providerd, which then
    syncs its index of the source. With -Mirror, the source gets registry
    mirrors (pull-through caches, for instance) that providerd reads before
    the source: each URL given is one mirror, and -MirrorCredential,
    -MirrorCapability and -MirrorInsecure apply to every mirror given. A
    mirror URL that is not an http or https base URL is an InvalidArgument
    error, and nothing is registered. Mirrors that need different settings
    are registered with cimage source add NAME URL --mirror SPEC, one SPEC
    per mirror.
    .PARAMETER Name
    The name of the source: 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'.
    .PARAMETER Location
    The registry's http or https base URL, e.g. http://127.0.0.1:5000.
    .PARAMETER Insecure
    Skips TLS certificate verification of an https -Location.
    .PARAMETER Trusted
    Marks the source trusted: PackageManagement's Install-Package then
    installs from it without asking (Get-PackageSource shows IsTrusted).
    It changes nothing that providerd checks.
    .PARAMETER Credential
    The username and password that providerd sends to the registry, as
    Register-PackageSource -Credential does (-SourceCredential is another
    name). GET /v1/sources never returns the password.
    .PARAMETER Mirror
    The http or https base URLs of the source's registry mirrors, in the
    order providerd tries them.
    .PARAMETER MirrorCredential
    The username and password that providerd sends to every mirror of
    -Mirror (GET /v1/sources never returns the password).
    .PARAMETER MirrorCapability
    What every mirror of -Mirror serves: pull (blobs and manifests by
    digest), resolve (tags and find entries while the source is
    unreachable), or both, the default.
    .PARAMETER MirrorInsecure
    Skips TLS certificate verification of every https mirror of -Mirror.
    .PARAMETER MirrorNamespace
    The repository prefix under which every mirror of -Mirror holds the
    source's repositories, as a Harbor proxy project does (the project's
    name). A mirror with a namespace can only pull.
    .EXAMPLE
    PS C:\> Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000
    .EXAMPLE
    PS C:\> Register-ContainerImageSource -Name hub -Location https://registry-1.docker.io -Mirror http://127.0.0.1:5001 -MirrorCapability pull
    .EXAMPLE
    PS C:\> $cache = Get-Credential cacheuser
    PS C:\> Register-ContainerImageSource hub https://registry-1.docker.io -Mirror https://cache1.example:5000, https://cache2.example:5000 -MirrorCredential $cache
    PS C:\> Get-ContainerImageSource hub | Format-List
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.ContainerImageSource')]
    param(
        [Parameter(Mandatory = $true, Position = 0)]
        [string]$Name,
        [Parameter(Mandatory = $true, Position = 1)]
        [string]$Location,
        [switch]$Insecure,
        [switch]$Trusted,
        [Alias('SourceCredential')]
        [System.Management.Automation.PSCredential]$Credential,
        [ValidateNotNullOrEmpty()]
        [string[]]$Mirror,
        [System.Management.Automation.PSCredential]$MirrorCredential,
        [ValidateSet('pull', 'resolve')]
        [string[]]$MirrorCapability,
        [switch]$MirrorInsecure,
        [ValidateNotNullOrEmpty()]
        [string]$MirrorNamespace
    )
    $req = [ordered]@{ name = $Name; location = $Location; insecure = [bool]$Insecure }
    if ($Trusted) {
        # Left out otherwise, for a providerd that predates it.
        $req['trusted'] = $true
    }
    if ($Credential) {
        $req['username'] = $Credential.UserName
        $req['password'] = $Credential.GetNetworkCredential().Password
    }
    if (-not $Mirror -and ($MirrorCredential -or $MirrorCapability -or $MirrorInsecure -or $MirrorNamespace)) {
        $PSCmdlet.WriteError((New-ContainerProviderError -Code InvalidArgument -Message '-MirrorCredential, -MirrorCapability, -MirrorInsecure and -MirrorNamespace apply to the mirrors of -Mirror, and none is given.' -Target $Name))
        return
    }
    if ($Mirror) {
        try {
            $req['mirrors'] = New-SourceMirrorRequest -Location $Mirror -Credential $MirrorCredential -Capability $MirrorCapability -Insecure ([bool]$MirrorInsecure) -Namespace $MirrorNamespace -Target $Name
        }
        catch {
            $PSCmdlet.WriteError($_)
            return
        }
    }
    if ($PSCmdlet.ShouldProcess($Name, 'Register container image source')) {
        Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'AddSource'; Body = $req; Target = $Name } -View ContainerImageSource
    }
}

function Get-ContainerImageSource {
    <#
    .SYNOPSIS
    Lists the registered sources of container images.
    .EXAMPLE
    PS C:\> Get-ContainerImageSource

    Name       Location                 State       Entries    LastSync
    catalog    http://127.0.0.1:5000    complete    20         5/4/2024 10:12:03 AM
    .EXAMPLE
    PS C:\> Get-ContainerImageSource hub | Format-List

    Name      : hub
    Location  : https://registry-1.docker.io
    State     : complete
    Entries   : 20
    LastSync  : 5/4/2024 10:12:03 AM
    LastError :
    Insecure  : False
    Trusted   : False
    Username  :
    Mirrors   : http://127.0.0.1:5001 (pull)
    .NOTES
    State is the state of providerd's index of the source, which
    Find-ContainerImage and Install-ContainerImage read: complete, syncing
    (its first sync is under way), incomplete (its first sync has not ended)
    or stale (the last sync failed; LastError says why).
    Update-ContainerImageSource syncs it now. Mirrors lists the source's
    registry mirrors, each with Location, Capabilities, Insecure and
    Username.
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImageSource')]
    param(
        [Parameter(Position = 0)]
        [SupportsWildcards()]
        [string[]]$Name
    )
    Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetSources' } -View ContainerImageSource -Key sources -Where { param($s) Test-NameMatch -Value $s.name -Patterns $Name }
}

function Unregister-ContainerImageSource {
    <#
    .SYNOPSIS
    Unregisters a source of container images.
    .EXAMPLE
    PS C:\> Unregister-ContainerImageSource -Name catalog
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name
    )
    process {
        foreach ($n in $Name) {
            if ($PSCmdlet.ShouldProcess($n, 'Unregister container image source')) {
                $null = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'RemoveSource'; PathValues = @{ name = $n }; Target = $n }
            }
        }
    }
}

function Update-ContainerImageSource {
    <#
    .SYNOPSIS
    Syncs providerd's index of container image sources now.
    .DESCRIPTION
    Find-ContainerImage and Install-ContainerImage read providerd's index of
    each source, which syncs in the background. This syncs the index of each
    source that -Name names (every registered source without -Name) now, and
    outputs the source with the new state of its index. A sync that fails is
    a non-terminating error that names the source and says why; the source
    is output first, its State then stale (or incomplete when no sync has
    ended yet).
    .EXAMPLE
    PS C:\> Update-ContainerImageSource -Name catalog

    Name       Location                 State       Entries    LastSync
    catalog    http://127.0.0.1:5000    complete    20         5/4/2024 10:12:03 AM
    .EXAMPLE
    PS C:\> Get-ContainerImageSource | Where-Object State -ne complete | Update-ContainerImageSource
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImageSource')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Name
    )
    process {
        $names = @($Name | Where-Object { -not [string]::IsNullOrEmpty($_) })
        if ($names.Count -eq 0) {
            $names = @(Get-JsonValue (Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetSources' }) 'sources' | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_.name })
        }
        foreach ($n in $names) {
            $source = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'RefreshSource'; PathValues = @{ name = $n }; Target = $n } -View ContainerImageSource
            if ($source) {
                $PSCmdlet.WriteObject($source)
                if (-not [string]::IsNullOrEmpty([string]$source.LastError)) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code Unavailable -Message ('The sync of source {0} failed: {1}' -f $n, $source.LastError) -Target $n))
                }
            }
        }
    }
}

function Get-ContainerImageJob {
    <#
    .SYNOPSIS
    Lists providerd's install jobs, newest first, or shows one.
    .DESCRIPTION
    An install job runs on in providerd when the session that started it
    drops; this finds it again.
    .EXAMPLE
    PS C:\> Get-ContainerImageJob

    Id         State      Images                      Message
    7f3a...    succeeded  {NanoServer 10.0.10586.0}   Downloaded in 0 hours, 0 minutes, 10 seconds.
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImageJob')]
    param(
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id
    )
    process {
        if (-not $Id) {
            Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetJobs' } -View ContainerImageJob -Key jobs
        }
        foreach ($i in @($Id | Where-Object { $_ })) {
            Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'GetJob'; PathValues = @{ id = $i }; Target = $i } -View ContainerImageJob
        }
    }
}

function Wait-ContainerImageJob {
    <#
    .SYNOPSIS
    Re-attaches to an install job and waits for its end, with progress.
    .DESCRIPTION
    Follows the job's event stream as Install-ContainerImage does, and ends
    as it does: "Downloaded in ..." and, with -PassThru, the image. Ctrl+C
    stops the waiting only; Stop-ContainerImageJob cancels the job.
    .EXAMPLE
    PS C:\> Wait-ContainerImageJob -Id 7f3a0c1e
    Downloaded in 0 hours, 2 minutes, 28 seconds.
    .EXAMPLE
    PS C:\> Get-ContainerImageJob | Where-Object State -eq running | Wait-ContainerImageJob
    #>
    [CmdletBinding()]
    [OutputType('ContainerProvider.ContainerImage')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [switch]$PassThru
    )
    process {
        foreach ($i in $Id) {
            Complete-ImageJob -Cmdlet $PSCmdlet -Id $i -PassThru:$PassThru
        }
    }
}

function Stop-ContainerImageJob {
    <#
    .SYNOPSIS
    Cancels an install job.
    .DESCRIPTION
    providerd stops the job's downloads and keeps the data downloaded so
    far, so that the next install of the image resumes from it. A job that
    has ended is left as it is.
    .EXAMPLE
    PS C:\> Stop-ContainerImageJob -Id 7f3a0c1e
    .EXAMPLE
    PS C:\> Get-ContainerImageJob | Where-Object State -eq running | Stop-ContainerImageJob -PassThru
    #>
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('ContainerProvider.ContainerImageJob')]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [string[]]$Id,
        [switch]$PassThru
    )
    process {
        foreach ($i in $Id) {
            if ($PSCmdlet.ShouldProcess($i, 'Cancel install job')) {
                $job = Invoke-ContainerImageCall -Cmdlet $PSCmdlet -Call @{ Route = 'CancelJob'; PathValues = @{ id = $i }; Target = $i } -View ContainerImageJob
                if ($PassThru) {
                    $job
                }
            }
        }
    }
}

Export-ModuleMember -Function @(
    'Find-ContainerImage', 'Install-ContainerImage', 'Get-ContainerImage', 'Remove-ContainerImage',
    'Save-ContainerImage', 'New-ContainerImage',
    'New-Container', 'Get-Container', 'Start-Container', 'Stop-Container', 'Remove-Container',
    'Register-ContainerImageSource', 'Get-ContainerImageSource', 'Unregister-ContainerImageSource',
    'Update-ContainerImageSource', 'Get-ContainerImageJob', 'Wait-ContainerImageJob', 'Stop-ContainerImageJob'
)
