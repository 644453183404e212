# ContainerImageProvider: the PackageManagement (OneGet) provider for
# container images, over providerd's local HTTP API v1.
#
# PackageManagement finds this file through PrivateData.PackageManagementProviders
# of ContainerImage.psd1 and calls the functions below with a $request object
# in scope. The HTTP calls, the route table, the endpoint and token rules
# and the error envelope are those of ContainerProviderApi.psm1, which the
# cmdlets (ContainerImage.psm1) import too; this module calls its exported
# functions and reaches into neither module's scope.
#
# A package is named by its fastPackageReference,
# "name|version|source|digest|file": the digest of an installed image, by
# which Uninstall-Package removes it exactly; the path of an archive that
# Find-PackageByFile read, which Install-Package then loads.
#
# PackageManagement loads OneGet's PackageProviderFunctions.psm1 into the
# provider's runspace first. Its Write-Error takes only -Message, -Category,
# -ErrorId and -TargetObject and writes a warning (Write-ContainerImageError
# writes errors to the error stream instead), and its New-SoftwareIdentity
# and New-PackageSource refuse an empty value of a mandatory parameter. The
# static check scripts/check-powershell-contract.mjs holds these facts.

Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'ContainerProviderApi.psm1') -DisableNameChecking

$script:ProviderName = 'ContainerImage'

function Write-ContainerImageError {
    # Writes an ErrorRecord (of the shared module, or of a failed call) to
    # the error stream, which PackageManagement reports as the request's
    # error with its id, category and target. The Write-Error that
    # PackageManagement puts in the provider's runspace
    # (PackageProviderFunctions.psm1) would make a warning of it, and knows
    # no -ErrorRecord: the module-qualified name reaches the cmdlet.
    param(
        [System.Management.Automation.ErrorRecord]$Record
    )
    Microsoft.PowerShell.Utility\Write-Error -ErrorRecord $Record
}

function Write-SearchProblem {
    # Reports the failure of a search (Find-Package, Get-InstalledPackage,
    # Resolve-PackageSource, Find-PackageByFile) without failing the
    # request: PackageManagement ends a whole request, the other providers'
    # answers too, at the first error, and says itself when no provider
    # found a package. A NotFound is no match; anything else (providerd
    # down, say) is a warning.
    param(
        [System.Management.Automation.ErrorRecord]$Record
    )
    # PackageManagement's Write-Verbose and Write-Warning refuse an empty
    # message, and that refusal would be an error.
    $message = $Record.Exception.Message
    if ([string]::IsNullOrEmpty($message)) {
        $message = [string]$Record.FullyQualifiedErrorId
    }
    if ([string]$Record.FullyQualifiedErrorId -like 'ContainerProvider.NotFound*') {
        Write-Verbose $message
        return
    }
    Write-Warning -Message $message
}

function Invoke-ContainerImageApi {
    # One call of providerd: the answer, or, when it fails, nothing, and
    # the failure written as an error (Write-ContainerImageError) or, with
    # Search, as a search's (Write-SearchProblem). The bearer token of
    # providerd is never the request's credential: PackageManagement's
    # -Credential is the package source's, the registry's (Add-PackageSource
    # sends it as the source's username and password). The shared module
    # finds the token itself, in $env:CONTAINERPROVIDER_TOKEN or the token
    # file.
    param(
        [Parameter(Mandatory = $true)]
        [hashtable]$Arguments,
        [switch]$Search
    )
    try {
        Invoke-ContainerProviderApi @Arguments
    }
    catch {
        if ($Search) {
            Write-SearchProblem $_
        }
        else {
            Write-ContainerImageError $_
        }
    }
}

function Get-RequestCredential {
    # The -Credential of the request, the registry's: only Add-PackageSource
    # reads it.
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

function Get-RequestSources {
    # The sources the request names: PackageManagement gives the values of
    # -Source of Find-, Install- and Save-Package, and of Get- and
    # Unregister-PackageSource, as PackageSources (a name or a location
    # each).
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['PackageSources']) {
        return @($request.PackageSources | Where-Object { -not [string]::IsNullOrEmpty([string]$_) } | ForEach-Object { [string]$_ })
    }
    return @()
}

function Test-RequestCanceled {
    # Whether the user canceled the request (Ctrl+C in PackageManagement).
    if ((Test-Path -Path 'variable:request') -and $request -and $request.PSObject.Properties['IsCanceled']) {
        return [bool]$request.IsCanceled
    }
    return $false
}

function ConvertFrom-FastPackageReference {
    # Splits "name|version|source|digest|file" into a hashtable; all but the
    # name may be empty, and the file, last, may hold '|'.
    param(
        [string]$FastPackageReference
    )
    $parts = $FastPackageReference.Split([char]'|', 5)
    $ref = @{ Name = $parts[0]; Version = ''; Source = ''; Digest = ''; File = '' }
    $keys = @('Name', 'Version', 'Source', 'Digest', 'File')
    for ($i = 1; $i -lt $parts.Count; $i++) {
        $ref[$keys[$i]] = $parts[$i]
    }
    if ([string]::IsNullOrEmpty($ref.Name)) {
        throw (New-ContainerProviderError -Code InvalidArgument -Message ('The package reference {0} has no name.' -f $FastPackageReference) -Target $FastPackageReference)
    }
    return $ref
}

function ConvertTo-SoftwareIdentity {
    # A SoftwareIdentity from a find entry or an installed image of the API,
    # or of an archive (File). Its fastPackageReference is
    # "name|version|source|digest|file", the digest that of an Installed
    # image only (providerd saves by digest only what is installed); an
    # image that came from no source (a load, a commit) shows the source
    # 'local', since New-SoftwareIdentity refuses an empty -Source, and an
    # archive's images show the file. Trusted marks an entry of a trusted
    # source, which Install-Package installs without asking. An entry
    # without a name or a version is skipped with a warning.
    param(
        [object]$Entry,
        [string]$Source,
        [string]$File,
        [switch]$Installed,
        [bool]$Trusted
    )
    $name = [string](Get-JsonValue $Entry 'name')
    $version = [string](Get-JsonValue $Entry 'version')
    if ([string]::IsNullOrEmpty($name) -or [string]::IsNullOrEmpty($version)) {
        Write-Warning -Message ('providerd gave an image without a name or a version (name {0}, version {1}); it is left out' -f $name, $version)
        return
    }
    $src = $Source
    if (Get-JsonValue $Entry 'source') {
        $src = [string](Get-JsonValue $Entry 'source')
    }
    $shownSource = $src
    if ($File) {
        $shownSource = $File
    }
    if ([string]::IsNullOrEmpty($shownSource)) {
        $shownSource = 'local'
    }
    $digest = ''
    if ($Installed) {
        $digest = [string](Get-JsonValue $Entry 'digest')
    }
    $identity = @{
        FastPackageReference = '{0}|{1}|{2}|{3}|{4}' -f $name, $version, $src, $digest, $File
        Name                 = $name
        Version              = $version
        VersionScheme        = 'MultiPartNumeric'
        Source               = $shownSource
        Summary              = [string](Get-JsonValue $Entry 'description')
        SearchKey            = $name
        FromTrustedSource    = $Trusted
    }
    if ($File) {
        $identity['FullPath'] = $File
        $identity['FileName'] = Split-Path -Leaf $File
    }
    if (Get-JsonValue $Entry 'publisher') {
        $identity['Details'] = @{ Publisher = [string](Get-JsonValue $Entry 'publisher'); IsOSImage = [string][bool](Get-JsonValue $Entry 'isOSImage') }
    }
    New-SoftwareIdentity @identity
}

function Get-PackageProviderName {
    return $script:ProviderName
}

function Initialize-Provider {
    Write-Debug ('Initializing the {0} provider over {1}' -f $script:ProviderName, (Get-ContainerProviderEndpoint))
}

function Get-Feature {
    # Install-Package .\NanoServer-10-0-10586-0.tar goes to Find-PackageByFile.
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
    $sources = @(Get-RequestSources)
    if ($sources.Count -eq 0) {
        # Every source.
        $sources = @('')
    }
    # The trusted sources: their packages install without asking.
    $trusted = @{}
    foreach ($s in @(Get-ProviderSource)) {
        $trusted[[string]$s.name] = [bool](Get-JsonValue $s 'trusted')
    }
    # The warnings of an incomplete or stale index, once per call.
    $warned = @{}
    foreach ($source in $sources) {
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
            $res = Invoke-ContainerImageApi @{ Route = 'FindImages'; Query = $q; Target = $n } -Search
            foreach ($w in @(Get-JsonValue $res 'warnings')) {
                if (-not [string]::IsNullOrEmpty([string]$w) -and -not $warned.ContainsKey([string]$w)) {
                    $warned[[string]$w] = $true
                    Write-Warning -Message ([string]$w)
                }
            }
            @(Get-JsonValue $res 'images') | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-SoftwareIdentity -Entry $_ -Source $source -Trusted ([bool]$trusted[[string](Get-JsonValue $_ 'source')]) }
        }
    }
}

function Find-PackageByFile {
    # The images of saved archives (.tar, Get-Feature's file-extensions), so
    # that Install-Package .\NanoServer-10-0-10586-0.tar works: named from
    # the archive's own manifest.json or index.json, which is read here
    # without reading its layers. A file that names no image gives none.
    param(
        [string[]]$files
    )
    foreach ($file in $files) {
        if (Test-RequestCanceled) {
            return
        }
        try {
            $images = @(Read-ContainerImageArchive -Path $file)
        }
        catch {
            Write-Warning -Message ('{0} is no image archive: {1}' -f $file, $_.Exception.Message)
            continue
        }
        foreach ($image in $images) {
            ConvertTo-SoftwareIdentity -Entry ([pscustomobject]@{ name = $image.Name; version = $image.Version }) -File $file
        }
    }
}

function Install-Package {
    # Installs the package in an install job of providerd and follows its
    # event stream; an archive of Find-PackageByFile is streamed to
    # providerd and loaded. A request that PackageManagement cancels
    # cancels the job, and writes no error: the data downloaded so far
    # stays for the next install.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$fastPackageReference
    )
    $ref = ConvertFrom-FastPackageReference $fastPackageReference
    if ($ref.File) {
        $res = Invoke-ContainerImageApi @{ Route = 'LoadImage'; InFile = $ref.File; Activity = ('Installing container images from {0}' -f $ref.File); Target = $ref.File }
        @(Get-JsonValue $res 'images') | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-SoftwareIdentity -Entry $_ -Installed }
        return
    }
    $req = [ordered]@{
        name            = $ref.Name
        requiredVersion = $ref.Version
        source          = $ref.Source
        force           = Test-RequestSwitch 'Force'
        noParents       = Test-RequestSwitch 'NoDependencies'
    }
    $job = Invoke-ContainerImageApi @{ Route = 'InstallImage'; Body = $req; Target = $ref.Name }
    if (-not $job) {
        return
    }
    Write-Verbose ('Install job {0} started; Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $job.id)
    try {
        # PackageManagement cancels a request by stopping the provider's
        # pipeline (and sets IsCanceled): either cancels the job.
        $job = Wait-ContainerProviderJob -Id $job.id -CancelWhen { Test-RequestCanceled } -CancelOnStop
    }
    catch {
        Write-ContainerImageError $_
        return
    }
    if ($job.state -eq 'canceled' -and (Test-RequestCanceled)) {
        return
    }
    if ($job.state -ne 'succeeded') {
        Write-ContainerImageError (ConvertFrom-JobFailure -Job $job -Target $fastPackageReference)
        return
    }
    if (Get-JsonValue $job 'message') {
        Write-Verbose $job.message
    }
    $result = Get-JsonValue $job 'result'
    if ($null -ne $result) {
        ConvertTo-SoftwareIdentity -Entry $result -Source $ref.Source -Installed
    }
}

function Download-Package {
    # Saves the package, with its parents, to $location, in the file that
    # providerd names (<Name>-<version with dashes>.tar, as cimage save and
    # Save-ContainerImage do); the bytes come over the HTTP API, so it works
    # in a remote session too.
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
    $req = [ordered]@{ name = $ref.Name; requiredVersion = $ref.Version }
    if ($ref.Digest) {
        $req = [ordered]@{ id = $ref.Digest }
    }
    elseif ($ref.Source) {
        $req['source'] = $ref.Source
    }
    $req['whatIf'] = $true
    $plan = Invoke-ContainerImageApi @{ Route = 'SaveImage'; Body = $req; Target = $ref.Name }
    $req.Remove('whatIf')
    if (-not $plan) {
        return
    }
    $file = Join-Path $location ([string]$plan.path)
    $partial = $file + '.partial'
    try {
        # Literally: New-Item has no -LiteralPath.
        $null = [System.IO.Directory]::CreateDirectory($location)
        $null = Invoke-ContainerProviderApi -Route SaveImage -Body $req -OutFile $partial -Activity ('Saving {0} {1} to {2}' -f $ref.Name, $ref.Version, $file) -Target $ref.Name
        Move-Item -LiteralPath $partial -Destination $file -Force -ErrorAction Stop
    }
    catch {
        Remove-Item -LiteralPath $partial -Force -ErrorAction Ignore
        Write-ContainerImageError $_
        return
    }
    ConvertTo-SoftwareIdentity -Entry $plan.image -Source $ref.Source -File $file
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
    $res = Invoke-ContainerImageApi @{ Route = 'GetImages'; Query = $q; Target = $name } -Search
    @(Get-JsonValue $res 'images') | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-SoftwareIdentity -Entry $_ -Source '' -Installed }
}

function Uninstall-Package {
    # Removes one installed image, by the digest of its reference (the name
    # is a pattern to providerd, the digest exact). An image that a
    # container or a child image depends on is never removed: the error
    # names the dependents.
    param(
        [Parameter(Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$fastPackageReference
    )
    $ref = ConvertFrom-FastPackageReference $fastPackageReference
    $q = @{ id = $ref.Digest }
    if (-not $ref.Digest) {
        $q = @{ name = $ref.Name; requiredVersion = $ref.Version }
    }
    $res = Invoke-ContainerImageApi @{ Route = 'RemoveImages'; Query = $q; Target = $fastPackageReference }
    @(Get-JsonValue $res 'removed') | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-SoftwareIdentity -Entry $_ -Source $ref.Source }
}

function ConvertTo-PackageSource {
    # A PackageSource of an API source, trusted as it was registered; its
    # Details hold Mirrors, the text of each mirror ("URL (pull+resolve)")
    # joined by ", ", when it has any. Registered is $false for a source
    # just removed. A source without a name or a location is an error:
    # New-PackageSource refuses them empty.
    param(
        [object]$Source,
        [bool]$Registered = $true
    )
    $s = ConvertTo-ContainerProviderObject ContainerImageSource $Source
    $name = [string]$s.Name
    $location = [string]$s.Location
    if ([string]::IsNullOrEmpty($name) -or [string]::IsNullOrEmpty($location)) {
        Write-Warning -Message ('providerd gave a source without a name or a location (name {0}, location {1}); it is left out' -f $name, $location)
        return
    }
    $details = @{}
    if (@($s.Mirrors).Count -gt 0) {
        $details['Mirrors'] = @($s.Mirrors | ForEach-Object { Format-SourceMirror $_ }) -join ', '
    }
    New-PackageSource -Name $name -Location $location -Trusted ([bool]$s.Trusted) -Registered $Registered -Valid $true -Details $details
}

function Get-ProviderSource {
    # The sources of providerd whose name is like, or whose location is, one
    # of Wanted (every source without one).
    param(
        [string[]]$Wanted
    )
    $Wanted = @($Wanted | Where-Object { $_ })
    $res = Invoke-ContainerImageApi @{ Route = 'GetSources' } -Search
    @(Get-JsonValue $res 'sources') | Where-Object {
        $s = $_
        $null -ne $s -and ($Wanted.Count -eq 0 -or @($Wanted | Where-Object { $s.name -like $_ -or $s.location -eq $_ }).Count -gt 0)
    }
}

function Resolve-PackageSource {
    Get-ProviderSource -Wanted @(Get-RequestSources) | ForEach-Object { ConvertTo-PackageSource $_ }
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
    if ($Trusted) {
        # Kept by providerd, so that Install-Package does not ask; left out
        # otherwise, for a providerd that predates it.
        $req['trusted'] = $true
    }
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
        Write-ContainerImageError (New-ContainerProviderError -Code InvalidArgument -Message '-MirrorCapability and -MirrorInsecure apply to the mirrors of -Mirror, and none is given.' -Target $Name)
        return
    }
    if ($mirror.Count -gt 0) {
        try {
            $req['mirrors'] = New-SourceMirrorRequest -Location $mirror -Capability $capability -Insecure $mirrorInsecure -Target $Name
        }
        catch {
            Write-ContainerImageError $_
            return
        }
    }
    $res = Invoke-ContainerImageApi @{ Route = 'AddSource'; Body = $req; Target = $Name }
    if ($res) {
        ConvertTo-PackageSource $res
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
    $source = Get-ProviderSource -Wanted @($Name) | Where-Object { $_.name -eq $Name -or $_.location -eq $Name } | Select-Object -First 1
    $sourceName = $Name
    if ($null -ne $source) {
        $sourceName = [string]$source.name
    }
    try {
        $null = Invoke-ContainerProviderApi -Route RemoveSource -PathValues @{ name = $sourceName } -Target $Name
    }
    catch {
        Write-ContainerImageError $_
        return
    }
    if ($null -ne $source) {
        ConvertTo-PackageSource $source -Registered $false
    }
}

Export-ModuleMember -Function @(
    'Get-PackageProviderName', 'Initialize-Provider', 'Get-Feature', 'Get-DynamicOptions',
    'Find-Package', 'Find-PackageByFile', 'Install-Package', 'Download-Package', 'Get-InstalledPackage', 'Uninstall-Package',
    'Resolve-PackageSource', 'Add-PackageSource', 'Remove-PackageSource'
)
