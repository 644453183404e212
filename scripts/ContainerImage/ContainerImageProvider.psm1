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
#
# PackageManagement loads OneGet's PackageProviderFunctions.psm1 into the
# provider's runspace first. Its Write-Error takes only -Message, -Category,
# -ErrorId and -TargetObject (Write-ContainerImageError passes an ErrorRecord
# of the module through it), and its New-SoftwareIdentity and
# New-PackageSource refuse an empty value of a mandatory parameter. The
# static check scripts/check-powershell-contract.mjs holds these facts.

Set-StrictMode -Version 2.0

$script:ProviderName = 'ContainerImage'
$script:ContainerImageModule = Import-Module -Name (Join-Path $PSScriptRoot 'ContainerImage.psm1') -PassThru -DisableNameChecking

function Invoke-ContainerImageApi {
    # Runs Invoke-ContainerProviderApi inside ContainerImage.psm1. The bearer
    # token of providerd is never the request's credential: PackageManagement's
    # -Credential is the package source's, the registry's (Add-PackageSource
    # sends it as the source's username and password). The module finds the
    # token itself, in $env:CONTAINERPROVIDER_TOKEN or the token file.
    param(
        [Parameter(Mandatory = $true)]
        [hashtable]$Arguments
    )
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
    & $script:ContainerImageModule {
        param(
            [string]$JobId
        )
        Wait-JobCompletion -Id $JobId
    } $Id
}

function Get-RequestCredential {
    # The -Credential of the request, the registry's: only Add-PackageSource
    # reads it.
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['Credential'] -and $request.Credential) {
        return $request.Credential
    }
    return $null
}

function Write-ContainerImageError {
    # Writes an ErrorRecord (of the module, or of a failed call) through
    # PackageManagement's Write-Error, which knows no -ErrorRecord: its
    # message, category, error id and target, as text.
    param(
        [System.Management.Automation.ErrorRecord]$Record
    )
    $message = $Record.Exception.Message
    if ($Record.ErrorDetails -and $Record.ErrorDetails.Message) {
        $message = $Record.ErrorDetails.Message
    }
    Write-Error -Message $message -Category ([string]$Record.CategoryInfo.Category) -ErrorId ([string]$Record.FullyQualifiedErrorId) -TargetObject ([string]$Record.TargetObject)
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

function Get-RequestSources {
    # The sources the request names: PackageManagement gives the values of
    # -Source of Find-, Install- and Save-Package as PackageSources (a name
    # or a location each). One '' (every source) when it names none.
    $sources = @()
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['PackageSources']) {
        $sources = @($request.PackageSources | Where-Object { -not [string]::IsNullOrEmpty([string]$_) } | ForEach-Object { [string]$_ })
    }
    if ($sources.Count -eq 0) {
        return , @('')
    }
    return , $sources
}

function Test-RequestCanceled {
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['IsCanceled']) {
        return [bool]$request.IsCanceled
    }
    return $false
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
    # A SoftwareIdentity from a find entry or an installed image of the API,
    # or, with FullPath and FileName, of a saved archive. Its
    # fastPackageReference is "name|version|source", the source empty for
    # an image that came from no source (a load, a commit), which then shows
    # the source 'local': New-SoftwareIdentity refuses an empty -Source. An
    # entry without a name or a version is an error.
    param(
        [object]$Entry,
        [string]$Source,
        [string]$FullPath,
        [string]$FileName
    )
    $name = [string]$Entry.name
    $version = [string]$Entry.version
    if ([string]::IsNullOrEmpty($name) -or [string]::IsNullOrEmpty($version)) {
        throw ('ContainerImage: providerd gave an image without a name or a version (name {0}, version {1})' -f $name, $version)
    }
    $src = $Source
    if ($Entry.PSObject.Properties['source'] -and $Entry.source) {
        $src = [string]$Entry.source
    }
    $shownSource = $src
    if ([string]::IsNullOrEmpty($shownSource)) {
        $shownSource = 'local'
    }
    $summary = ''
    if ($Entry.PSObject.Properties['description'] -and $Entry.description) {
        $summary = [string]$Entry.description
    }
    $identity = @{
        FastPackageReference = '{0}|{1}|{2}' -f $name, $version, $src
        Name                 = $name
        Version              = $version
        VersionScheme        = 'MultiPartNumeric'
        Source               = $shownSource
        Summary              = $summary
        SearchKey            = $name
    }
    if ($FullPath) {
        $identity['FullPath'] = $FullPath
        $identity['FileName'] = $FileName
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
        # -Source of Find-, Install- and Save-Package is their own parameter
        # (a dynamic option of that name is dropped): Get-RequestSources
        # reads it from the request's PackageSources.
        Install {
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
    # -AllVersions is Find-Package's own switch, given as text.
    $allVersions = Test-RequestSwitch 'AllVersions'
    if (-not $names -or $names.Count -eq 0) {
        $names = @('')
    }
    # The warnings of an incomplete or stale index, once per call.
    $warned = @{}
    foreach ($source in (Get-RequestSources)) {
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
                Write-ContainerImageError $_
            }
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
        force           = Test-RequestSwitch 'Force'
        noParents       = Test-RequestSwitch 'NoDependencies'
    }
    try {
        $job = Invoke-ContainerImageApi @{ Route = 'InstallImage'; Body = $req; Target = $ref.Name }
        Write-Verbose ('Install job {0} started; Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $job.id)
        $job = Wait-ContainerImageInstallJob -Id $job.id
    }
    catch {
        Write-ContainerImageError $_
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
        try {
            ConvertTo-SoftwareIdentity -Entry $job.result -Source $ref.Source
        }
        catch {
            Write-ContainerImageError $_
        }
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
        Write-ContainerImageError $_
        return
    }
    try {
        ConvertTo-SoftwareIdentity -Entry ([pscustomobject]@{ name = $ref.Name; version = $ref.Version }) -Source $ref.Source -FullPath $file -FileName $fileName
    }
    catch {
        Write-ContainerImageError $_
    }
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
        Write-ContainerImageError $_
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
        Write-ContainerImageError $_
    }
}

function ConvertTo-PackageSource {
    # A PackageSource of an API source; its Details hold Mirrors, the text
    # of each mirror ("URL (pull+resolve)") joined by ", ", when it has any.
    # Registered is $false for a source just removed. A source without a
    # name or a location is an error: New-PackageSource refuses them empty.
    param(
        [object]$Source,
        [bool]$Registered = $true
    )
    $name = [string]$Source.name
    $location = [string]$Source.location
    if ([string]::IsNullOrEmpty($name) -or [string]::IsNullOrEmpty($location)) {
        throw ('ContainerImage: providerd gave a source without a name or a location (name {0}, location {1})' -f $name, $location)
    }
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
    New-PackageSource -Name $name -Location $location -Trusted $false -Registered $Registered -Valid $true -Details $details
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
        Write-ContainerImageError $_
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
        try {
            ConvertTo-PackageSource $s
        }
        catch {
            Write-ContainerImageError $_
        }
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
    # Register-PackageSource -Credential is the registry's username and
    # password, which providerd keeps with the source.
    $credential = Get-RequestCredential
    if ($credential) {
        $req['username'] = $credential.UserName
        $req['password'] = $credential.GetNetworkCredential().Password
    }
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
            Write-ContainerImageError $_
            return
        }
    }
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'AddSource'; Body = $req; Target = $Name }
        ConvertTo-PackageSource $res
    }
    catch {
        Write-ContainerImageError $_
    }
}

function Remove-PackageSource {
    # Unregisters the source named (or located at) Name and answers it, with
    # its location, as no longer registered. The location comes from the
    # listing before the removal, which answers 204 without a body; when
    # the listing has no such source, the removal's NotFound is the error.
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$Name
    )
    try {
        $res = Invoke-ContainerImageApi @{ Route = 'GetSources' }
        $source = @($res.sources) | Where-Object { $null -ne $_ -and ($_.name -eq $Name -or $_.location -eq $Name) } | Select-Object -First 1
        $sourceName = $Name
        if ($null -ne $source) {
            $sourceName = [string]$source.name
        }
        Invoke-ContainerImageApi @{ Route = 'RemoveSource'; PathValues = @{ name = $sourceName }; Target = $Name } | Out-Null
        if ($null -ne $source) {
            ConvertTo-PackageSource $source -Registered $false
        }
    }
    catch {
        Write-ContainerImageError $_
    }
}

Export-ModuleMember -Function @(
    'Get-PackageProviderName', 'Initialize-Provider', 'Get-Feature', 'Get-DynamicOptions',
    'Find-Package', 'Install-Package', 'Download-Package', 'Get-InstalledPackage', 'Uninstall-Package',
    'Resolve-PackageSource', 'Add-PackageSource', 'Remove-PackageSource'
)
