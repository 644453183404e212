# ContainerImageProvider: the PackageManagement (OneGet) provider for
# container images, over providerd's local HTTP API v1.
#
# PackageManagement finds this file through PrivateData.PackageManagementProviders
# of ContainerImage.psd1 and calls the functions below with a $request object
# in scope. The provider keeps no HTTP code of its own: it imports
# ContainerImage.psm1 as a nested module (Import-Module -PassThru) and runs
# that module's private helpers inside the module's own scope with
# `& $script:ContainerImageModule { ... }`. So Invoke-ContainerProviderApi,
# the one route table $script:Routes, the endpoint and token rules and the
# v1 error envelope handling are the module's, never copied here.
#
# A package is named by its fastPackageReference, "name|version|source".

Set-StrictMode -Version 2.0

$script:ProviderName = 'ContainerImage'
$script:ContainerImageModule = Import-Module -Name (Join-Path $PSScriptRoot 'ContainerImage.psm1') -PassThru -DisableNameChecking

function Invoke-ContainerImageApi {
    # Runs Invoke-ContainerProviderApi inside ContainerImage.psm1, with the
    # credential of the request when PackageManagement gives one.
    param(
        [Parameter(Mandatory = $true)]
        [hashtable]$Arguments
    )
    if (-not $Arguments.ContainsKey('Credential')) {
        $credential = Get-RequestCredential
        if ($credential) {
            $Arguments['Credential'] = $credential
        }
    }
    & $script:ContainerImageModule {
        param(
            [hashtable]$Splat
        )
        Invoke-ContainerProviderApi @Splat
    } $Arguments
}

function Wait-ContainerImageInstallJob {
    # Follows an install job with the module's Wait-JobCompletion and returns
    # the final job.
    param(
        [string]$Id
    )
    $credential = Get-RequestCredential
    & $script:ContainerImageModule {
        param(
            [string]$JobId,
            [object]$JobCredential
        )
        Wait-JobCompletion -Id $JobId -Credential $JobCredential
    } $Id $credential
}

function Get-RequestCredential {
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['Credential'] -and $request.Credential) {
        return $request.Credential
    }
    return $null
}

function Get-RequestOption {
    # The value of a dynamic option of the request, or $null.
    param(
        [string]$Name
    )
    if (-not (Test-Path -Path 'variable:request') -or -not $request) {
        return $null
    }
    $options = $request.Options
    if ($null -ne $options -and $options.ContainsKey($Name)) {
        return $options[$Name]
    }
    return $null
}

function Test-RequestSwitch {
    # Whether a switch option of the request is set. PackageManagement
    # gives a set switch as $true, and other values as text, 'false' too.
    param(
        [string]$Name
    )
    return [string](Get-RequestOption $Name) -eq 'true'
}

function Get-RequestList {
    # The values of a StringArray option of the request: PackageManagement
    # gives one value as a string and several as an array.
    param(
        [string]$Name
    )
    return @(Get-RequestOption $Name | Where-Object { -not [string]::IsNullOrEmpty([string]$_) } | ForEach-Object { [string]$_ })
}

function Get-RequestSource {
    # The one source the request names, through -Source or the package
    # sources, or $null for every source.
    $source = Get-RequestOption 'Source'
    if ($source) {
        return [string]$source
    }
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['PackageSources']) {
        $sources = @($request.PackageSources)
        if ($sources.Count -eq 1 -and $sources[0]) {
            return [string]$sources[0]
        }
    }
    return $null
}

function Test-RequestCanceled {
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['IsCanceled']) {
        return [bool]$request.IsCanceled
    }
    return $false
}

function New-FastPackageReference {
    param(
        [string]$Name,
        [string]$Version,
        [string]$Source
    )
    return '{0}|{1}|{2}' -f $Name, $Version, $Source
}

function ConvertFrom-FastPackageReference {
    # Splits "name|version|source" into a hashtable; version and source may
    # be empty.
    param(
        [string]$FastPackageReference
    )
    $parts = $FastPackageReference.Split('|')
    $ref = @{ Name = $parts[0]; Version = ''; Source = '' }
    if ($parts.Count -gt 1) {
        $ref.Version = $parts[1]
    }
    if ($parts.Count -gt 2) {
        $ref.Source = $parts[2]
    }
    if ([string]::IsNullOrEmpty($ref.Name)) {
        throw ('ContainerImage: the package reference {0} has no name' -f $FastPackageReference)
    }
    return $ref
}

function ConvertTo-SoftwareIdentity {
    # A SoftwareIdentity from a find entry or an installed image of the API.
    param(
        [object]$Entry,
        [string]$Source
    )
    $name = [string]$Entry.name
    $version = [string]$Entry.version
    $src = $Source
    if ($Entry.PSObject.Properties['source'] -and $Entry.source) {
        $src = [string]$Entry.source
    }
    $summary = ''
    if ($Entry.PSObject.Properties['description'] -and $Entry.description) {
        $summary = [string]$Entry.description
    }
    $identity = @{
        FastPackageReference = New-FastPackageReference -Name $name -Version $version -Source $src
        Name                 = $name
        Version              = $version
        VersionScheme        = 'MultiPartNumeric'
        Source               = $src
        Summary              = $summary
        SearchKey            = $name
    }
    if ($Entry.PSObject.Properties['publisher'] -and $Entry.publisher) {
        $identity['Details'] = @{ Publisher = [string]$Entry.publisher; IsOSImage = [string][bool]$Entry.isOSImage }
    }
    New-SoftwareIdentity @identity
}

function Get-PackageProviderName {
    return $script:ProviderName
}

function Initialize-Provider {
    Write-Debug ('Initializing the {0} provider over {1}' -f $script:ProviderName, (& $script:ContainerImageModule { Get-ContainerProviderEndpoint }))
}

function Get-Feature {
    Write-Output -InputObject (New-Feature -Name 'file-extensions' -Values @('.tar'))
}

function Get-DynamicOptions {
    param(
        [Microsoft.PackageManagement.MetaProvider.PowerShell.OptionCategory]$Category
    )
    switch ($Category) {
        Package {
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'Source' -ExpectedType String -IsRequired $false)
        }
        Install {
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'Source' -ExpectedType String -IsRequired $false)
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'NoDependencies' -ExpectedType Switch -IsRequired $false)
        }
        Source {
            # Register-PackageSource -ProviderName ContainerImage -Mirror URL,...
            # [-MirrorCapability pull|resolve] [-MirrorInsecure]: the options
            # of Register-ContainerImageSource, whose -MirrorCredential has
            # no dynamic option.
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'Insecure' -ExpectedType Switch -IsRequired $false)
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'Mirror' -ExpectedType StringArray -IsRequired $false)
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'MirrorCapability' -ExpectedType StringArray -IsRequired $false -PermittedValues @('pull', 'resolve'))
            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'MirrorInsecure' -ExpectedType Switch -IsRequired $false)
        }
    }
}

function Find-Package {
    param(
        [string[]]$names,
        [string]$requiredVersion,
        [string]$minimumVersion,
        [string]$maximumVersion
    )
    $source = Get-RequestSource
    $allVersions = [bool](Get-RequestOption 'AllVersions')
    if (-not $names -or $names.Count -eq 0) {
        $names = @('')
    }
    # The warnings of an incomplete or stale index, once per call.
    $warned = @{}
    foreach ($n in $names) {
        if (Test-RequestCanceled) {
            return
        }
        $q = @{
            name            = $n
            source          = $source
            requiredVersion = $requiredVersion
            minimumVersion  = $minimumVersion
            maximumVersion  = $maximumVersion
            allVersions     = $allVersions
        }
        try {
            $res = Invoke-ContainerImageApi @{ Route = 'FindImages'; Query = $q; Target = $n }
            $warnings = @()
            if ($res -and $res.PSObject.Properties['warnings']) {
                $warnings = @($res.warnings)
            }
            foreach ($w in $warnings) {
                if (-not [string]::IsNullOrEmpty([string]$w) -and -not $warned.ContainsKey([string]$w)) {
                    $warned[[string]$w] = $true
                    Write-Warning -Message ([string]$w)
                }
            }
            foreach ($entry in @($res.images)) {
                if ($null -ne $entry) {
                    ConvertTo-SoftwareIdentity -Entry $entry -Source $source
                }
            }
        }
        catch {
            Write-Error -ErrorRecord $_
        }
    }
}

function Install-Package {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$fastPackageReference
    )
    $ref = ConvertFrom-FastPackageReference $fastPackageReference
    $req = [ordered]@{
        name            = $ref.Name
        requiredVersion = $ref.Version
        source          = $ref.Source
        force           = [bool](Get-RequestOption 'Force')
        noParents       = [bool](Get-RequestOption 'NoDependencies')
    }
    try {
        $job = Invoke-ContainerImageApi @{ Route = 'InstallImage'; Body = $req; Target = $ref.Name }
        Write-Verbose ('Install job {0} started; Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $job.id)
        $job = Wait-ContainerImageInstallJob -Id $job.id
    }
    catch {
        Write-Error -ErrorRecord $_
        return
    }
    if ($job.state -ne 'succeeded') {
        $message = 'job {0} {1}' -f $job.id, $job.state
        $code = 'Internal'
        if ($job.PSObject.Properties['error'] -and $job.error) {
            $message = $job.error.message
            $code = $job.error.code
            if ($job.error.PSObject.Properties['id'] -and $job.error.id -eq 'NoMatchFoundForCriteria') {
                $message = '{0} Try Get-PackageSource to see all available registered package sources.' -f $message
            }
        }
        Write-Error -Message $message -ErrorId ('ContainerProvider.' + $code) -Category InvalidResult -TargetObject $fastPackageReference
        return
    }
    if ($job.PSObject.Properties['message'] -and $job.message) {
        Write-Verbose $job.message
    }
    if ($job.PSObject.Properties['result'] -and $job.result) {
        ConvertTo-SoftwareIdentity -Entry $job.result -Source $ref.Source
    }
}

function Download-Package {
    # Saves the package, with its parents, to an archive in $location; the
    # bytes come over the HTTP API, so it works in a remote session too.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$fastPackageReference,
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$location
    )
    $ref = ConvertFrom-FastPackageReference $fastPackageReference
    if (-not (Test-Path -LiteralPath $location -PathType Container)) {
        New-Item -ItemType Directory -Path $location -Force | Out-Null
    }
    $fileName = '{0}.tar' -f $ref.Name
    if ($ref.Version) {
        $fileName = '{0}-{1}.tar' -f $ref.Name, $ref.Version
    }
    $file = Join-Path $location $fileName
    $partial = $file + '.partial'
    $req = [ordered]@{ name = $ref.Name; requiredVersion = $ref.Version }
    if ($ref.Source) {
        $req['source'] = $ref.Source
    }
    try {
        Invoke-ContainerImageApi @{ Route = 'SaveImage'; Body = $req; OutFile = $partial; Target = $ref.Name } | Out-Null
        Move-Item -LiteralPath $partial -Destination $file -Force
    }
    catch {
        Remove-Item -LiteralPath $partial -Force -ErrorAction SilentlyContinue
        Write-Error -ErrorRecord $_
        return
    }
    $identity = @{
        FastPackageReference = $fastPackageReference
        Name                 = $ref.Name
        Version              = $ref.Version
        VersionScheme        = 'MultiPartNumeric'
        Source               = $ref.Source
        FullPath             = $file
        FileName             = $fileName
    }
    New-SoftwareIdentity @identity
}

function Get-InstalledPackage {
    param(
        [string]$name,
        [string]$requiredVersion,
        [string]$minimumVersion,
        [string]$maximumVersion
    )
    $q = @{
        name            = $name
        requiredVersion = $requiredVersion
        minimumVersion  = $minimumVersion
        maximumVersion  = $maximumVersion
    }
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'GetImages'; Query = $q; Target = $name }
        foreach ($img in @($res.images)) {
            if ($null -ne $img) {
                ConvertTo-SoftwareIdentity -Entry $img -Source ''
            }
        }
    }
    catch {
        Write-Error -ErrorRecord $_
    }
}

function Uninstall-Package {
    # Removes one installed image. An image that a container or a child image
    # depends on is never removed: the error names the dependents.
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$fastPackageReference
    )
    $ref = ConvertFrom-FastPackageReference $fastPackageReference
    $q = @{ name = $ref.Name; requiredVersion = $ref.Version }
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'RemoveImages'; Query = $q; Target = $fastPackageReference }
        foreach ($img in @($res.removed)) {
            if ($null -ne $img) {
                ConvertTo-SoftwareIdentity -Entry $img -Source $ref.Source
            }
        }
    }
    catch {
        Write-Error -ErrorRecord $_
    }
}

function ConvertTo-PackageSource {
    # A PackageSource of an API source; its Details hold Mirrors, the text
    # of each mirror ("URL (pull+resolve)") joined by ", ", when it has any.
    param(
        [object]$Source
    )
    $details = @{}
    $mirrors = & $script:ContainerImageModule {
        param(
            [object]$ApiSource
        )
        @((ConvertTo-ContainerImageSource $ApiSource).Mirrors | ForEach-Object { Format-SourceMirror $_ })
    } $Source
    $texts = @($mirrors | Where-Object { $_ })
    if ($texts.Count -gt 0) {
        $details['Mirrors'] = $texts -join ', '
    }
    New-PackageSource -Name ([string]$Source.name) -Location ([string]$Source.location) -Trusted $false -Registered $true -Valid $true -Details $details
}

function Resolve-PackageSource {
    $wanted = @()
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['PackageSources']) {
        $wanted = @($request.PackageSources | Where-Object { $_ })
    }
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'GetSources' }
    }
    catch {
        Write-Error -ErrorRecord $_
        return
    }
    foreach ($s in @($res.sources)) {
        if ($null -eq $s) {
            continue
        }
        if ($wanted.Count -gt 0) {
            $match = $false
            foreach ($w in $wanted) {
                if ($s.name -like $w -or $s.location -eq $w) {
                    $match = $true
                }
            }
            if (-not $match) {
                continue
            }
        }
        ConvertTo-PackageSource $s
    }
}

function Add-PackageSource {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$Name,
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$Location,
        [bool]$Trusted
    )
    $req = [ordered]@{ name = $Name; location = $Location; insecure = Test-RequestSwitch 'Insecure' }
    $mirror = @(Get-RequestList 'Mirror')
    $capability = @(Get-RequestList 'MirrorCapability')
    $mirrorInsecure = Test-RequestSwitch 'MirrorInsecure'
    if ($mirror.Count -eq 0 -and ($capability.Count -gt 0 -or $mirrorInsecure)) {
        Write-Error -Message '-MirrorCapability and -MirrorInsecure apply to the mirrors of -Mirror, and none is given.' -ErrorId 'ContainerProvider.InvalidArgument' -Category InvalidArgument -TargetObject $Name
        return
    }
    if ($mirror.Count -gt 0) {
        try {
            $req['mirrors'] = & $script:ContainerImageModule {
                param(
                    [string[]]$MirrorLocation,
                    [string[]]$MirrorCapability,
                    [bool]$MirrorInsecure,
                    [string]$SourceName
                )
                New-SourceMirrorRequest -Location $MirrorLocation -Capability $MirrorCapability -Insecure $MirrorInsecure -Target $SourceName
            } $mirror $capability $mirrorInsecure $Name
        }
        catch {
            Write-Error -ErrorRecord $_
            return
        }
    }
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'AddSource'; Body = $req; Target = $Name }
        ConvertTo-PackageSource $res
    }
    catch {
        Write-Error -ErrorRecord $_
    }
}

function Remove-PackageSource {
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$Name
    )
    try {
        Invoke-ContainerImageApi @{ Route = 'RemoveSource'; PathValues = @{ name = $Name }; Target = $Name } | Out-Null
        New-PackageSource -Name $Name -Location '' -Trusted $false -Registered $false -Valid $true
    }
    catch {
        Write-Error -ErrorRecord $_
    }
}

Export-ModuleMember -Function @(
    'Get-PackageProviderName', 'Initialize-Provider', 'Get-Feature', 'Get-DynamicOptions',
    'Find-Package', 'Install-Package', 'Download-Package', 'Get-InstalledPackage', 'Uninstall-Package',
    'Resolve-PackageSource', 'Add-PackageSource', 'Remove-PackageSource'
)
