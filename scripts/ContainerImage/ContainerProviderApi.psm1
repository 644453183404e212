# ContainerProviderApi: what the ContainerImage cmdlets (ContainerImage.psm1)
# and the PackageManagement provider (ContainerImageProvider.psm1) share:
# providerd's API v1 as one route table, the transport, the v1 error
# envelope, the objects the module writes, and the following of a job.
# Each of the two modules imports this one; neither reaches into the other.
#
# The transport is System.Net.Http.HttpClient on every edition, not the web
# cmdlets: it streams a multi-GB archive both ways (Windows PowerShell 5.1's
# Invoke-RestMethod -InFile reads it into memory), reads a job's NDJSON
# event stream line by line, waits in short steps so that Ctrl+C is seen,
# and on PowerShell 7 reaches providerd's unix socket or named pipe.
#
# Everything here may run under PackageManagement, whose
# PackageProviderFunctions.psm1 replaces Write-Error, Write-Warning,
# Write-Verbose, Write-Debug and Write-Progress with functions of fewer
# parameters: only those are used (scripts/check-powershell-contract.mjs
# checks it).

Set-StrictMode -Version 2.0

$script:ModuleVersion = (Import-PowerShellDataFile -LiteralPath (Join-Path $PSScriptRoot 'ContainerImage.psd1')).ModuleVersion

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
    GetJobEvents    = @{ Method = 'GET'; Path = '/v1/jobs/{id}/events'; Query = @() }
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
    InsufficientStorage = [System.Management.Automation.ErrorCategory]::WriteError
    TooManyRequests    = [System.Management.Automation.ErrorCategory]::LimitsExceeded
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

# The objects the module writes, each a map from its properties to the
# answer's JSON: 'key', 'key/inner' for a key of an object, and a ':kind'
# that converts the value (ConvertTo-ContainerProviderObject): bool, list,
# parent (a ContainerImageReference), state (a source's State from its
# status), mirrors, capabilities and image. A test reads these maps
# against the API's JSON and the format file's columns.
$script:Views = @{
    ContainerImage              = [ordered]@{
        Name        = 'name'
        Publisher   = 'publisher'
        Version     = 'version'
        IsOSImage   = 'isOSImage:bool'
        ParentImage = 'parentImage:parent'
        Description = 'description'
        Repository  = 'repository'
        Size        = 'size'
        Created     = 'created'
        Installed   = 'installed'
        Digest      = 'digest'
        ID          = 'id'
        Source      = 'source'
        Refs        = 'refs:list'
        OSVersion   = 'os.version'
        # What verified the image at its install: 'key sha256:...',
        # 'unverified' or 'unsigned'.
        Signed      = 'signed'
    }
    ContainerImageInfo          = [ordered]@{
        Name        = 'name'
        Version     = 'version'
        Source      = 'source'
        Description = 'description'
        Publisher   = 'publisher'
        IsOSImage   = 'isOSImage:bool'
        ParentImage = 'parent:parent'
        Repository  = 'repository'
        Digest      = 'digest'
        Size        = 'size'
        OSVersion   = 'os.version'
    }
    ContainerImageReference     = [ordered]@{
        Name      = 'name'
        Publisher = 'publisher'
        Version   = 'version'
        Digest    = 'digest'
    }
    Container                   = [ordered]@{
        Name            = 'name'
        State           = 'state'
        ParentImageName = 'parentImageName'
        ID              = 'id'
        Image           = 'image'
        ImageDigest     = 'imageDigest'
        Created         = 'created'
    }
    ContainerImageSource        = [ordered]@{
        Name      = 'name'
        Location  = 'location'
        State     = 'status:state'
        Entries   = 'status/entries'
        LastSync  = 'status/lastSync'
        LastError = 'status/lastError'
        Insecure  = 'insecure:bool'
        Trusted   = 'trusted:bool'
        Username  = 'username'
        # The registry mirrors, in the order they were registered.
        Mirrors   = 'mirrors:mirrors'
    }
    ContainerImageSourceMirror  = [ordered]@{
        Location     = 'location'
        # When the answer lists none: both, or pull alone for a mirror
        # with a namespace.
        Capabilities = 'capabilities:capabilities'
        Insecure     = 'insecure:bool'
        Username     = 'username'
        Namespace    = 'namespace'
    }
    ContainerImageJob           = [ordered]@{
        Id       = 'id'
        Kind     = 'kind'
        State    = 'state'
        Images   = 'images:list'
        Blobs    = 'blobs:list'
        Started  = 'started'
        Finished = 'finished'
        Message  = 'message'
        Result   = 'result:image'
        Error    = 'error'
        Request  = 'request'
    }
}

function Get-JsonValue {
    # The value of key Name of a JSON object, or $null (strict mode refuses
    # a property that an answer leaves out).
    param(
        [object]$Object,
        [string]$Name
    )
    if ($null -ne $Object -and $Object.PSObject.Properties[$Name]) {
        return $Object.$Name
    }
    return $null
}

function ConvertTo-ContainerProviderObject {
    # The object of view View ($script:Views) from an answer of the API.
    param(
        [Parameter(Mandatory = $true)]
        [string]$View,
        [object]$InputObject
    )
    $properties = [ordered]@{ PSTypeName = 'ContainerProvider.' + $View }
    foreach ($p in $script:Views[$View].GetEnumerator()) {
        $path, $kind = ([string]$p.Value).Split(':')
        $value = $InputObject
        foreach ($key in $path.Split('/')) {
            $value = Get-JsonValue $value $key
        }
        switch ($kind) {
            'bool' { $value = [bool]$value }
            'list' { $value = @($value | Where-Object { $null -ne $_ }) }
            'state' { $value = Get-SourceState $value }
            'image' { if ($null -ne $value) { $value = ConvertTo-ContainerProviderObject ContainerImage $value } }
            'mirrors' { $value = @($value | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-ContainerProviderObject ContainerImageSourceMirror $_ }) }
            'capabilities' {
                $value = @($value | Where-Object { -not [string]::IsNullOrEmpty([string]$_) })
                if ($value.Count -eq 0) {
                    $value = if (Get-JsonValue $InputObject 'namespace') { @('pull') } else { $script:MirrorCapabilities }
                }
                $value = [string[]]$value
            }
            'parent' {
                if ($null -ne $value) {
                    # Prints as the 2016 module's CIM instance did:
                    # ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']
                    $value = ConvertTo-ContainerProviderObject ContainerImageReference $value
                    $value | Add-Member -MemberType ScriptMethod -Name ToString -Force -Value {
                        "ContainerImage (Name = '{0}') [Publisher = '{1}', Version = '{2}']" -f $this.Name, $this.Publisher, $this.Version
                    }
                }
            }
        }
        $properties[$p.Key] = $value
    }
    [pscustomobject]$properties
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

function Format-SourceMirror {
    # The text of a mirror object: "URL (pull+resolve)", the capabilities
    # joined as cimage source add --mirror writes them.
    param(
        [object]$Mirror
    )
    return '{0} ({1})' -f $Mirror.Location, ($Mirror.Capabilities -join '+')
}

function New-ContainerProviderError {
    # An ErrorRecord of an envelope code (ContainerProvider.<Code>, the
    # category of $script:ErrorCategories unless Category is given) with
    # providerd's message, the cmdlets' hint for NoMatchFoundForCriteria and
    # the dependents of a refused removal.
    [CmdletBinding()]
    param(
        [string]$Code,
        [string]$Message,
        [string]$Id,
        [string[]]$Dependents,
        [object]$Target,
        [System.Exception]$InnerException,
        [System.Management.Automation.ErrorCategory]$Category = [System.Management.Automation.ErrorCategory]::NotSpecified
    )
    if ([string]::IsNullOrEmpty($Code)) {
        $Code = 'Internal'
    }
    # $Category is typed: a lookup that finds nothing goes to another name.
    $known = $script:ErrorCategories[$Code]
    if (-not $PSBoundParameters.ContainsKey('Category') -and $null -ne $known) {
        $Category = $known
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
    $record = New-Object System.Management.Automation.ErrorRecord -ArgumentList $exception, ('ContainerProvider.' + $Code), $Category, $Target
    if ($Dependents -and $Dependents.Count -gt 0) {
        $record.ErrorDetails = New-Object System.Management.Automation.ErrorDetails -ArgumentList $text
        $record.ErrorDetails.RecommendedAction = 'Remove the dependents first: ' + ($Dependents -join ', ')
    }
    return $record
}

function ConvertFrom-ErrorEnvelope {
    # The ErrorRecord of a v1 error envelope {"error":{...}}, or of an
    # answer without one.
    param(
        [object]$Envelope,
        [int]$Status,
        [object]$Target
    )
    $e = Get-JsonValue $Envelope 'error'
    if ($null -eq $e) {
        return New-ContainerProviderError -Code Internal -Message ('providerd at {0} answered {1} without an error envelope' -f (Get-ContainerProviderEndpoint), $Status) -Target $Target
    }
    return ConvertFrom-ApiError -ApiError $e -Target $Target
}

function ConvertFrom-ApiError {
    # The ErrorRecord of an api.Error ({code,message,id,dependents}): the
    # envelope's, or a failed job's.
    param(
        [object]$ApiError,
        [object]$Target
    )
    return New-ContainerProviderError -Code (Get-JsonValue $ApiError 'code') -Message (Get-JsonValue $ApiError 'message') -Id (Get-JsonValue $ApiError 'id') -Dependents @(Get-JsonValue $ApiError 'dependents' | Where-Object { $_ }) -Target $Target
}

function ConvertFrom-JobFailure {
    # The ErrorRecord of a job that ended without succeeding: its error; a
    # job canceled (from elsewhere: Stop-ContainerImageJob, say) is
    # OperationStopped, with the job's message.
    param(
        [object]$Job,
        [object]$Target
    )
    $message = [string](Get-JsonValue $Job 'message')
    if ($Job.state -eq 'canceled') {
        return New-ContainerProviderError -Code Canceled -Category OperationStopped -Message $message -Target $Target
    }
    $e = Get-JsonValue $Job 'error'
    if ($null -ne $e) {
        return ConvertFrom-ApiError -ApiError $e -Target $Target
    }
    return New-ContainerProviderError -Code Internal -Message ('job {0} {1}: {2}' -f $Job.id, $Job.state, $message) -Target $Target
}

function Get-ContainerProviderEndpoint {
    # $env:CONTAINERPROVIDER_ENDPOINT, else the local API of this edition:
    # Windows PowerShell reaches only TCP (http://127.0.0.1:5050, with the
    # token); PowerShell 7 the named pipe on Windows, elsewhere the unix
    # socket of this user's providerd when one runs, else the system's.
    $endpoint = $env:CONTAINERPROVIDER_ENDPOINT
    if (-not [string]::IsNullOrEmpty($endpoint)) {
        return $endpoint.TrimEnd('/')
    }
    if ($PSVersionTable.PSEdition -ne 'Core') {
        return 'http://127.0.0.1:5050'
    }
    if ($IsWindows) {
        return 'npipe:////./pipe/containerprovider'
    }
    if (-not [string]::IsNullOrEmpty($env:XDG_RUNTIME_DIR) -and [System.Environment]::UserName -ne 'root') {
        $socket = Join-Path (Join-Path $env:XDG_RUNTIME_DIR 'containerprovider') 'providerd.sock'
        if (Test-Path -LiteralPath $socket) {
            return 'unix://' + $socket
        }
    }
    return 'unix:///run/containerprovider/providerd.sock'
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
    # providerd's bearer token, for TCP: $env:CONTAINERPROVIDER_TOKEN, else
    # the first line of the token file when this user may read it. No
    # cmdlet takes it as a parameter, so that -Credential is always a
    # registry's, as it is PackageManagement's.
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
        }
        catch {
            Write-Verbose ('The token file {0} cannot be read: {1}' -f $file, $_.Exception.Message)
        }
    }
    return $null
}

# One HttpClient per endpoint and CA file, kept for the session: a client
# holds its connections open for the next call.
$script:Clients = @{}

function Get-ContainerProviderClient {
    # The HttpClient of an endpoint (Client), and whether it is TCP (Tcp),
    # where the token is the credential: its handler reaches a unix socket or a
    # named pipe (PowerShell 7, ContainerProvider.LocalTransport.cs), or TCP,
    # where $env:CONTAINERPROVIDER_CA_FILE adds the certificates that an
    # https endpoint may chain to (ContainerProvider.Tls.cs). The client has
    # no overall time-out: calls set their own (Invoke-ContainerProviderApi).
    param(
        [string]$Endpoint
    )
    $caFile = $null
    if ($Endpoint -like 'https://*' -and -not [string]::IsNullOrEmpty($env:CONTAINERPROVIDER_CA_FILE)) {
        # Relative to PowerShell's location, not the process's directory.
        $caFile = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($env:CONTAINERPROVIDER_CA_FILE)
    }
    $key = '{0}|{1}' -f $Endpoint, $caFile
    if ($script:Clients.ContainsKey($key)) {
        return $script:Clients[$key]
    }
    Add-Type -AssemblyName System.Net.Http
    $scheme, $rest = $Endpoint -split '://', 2
    if ($scheme -eq 'unix' -or $scheme -eq 'npipe') {
        if ($PSVersionTable.PSEdition -ne 'Core') {
            throw (New-ContainerProviderError -Code InvalidArgument -Message ('Windows PowerShell reaches providerd over TCP only, not {0}: set $env:CONTAINERPROVIDER_ENDPOINT to http://127.0.0.1:5050, or use PowerShell 7.' -f $Endpoint) -Target $Endpoint)
        }
        if (-not ('ContainerProvider.LocalTransport' -as [type])) {
            Add-Type -LiteralPath (Join-Path $PSScriptRoot 'ContainerProvider.LocalTransport.cs')
        }
        if ($scheme -eq 'unix') {
            $handler = [ContainerProvider.LocalTransport]::UnixSocket('/' + $rest.TrimStart('/'))
        }
        else {
            # npipe:////./pipe/NAME, as docker writes it.
            $handler = [ContainerProvider.LocalTransport]::NamedPipe(($rest -split '/')[-1])
        }
        $base = 'http://providerd'
    }
    elseif ($scheme -eq 'http' -or $scheme -eq 'https') {
        $handler = New-Object System.Net.Http.HttpClientHandler
        $handler.UseProxy = $false
        $handler.AllowAutoRedirect = $false
        if ($scheme -eq 'https' -and $PSVersionTable.PSEdition -ne 'Core') {
            # providerd speaks TLS 1.2 and later; .NET Framework may offer
            # only older versions unless told.
            if ($handler.PSObject.Properties['SslProtocols']) {
                $handler.SslProtocols = [System.Security.Authentication.SslProtocols]::Tls12
            }
            else {
                [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.ServicePointManager]::SecurityProtocol -bor [System.Net.SecurityProtocolType]::Tls12
            }
        }
        if ($scheme -eq 'https' -and -not [string]::IsNullOrEmpty($caFile)) {
            if (-not ('ContainerProvider.Tls' -as [type])) {
                $compile = @{ LiteralPath = (Join-Path $PSScriptRoot 'ContainerProvider.Tls.cs') }
                if ($PSVersionTable.PSEdition -ne 'Core') {
                    # Windows PowerShell's Add-Type references neither
                    # System.Net.Http nor anything else beyond System and
                    # System.Core by default; PowerShell 7's references all
                    # of .NET, and naming one would replace them.
                    $compile['ReferencedAssemblies'] = @('System.Net.Http')
                }
                Add-Type @compile
            }
            if (-not $handler.PSObject.Properties['ServerCertificateCustomValidationCallback']) {
                throw (New-ContainerProviderError -Code FailedPrecondition -Message ('$env:CONTAINERPROVIDER_CA_FILE needs .NET Framework 4.7.1 or later; import {0} into Cert:\CurrentUser\Root instead.' -f $caFile) -Target $caFile)
            }
            $handler.ServerCertificateCustomValidationCallback = [ContainerProvider.Tls]::TrustAlso($caFile)
        }
        $base = $Endpoint
    }
    else {
        throw (New-ContainerProviderError -Code InvalidArgument -Message ('The endpoint {0} is not http://, https://, unix:/// or npipe://.' -f $Endpoint) -Target $Endpoint)
    }
    $client = New-Object System.Net.Http.HttpClient -ArgumentList $handler
    $client.Timeout = [System.Threading.Timeout]::InfiniteTimeSpan
    $client.BaseAddress = New-Object System.Uri -ArgumentList ($base + '/')
    $client.DefaultRequestHeaders.UserAgent.ParseAdd('ContainerImage-PowerShell/' + $script:ModuleVersion)
    $script:Clients[$key] = @{ Client = $client; Tcp = ($base -eq $Endpoint) }
    return $script:Clients[$key]
}

function Test-LoopbackHost {
    param([string]$HostName)
    $address = $null
    if ($HostName -eq 'localhost') {
        return $true
    }
    return [System.Net.IPAddress]::TryParse($HostName.Trim('[', ']'), [ref]$address) -and [System.Net.IPAddress]::IsLoopback($address)
}

function Wait-ContainerProviderTask {
    # Waits for a .NET Task in steps of 200 ms and returns its result (its
    # failure is thrown). Ctrl+C stops the pipeline between two steps, and
    # then Cancel is canceled. Tick runs after each step (its output is
    # dropped): progress, or a check for cancellation.
    param(
        [System.Threading.Tasks.Task]$Task,
        [System.Threading.CancellationTokenSource]$Cancel,
        [scriptblock]$Tick
    )
    $finished = $false
    try {
        while (-not $Task.IsCompleted) {
            if ([System.Threading.Tasks.Task]::WaitAny(@($Task), 200) -lt 0 -and $Tick) {
                $null = & $Tick
            }
        }
        $finished = $true
    }
    finally {
        if (-not $finished -and $Cancel) {
            $Cancel.Cancel()
        }
    }
    try {
        return $Task.GetAwaiter().GetResult()
    }
    catch {
        # Thrown, so that the failure is not also recorded in the caller's
        # -ErrorVariable as a .NET exception crossing the function.
        throw $_
    }
}

function Invoke-ContainerProviderApi {
    # The one call of providerd that the cmdlets and the provider make.
    # Route names a line of $script:Routes; PathValues fill its {variables};
    # Query may hold only the parameters the line declares (empty values and
    # false switches are left out). Body is sent as JSON; InFile is streamed
    # as application/x-tar, with Write-Progress under Activity.
    #
    # It returns the answer's JSON ($null for none); with OutFile, it
    # streams the body to that file, with Write-Progress under Activity, and
    # returns the image of the X-Image header; with Raw, it returns the
    # HttpResponseMessage once its headers are in, its body the caller's to
    # read and dispose. A failure is thrown as an ErrorRecord whose target
    # is Target: the envelope's error for an answer that is not 2xx,
    # Unavailable when providerd cannot be reached. TimeoutSeconds bounds
    # the wait for the answer's headers (0: none; an archive has none).
    # Quiet writes nothing, for a pipeline that is stopping.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [string]$Route,
        [hashtable]$PathValues = @{},
        [hashtable]$Query = @{},
        [object]$Body,
        [string]$InFile,
        [string]$OutFile,
        [string]$Activity,
        [string]$Accept = 'application/json',
        [object]$Target,
        [int]$TimeoutSeconds = 300,
        [switch]$Raw,
        [switch]$Quiet
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
        if ($v -is [bool] -or $v -is [System.Management.Automation.SwitchParameter]) {
            $v = if ([bool]$v) { 'true' } else { $null }
        }
        if (-not [string]::IsNullOrEmpty([string]$v)) {
            $pairs.Add([System.Uri]::EscapeDataString($k) + '=' + [System.Uri]::EscapeDataString([string]$v))
        }
    }
    if ($pairs.Count -gt 0) {
        $path = $path + '?' + ($pairs -join '&')
    }
    $endpoint = Get-ContainerProviderEndpoint
    $transport = Get-ContainerProviderClient $endpoint
    $request = New-Object System.Net.Http.HttpRequestMessage -ArgumentList ([System.Net.Http.HttpMethod]$r.Method), $path.TrimStart('/')
    $request.Headers.Accept.ParseAdd($Accept)
    if ($transport.Tcp) {
        # The token is the credential of TCP only; it never goes in clear
        # beyond loopback (providerd refuses such a listener without TLS).
        $token = Get-ContainerProviderToken
        if (-not [string]::IsNullOrEmpty($token)) {
            $base = $transport.Client.BaseAddress
            if ($base.Scheme -ne 'https' -and -not (Test-LoopbackHost $base.Host)) {
                $request.Dispose()
                throw (New-ContainerProviderError -Code InvalidArgument -Message ('The token is not sent in clear to {0}: use https:// or a loopback address.' -f $endpoint) -Target $endpoint)
            }
            $request.Headers.Authorization = New-Object System.Net.Http.Headers.AuthenticationHeaderValue -ArgumentList 'Bearer', $token
        }
    }
    $file = $null
    $tick = $null
    if ($PSBoundParameters.ContainsKey('Body')) {
        $json = ConvertTo-Json -InputObject $Body -Depth 8 -Compress
        $request.Content = New-Object System.Net.Http.StringContent -ArgumentList $json, ([System.Text.Encoding]::UTF8), 'application/json'
    }
    elseif ($InFile) {
        # A file stream of known length: sent as it is read, never held
        # in memory; the progress is how far HttpClient has read it.
        $file = [System.IO.File]::OpenRead($InFile)
        $request.Content = New-Object System.Net.Http.StreamContent -ArgumentList $file, 1048576
        $request.Content.Headers.ContentType = 'application/x-tar'
        $request.Content.Headers.ContentLength = $file.Length
        if ($Activity -and -not $Quiet) {
            $tick = {
                Write-Progress -Activity $Activity -Status ('{0:N1} of {1:N1} MB sent' -f ($file.Position / 1048576), ($file.Length / 1048576)) -PercentComplete ([int](100 * $file.Position / [Math]::Max(1, $file.Length)))
            }
        }
    }
    $cancel = New-Object System.Threading.CancellationTokenSource
    if ($InFile -or $OutFile) {
        $TimeoutSeconds = 0
    }
    if ($TimeoutSeconds -gt 0) {
        $cancel.CancelAfter([System.TimeSpan]::FromSeconds($TimeoutSeconds))
    }
    if (-not $Quiet) {
        Write-Verbose ('{0} {1}/{2}' -f $r.Method, $endpoint, $path.TrimStart('/'))
    }
    try {
        $send = $transport.Client.SendAsync($request, [System.Net.Http.HttpCompletionOption]::ResponseHeadersRead, $cancel.Token)
        $response = Wait-ContainerProviderTask -Task $send -Cancel $cancel -Tick $tick
    }
    catch [System.Management.Automation.PipelineStoppedException] {
        throw
    }
    catch {
        $e = $_.Exception
        while ($e.InnerException) {
            $e = $e.InnerException
        }
        $why = $e.Message
        if ($cancel.IsCancellationRequested) {
            $why = 'no answer within {0} s' -f $TimeoutSeconds
        }
        throw (New-ContainerProviderError -Code Unavailable -Message ('providerd at {0}: {1}' -f $endpoint, $why) -Target $Target -InnerException $_.Exception)
    }
    finally {
        # The time-out bounds the headers only: a body (an event stream, an
        # archive) is read for as long as it lasts.
        $cancel.Dispose()
        if ($file) {
            $file.Dispose()
            if ($tick) {
                Write-Progress -Activity $Activity -Completed
            }
        }
        $request.Dispose()
    }
    if (-not $response.IsSuccessStatusCode) {
        try {
            $envelope = $null
            try {
                $envelope = Wait-ContainerProviderTask -Task $response.Content.ReadAsStringAsync() | ConvertFrom-Json -ErrorAction Stop
            }
            catch {
                $envelope = $null
            }
            throw (ConvertFrom-ErrorEnvelope -Envelope $envelope -Status ([int]$response.StatusCode) -Target $Target)
        }
        finally {
            $response.Dispose()
        }
    }
    if ($Raw) {
        return $response
    }
    try {
        if ($OutFile) {
            Copy-ContainerProviderBody -Response $response -Path $OutFile -Activity $Activity
            $values = $null
            if ($response.Headers.TryGetValues('X-Image', [ref]$values)) {
                return [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String(@($values)[0])) | ConvertFrom-Json
            }
            return $null
        }
        try {
            $text = Wait-ContainerProviderTask -Task $response.Content.ReadAsStringAsync()
        }
        catch {
            throw (New-ContainerProviderError -Code Unavailable -Message ('providerd at {0}: the answer broke off: {1}' -f $endpoint, $_.Exception.GetBaseException().Message) -Target $Target -InnerException $_.Exception)
        }
        if ([string]::IsNullOrWhiteSpace($text)) {
            return $null
        }
        return $text | ConvertFrom-Json
    }
    finally {
        $response.Dispose()
    }
}

function Copy-ContainerProviderBody {
    # Streams the body of Response to the file Path, 1 MiB at a time, with
    # Write-Progress at most twice a second. A body that breaks off, or ends
    # short of its Content-Length, removes the file and throws Unavailable.
    param(
        [System.Net.Http.HttpResponseMessage]$Response,
        [string]$Path,
        [string]$Activity
    )
    $total = $Response.Content.Headers.ContentLength
    $in = $Response.Content.ReadAsStreamAsync().GetAwaiter().GetResult()
    $out = New-Object System.IO.FileStream -ArgumentList $Path, ([System.IO.FileMode]::Create), ([System.IO.FileAccess]::Write), ([System.IO.FileShare]::None)
    $buffer = New-Object byte[] 1048576
    $written = [long]0
    $shown = [System.Diagnostics.Stopwatch]::StartNew()
    $complete = $false
    try {
        while ($true) {
            try {
                $n = Wait-ContainerProviderTask -Task $in.ReadAsync($buffer, 0, $buffer.Length)
            }
            catch {
                throw (New-ContainerProviderError -Code Unavailable -Message ('providerd broke off the archive after {0} bytes: {1}' -f $written, $_.Exception.GetBaseException().Message) -Target $Path -InnerException $_.Exception)
            }
            if ($n -le 0) {
                break
            }
            $out.Write($buffer, 0, $n)
            $written += $n
            if ($shown.ElapsedMilliseconds -ge 500) {
                $shown.Restart()
                $status = '{0:N1} MB written to {1}' -f ($written / 1048576), $Path
                if ($total) {
                    Write-Progress -Activity $Activity -Status $status -PercentComplete ([int][Math]::Min(100, 100 * $written / $total))
                }
                else {
                    Write-Progress -Activity $Activity -Status $status
                }
            }
        }
        if ($null -ne $total -and $written -ne $total) {
            throw (New-ContainerProviderError -Code Unavailable -Message ('providerd sent {0} of the archive''s {1} bytes' -f $written, $total) -Target $Path)
        }
        $out.Flush($true)
        $complete = $true
    }
    finally {
        $out.Dispose()
        $in.Dispose()
        if (-not $complete) {
            Remove-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
        }
        Write-Progress -Activity $Activity -Completed
    }
}

function Show-JobProgress {
    # Write-Progress of a job from what its events said: the bytes of its
    # blobs, its images and state, a retry, and the last log line as the
    # current operation.
    param(
        [hashtable]$Progress
    )
    $total = [long]0
    $done = [long]0
    $retries = @()
    foreach ($b in $Progress.Blobs.Values) {
        $total += [long](Get-JsonValue $b 'total')
        $done += [long](Get-JsonValue $b 'done')
        $retry = Get-JsonValue $b 'retry'
        if ((Get-JsonValue $b 'state') -eq 'retrying' -and $null -ne $retry) {
            # A failed attempt that providerd tries again.
            $d = [string](Get-JsonValue $b 'digest')
            $retries += ('retrying {0} (attempt {1} of {2}): {3}' -f $d.Substring(0, [Math]::Min(19, $d.Length)), (Get-JsonValue $retry 'attempt'), (Get-JsonValue $retry 'attempts'), (Get-JsonValue $retry 'reason'))
        }
    }
    $status = '{0}: {1}' -f $Progress.State, ($Progress.Images -join ', ')
    if ($retries.Count -gt 0) {
        $status = '{0}; {1}' -f $status, ($retries -join '; ')
    }
    $percent = -1
    if ($total -gt 0) {
        $percent = [int][Math]::Min(100, [Math]::Floor(100.0 * $done / $total))
        $status = '{0} ({1:N1} of {2:N1} MB)' -f $status, ($done / 1048576), ($total / 1048576)
    }
    $operation = $Progress.Log
    if ([string]::IsNullOrEmpty($operation)) {
        $operation = $Progress.State
    }
    Write-Progress -Activity $Progress.Activity -Status $status -PercentComplete $percent -CurrentOperation $operation
}

function Read-JobEvent {
    # Takes one event of a job's stream into Progress and returns the job
    # of a result event (final), else $null. Log lines are written with
    # Write-Verbose, warnings with Write-Warning.
    param(
        [hashtable]$Progress,
        [object]$JobEvent
    )
    $job = Get-JsonValue $JobEvent 'job'
    if ($null -ne $job) {
        $Progress.State = [string](Get-JsonValue $job 'state')
        $Progress.Images = @(Get-JsonValue $job 'images' | Where-Object { $_ })
        foreach ($b in @(Get-JsonValue $job 'blobs' | Where-Object { $null -ne $_ })) {
            $Progress.Blobs[[string]$b.digest] = $b
        }
    }
    switch ([string](Get-JsonValue $JobEvent 'type')) {
        'state' { $Progress.State = [string](Get-JsonValue $JobEvent 'state') }
        'progress' {
            $b = Get-JsonValue $JobEvent 'blob'
            if ($null -ne $b) {
                $Progress.Blobs[[string]$b.digest] = $b
            }
        }
        # PackageManagement's Write-Verbose and Write-Warning refuse an
        # empty message.
        'log' {
            $Progress.Log = [string](Get-JsonValue $JobEvent 'message')
            if ($Progress.Log) {
                Write-Verbose $Progress.Log
            }
        }
        'warning' {
            $warning = [string](Get-JsonValue $JobEvent 'message')
            if ($warning) {
                Write-Warning -Message $warning
            }
        }
        'result' { return $job }
    }
    return $null
}

function Wait-ContainerProviderJob {
    # Follows job Id on its NDJSON event stream (GET /v1/jobs/{id}/events)
    # with Write-Progress, and returns the final job. A stream that ends,
    # breaks or stays quiet for 2 minutes before the result is opened
    # again, 1 s later, after the job itself is asked whether it ended;
    # after 5 streams in a row that brought no event (1 to 8 s apart), an
    # Unavailable error says that the job goes on.
    #
    # Cancellation: when CancelWhen returns $true (the provider's
    # $request.IsCanceled), the job is canceled and followed to its end.
    # With -CancelOnStop, a pipeline stopped by Ctrl+C cancels the job too;
    # without it, Ctrl+C only stops the waiting (Wait-ContainerImageJob).
    # The data a canceled install downloaded stays for the next one.
    param(
        [Parameter(Mandatory = $true)]
        [string]$Id,
        [scriptblock]$CancelWhen,
        [switch]$CancelOnStop
    )
    $progress = @{ Activity = ('Installing container image (job {0})' -f $Id); State = 'queued'; Images = @(); Blobs = @{}; Log = '' }
    $api = @{ PathValues = @{ id = $Id }; Target = $Id }
    $final = $null
    $ended = $false
    # Tick runs inside Wait-ContainerProviderTask and sees this function's
    # variables through PowerShell's dynamic scope (so none may be named as
    # one of that function's); a hashtable carries what it changes back.
    $cancellation = @{ Sent = $false; Quiet = $false }
    # A stream that brings no line for this long is taken for a dead
    # connection (providerd sends no heartbeat): it is closed and opened
    # again, which costs a live one nothing but a new first event.
    $quietLimit = [System.TimeSpan]::FromMinutes(2)
    $tick = {
        if (-not $cancellation.Sent -and $CancelWhen -and (& $CancelWhen)) {
            Write-Verbose ('Canceling job {0}' -f $Id)
            $null = Invoke-ContainerProviderApi -Route CancelJob @api
            $cancellation.Sent = $true
        }
        if ($quiet -and $quiet.Elapsed -ge $quietLimit -and $response) {
            # Closed, and the wait for its line given up: a transport need
            # not fail a pending read when its stream is disposed.
            $cancellation.Quiet = $true
            $response.Dispose()
            throw (New-ContainerProviderError -Code Unavailable -Message ('The event stream of job {0} was silent for {1} minutes.' -f $Id, $quietLimit.TotalMinutes) -Target $Id)
        }
    }
    $response = $null
    $quiet = $null
    # Streams in a row that ended or broke before any event.
    $rounds = 0
    try {
        while ($null -eq $final) {
            $events = 0
            $cancellation.Quiet = $false
            try {
                $response = Invoke-ContainerProviderApi -Route GetJobEvents -Accept 'application/x-ndjson' -TimeoutSeconds 60 -Raw @api
                $reader = New-Object System.IO.StreamReader -ArgumentList ($response.Content.ReadAsStreamAsync().GetAwaiter().GetResult())
                $shown = [System.Diagnostics.Stopwatch]::StartNew()
                $quiet = [System.Diagnostics.Stopwatch]::StartNew()
                try {
                    while ($null -eq $final) {
                        $line = Wait-ContainerProviderTask -Task $reader.ReadLineAsync() -Tick $tick
                        if ($null -eq $line) {
                            break
                        }
                        $quiet.Restart()
                        if ([string]::IsNullOrWhiteSpace($line)) {
                            continue
                        }
                        $events++
                        $final = Read-JobEvent -Progress $progress -JobEvent ($line | ConvertFrom-Json)
                        if ($shown.ElapsedMilliseconds -ge 250) {
                            # While events keep coming, the wait for a line
                            # never runs out: cancellation is checked here.
                            $shown.Restart()
                            $null = & $tick
                            Show-JobProgress $progress
                        }
                    }
                }
                finally {
                    $quiet = $null
                    $reader.Dispose()
                    $response.Dispose()
                    $response = $null
                }
            }
            catch {
                # An answer of providerd (the job is unknown, say) ends the
                # wait; a broken connection, or a quiet one closed here, is
                # tried again below.
                $broken = $_.Exception.GetBaseException()
                if (-not $cancellation.Quiet -and $_.FullyQualifiedErrorId -notlike 'ContainerProvider.Unavailable*' -and $broken -isnot [System.IO.IOException] -and $broken -isnot [System.Net.Sockets.SocketException] -and $broken -isnot [System.Net.Http.HttpRequestException]) {
                    $ended = $true
                    throw
                }
                Write-Verbose ('The event stream of job {0} broke: {1}' -f $Id, $_.Exception.Message)
            }
            if ($null -ne $final) {
                break
            }
            # The stream ended before the result: has the job ended?
            try {
                $job = Invoke-ContainerProviderApi -Route GetJob @api
                if ($script:FinalJobStates -contains $job.state) {
                    $final = $job
                    break
                }
            }
            catch {
                if ($_.FullyQualifiedErrorId -notlike 'ContainerProvider.Unavailable*') {
                    $ended = $true
                    throw
                }
            }
            $rounds = if ($events -gt 0) { 0 } else { $rounds + 1 }
            if ($rounds -ge 5) {
                $ended = $true
                throw (New-ContainerProviderError -Code Unavailable -Message ('Lost the progress of job {0} after {1} tries; the job goes on in providerd: Wait-ContainerImageJob -Id {0} re-attaches to it.' -f $Id, $rounds) -Target $Id)
            }
            Start-Sleep -Seconds ([Math]::Pow(2, [Math]::Max(0, $rounds - 1)))
        }
        $ended = $true
        return $final
    }
    finally {
        Write-Progress -Activity $progress.Activity -Completed
        if (-not $ended -and $CancelOnStop -and -not $cancellation.Sent) {
            # The pipeline stops (Ctrl+C): the install stops with it. Nothing
            # may be written while the pipeline stops.
            try {
                $null = Invoke-ContainerProviderApi -Route CancelJob -TimeoutSeconds 5 -Quiet @api
            }
            catch {
                $null = $_
            }
        }
    }
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

function Get-TarText {
    # The text of a tar header field: Length bytes at Offset, up to the
    # first NUL.
    param(
        [byte[]]$Header,
        [int]$Offset,
        [int]$Length
    )
    $text = [System.Text.Encoding]::UTF8.GetString($Header, $Offset, $Length)
    $nul = $text.IndexOf([char]0)
    if ($nul -ge 0) {
        $text = $text.Substring(0, $nul)
    }
    return $text
}

function Read-ContainerImageArchive {
    # The images that a saved archive names, each as @{ Name; Version }:
    # the RepoTags of its manifest.json (the images that are no other's
    # parent), else the io.containerd.image.name of its index.json. The tar
    # is walked header by header and the blobs are skipped by seeking, so
    # a multi-GB archive costs a few reads. An archive without names
    # gives none.
    param(
        [Parameter(Mandatory = $true)]
        [string]$Path
    )
    $tags = @()
    $stream = [System.IO.File]::OpenRead($Path)
    try {
        $header = New-Object byte[] 512
        # The path and size that a PAX header ('x') or a GNU long name
        # ('L') gives the next entry.
        $next = @{}
        while ($stream.Read($header, 0, 512) -eq 512 -and $header[0] -ne 0) {
            $name = (Get-TarText $header 0 100)
            # POSIX ustar ("ustar\0") has a name prefix at 345; GNU tar keeps
            # times there.
            if ([System.Text.Encoding]::ASCII.GetString($header, 257, 6) -eq "ustar$([char]0)") {
                $prefix = Get-TarText $header 345 155
                if ($prefix) {
                    $name = $prefix + '/' + $name
                }
            }
            $size = [long]0
            if ($header[124] -band 0x80) {
                # base-256, for sizes beyond 11 octal digits
                for ($i = 125; $i -lt 136; $i++) {
                    $size = $size * 256 + $header[$i]
                }
            }
            else {
                $octal = [System.Text.Encoding]::ASCII.GetString($header, 124, 12).Trim([char]0, ' ')
                if ($octal) {
                    $size = [System.Convert]::ToInt64($octal, 8)
                }
            }
            if ($next.ContainsKey('path')) {
                $name = $next['path']
            }
            if ($next.ContainsKey('size')) {
                $size = [long]$next['size']
            }
            $next = @{}
            $name = $name -replace '^\./', ''
            $type = [char]$header[156]
            $skip = [long]([Math]::Ceiling($size / 512.0) * 512)
            $wanted = $type -ceq 'x' -or $type -ceq 'L' -or (($type -ceq '0' -or $type -eq [char]0) -and ($name -eq 'manifest.json' -or $name -eq 'index.json'))
            if ($wanted -and $size -le 16777216) {
                $data = New-Object byte[] $size
                $got = 0
                while ($got -lt $size) {
                    $n = $stream.Read($data, $got, [int]($size - $got))
                    if ($n -le 0) {
                        throw ('ContainerImage: {0} ends inside {1}' -f $Path, $name)
                    }
                    $got += $n
                }
                $skip -= $size
                $text = [System.Text.Encoding]::UTF8.GetString($data)
                switch -CaseSensitive ([string]$type) {
                    # PAX records, "LEN key=value\n".
                    'x' { foreach ($m in [regex]::Matches($text, '(?m)^\d+ (path|size)=(.*)$')) { $next[$m.Groups[1].Value] = $m.Groups[2].Value } }
                    'L' { $next['path'] = $text.TrimEnd([char]0) }
                    default {
                        $json = $text | ConvertFrom-Json
                        $repoTags = @($json | ForEach-Object { Get-JsonValue $_ 'RepoTags' } | Where-Object { $_ })
                        if ($name -eq 'manifest.json' -and $repoTags.Count -gt 0) {
                            $tags = $repoTags
                        }
                        elseif ($tags.Count -eq 0) {
                            $tags = @(Get-JsonValue $json 'manifests' | ForEach-Object { Get-JsonValue (Get-JsonValue $_ 'annotations') 'io.containerd.image.name' } | Where-Object { $_ })
                        }
                    }
                }
            }
            [void]$stream.Seek($skip, [System.IO.SeekOrigin]::Current)
        }
    }
    finally {
        $stream.Dispose()
    }
    foreach ($t in $tags) {
        # [host/]repository:tag; the name is the repository without a
        # registry host.
        $slash = $t.LastIndexOf('/')
        $colon = $t.LastIndexOf(':')
        if ($colon -le $slash) {
            continue
        }
        $repository = $t.Substring(0, $colon)
        $first = $repository.Split('/')[0]
        if ($repository.Contains('/') -and ($first.Contains('.') -or $first.Contains(':') -or $first -eq 'localhost')) {
            $repository = $repository.Substring($first.Length + 1)
        }
        @{ Name = $repository; Version = $t.Substring($colon + 1) }
    }
}

Export-ModuleMember -Function @(
    'Get-JsonValue', 'ConvertTo-ContainerProviderObject', 'Format-SourceMirror', 'New-ContainerProviderError', 'ConvertFrom-JobFailure',
    'Get-ContainerProviderEndpoint', 'Invoke-ContainerProviderApi', 'Wait-ContainerProviderJob',
    'New-SourceMirrorRequest', 'Read-ContainerImageArchive'
)
