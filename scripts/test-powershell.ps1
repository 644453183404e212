# Pester 5 tests of the ContainerImage module against a running providerd:
# the reference session end to end (Find, Install, Get, New-Container and
# New-ContainerImage, the parent of an image, Remove with its dependents,
# Save and Install -Path), Stop-ContainerImageJob, and the OneGet provider
# under the real PackageManagement when this PowerShell has it.
#
# scripts/test-powershell.sh runs this file: it starts catalogd (seeded) and
# providerd on loopback in a temporary directory and sets
# CONTAINERPROVIDER_ENDPOINT (http://127.0.0.1:PORT) and
# CONTAINERPROVIDER_TOKEN_FILE (providerd's ROOT/auth/token). Each Describe
# puts providerd in the state it needs through the API first (no container,
# no installed image, no source but catalog), so the blocks can run alone:
#
#   $ scripts/test-powershell.sh scripts/test-powershell.ps1
#
# Every wait is bounded; a cmdlet that hangs is stopped by the runner's
# timeout.

BeforeAll {
    if ([string]::IsNullOrEmpty($env:CONTAINERPROVIDER_ENDPOINT) -or [string]::IsNullOrEmpty($env:CONTAINERPROVIDER_TOKEN_FILE)) {
        throw 'CONTAINERPROVIDER_ENDPOINT and CONTAINERPROVIDER_TOKEN_FILE are not set: run scripts/test-powershell.sh, which starts catalogd and providerd and sets them.'
    }
    Import-Module (Join-Path (Join-Path $PSScriptRoot 'ContainerImage') 'ContainerImage.psd1') -Force

    # Tables are compared as text: no ANSI colours in the headers.
    if (Get-Variable -Name PSStyle -ErrorAction SilentlyContinue) {
        $PSStyle.OutputRendering = 'PlainText'
    }

    $script:FinalStates = @('succeeded', 'failed', 'canceled')
    # What Install-ContainerImage prints, "1 second" in the singular.
    $script:Downloaded = '^Downloaded in \d+ hours?, \d+ minutes?, \d+ seconds?\.$'
    $script:NanoParent = "ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']"

    function Invoke-TestApi {
        # Calls providerd's API v1 directly, with the token of the token
        # file: the setup and the checks of these tests, never the module's
        # code. A 204 answers nothing.
        param(
            [Parameter(Mandatory = $true)]
            [string]$Method,
            [Parameter(Mandatory = $true)]
            [string]$Path,
            [object]$Body
        )
        $token = @(Get-Content -LiteralPath $env:CONTAINERPROVIDER_TOKEN_FILE -TotalCount 1)[0].Trim()
        $params = @{
            Method      = $Method
            Uri         = $env:CONTAINERPROVIDER_ENDPOINT.TrimEnd('/') + $Path
            Headers     = @{ Authorization = 'Bearer ' + $token; Accept = 'application/json' }
            TimeoutSec  = 60
            ErrorAction = 'Stop'
        }
        if ($PSVersionTable.PSVersion.Major -lt 6) {
            $params['UseBasicParsing'] = $true
        }
        if ($PSBoundParameters.ContainsKey('Body')) {
            $params['Body'] = [System.Text.Encoding]::UTF8.GetBytes((ConvertTo-Json -InputObject $Body -Depth 8 -Compress))
            $params['ContentType'] = 'application/json; charset=utf-8'
        }
        Invoke-RestMethod @params
    }

    function Wait-TestJob {
        # Polls a job until it is final and returns it; throws after Seconds.
        param(
            [Parameter(Mandatory = $true)]
            [string]$Id,
            [int]$Seconds = 120
        )
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while ($true) {
            $job = Invoke-TestApi -Method GET -Path ('/v1/jobs/' + $Id)
            if ($script:FinalStates -contains $job.state) {
                return $job
            }
            if ([DateTime]::UtcNow -gt $deadline) {
                throw ('job {0} is still {1} after {2} s' -f $Id, $job.state, $Seconds)
            }
            Start-Sleep -Milliseconds 200
        }
    }

    function Install-TestImage {
        # Installs an image through the API and waits for its job.
        param(
            [Parameter(Mandatory = $true)]
            [string]$Name,
            [Parameter(Mandatory = $true)]
            [string]$Version
        )
        $job = Invoke-TestApi -Method POST -Path '/v1/images/install' -Body ([ordered]@{ name = $Name; requiredVersion = $Version })
        $final = Wait-TestJob -Id $job.id
        if ($final.state -ne 'succeeded') {
            throw ('install of {0} {1}: job {2} ended {3}: {4}' -f $Name, $Version, $final.id, $final.state, (ConvertTo-Json -InputObject $final.error -Compress))
        }
    }

    function Get-TestImage {
        # The installed images of that name (and version), from the API.
        param(
            [Parameter(Mandatory = $true)]
            [string]$Name,
            [string]$Version
        )
        @(@((Invoke-TestApi -Method GET -Path '/v1/images').images) | Where-Object {
                $null -ne $_ -and $_.name -eq $Name -and (-not $Version -or $_.version -eq $Version)
            })
    }

    function Get-CatalogLocation {
        # The location of the source catalog that the runner gave providerd.
        $catalog = @(@((Invoke-TestApi -Method GET -Path '/v1/sources').sources) | Where-Object { $null -ne $_ -and $_.name -eq 'catalog' })
        if ($catalog.Count -ne 1) {
            throw 'providerd has no source named catalog'
        }
        return [string]$catalog[0].location
    }

    function Reset-ProviderState {
        # No running job, no source but catalog, no container, no image.
        foreach ($j in @((Invoke-TestApi -Method GET -Path '/v1/jobs').jobs)) {
            if ($null -ne $j -and $script:FinalStates -notcontains $j.state) {
                Invoke-TestApi -Method POST -Path ('/v1/jobs/' + $j.id + '/cancel') | Out-Null
                Wait-TestJob -Id $j.id -Seconds 30 | Out-Null
            }
        }
        foreach ($s in @((Invoke-TestApi -Method GET -Path '/v1/sources').sources)) {
            if ($null -ne $s -and $s.name -ne 'catalog') {
                Invoke-TestApi -Method DELETE -Path ('/v1/sources/' + [System.Uri]::EscapeDataString($s.name)) | Out-Null
            }
        }
        foreach ($c in @((Invoke-TestApi -Method GET -Path '/v1/containers').containers)) {
            if ($null -ne $c) {
                Invoke-TestApi -Method DELETE -Path ('/v1/containers/' + $c.id + '?force=true') | Out-Null
            }
        }
        $digests = @(@((Invoke-TestApi -Method GET -Path '/v1/images').images) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_.digest })
        if ($digests.Count -gt 0) {
            Invoke-TestApi -Method DELETE -Path ('/v1/images?id=' + [System.Uri]::EscapeDataString($digests -join ',')) | Out-Null
        }
    }

    function Get-TableLine {
        # The lines of Format-Table's text of the piped objects, as a console
        # wide enough shows them: trailing blanks and empty lines left out.
        param(
            [Parameter(ValueFromPipeline = $true)]
            [object]$InputObject
        )
        begin {
            $items = New-Object System.Collections.Generic.List[object]
        }
        process {
            $items.Add($InputObject)
        }
        end {
            $text = $items | Format-Table | Out-String -Width 400
            @($text -split '\r?\n' | ForEach-Object { ($_ -replace '\e\[[0-9;]*[A-Za-z]', '').TrimEnd() } | Where-Object { $_ })
        }
    }

    function Test-TarArchive {
        # Whether the file begins with a ustar header.
        param(
            [Parameter(Mandatory = $true)]
            [string]$Path
        )
        $header = New-Object byte[] 512
        $stream = [System.IO.File]::OpenRead($Path)
        try {
            $n = $stream.Read($header, 0, $header.Length)
        }
        finally {
            $stream.Dispose()
        }
        return $n -eq 512 -and [System.Text.Encoding]::ASCII.GetString($header, 257, 5) -eq 'ustar'
    }

    function Select-OutputObject {
        # The objects of a stream captured with 6>&1, without the
        # information records (Write-Host).
        param(
            [object[]]$Output
        )
        @($Output | Where-Object { $_ -isnot [System.Management.Automation.InformationRecord] })
    }
}

Describe 'Find-ContainerImage' {
    BeforeAll {
        Reset-ProviderState
    }

    It 'lists NanoServer and WindowsServerCore with Name, Version and Description' {
        $images = @(Find-ContainerImage)
        $images[0].PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImageInfo'
        $lines = @($images | Get-TableLine)

        $lines[0] | Should -Match '^Name\s+Version\s+(\S+\s+)*Description$'
        @($lines -match '^NanoServer\s+10\.0\.14393\.0\s+(\S+\s+)?Container OS Image of Windows Server 2016 : Nano Server$') | Should -HaveCount 1
        @($lines -match '^WindowsServerCore\s+10\.0\.14393\.0\s+(\S+\s+)?Container OS Image of Windows Server 2016 : Windows Server Core$') | Should -HaveCount 1
    }

    It 'shows the reference rows at 10.0.10586.0' {
        $lines = @(Find-ContainerImage -Name 'NanoServer', 'WindowsServerCore' -RequiredVersion 10.0.10586.0 | Get-TableLine)

        $lines[0] | Should -Match '^Name\s+Version\s+(\S+\s+)*Description$'
        @($lines -match '^(NanoServer|WindowsServerCore)\s') | Should -HaveCount 2
        @($lines -match '^NanoServer\s+10\.0\.10586\.0\s+(\S+\s+)?Container OS Image of Windows Server 2016 Technical Preview 4 : Nano Server$') | Should -HaveCount 1
        @($lines -match '^WindowsServerCore\s+10\.0\.10586\.0\s+(\S+\s+)?Container OS Image of Windows Server 2016 Technical Preview 4 : Windows Server Core$') | Should -HaveCount 1
    }
}

Describe 'Install-ContainerImage' {
    BeforeAll {
        Reset-ProviderState
    }

    It 'Install-ContainerImage -Name <Name> -Version 10.0.10586.0 prints only the download time and writes no object' -ForEach @(
        @{ Name = 'NanoServer' }
        @{ Name = 'WindowsServerCore' }
    ) {
        $out = @(Install-ContainerImage -Name $Name -Version 10.0.10586.0 6>&1)

        $out.Count | Should -Be 1
        $out[0] | Should -BeOfType ([System.Management.Automation.InformationRecord])
        [string]$out[0] | Should -Match $script:Downloaded
        Get-TestImage -Name $Name -Version 10.0.10586.0 | Should -HaveCount 1
    }

    It 'writes the installed image with -PassThru' {
        $out = @(Install-ContainerImage -Name NanoServer -Version 10.0.14393.0 -PassThru 6>&1)
        $objects = Select-OutputObject $out

        $objects | Should -HaveCount 1
        $objects[0].PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImage'
        $objects[0].Name | Should -Be 'NanoServer'
        $objects[0].Version | Should -Be '10.0.14393.0'
        @($out | Where-Object { $_ -is [System.Management.Automation.InformationRecord] -and [string]$_ -match $script:Downloaded }) | Should -HaveCount 1
    }

    It 'reports an unknown name as OneGet does, with the hint, and installs nothing' {
        $err = $null
        $out = @(Install-ContainerImage -Name NoSuchImage -ErrorAction SilentlyContinue -ErrorVariable err 6>&1)

        Select-OutputObject $out | Should -HaveCount 0
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.NotFound*'
        $err[0].ToString() | Should -BeLike "No match was found for the specified search criteria and package name 'NoSuchImage'.*Get-PackageSource*"
        Get-TestImage -Name NoSuchImage | Should -HaveCount 0
    }
}

Describe 'Get-ContainerImage' {
    BeforeAll {
        Reset-ProviderState
        Install-TestImage -Name NanoServer -Version 10.0.10586.0
        Install-TestImage -Name WindowsServerCore -Version 10.0.10586.0
    }

    It 'shows Name, Publisher, Version and IsOSImage as the reference' {
        $images = @(Get-ContainerImage)
        $images | Should -HaveCount 2
        $lines = @($images | Get-TableLine)

        $lines[0] | Should -Match '^Name\s+Publisher\s+Version\s+IsOSImage$'
        @($lines -match '^NanoServer\s+CN=Microsoft\s+10\.0\.10586\.0\s+True$') | Should -HaveCount 1
        @($lines -match '^WindowsServerCore\s+CN=Microsoft\s+10\.0\.10586\.0\s+True$') | Should -HaveCount 1
    }

    It 'gives the base OS images no ParentImage' {
        foreach ($image in Get-ContainerImage) {
            $image.IsOSImage | Should -BeTrue
            $image.ParentImage | Should -BeNullOrEmpty
        }
    }
}

Describe 'New-ContainerImage and the dependencies of images' {
    BeforeAll {
        Reset-ProviderState
        Install-TestImage -Name NanoServer -Version 10.0.10586.0
        Install-TestImage -Name WindowsServerCore -Version 10.0.10586.0
    }

    AfterAll {
        Reset-ProviderState
    }

    It 'New-ContainerImage -Container $c -Publisher Demo -Name DemoImage -Version 1.0 makes CN=Demo 1.0.0.0, no OS image' {
        $script:container = New-Container -ContainerImageName NanoServer -Name pester-demo
        $script:container.PSObject.TypeNames | Should -Contain 'ContainerProvider.Container'
        $script:container.Name | Should -Be 'pester-demo'

        $image = New-ContainerImage -Container $script:container -Publisher Demo -Name DemoImage -Version 1.0

        $image.Name | Should -Be 'DemoImage'
        $image.Publisher | Should -Be 'CN=Demo'
        $image.Version | Should -Be '1.0.0.0'
        $image.IsOSImage | Should -BeFalse
        @(@(Get-ContainerImage | Get-TableLine) -match '^DemoImage\s+CN=Demo\s+1\.0\.0\.0\s+False$') | Should -HaveCount 1
    }

    It 'Get-ContainerImage | select Name, ParentImage shows the parent as the reference' {
        $lines = @(Get-ContainerImage | select 'Name', 'ParentImage' | Get-TableLine)

        $lines[0] | Should -Match '^Name\s+ParentImage$'
        @($lines -match ('^DemoImage\s+' + [regex]::Escape($script:NanoParent) + '$')) | Should -HaveCount 1
        @($lines -ceq 'NanoServer') | Should -HaveCount 1
        @($lines -ceq 'WindowsServerCore') | Should -HaveCount 1
    }

    It 'gives ParentImage as a reference with Name, Publisher, Version and Digest' {
        $demo = @(Get-ContainerImage | Where-Object { $_.Name -eq 'DemoImage' })
        $demo | Should -HaveCount 1
        $parent = $demo[0].ParentImage

        $parent.PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImageReference'
        $parent.Name | Should -Be 'NanoServer'
        $parent.Publisher | Should -Be 'CN=Microsoft'
        $parent.Version | Should -Be '10.0.10586.0'
        $parent.Digest | Should -Match '^sha256:[0-9a-f]{64}$'
        $parent.ToString() | Should -BeExactly $script:NanoParent
    }

    It 'refuses to remove NanoServer while DemoImage and a container depend on it, and names them' {
        $err = $null
        $out = @(Remove-ContainerImage -Name NanoServer -Force -ErrorAction SilentlyContinue -ErrorVariable err)

        $out | Should -HaveCount 0
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.Conflict*'
        $err[0].ToString() | Should -BeLike '*image DemoImage 1.0.0.0*'
        $err[0].ToString() | Should -BeLike '*container pester-demo*'
        Get-TestImage -Name NanoServer -Version 10.0.10586.0 | Should -HaveCount 1
    }

    It 'refuses to remove DemoImage while a container depends on it, and names the container' {
        $script:onDemo = New-Container -ContainerImageName DemoImage -Name pester-on-demo
        $err = $null
        $out = @(Get-ContainerImage -Name DemoImage | Remove-ContainerImage -Force -ErrorAction SilentlyContinue -ErrorVariable err)

        $out | Should -HaveCount 0
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.Conflict*'
        $err[0].ToString() | Should -BeLike '*container pester-on-demo*'
        Get-TestImage -Name DemoImage | Should -HaveCount 1
    }

    It 'Get-ContainerImage -Name DemoImage | Remove-ContainerImage -Force removes it once the container is gone, and writes nothing' {
        Remove-Container -Container $script:onDemo -Force
        @(Get-Container | Where-Object { $_.Name -eq 'pester-on-demo' }) | Should -HaveCount 0

        $out = @(Get-ContainerImage -Name DemoImage | Remove-ContainerImage -Force)

        $out | Should -HaveCount 0
        Get-TestImage -Name DemoImage | Should -HaveCount 0
        Get-TestImage -Name NanoServer -Version 10.0.10586.0 | Should -HaveCount 1
    }
}

Describe 'Save-ContainerImage and Install-ContainerImage -Path' {
    BeforeAll {
        Reset-ProviderState
        Install-TestImage -Name NanoServer -Version 10.0.10586.0
        $script:archive = Join-Path (Join-Path $TestDrive 'saved') 'NanoServer-10-0-10586-0.tar'
    }

    AfterAll {
        Reset-ProviderState
    }

    It 'saves to a folder in the file providerd names, with the version the save resolves' {
        $dir = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'saved')

        Save-ContainerImage -Name NanoServer -Path $dir.FullName | Out-Null

        @(Get-ChildItem -LiteralPath $dir.FullName -Force | ForEach-Object { $_.Name }) | Should -Be @('NanoServer-10-0-10586-0.tar')
        Test-TarArchive -Path $script:archive | Should -BeTrue
    }

    It 'writes nothing and reports no error with -WhatIf' {
        $dir = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'whatif')
        $missing = Join-Path $TestDrive 'missing'
        $err = $null

        Save-ContainerImage -Name NanoServer -Path $dir.FullName -WhatIf -ErrorVariable err | Out-Null
        Save-ContainerImage -Name NanoServer -Path $missing -WhatIf -ErrorVariable +err | Out-Null

        @($err).Count | Should -Be 0
        @(Get-ChildItem -LiteralPath $dir.FullName -Force) | Should -HaveCount 0
        Test-Path -LiteralPath $missing | Should -BeFalse
    }

    It 'binds a piped name to -Name: ''NanoServer'' | Save-ContainerImage -Destination $dir' {
        $dir = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'piped')

        'NanoServer' | Save-ContainerImage -Destination $dir.FullName | Out-Null

        @(Get-ChildItem -LiteralPath $dir.FullName -Force | ForEach-Object { $_.Name }) | Should -Be @('NanoServer-10-0-10586-0.tar')
    }

    It 'installs the saved file after a remove (offline install), writing no object' {
        Test-Path -LiteralPath $script:archive | Should -BeTrue
        Remove-ContainerImage -Name NanoServer -Force | Should -BeNullOrEmpty
        Get-TestImage -Name NanoServer | Should -HaveCount 0

        $out = @(Install-ContainerImage -Path $script:archive 6>&1)

        Select-OutputObject $out | Should -HaveCount 0
        $installed = Get-TestImage -Name NanoServer -Version 10.0.10586.0
        $installed | Should -HaveCount 1
        $installed[0].publisher | Should -Be 'CN=Microsoft'
    }

    It 'writes the images of the file with -PassThru' {
        Remove-ContainerImage -Name NanoServer -Force
        Get-TestImage -Name NanoServer | Should -HaveCount 0

        $objects = Select-OutputObject @(Install-ContainerImage -Path $script:archive -PassThru 6>&1)

        $nano = @($objects | Where-Object { $_.Name -eq 'NanoServer' })
        $nano | Should -HaveCount 1
        $nano[0].PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImage'
        $nano[0].Version | Should -Be '10.0.10586.0'
    }
}

# Ctrl+C cannot be sent to a cmdlet under Pester: the job is started with the
# API and cancelled with Stop-ContainerImageJob. A source whose pull mirror
# accepts connections and never answers holds the job in its download (for
# providerd's --mirror-timeout, 10 s by default) while it is cancelled.
Describe 'Stop-ContainerImageJob' {
    BeforeAll {
        Reset-ProviderState
        $script:hole = New-Object System.Net.Sockets.TcpListener -ArgumentList ([System.Net.IPAddress]::Loopback), 0
        $script:hole.Start()
        $port = ([System.Net.IPEndPoint]$script:hole.LocalEndpoint).Port
        $source = [ordered]@{
            name     = 'pester-stall'
            location = Get-CatalogLocation
            mirrors  = @([ordered]@{ location = ('http://127.0.0.1:{0}' -f $port); capabilities = @('pull') })
        }
        Invoke-TestApi -Method POST -Path '/v1/sources' -Body $source | Out-Null
        Invoke-TestApi -Method POST -Path '/v1/sources/pester-stall/refresh' | Out-Null

        function Start-StalledJob {
            # Starts an install from pester-stall and returns its job, still
            # running.
            param(
                [string]$Name
            )
            $job = Invoke-TestApi -Method POST -Path '/v1/images/install' -Body ([ordered]@{ name = $Name; requiredVersion = '10.0.14393.0'; source = 'pester-stall' })
            Start-Sleep -Milliseconds 300
            (Invoke-TestApi -Method GET -Path ('/v1/jobs/' + $job.id)).state | Should -Not -BeIn $script:FinalStates -Because 'the mirror that never answers holds the download'
            return $job
        }
    }

    AfterAll {
        Reset-ProviderState
        if ($script:hole) {
            $script:hole.Stop()
        }
    }

    It 'cancels a running install job and writes the job with -PassThru' {
        $job = Start-StalledJob -Name NanoServer

        $stopped = @(Stop-ContainerImageJob -Id $job.id -PassThru)

        $stopped | Should -HaveCount 1
        $stopped[0].PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImageJob'
        $stopped[0].Id | Should -Be $job.id
        (Wait-TestJob -Id $job.id -Seconds 30).state | Should -Be 'canceled'
        (Get-ContainerImageJob -Id $job.id).State | Should -Be 'canceled'
        Get-TestImage -Name NanoServer | Should -HaveCount 0
    }

    It 'writes nothing without -PassThru' {
        $job = Start-StalledJob -Name WindowsServerCore

        Stop-ContainerImageJob -Id $job.id | Should -BeNullOrEmpty

        (Wait-TestJob -Id $job.id -Seconds 30).state | Should -Be 'canceled'
    }
}

# The provider under the real PackageManagement. Where this PowerShell has no
# PackageManagement, each test is skipped with the reason.
Describe 'The ContainerImage provider of PackageManagement' {
    BeforeAll {
        Reset-ProviderState
        $script:catalog = Get-CatalogLocation
        $script:skipReason = $null
        if (-not (Get-Command -Name Get-PackageProvider -ErrorAction SilentlyContinue)) {
            $script:skipReason = 'PackageManagement is not available in this PowerShell (no Get-PackageProvider)'
        }
        else {
            try {
                Import-Module PackageManagement -ErrorAction Stop
            }
            catch {
                $script:skipReason = 'PackageManagement does not load: ' + $_.Exception.Message
            }
        }
        if (-not $script:skipReason) {
            # PackageManagement finds a provider in the PrivateData of a
            # module on PSModulePath; the module's folder is in scripts/.
            $script:modulePath = $env:PSModulePath
            $env:PSModulePath = $PSScriptRoot + [System.IO.Path]::PathSeparator + $env:PSModulePath
            $script:listed = @(Get-PackageProvider -Name ContainerImage -ListAvailable -ErrorAction SilentlyContinue)
            if ($script:listed.Count -gt 0) {
                Import-PackageProvider -Name ContainerImage -Force -ErrorAction Stop | Out-Null
            }
            else {
                # Imported by its file, so that the other tests still run.
                Import-PackageProvider -Name (Join-Path (Join-Path $PSScriptRoot 'ContainerImage') 'ContainerImageProvider.psm1') -Force -ErrorAction Stop | Out-Null
            }
        }
    }

    AfterAll {
        if ($script:modulePath) {
            $env:PSModulePath = $script:modulePath
        }
        Reset-ProviderState
    }

    It 'is found through the module manifest and listed by Get-PackageProvider' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $script:listed.Count | Should -BeGreaterThan 0 -Because 'ContainerImage.psd1 declares the provider in PrivateData.PackageManagementProviders'
        (Get-PackageProvider -Name ContainerImage).Name | Should -Be 'ContainerImage'
    }

    It 'Register-PackageSource -Trusted registers a source that Get-PackageSource shows trusted' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $registered = Register-PackageSource -ProviderName ContainerImage -Name pester-oneget -Location $script:catalog -Trusted

        $registered.Name | Should -Be 'pester-oneget'
        $registered.IsTrusted | Should -BeTrue
        $listed = @(Get-PackageSource -ProviderName ContainerImage | Where-Object { $_.Name -eq 'pester-oneget' })
        $listed | Should -HaveCount 1
        $listed[0].Location | Should -Be $script:catalog
        $listed[0].IsTrusted | Should -BeTrue
        (Get-ContainerImageSource -Name pester-oneget).Trusted | Should -BeTrue
    }

    It 'Find-Package -ProviderName ContainerImage -Name NanoServer finds it in the source' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $found = @(Find-Package -ProviderName ContainerImage -Name NanoServer -Source pester-oneget)

        $found.Count | Should -BeGreaterThan 0
        $found | ForEach-Object { $_.Name | Should -Be 'NanoServer' }
        @($found | Where-Object { $_.Version -eq '10.0.14393.0' -and $_.Source -eq 'pester-oneget' }) | Should -HaveCount 1
    }

    It 'Install-Package -Force installs it' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $installed = @(Install-Package -ProviderName ContainerImage -Name NanoServer -RequiredVersion 10.0.14393.0 -Source pester-oneget -Force)

        @($installed | Where-Object { $_.Name -eq 'NanoServer' -and $_.Version -eq '10.0.14393.0' }) | Should -HaveCount 1
        Get-TestImage -Name NanoServer -Version 10.0.14393.0 | Should -HaveCount 1
    }

    It 'Get-Package lists the installed image' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $packages = @(Get-Package -ProviderName ContainerImage -Name NanoServer)

        @($packages | Where-Object { $_.Version -eq '10.0.14393.0' }) | Should -HaveCount 1
    }

    It 'Uninstall-Package removes it' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        Uninstall-Package -ProviderName ContainerImage -Name NanoServer -RequiredVersion 10.0.14393.0 -Force | Out-Null

        Get-TestImage -Name NanoServer -Version 10.0.14393.0 | Should -HaveCount 0
    }

    It 'reports an unknown name as NoMatchFoundForCriteria' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $err = $null
        Install-Package -ProviderName ContainerImage -Name NoSuchImage -Source pester-oneget -Force -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null

        @($err).Count | Should -BeGreaterThan 0
        $texts = @($err | ForEach-Object { $_.ToString() })
        @($texts -match "parameter name 'ErrorRecord'") | Should -HaveCount 0
        @($err | Where-Object {
                $_.FullyQualifiedErrorId -like 'NoMatchFoundForCriteria*' -or
                $_.ToString() -like "No match was found for the specified search criteria and package name 'NoSuchImage'*"
            }).Count | Should -BeGreaterThan 0
        Get-TestImage -Name NoSuchImage | Should -HaveCount 0
    }

    It 'reports providerd''s refusal as an error with its id, not as a warning' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        $err = $null
        Register-PackageSource -ProviderName ContainerImage -Name 'bad name!' -Location 'http://127.0.0.1:1' -ErrorAction SilentlyContinue -ErrorVariable err -WarningAction SilentlyContinue | Out-Null

        @($err | Where-Object { $_.FullyQualifiedErrorId -like 'ContainerProvider.InvalidArgument*' }) | Should -Not -BeNullOrEmpty
        @(@((Invoke-TestApi -Method GET -Path '/v1/sources').sources) | Where-Object { $null -ne $_ -and $_.name -eq 'bad name!' }) | Should -HaveCount 0
    }

    It 'Unregister-PackageSource removes the source' {
        if ($script:skipReason) {
            Set-ItResult -Skipped -Because $script:skipReason
            return
        }
        Unregister-PackageSource -ProviderName ContainerImage -Name pester-oneget | Out-Null

        @(Get-PackageSource -ProviderName ContainerImage | Where-Object { $_.Name -eq 'pester-oneget' }) | Should -HaveCount 0
        @(@((Invoke-TestApi -Method GET -Path '/v1/sources').sources) | Where-Object { $null -ne $_ -and $_.name -eq 'pester-oneget' }) | Should -HaveCount 0
    }
}
