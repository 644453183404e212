# ContainerImage: cmdlets over providerd's local HTTP API v1.
#
# Every HTTP call goes through the route table $script:Routes and the one
# helper Invoke-ContainerProviderApi, which builds the URL from the table and
# turns the v1 error envelope {"error":{code,message,dependents}} into
# ErrorRecords. The endpoint is $env:CONTAINERPROVIDER_ENDPOINT (default
# http://127.0.0.1:5050, providerd's TCP listener, which needs the bearer
# token); the token is the password of -Credential, else
# $env:CONTAINERPROVIDER_TOKEN, else the first line of
# $env:CONTAINERPROVIDER_TOKEN_FILE or of the token file providerd makes in
# its default root, when this user may read it (an administrator can).

Set-StrictMode -Version 2.0

# The route table: one line per call, method, path and the query parameters
# the module sends. A test checks every line against providerd's router, and
# scripts/check-powershell-contract.mjs that some function uses each line.
$script:Routes = [ordered]@{
    GetSources      = @{ Method = 'GET'; Path = '/v1/sources'; Query = @() }
    AddSource       = @{ Method = 'POST'; Path = '/v1/sources'; Query = @() }
    RemoveSource    = @{ Method = 'DELETE'; Path = '/v1/sources/{name}'; Query = @() }
    RefreshSource   = @{ Method = 'POST'; Path = '/v1/sources/{name}/refresh'; Query = @() }
    FindImages      = @{ Method = 'GET'; Path = '/v1/find'; Query = @('name', 'source', 'requiredVersion', 'minimumVersion', 'maximumVersion', 'allVersions') }
    InstallImage    = @{ Method = 'POST'; Path = '/v1/images/install'; Query = @() }
    LoadImage       = @{ Method = 'POST'; Path = '/v1/images/load'; Query = @() }
    SaveImage       = @{ Method = 'POST'; Path = '/v1/images/save'; Query = @() }
    CommitImage     = @{ Method = 'POST'; Path = '/v1/images/commit'; Query = @() }
    GetImages       = @{ Method = 'GET'; Path = '/v1/images'; Query = @('name', 'publisher', 'requiredVersion', 'minimumVersion', 'maximumVersion', 'allVersions', 'childOf') }
    RemoveImages    = @{ Method = 'DELETE'; Path = '/v1/images'; Query = @('name', 'id', 'requiredVersion', 'minimumVersion', 'maximumVersion', 'allVersions', 'force', 'whatIf') }
    GetJobs         = @{ Method = 'GET'; Path = '/v1/jobs'; Query = @() }
    GetJob          = @{ Method = 'GET'; Path = '/v1/jobs/{id}'; Query = @() }
    CancelJob       = @{ Method = 'POST'; Path = '/v1/jobs/{id}/cancel'; Query = @() }
    GetContainers   = @{ Method = 'GET'; Path = '/v1/containers'; Query = @() }
    NewContainer    = @{ Method = 'POST'; Path = '/v1/containers'; Query = @() }
    RemoveContainer = @{ Method = 'DELETE'; Path = '/v1/containers/{ref}'; Query = @('force') }
    StartContainer  = @{ Method = 'POST'; Path = '/v1/containers/{ref}/start'; Query = @() }
    StopContainer   = @{ Method = 'POST'; Path = '/v1/containers/{ref}/stop'; Query = @() }
}

# The ErrorCategory of each envelope code.
$script:ErrorCategories = @{
    InvalidArgument    = [System.Management.Automation.ErrorCategory]::InvalidArgument
    NotFound           = [System.Management.Automation.ErrorCategory]::ObjectNotFound
    AlreadyExists      = [System.Management.Automation.ErrorCategory]::ResourceExists
    Conflict           = [System.Management.Automation.ErrorCategory]::ResourceBusy
    FailedPrecondition = [System.Management.Automation.ErrorCategory]::InvalidOperation
    Unavailable        = [System.Management.Automation.ErrorCategory]::ResourceUnavailable
    OutOfRange         = [System.Management.Automation.ErrorCategory]::InvalidArgument
    TooLarge           = [System.Management.Automation.ErrorCategory]::LimitsExceeded
    Unauthenticated    = [System.Management.Automation.ErrorCategory]::AuthenticationError
    PermissionDenied   = [System.Management.Automation.ErrorCategory]::PermissionDenied
    NotImplemented     = [System.Management.Automation.ErrorCategory]::NotImplemented
    Internal           = [System.Management.Automation.ErrorCategory]::NotSpecified
}

# The State of a source from the status of providerd's index of it, as
# cimage source list shows it: the first line whose conditions all hold
# wins. Complete and Syncing are the status fields; Failed says that
# lastError is set. A test checks the table against the CLI's rule.
$script:SourceStates = @(
    @{ State = 'syncing'; Complete = $false; Syncing = $true }
    @{ State = 'incomplete'; Complete = $false }
    @{ State = 'stale'; Failed = $true }
    @{ State = 'complete' }
)

# The capabilities of a source's mirror (api.SourceMirror): pull serves
# blobs and manifests by digest, resolve serves tags and find entries while
# the source itself is unreachable. A mirror registered with none has both.
# A test checks this list against -MirrorCapability, the provider's option
# and the API.
$script:MirrorCapabilities = @('pull', 'resolve')

# The job states after which a job changes no more.
$script:FinalJobStates = @('succeeded', 'failed', 'canceled')

function Get-ContainerProviderEndpoint {
    $endpoint = $env:CONTAINERPROVIDER_ENDPOINT
    if ([string]::IsNullOrEmpty($endpoint)) {
        $endpoint = 'http://127.0.0.1:5050'
    }
    return $endpoint.TrimEnd('/')
}

# The token file providerd makes on first start in its default root
# ($XDG_DATA_HOME or ~/.local/share, then containerprovider/providerd).
function Get-ContainerProviderTokenFile {
    if (-not [string]::IsNullOrEmpty($env:CONTAINERPROVIDER_TOKEN_FILE)) {
        return $env:CONTAINERPROVIDER_TOKEN_FILE
    }
    $data = $env:XDG_DATA_HOME
    if ([string]::IsNullOrEmpty($data)) {
        if ([string]::IsNullOrEmpty($HOME)) {
            return $null
        }
        $data = Join-Path (Join-Path $HOME '.local') 'share'
    }
    return Join-Path (Join-Path (Join-Path (Join-Path $data 'containerprovider') 'providerd') 'auth') 'token'
}

function Get-ContainerProviderToken {
    param([System.Management.Automation.PSCredential]$Credential)
    if ($Credential) {
        return $Credential.GetNetworkCredential().Password
    }
    if (-not [string]::IsNullOrEmpty($env:CONTAINERPROVIDER_TOKEN)) {
        return $env:CONTAINERPROVIDER_TOKEN
    }
    $file = Get-ContainerProviderTokenFile
    if ($file -and (Test-Path -LiteralPath $file -PathType Leaf)) {
        try {
            $line = Get-Content -LiteralPath $file -TotalCount 1 -ErrorAction Stop
            if ($line) {
                return $line.Trim()
            }
        } catch {
            Write-Verbose "The token file $file cannot be read: $($_.Exception.Message)"
        }
    }
    return $null
}

function New-ContainerProviderError {
    [CmdletBinding()]
    param(
        [string]$Code,
        [string]$Message,
        [string]$Id,
        [string[]]$Dependents,
        [object]$Target,
        [System.Exception]$InnerException
    )
    if ([string]::IsNullOrEmpty($Code)) {
        $Code = 'Internal'
    }
    $category = $script:ErrorCategories[$Code]
    if ($null -eq $category) {
        $category = [System.Management.Automation.ErrorCategory]::NotSpecified
    }
    $text = $Message
    if ($Id -eq 'NoMatchFoundForCriteria') {
        # providerd leaves the hint to each client: the cmdlets' one.
        $text = '{0} Try Get-PackageSource to see all available registered package sources.' -f $text
    }
    if ($Dependents -and $Dependents.Count -gt 0) {
        $text = '{0} Dependents: {1}.' -f $Message, ($Dependents -join ', ')
    }
    $exception = New-Object System.InvalidOperationException -ArgumentList $text, $InnerException
    $record = New-Object System.Management.Automation.ErrorRecord -ArgumentList $exception, ('ContainerProvider.' + $Code), $category, $Target
    if ($Dependents -and $Dependents.Count -gt 0) {
        $record.ErrorDetails = New-Object System.Management.Automation.ErrorDetails -ArgumentList $text
        $record.ErrorDetails.RecommendedAction = 'Remove the dependents first: ' + ($Dependents -join ', ')
    }
    return $record
}

function ConvertFrom-ContainerProviderFailure {
    # Turns the exception of a failed web request into an ErrorRecord, from
    # the v1 envelope when the answer carries one.
    [CmdletBinding()]
    param(
        [System.Management.Automation.ErrorRecord]$Failure,
        [object]$Target
    )
    $body = $null
    if ($Failure.ErrorDetails -and $Failure.ErrorDetails.Message) {
        $body = $Failure.ErrorDetails.Message
    }
    elseif ($Failure.Exception.PSObject.Properties['Response'] -and $Failure.Exception.Response -and $Failure.Exception.Response.PSObject.Methods['GetResponseStream']) {
        try {
            $reader = New-Object System.IO.StreamReader -ArgumentList $Failure.Exception.Response.GetResponseStream()
            $body = $reader.ReadToEnd()
            $reader.Dispose()
        }
        catch {
            $body = $null
        }
    }
    $envelope = $null
    if ($body) {
        try {
            $envelope = $body | ConvertFrom-Json -ErrorAction Stop
        }
        catch {
            $envelope = $null
        }
    }
    if ($envelope -and $envelope.PSObject.Properties['error'] -and $envelope.error) {
        $e = $envelope.error
        $dependents = @()
        if ($e.PSObject.Properties['dependents'] -and $e.dependents) {
            $dependents = @($e.dependents)
        }
        return New-ContainerProviderError -Code $e.code -Message $e.message -Id (Get-JsonValue $e 'id') -Dependents $dependents -Target $Target -InnerException $Failure.Exception
    }
    $code = 'Unavailable'
    if ($Failure.Exception.PSObject.Properties['Response'] -and $Failure.Exception.Response) {
        $code = 'Internal'
    }
    return New-ContainerProviderError -Code $code -Message ('providerd at {0}: {1}' -f (Get-ContainerProviderEndpoint), $Failure.Exception.Message) -Target $Target -InnerException $Failure.Exception
}

function Invoke-ContainerProviderApi {
    # The one place where the module calls providerd. Route names a line of
    # $script:Routes; PathValues fill its {variables}; Query may only hold the
    # parameters the line declares (empty values are left out). Body is sent
    # as JSON, InFile as application/x-tar; OutFile streams the answer to a
    # file and returns the response. A failure is thrown as an ErrorRecord
    # whose target is Target.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [string]$Route,
        [hashtable]$PathValues = @{},
        [hashtable]$Query = @{},
        [object]$Body,
        [string]$InFile,
        [string]$OutFile,
        [object]$Target,
        [System.Management.Automation.PSCredential]$Credential
    )
    $r = $script:Routes[$Route]
    if ($null -eq $r) {
        throw "ContainerImage: no route named $Route"
    }
    $path = $r.Path
    foreach ($k in $PathValues.Keys) {
        $path = $path.Replace('{' + $k + '}', [System.Uri]::EscapeDataString([string]$PathValues[$k]))
    }
    $pairs = New-Object System.Collections.Generic.List[string]
    foreach ($k in $Query.Keys) {
        if ($r.Query -notcontains $k) {
            throw "ContainerImage: route $Route declares no query parameter $k"
        }
        $v = $Query[$k]
        if ($null -eq $v) {
            continue
        }
        if ($v -is [bool] -or $v -is [System.Management.Automation.SwitchParameter]) {
            if (-not [bool]$v) {
                continue
            }
            $v = 'true'
        }
        if ([string]::IsNullOrEmpty([string]$v)) {
            continue
        }
        $pairs.Add([System.Uri]::EscapeDataString($k) + '=' + [System.Uri]::EscapeDataString([string]$v))
    }
    $uri = (Get-ContainerProviderEndpoint) + $path
    if ($pairs.Count -gt 0) {
        $uri = $uri + '?' + ($pairs -join '&')
    }
    $headers = @{}
    $token = Get-ContainerProviderToken -Credential $Credential
    if (-not [string]::IsNullOrEmpty($token)) {
        $headers['Authorization'] = 'Bearer ' + $token
    }
    $params = @{
        Uri         = $uri
        Method      = $r.Method
        Headers     = $headers
        ErrorAction = 'Stop'
    }
    if ($PSVersionTable.PSVersion.Major -lt 6) {
        $params['UseBasicParsing'] = $true
    }
    if ($PSBoundParameters.ContainsKey('Body')) {
        $params['Body'] = [System.Text.Encoding]::UTF8.GetBytes((ConvertTo-Json -InputObject $Body -Depth 8 -Compress))
        $params['ContentType'] = 'application/json'
    }
    if ($InFile) {
        $params['InFile'] = $InFile
        $params['ContentType'] = 'application/x-tar'
    }
    Write-Verbose ('{0} {1}' -f $r.Method, $uri)
    try {
        if ($OutFile) {
            $params['OutFile'] = $OutFile
            $params['PassThru'] = $true
            return Invoke-WebRequest @params
        }
        return Invoke-RestMethod @params
    }
    catch {
        throw (ConvertFrom-ContainerProviderFailure -Failure $_ -Target $Target)
    }
}

function Get-JsonValue {
    param(
        [object]$Object,
        [string]$Name
    )
    if ($null -ne $Object -and $Object.PSObject.Properties[$Name]) {
        return $Object.$Name
    }
    return $null
}

function Format-ParentImage {
    # The reference text of a parent reference:
    # ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']
    param(
        [object]$Parent
    )
    if ($null -eq $Parent) {
        return $null
    }
    return "ContainerImage (Name = '{0}') [Publisher = '{1}', Version = '{2}']" -f (Get-JsonValue $Parent 'name'), (Get-JsonValue $Parent 'publisher'), (Get-JsonValue $Parent 'version')
}

function ConvertTo-ContainerImage {
    param(
        [object]$Image
    )
    [pscustomobject]@{
        PSTypeName  = 'ContainerProvider.ContainerImage'
        Name        = Get-JsonValue $Image 'name'
        Publisher   = Get-JsonValue $Image 'publisher'
        Version     = Get-JsonValue $Image 'version'
        IsOSImage   = [bool](Get-JsonValue $Image 'isOSImage')
        ParentImage = Format-ParentImage (Get-JsonValue $Image 'parentImage')
        Description = Get-JsonValue $Image 'description'
        Repository  = Get-JsonValue $Image 'repository'
        Size        = Get-JsonValue $Image 'size'
        Created     = Get-JsonValue $Image 'created'
        Installed   = Get-JsonValue $Image 'installed'
        Digest      = Get-JsonValue $Image 'digest'
        ID          = Get-JsonValue $Image 'id'
        Source      = Get-JsonValue $Image 'source'
        Refs        = @(Get-JsonValue $Image 'refs')
        OSVersion   = Get-JsonValue $Image 'os.version'
        # What verified the image at its install: 'key sha256:...',
        # 'unverified' or 'unsigned'.
        Signed      = Get-JsonValue $Image 'signed'
    }
}

function ConvertTo-ContainerImageInfo {
    param(
        [object]$Entry
    )
    [pscustomobject]@{
        PSTypeName  = 'ContainerProvider.ContainerImageInfo'
        Name        = Get-JsonValue $Entry 'name'
        Version     = Get-JsonValue $Entry 'version'
        Source      = Get-JsonValue $Entry 'source'
        Description = Get-JsonValue $Entry 'description'
        Publisher   = Get-JsonValue $Entry 'publisher'
        IsOSImage   = [bool](Get-JsonValue $Entry 'isOSImage')
        ParentImage = Format-ParentImage (Get-JsonValue $Entry 'parent')
        Repository  = Get-JsonValue $Entry 'repository'
        Digest      = Get-JsonValue $Entry 'digest'
        Size        = Get-JsonValue $Entry 'size'
        OSVersion   = Get-JsonValue $Entry 'os.version'
    }
}

function ConvertTo-Container {
    param(
        [object]$Container
    )
    [pscustomobject]@{
        PSTypeName      = 'ContainerProvider.Container'
        Name            = Get-JsonValue $Container 'name'
        State           = Get-JsonValue $Container 'state'
        ParentImageName = Get-JsonValue $Container 'parentImageName'
        ID              = Get-JsonValue $Container 'id'
        Image           = Get-JsonValue $Container 'image'
        ImageDigest     = Get-JsonValue $Container 'imageDigest'
        Created         = Get-JsonValue $Container 'created'
    }
}

function Get-SourceState {
    # The State of a source from its status ($script:SourceStates), or $null
    # without a status.
    param(
        [object]$Status
    )
    if ($null -eq $Status) {
        return $null
    }
    $facts = @{
        Complete = [bool](Get-JsonValue $Status 'complete')
        Syncing  = [bool](Get-JsonValue $Status 'syncing')
        Failed   = -not [string]::IsNullOrEmpty([string](Get-JsonValue $Status 'lastError'))
    }
    foreach ($rule in $script:SourceStates) {
        $match = $true
        foreach ($k in $facts.Keys) {
            if ($rule.ContainsKey($k) -and $rule[$k] -ne $facts[$k]) {
                $match = $false
            }
        }
        if ($match) {
            return $rule.State
        }
    }
    return $null
}

function ConvertTo-ContainerImageSourceMirror {
    # A mirror of a source as GET /v1/sources returns it (never with its
    # password). Capabilities are the ones the mirror serves: when the
    # answer lists none, both, or pull alone for a mirror with a namespace.
    param(
        [object]$Mirror
    )
    $namespace = Get-JsonValue $Mirror 'namespace'
    $capabilities = @(Get-JsonValue $Mirror 'capabilities' | Where-Object { -not [string]::IsNullOrEmpty([string]$_) })
    if ($capabilities.Count -eq 0) {
        $capabilities = if ($namespace) { @('pull') } else { $script:MirrorCapabilities }
    }
    [pscustomobject]@{
        PSTypeName   = 'ContainerProvider.ContainerImageSourceMirror'
        Location     = Get-JsonValue $Mirror 'location'
        Capabilities = [string[]]$capabilities
        Insecure     = [bool](Get-JsonValue $Mirror 'insecure')
        Username     = Get-JsonValue $Mirror 'username'
        Namespace    = $namespace
    }
}

function Format-SourceMirror {
    # The text of a mirror object: "URL (pull+resolve)", the capabilities
    # joined as cimage source add --mirror writes them.
    param(
        [object]$Mirror
    )
    return '{0} ({1})' -f $Mirror.Location, ($Mirror.Capabilities -join '+')
}

function New-SourceMirrorRequest {
    # The mirrors of an AddSource body (api.SourceMirror): one per URL of
    # Location, each with the username and password of Credential, Insecure
    # and Capabilities (left out when none is given: the mirror then has
    # both). Nothing is sent when a value is bad: a Location that is not an
    # http or https URL with a host and without query, fragment or user
    # info, or a capability that is not one of $script:MirrorCapabilities,
    # throws an InvalidArgument ErrorRecord whose target is Target.
    param(
        [string[]]$Location,
        [System.Management.Automation.PSCredential]$Credential,
        [string[]]$Capability,
        [bool]$Insecure,
        [string]$Namespace,
        [object]$Target
    )
    $caps = New-Object System.Collections.Generic.List[string]
    foreach ($c in @($Capability)) {
        if ([string]::IsNullOrWhiteSpace($c)) {
            continue
        }
        $c = $c.Trim().ToLowerInvariant()
        if ($script:MirrorCapabilities -notcontains $c) {
            throw (New-ContainerProviderError -Code InvalidArgument -Message ('The mirror capability {0} is not one of {1}.' -f $c, ($script:MirrorCapabilities -join ', ')) -Target $Target)
        }
        if (-not $caps.Contains($c)) {
            $caps.Add($c)
        }
    }
    $mirrors = New-Object System.Collections.Generic.List[object]
    foreach ($l in @($Location)) {
        $text = ([string]$l).Trim()
        $uri = $null
        $why = $null
        if (-not [System.Uri]::TryCreate($text, [System.UriKind]::Absolute, [ref]$uri) -or ($uri.Scheme -ne 'http' -and $uri.Scheme -ne 'https')) {
            $why = 'is not an http or https URL'
        }
        elseif ([string]::IsNullOrEmpty($uri.Host)) {
            $why = 'has no host'
        }
        elseif ($uri.Query -or $uri.Fragment) {
            $why = 'has a query or a fragment, which a registry base URL has not'
        }
        elseif ($uri.UserInfo) {
            $why = 'holds credentials, which belong in -MirrorCredential'
        }
        if ($why) {
            throw (New-ContainerProviderError -Code InvalidArgument -Message ('The mirror {0} {1}; give a registry base URL such as http://127.0.0.1:5001.' -f $text, $why) -Target $Target)
        }
        $mirror = [ordered]@{ location = $text }
        if ($Insecure) {
            $mirror['insecure'] = $true
        }
        if ($Namespace) {
            $mirror['namespace'] = $Namespace
        }
        if ($Credential) {
            $mirror['username'] = $Credential.UserName
            $mirror['password'] = $Credential.GetNetworkCredential().Password
        }
        if ($caps.Count -gt 0) {
            $mirror['capabilities'] = $caps.ToArray()
        }
        $mirrors.Add($mirror)
    }
    # One array, also for a single mirror and for none.
    return , $mirrors.ToArray()
}

function ConvertTo-ContainerImageSource {
    # A source with the state of providerd's index of it; State, Entries,
    # LastSync and LastError are empty when the answer has no status.
    # Mirrors are its registry mirrors, in the order they were registered.
    param(
        [object]$Source
    )
    $status = Get-JsonValue $Source 'status'
    $mirrors = @(Get-JsonValue $Source 'mirrors' | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-ContainerImageSourceMirror $_ })
    [pscustomobject]@{
        PSTypeName = 'ContainerProvider.ContainerImageSource'
        Name       = Get-JsonValue $Source 'name'
        Location   = Get-JsonValue $Source 'location'
        State      = Get-SourceState $status
        Entries    = Get-JsonValue $status 'entries'
        LastSync   = Get-JsonValue $status 'lastSync'
        LastError  = Get-JsonValue $status 'lastError'
        Insecure   = [bool](Get-JsonValue $Source 'insecure')
        Username   = Get-JsonValue $Source 'username'
        Mirrors    = $mirrors
    }
}

function ConvertTo-ContainerImageJob {
    param(
        [object]$Job
    )
    $result = Get-JsonValue $Job 'result'
    if ($null -ne $result) {
        $result = ConvertTo-ContainerImage $result
    }
    [pscustomobject]@{
        PSTypeName = 'ContainerProvider.ContainerImageJob'
        Id         = Get-JsonValue $Job 'id'
        Kind       = Get-JsonValue $Job 'kind'
        State      = Get-JsonValue $Job 'state'
        Images     = @(Get-JsonValue $Job 'images')
        Blobs      = @(Get-JsonValue $Job 'blobs')
        Started    = Get-JsonValue $Job 'started'
        Finished   = Get-JsonValue $Job 'finished'
        Message    = Get-JsonValue $Job 'message'
        Result     = $result
        Error      = Get-JsonValue $Job 'error'
        Request    = Get-JsonValue $Job 'request'
    }
}

function Get-VersionQuery {
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

function Wait-JobCompletion {
    # Polls GET /v1/jobs/{id} with Write-Progress until the job is final,
    # then returns the final job.
    param(
        [string]$Id,
        [System.Management.Automation.PSCredential]$Credential,
        [int]$PollMilliseconds = 500
    )
    $activity = 'Installing container image (job {0})' -f $Id
    try {
        while ($true) {
            $job = Invoke-ContainerProviderApi -Route GetJob -PathValues @{ id = $Id } -Target $Id -Credential $Credential
            if ($script:FinalJobStates -contains $job.state) {
                return $job
            }
            $total = [long]0
            $done = [long]0
            $retries = @()
            $blobs = @(Get-JsonValue $job 'blobs')
            foreach ($b in $blobs) {
                if ($null -ne $b) {
                    $total += [long]$b.total
                    $done += [long]$b.done
                    $retry = Get-JsonValue $b 'retry'
                    if ($b.state -eq 'retrying' -and $null -ne $retry) {
                        # A failed attempt that providerd tries again.
                        $retries += ('retrying {0} (attempt {1} of {2}): {3}' -f $b.digest.Substring(0, [Math]::Min(19, $b.digest.Length)), $retry.attempt, $retry.attempts, $retry.reason)
                    }
                }
            }
            $status = '{0}: {1}' -f $job.state, ((@(Get-JsonValue $job 'images')) -join ', ')
            if ($retries.Count -gt 0) {
                $status = '{0}; {1}' -f $status, ($retries -join '; ')
            }
            if ($total -gt 0) {
                $percent = [int][Math]::Min(100, [Math]::Floor(100.0 * $done / $total))
                Write-Progress -Activity $activity -Status ('{0} ({1:N1} of {2:N1} MB)' -f $status, ($done / 1048576), ($total / 1048576)) -PercentComplete $percent
            }
            else {
                Write-Progress -Activity $activity -Status $status
            }
            Start-Sleep -Milliseconds $PollMilliseconds
        }
    }
    finally {
        Write-Progress -Activity $activity -Completed
    }
}

function Complete-ImageJob {
    # Reports a final job: its message on success, an ErrorRecord otherwise.
    param(
        [object]$Job,
        [System.Management.Automation.PSCmdlet]$Cmdlet
    )
    if ($Job.state -eq 'succeeded') {
        $message = Get-JsonValue $Job 'message'
        if ($message) {
            Write-Host $message
        }
        $result = Get-JsonValue $Job 'result'
        if ($null -ne $result) {
            $Cmdlet.WriteObject((ConvertTo-ContainerImage $result))
        }
        return
    }
    $e = Get-JsonValue $Job 'error'
    $code = 'Internal'
    $message = 'job {0} {1}' -f $Job.id, $Job.state
    $id = $null
    $dependents = @()
    if ($null -ne $e) {
        $code = $e.code
        $message = $e.message
        $id = Get-JsonValue $e 'id'
        if ($e.PSObject.Properties['dependents'] -and $e.dependents) {
            $dependents = @($e.dependents)
        }
    }
    $target = (Get-JsonValue (Get-JsonValue $Job 'request') 'name')
    $Cmdlet.WriteError((New-ContainerProviderError -Code $code -Message $message -Id $id -Dependents $dependents -Target $target))
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
        [string]$Source,
        [System.Management.Automation.PSCredential]$Credential
    )
    begin {
        # A warning is written once per call, not once per name.
        $warned = @{}
    }
    process {
        $names = @($Name)
        if (-not $Name) {
            $names = @('')
        }
        foreach ($n in $names) {
            $q = Get-VersionQuery $PSBoundParameters
            $q['name'] = $n
            $q['source'] = $Source
            try {
                $res = Invoke-ContainerProviderApi -Route FindImages -Query $q -Target $n -Credential $Credential
                foreach ($w in @(Get-JsonValue $res 'warnings')) {
                    if (-not [string]::IsNullOrEmpty([string]$w) -and -not $warned.ContainsKey([string]$w)) {
                        $warned[[string]$w] = $true
                        $PSCmdlet.WriteWarning([string]$w)
                    }
                }
                foreach ($entry in @($res.images)) {
                    if ($null -ne $entry) {
                        ConvertTo-ContainerImageInfo $entry
                    }
                }
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

function Install-ContainerImage {
    <#
    .SYNOPSIS
    Installs a container image, with its parent images, from the sources or from a saved file.
    .DESCRIPTION
    Starts an install job in providerd and follows it with Write-Progress
    until it ends with "Downloaded in H hours, M minutes, S seconds." (singular for 1). The job
    runs on in providerd if the session drops: Get-ContainerImageJob and
    Wait-ContainerImageJob -Id re-attach to it. With -Path, the file made by
    Save-ContainerImage is uploaded and installed (offline install).
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
    PS C:\> Install-ContainerImage -Path C:\images\NanoServer-10.0.10586.0.tar
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
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Path') {
            $file = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
            if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {
                $PSCmdlet.WriteError((New-ContainerProviderError -Code NotFound -Message ('The file {0} does not exist.' -f $file) -Target $file))
                return
            }
            if (-not $PSCmdlet.ShouldProcess($file, 'Install container images from file')) {
                return
            }
            try {
                $res = Invoke-ContainerProviderApi -Route LoadImage -InFile $file -Target $file -Credential $Credential
                foreach ($img in @($res.images)) {
                    if ($null -ne $img) {
                        ConvertTo-ContainerImage $img
                    }
                }
            }
            catch {
                $PSCmdlet.WriteError($_)
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
            $label = $req.name
            if ($req.requiredVersion) {
                $label = '{0} {1}' -f $req.name, $req.requiredVersion
            }
            if (-not $PSCmdlet.ShouldProcess($label, 'Install container image')) {
                continue
            }
            try {
                $job = Invoke-ContainerProviderApi -Route InstallImage -Body $req -Target $req.name -Credential $Credential
                Write-Verbose ('Install job {0} started; Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $job.id)
                $job = Wait-JobCompletion -Id $job.id -Credential $Credential
                Complete-ImageJob -Job $job -Cmdlet $PSCmdlet
            }
            catch {
                $PSCmdlet.WriteError($_)
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
        [object]$ChildOf,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        $names = @($Name)
        if (-not $Name) {
            $names = @('')
        }
        foreach ($n in $names) {
            $q = @{ name = $n; publisher = $Publisher; requiredVersion = $Version }
            if ($ChildOf) {
                if ($ChildOf -is [string]) {
                    $q['childOf'] = $ChildOf
                }
                else {
                    $q['childOf'] = [string]$ChildOf.Digest
                }
            }
            try {
                $res = Invoke-ContainerProviderApi -Route GetImages -Query $q -Target $n -Credential $Credential
                foreach ($img in @($res.images)) {
                    if ($null -ne $img) {
                        ConvertTo-ContainerImage $img
                    }
                }
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
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
    removed, and the error names the dependents.
    .EXAMPLE
    PS C:\> Get-ContainerImage -Name newimage | Remove-ContainerImage -Force
    .EXAMPLE
    PS C:\> Remove-ContainerImage -Name DemoImage -RequiredVersion 1.0.0.0
    .EXAMPLE
    PS C:\> Remove-ContainerImage -Name * -WhatIf
    .EXAMPLE
    PS C:\> 'DemoImage' | Remove-ContainerImage
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
        [System.Management.Automation.PSCredential]$Credential
    )
    begin {
        if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) {
            $ConfirmPreference = 'None'
        }
        $confirmed = New-Object System.Collections.Generic.List[string]
    }
    process {
        $targets = New-Object System.Collections.Generic.List[object]
        if ($PSCmdlet.ParameterSetName -eq 'Image') {
            foreach ($i in $Image) {
                $targets.Add(@{ Label = ('{0} {1}' -f $i.Name, $i.Version); Digest = [string]$i.Digest })
            }
        }
        else {
            foreach ($n in $Name) {
                # The plan: every image the name selects, removed by none.
                $q = Get-VersionQuery $PSBoundParameters
                $q['name'] = $n
                $q['force'] = $true
                $q['whatIf'] = $true
                try {
                    $plan = Invoke-ContainerProviderApi -Route RemoveImages -Query $q -Target $n -Credential $Credential
                }
                catch {
                    $PSCmdlet.WriteError($_)
                    continue
                }
                foreach ($i in @($plan.removed)) {
                    if ($null -ne $i) {
                        $targets.Add(@{ Label = ('{0} {1}' -f $i.name, $i.version); Digest = [string]$i.digest })
                    }
                }
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
        $label = '{0} image(s)' -f $confirmed.Count
        try {
            $res = Invoke-ContainerProviderApi -Route RemoveImages -Query @{ id = ($confirmed -join ',') } -Target $label -Credential $Credential
            foreach ($img in @($res.removed)) {
                if ($null -ne $img) {
                    Write-Verbose ('Removed {0} {1}' -f $img.name, $img.version)
                }
            }
        }
        catch {
            $PSCmdlet.WriteError($_)
        }
    }
}

function Save-ContainerImage {
    <#
    .SYNOPSIS
    Saves a container image, with its parents, to an archive file on this computer.
    .DESCRIPTION
    The archive comes over providerd's HTTP API and is streamed to the file,
    so Save works in a remote session too. A missing folder is created only
    with -Force; an existing file is overwritten only with -Force; a
    read-only file is an error. When -Path is an existing folder, the file
    is named <Name>-<Version>.tar. With several names, -Path names a folder.
    -Destination is another name of -Path, as in ContainerProvider 0.5.
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
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'NamePath')]
    [OutputType([System.IO.FileInfo])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'NamePath')]
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'NameLiteralPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObjectPath')]
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObjectLiteralPath')]
        [object]$InputObject,
        [Parameter(ParameterSetName = 'NamePath')]
        [Parameter(ParameterSetName = 'NameLiteralPath')]
        [string]$MinimumVersion,
        [Parameter(ParameterSetName = 'NamePath')]
        [Parameter(ParameterSetName = 'NameLiteralPath')]
        [string]$MaximumVersion,
        [Parameter(ParameterSetName = 'NamePath')]
        [Parameter(ParameterSetName = 'NameLiteralPath')]
        [Alias('Version')]
        [string]$RequiredVersion,
        [Parameter(Mandatory = $true, Position = 1, ParameterSetName = 'NamePath')]
        [Parameter(Mandatory = $true, Position = 1, ParameterSetName = 'InputObjectPath')]
        [SupportsWildcards()]
        [Alias('Destination')]
        [string]$Path,
        [Parameter(Mandatory = $true, ParameterSetName = 'NameLiteralPath')]
        [Parameter(Mandatory = $true, ParameterSetName = 'InputObjectLiteralPath')]
        [Alias('PSPath')]
        [string]$LiteralPath,
        [string]$Source,
        [switch]$Force,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        # One save per name, or the one piped object.
        $saves = New-Object System.Collections.Generic.List[object]
        if ($PSCmdlet.ParameterSetName -like 'InputObject*') {
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
            $saves.Add(@{ Label = ('{0} {1}' -f $InputObject.Name, $InputObject.Version); FileName = ('{0}-{1}.tar' -f $InputObject.Name, $InputObject.Version); Request = $req })
        }
        else {
            foreach ($n in $Name) {
                $req = [ordered]@{ name = $n; requiredVersion = $RequiredVersion; minimumVersion = $MinimumVersion; maximumVersion = $MaximumVersion }
                $label = $n
                $fileName = '{0}.tar' -f $n
                if ($RequiredVersion) {
                    $label = '{0} {1}' -f $n, $RequiredVersion
                    $fileName = '{0}-{1}.tar' -f $n, $RequiredVersion
                }
                $saves.Add(@{ Label = $label; FileName = $fileName; Request = $req })
            }
        }

        # Resolve the destination: wildcards only with -Path, and only
        # against what exists.
        if ($PSCmdlet.ParameterSetName -like '*LiteralPath') {
            $dest = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($LiteralPath)
        }
        else {
            $resolved = @(Resolve-Path -Path $Path -ErrorAction SilentlyContinue)
            if ($resolved.Count -gt 1) {
                $PSCmdlet.WriteError((New-ContainerProviderError -Code InvalidArgument -Message ('The path {0} matches more than one item.' -f $Path) -Target $Path))
                return
            }
            if ($resolved.Count -eq 1) {
                $dest = $resolved[0].ProviderPath
            }
            else {
                $dest = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
            }
        }
        $endsWithSeparator = $dest.EndsWith([System.IO.Path]::DirectorySeparatorChar) -or $dest.EndsWith([System.IO.Path]::AltDirectorySeparatorChar)
        $isFolder = (Test-Path -LiteralPath $dest -PathType Container) -or $endsWithSeparator
        foreach ($save in $saves) {
            $req = $save.Request
            $label = $save.Label
            if ($Source) {
                $req['source'] = $Source
            }
            if ($isFolder) {
                $folder = $dest
                $file = Join-Path $dest $save.FileName
            }
            else {
                $folder = Split-Path -Parent $dest
                $file = $dest
            }
            if ($folder -and -not (Test-Path -LiteralPath $folder -PathType Container)) {
                if (-not $Force) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code NotFound -Message ('The folder {0} does not exist. Use -Force to create it.' -f $folder) -Target $folder))
                    continue
                }
            }
            if (Test-Path -LiteralPath $file -PathType Leaf) {
                $item = Get-Item -LiteralPath $file -Force
                if ($item.IsReadOnly) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code PermissionDenied -Message ('The file {0} is read-only. Clear its read-only attribute or choose another path.' -f $file) -Target $file))
                    continue
                }
                if (-not $Force) {
                    $PSCmdlet.WriteError((New-ContainerProviderError -Code AlreadyExists -Message ('The file {0} already exists. Use -Force to overwrite it.' -f $file) -Target $file))
                    continue
                }
            }
            if (-not $PSCmdlet.ShouldProcess($file, ('Save container image {0}' -f $label))) {
                continue
            }
            if ($folder -and -not (Test-Path -LiteralPath $folder -PathType Container)) {
                New-Item -ItemType Directory -Path $folder -Force | Out-Null
            }
            # The archive goes to a partial file first, so that a failed or
            # aborted transfer never leaves a truncated archive under the name.
            $partial = $file + '.partial'
            try {
                Invoke-ContainerProviderApi -Route SaveImage -Body $req -OutFile $partial -Target $label -Credential $Credential | Out-Null
                Move-Item -LiteralPath $partial -Destination $file -Force
                Get-Item -LiteralPath $file
            }
            catch {
                Remove-Item -LiteralPath $partial -Force -ErrorAction SilentlyContinue
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
        [switch]$Force,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        $ref = $Container
        if ($Container -isnot [string]) {
            if ($Container.PSObject.Properties['ID'] -and $Container.ID) {
                $ref = [string]$Container.ID
            }
            else {
                $ref = [string]$Container.Name
            }
        }
        if (-not $PSCmdlet.ShouldProcess(('{0} {1}' -f $Name, $Version), 'New container image')) {
            return
        }
        $req = [ordered]@{ container = $ref; name = $Name; publisher = $Publisher; version = $Version; description = $Description; force = [bool]$Force }
        try {
            ConvertTo-ContainerImage (Invoke-ContainerProviderApi -Route CommitImage -Body $req -Target $Name -Credential $Credential)
        }
        catch {
            $PSCmdlet.WriteError($_)
        }
    }
}

function Get-ContainerReference {
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
        [string]$Name,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        $img = $Image
        if ($Image -isnot [string]) {
            $img = [string]$Image.Digest
        }
        if (-not $PSCmdlet.ShouldProcess($img, 'New container')) {
            return
        }
        $req = [ordered]@{ image = $img; name = $Name }
        try {
            ConvertTo-Container (Invoke-ContainerProviderApi -Route NewContainer -Body $req -Target $img -Credential $Credential)
        }
        catch {
            $PSCmdlet.WriteError($_)
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
        [string[]]$Name,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        try {
            $res = Invoke-ContainerProviderApi -Route GetContainers -Credential $Credential
            foreach ($c in @($res.containers)) {
                if ($null -ne $c -and (Test-NameMatch -Value $c.name -Patterns $Name)) {
                    ConvertTo-Container $c
                }
            }
        }
        catch {
            $PSCmdlet.WriteError($_)
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
        [switch]$PassThru,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        foreach ($c in $Container) {
            $ref = Get-ContainerReference $c
            if (-not $PSCmdlet.ShouldProcess($ref, 'Start container')) {
                continue
            }
            try {
                $res = Invoke-ContainerProviderApi -Route StartContainer -PathValues @{ ref = $ref } -Target $ref -Credential $Credential
                if ($PassThru -and $res) {
                    ConvertTo-Container $res
                }
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
        }
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
        [switch]$PassThru,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        foreach ($c in $Container) {
            $ref = Get-ContainerReference $c
            if (-not $PSCmdlet.ShouldProcess($ref, 'Stop container')) {
                continue
            }
            try {
                $res = Invoke-ContainerProviderApi -Route StopContainer -PathValues @{ ref = $ref } -Target $ref -Credential $Credential
                if ($PassThru -and $res) {
                    ConvertTo-Container $res
                }
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
        }
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
        [switch]$Force,
        [System.Management.Automation.PSCredential]$Credential
    )
    begin {
        if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) {
            $ConfirmPreference = 'None'
        }
    }
    process {
        foreach ($c in $Container) {
            $ref = Get-ContainerReference $c
            if (-not $PSCmdlet.ShouldProcess($ref, 'Remove container')) {
                continue
            }
            try {
                Invoke-ContainerProviderApi -Route RemoveContainer -PathValues @{ ref = $ref } -Query @{ force = [bool]$Force } -Target $ref -Credential $Credential | Out-Null
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
        }
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
    .PARAMETER SourceCredential
    The username and password that providerd sends to the registry.
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
    .PARAMETER Credential
    The bearer token of providerd's API as the password (see the module's
    notes on the token).
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
        [System.Management.Automation.PSCredential]$SourceCredential,
        [ValidateNotNullOrEmpty()]
        [string[]]$Mirror,
        [System.Management.Automation.PSCredential]$MirrorCredential,
        [ValidateSet('pull', 'resolve')]
        [string[]]$MirrorCapability,
        [switch]$MirrorInsecure,
        [ValidateNotNullOrEmpty()]
        [string]$MirrorNamespace,
        [System.Management.Automation.PSCredential]$Credential
    )
    $req = [ordered]@{ name = $Name; location = $Location; insecure = [bool]$Insecure }
    if ($SourceCredential) {
        $req['username'] = $SourceCredential.UserName
        $req['password'] = $SourceCredential.GetNetworkCredential().Password
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
    if (-not $PSCmdlet.ShouldProcess($Name, 'Register container image source')) {
        return
    }
    try {
        ConvertTo-ContainerImageSource (Invoke-ContainerProviderApi -Route AddSource -Body $req -Target $Name -Credential $Credential)
    }
    catch {
        $PSCmdlet.WriteError($_)
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
        [string[]]$Name,
        [System.Management.Automation.PSCredential]$Credential
    )
    try {
        $res = Invoke-ContainerProviderApi -Route GetSources -Credential $Credential
        foreach ($s in @($res.sources)) {
            if ($null -ne $s -and (Test-NameMatch -Value $s.name -Patterns $Name)) {
                ConvertTo-ContainerImageSource $s
            }
        }
    }
    catch {
        $PSCmdlet.WriteError($_)
    }
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
        [string[]]$Name,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        foreach ($n in $Name) {
            if (-not $PSCmdlet.ShouldProcess($n, 'Unregister container image source')) {
                continue
            }
            try {
                Invoke-ContainerProviderApi -Route RemoveSource -PathValues @{ name = $n } -Target $n -Credential $Credential | Out-Null
            }
            catch {
                $PSCmdlet.WriteError($_)
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
        [string[]]$Name,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        $names = @($Name | Where-Object { -not [string]::IsNullOrEmpty($_) })
        if ($names.Count -eq 0) {
            try {
                $res = Invoke-ContainerProviderApi -Route GetSources -Credential $Credential
            }
            catch {
                $PSCmdlet.WriteError($_)
                return
            }
            $names = @(@($res.sources) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_.name })
        }
        foreach ($n in $names) {
            try {
                $source = ConvertTo-ContainerImageSource (Invoke-ContainerProviderApi -Route RefreshSource -PathValues @{ name = $n } -Target $n -Credential $Credential)
            }
            catch {
                $PSCmdlet.WriteError($_)
                continue
            }
            $PSCmdlet.WriteObject($source)
            if (-not [string]::IsNullOrEmpty([string]$source.LastError)) {
                $PSCmdlet.WriteError((New-ContainerProviderError -Code Unavailable -Message ('The sync of source {0} failed: {1}' -f $n, $source.LastError) -Target $n))
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
        [string[]]$Id,
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        try {
            if (-not $Id) {
                $res = Invoke-ContainerProviderApi -Route GetJobs -Credential $Credential
                foreach ($j in @($res.jobs)) {
                    if ($null -ne $j) {
                        ConvertTo-ContainerImageJob $j
                    }
                }
                return
            }
            foreach ($i in $Id) {
                ConvertTo-ContainerImageJob (Invoke-ContainerProviderApi -Route GetJob -PathValues @{ id = $i } -Target $i -Credential $Credential)
            }
        }
        catch {
            $PSCmdlet.WriteError($_)
        }
    }
}

function Wait-ContainerImageJob {
    <#
    .SYNOPSIS
    Re-attaches to an install job and waits for its end, with progress.
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
        [System.Management.Automation.PSCredential]$Credential
    )
    process {
        foreach ($i in $Id) {
            try {
                $job = Wait-JobCompletion -Id $i -Credential $Credential
                Complete-ImageJob -Job $job -Cmdlet $PSCmdlet
            }
            catch {
                $PSCmdlet.WriteError($_)
            }
        }
    }
}

Export-ModuleMember -Function @(
    'Find-ContainerImage', 'Install-ContainerImage', 'Get-ContainerImage', 'Remove-ContainerImage',
    'Save-ContainerImage', 'New-ContainerImage',
    'New-Container', 'Get-Container', 'Start-Container', 'Stop-Container', 'Remove-Container',
    'Register-ContainerImageSource', 'Get-ContainerImageSource', 'Unregister-ContainerImageSource',
    'Update-ContainerImageSource', 'Get-ContainerImageJob', 'Wait-ContainerImageJob'
)
