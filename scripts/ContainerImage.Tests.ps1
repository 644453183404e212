# Pester 5 tests of the ContainerImage module: the registration of source
# mirrors, pipeline binding, and the OneGet provider under the functions
# PackageManagement loads before it, for a machine with PowerShell (5.1 or
# 7) and Pester 5:
#
#   PS> Invoke-Pester ./scripts/ContainerImage.Tests.ps1
#
# Invoke-RestMethod is mocked inside the module, so no providerd is needed.
# The machines that run `make test` have no PowerShell: there this file is
# only parsed (scripts/check-powershell.mjs), and the Go tests of
# test/e2e/powershell_mirrors_test.go and powershell_contract_test.go check
# the same from the module's text.

BeforeAll {
    Import-Module (Join-Path (Join-Path $PSScriptRoot 'ContainerImage') 'ContainerImage.psd1') -Force
}

Describe 'Register-ContainerImageSource -Mirror' {
    BeforeEach {
        # The body of the last request, decoded.
        $script:sent = $null
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:sent = [System.Text.Encoding]::UTF8.GetString([byte[]]$Body) | ConvertFrom-Json
            return $script:sent
        }
    }

    It 'sends one mirror per URL with the credential, the capabilities and insecure' {
        $password = ConvertTo-SecureString 's3cret' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential -ArgumentList 'cacheuser', $password
        Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror 'http://127.0.0.1:5001', 'https://cache.example:5000' -MirrorCredential $cred -MirrorCapability Pull -MirrorInsecure | Out-Null

        Should -Invoke -ModuleName ContainerImage Invoke-RestMethod -Times 1 -Exactly -ParameterFilter { $Method -eq 'POST' -and $Uri -like '*/v1/sources' }
        $script:sent.name | Should -Be 'hub'
        @($script:sent.mirrors).Count | Should -Be 2
        $script:sent.mirrors[0].location | Should -Be 'http://127.0.0.1:5001'
        $script:sent.mirrors[1].location | Should -Be 'https://cache.example:5000'
        foreach ($m in $script:sent.mirrors) {
            $m.username | Should -Be 'cacheuser'
            $m.password | Should -Be 's3cret'
            $m.insecure | Should -BeTrue
            @($m.capabilities) | Should -Be @('pull')
        }
    }

    It 'sends a mirror without settings as its location alone' {
        Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror http://127.0.0.1:5001 | Out-Null

        @($script:sent.mirrors).Count | Should -Be 1
        @($script:sent.mirrors[0].PSObject.Properties.Name) | Should -Be @('location')
    }

    It 'sends -MirrorNamespace as each mirror''s namespace' {
        Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000 -Mirror https://harbor.example -MirrorNamespace proxy-project -MirrorCapability pull | Out-Null

        $script:sent.mirrors[0].namespace | Should -Be 'proxy-project'
    }

    It 'sends no mirrors without -Mirror' {
        Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000 | Out-Null

        $script:sent.PSObject.Properties.Name | Should -Not -Contain 'mirrors'
    }

    It 'refuses <Mirror> with an InvalidArgument error and sends nothing' -ForEach @(
        @{ Mirror = 'ftp://cache.example' }
        @{ Mirror = '127.0.0.1:5001' }
        @{ Mirror = 'http://cache.example/?q=1' }
        @{ Mirror = 'http://user:pw@cache.example' }
    ) {
        $err = $null
        Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror $Mirror -ErrorAction SilentlyContinue -ErrorVariable err

        Should -Invoke -ModuleName ContainerImage Invoke-RestMethod -Times 0 -Exactly
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.InvalidArgument*'
        $err[0].Exception.Message | Should -BeLike "The mirror $Mirror *"
    }

    It 'refuses -MirrorCapability without -Mirror and sends nothing' {
        $err = $null
        Register-ContainerImageSource -Name hub -Location https://registry.example -MirrorCapability pull -ErrorAction SilentlyContinue -ErrorVariable err

        Should -Invoke -ModuleName ContainerImage Invoke-RestMethod -Times 0 -Exactly
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.InvalidArgument*'
    }

    It 'refuses a capability outside pull and resolve at binding' {
        { Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror http://127.0.0.1:5001 -MirrorCapability push } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError'
    }
}

Describe 'Get-ContainerImageSource mirrors' {
    BeforeEach {
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            [pscustomobject]@{
                sources = @(
                    [pscustomobject]@{
                        name     = 'hub'
                        location = 'https://registry.example'
                        mirrors  = @(
                            [pscustomobject]@{ location = 'http://127.0.0.1:5001'; capabilities = @('pull'); username = 'cacheuser' }
                            [pscustomobject]@{ location = 'https://cache.example:5000'; insecure = $true }
                        )
                    }
                    [pscustomobject]@{ name = 'catalog'; location = 'http://127.0.0.1:5000' }
                )
            }
        }
    }

    It 'gives each source its Mirrors, in order, with their capabilities' {
        $hub = Get-ContainerImageSource -Name hub
        $hub.Mirrors.Count | Should -Be 2
        $hub.Mirrors[0].Location | Should -Be 'http://127.0.0.1:5001'
        $hub.Mirrors[0].Capabilities | Should -Be @('pull')
        $hub.Mirrors[0].Username | Should -Be 'cacheuser'
        $hub.Mirrors[1].Capabilities | Should -Be @('pull', 'resolve')
        $hub.Mirrors[1].Insecure | Should -BeTrue
        $hub.Mirrors[0].PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImageSourceMirror'
    }

    It 'gives a source without mirrors an empty Mirrors' {
        $catalog = Get-ContainerImageSource -Name catalog
        @($catalog.Mirrors).Count | Should -Be 0
    }

    It 'lists the mirrors in Format-List' {
        $text = Get-ContainerImageSource -Name hub | Format-List | Out-String -Width 200
        $text | Should -Match 'Mirrors\s*:\s*http://127\.0\.0\.1:5001 \(pull\), https://cache\.example:5000 \(pull\+resolve\)'
    }
}

# Pipeline binding, as in ContainerProvider 0.6: a piped string is -Name, a
# piped object an -InputObject (-Image). Not run here (no PowerShell); the
# static check scripts/check-powershell-contract.mjs holds the binding rule.
Describe 'Piping to Install-, Save- and Remove-ContainerImage' {
    BeforeEach {
        $script:bodies = New-Object System.Collections.Generic.List[object]
        $script:uris = New-Object System.Collections.Generic.List[string]
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:uris.Add([string]$Uri)
            if ($Body) {
                $script:bodies.Add(([System.Text.Encoding]::UTF8.GetString([byte[]]$Body) | ConvertFrom-Json))
            }
            if ($Method -eq 'POST' -and $Uri -like '*/v1/images/install') {
                return [pscustomobject]@{ id = 'j1'; state = 'queued' }
            }
            if ($Uri -like '*/v1/jobs/j1') {
                return [pscustomobject]@{ id = 'j1'; state = 'succeeded'; message = 'Downloaded in 0 hours, 0 minutes, 1 second.' }
            }
            if ($Method -eq 'DELETE' -and $Uri -like '*whatIf=true*') {
                return [pscustomobject]@{ whatIf = $true; removed = @([pscustomobject]@{ name = 'DemoImage'; version = '1.0.0.0'; digest = 'sha256:0123' }) }
            }
            return [pscustomobject]@{ removed = @() }
        }
        Mock -ModuleName ContainerImage Invoke-WebRequest {
            $script:bodies.Add(([System.Text.Encoding]::UTF8.GetString([byte[]]$Body) | ConvertFrom-Json))
            Set-Content -LiteralPath $OutFile -Value 'archive'
        }
        Mock -ModuleName ContainerImage Write-Host -MockWith { $null }
    }

    It 'installs a piped string as the -Name' {
        'NanoServer' | Install-ContainerImage -Confirm:$false

        $script:bodies[0].name | Should -Be 'NanoServer'
    }

    It 'installs a piped find entry with its version and source' {
        [pscustomobject]@{ Name = 'NanoServer'; Version = '10.0.10586.0'; Source = 'catalog' } | Install-ContainerImage -Confirm:$false

        $script:bodies[0].name | Should -Be 'NanoServer'
        $script:bodies[0].requiredVersion | Should -Be '10.0.10586.0'
        $script:bodies[0].source | Should -Be 'catalog'
    }

    It 'saves each piped string, -Destination naming the folder' {
        'NanoServer', 'WindowsServerCore' | Save-ContainerImage -Destination TestDrive:\ -Confirm:$false

        @($script:bodies.name) | Should -Be @('NanoServer', 'WindowsServerCore')
        Join-Path TestDrive:\ 'NanoServer.tar' | Should -Exist
        Join-Path TestDrive:\ 'WindowsServerCore.tar' | Should -Exist
    }

    It 'removes a piped string as the -Name, by the digests of the plan' {
        'DemoImage' | Remove-ContainerImage -Force

        $script:uris[0] | Should -BeLike '*name=DemoImage*'
        $script:uris[1] | Should -BeLike '*id=sha256%3A0123*'
    }
}

# The OneGet provider under the functions PackageManagement loads into its
# runspace first (OneGet's PackageProviderFunctions.psm1, copied here with
# their mandatory parameters). Not run here (no PowerShell).
Describe 'ContainerImageProvider under PackageManagement''s functions' {
    BeforeAll {
        function global:Write-Error {
            param(
                [Parameter(Mandatory = $true)][string]$Message,
                [Parameter()][string]$Category,
                [Parameter()][string]$ErrorId,
                [Parameter()][string]$TargetObject
            )
            $global:ProviderErrors.Add([pscustomobject]@{ Message = $Message; Category = $Category; ErrorId = $ErrorId; TargetObject = $TargetObject })
        }
        function global:New-PackageSource {
            param(
                [Parameter(Mandatory = $true)][string]$name,
                [Parameter(Mandatory = $true)][string]$location,
                [Parameter(Mandatory = $true)][bool]$trusted,
                [Parameter(Mandatory = $true)][bool]$registered,
                [bool]$valid = $false,
                [System.Collections.Hashtable]$details = $null
            )
            [pscustomobject]@{ Name = $name; Location = $location; IsTrusted = $trusted; IsRegistered = $registered; Details = $details }
        }
        function global:New-SoftwareIdentity {
            param(
                [Parameter(Mandatory = $true)][string]$fastPackageReference,
                [Parameter(Mandatory = $true)][string]$name,
                [Parameter(Mandatory = $true)][string]$version,
                [Parameter(Mandatory = $true)][string]$versionScheme,
                [Parameter(Mandatory = $true)][string]$source,
                [string]$summary,
                [string]$searchKey = $null,
                [string]$fullPath = $null,
                [string]$filename = $null,
                [System.Collections.Hashtable]$details = $null
            )
            [pscustomobject]@{ FastPackageReference = $fastPackageReference; Name = $name; Version = $version; Source = $source; FullPath = $fullPath }
        }
        # The provider imports ContainerImage.psm1 itself.
        Remove-Module ContainerImage -ErrorAction SilentlyContinue
        Import-Module (Join-Path (Join-Path $PSScriptRoot 'ContainerImage') 'ContainerImageProvider.psm1') -Force
    }

    AfterAll {
        Remove-Item -Path 'function:global:Write-Error', 'function:global:New-PackageSource', 'function:global:New-SoftwareIdentity'
        Remove-Variable -Name 'request', 'ProviderErrors' -Scope Global -ErrorAction SilentlyContinue
    }

    BeforeEach {
        $global:ProviderErrors = New-Object System.Collections.Generic.List[object]
        $global:request = [pscustomobject]@{ Options = @{}; PackageSources = @(); Credential = $null; IsCanceled = $false }
        $script:uris = New-Object System.Collections.Generic.List[string]
    }

    It 'reports a NotFound of providerd through PackageManagement''s Write-Error' {
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $record = New-Object System.Management.Automation.ErrorRecord -ArgumentList (New-Object System.Exception -ArgumentList '404'), 'WebCmdletWebResponseException', 'InvalidOperation', $null
            $record.ErrorDetails = New-Object System.Management.Automation.ErrorDetails -ArgumentList '{"error":{"code":"NotFound","message":"no image matches NoSuch"}}'
            throw $record
        }

        Find-Package -names 'NoSuch'

        $global:ProviderErrors.Count | Should -Be 1
        $global:ProviderErrors[0].Message | Should -BeLike '*no image matches NoSuch*'
        $global:ProviderErrors[0].ErrorId | Should -BeLike 'ContainerProvider.NotFound*'
        $global:ProviderErrors[0].Category | Should -Be 'ObjectNotFound'
    }

    It 'answers Unregister-PackageSource with the removed source and its location' {
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:uris.Add(('{0} {1}' -f $Method, $Uri))
            if ($Method -eq 'GET') {
                return [pscustomobject]@{ sources = @([pscustomobject]@{ name = 'catalog'; location = 'http://127.0.0.1:5000' }) }
            }
        }

        $source = Remove-PackageSource -Name catalog

        $global:ProviderErrors.Count | Should -Be 0
        $source.Location | Should -Be 'http://127.0.0.1:5000'
        $source.IsRegistered | Should -BeFalse
        $script:uris[1] | Should -BeLike 'DELETE */v1/sources/catalog'
    }

    It 'searches each source that -Source names' {
        $global:request.PackageSources = @('a', 'b')
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:uris.Add([string]$Uri)
            [pscustomobject]@{ images = @() }
        }

        Find-Package -names 'NanoServer'

        $script:uris.Count | Should -Be 2
        $script:uris[0] | Should -BeLike '*source=a*'
        $script:uris[1] | Should -BeLike '*source=b*'
    }

    It 'gives an installed image of no source the source local, and keeps its reference' {
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            [pscustomobject]@{ images = @([pscustomobject]@{ name = 'DemoImage'; version = '1.0.0.0' }) }
        }

        $package = Get-InstalledPackage -name 'DemoImage'

        $global:ProviderErrors.Count | Should -Be 0
        $package.Source | Should -Be 'local'
        $package.FastPackageReference | Should -Be 'DemoImage|1.0.0.0|'
    }

    It 'sends Register-PackageSource -Credential as the registry''s, never as providerd''s token' {
        $password = ConvertTo-SecureString 's3cret' -AsPlainText -Force
        $global:request = [pscustomobject]@{ Options = @{}; PackageSources = @(); Credential = (New-Object System.Management.Automation.PSCredential -ArgumentList 'reguser', $password); IsCanceled = $false }
        $env:CONTAINERPROVIDER_TOKEN = 'providerd-token'
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:sent = [System.Text.Encoding]::UTF8.GetString([byte[]]$Body) | ConvertFrom-Json
            $script:authorization = $Headers['Authorization']
            [pscustomobject]@{ name = 'hub'; location = 'https://registry.example'; username = 'reguser' }
        }

        Add-PackageSource -Name hub -Location https://registry.example -Trusted $false | Out-Null
        Remove-Item -Path 'env:CONTAINERPROVIDER_TOKEN'

        $script:sent.username | Should -Be 'reguser'
        $script:sent.password | Should -Be 's3cret'
        $script:authorization | Should -Be 'Bearer providerd-token'
    }

    It 'sends -Insecure, a declared Source option, as the source''s insecure' {
        $global:request.Options = @{ Insecure = $true }
        Mock -ModuleName ContainerImage Invoke-RestMethod {
            $script:sent = [System.Text.Encoding]::UTF8.GetString([byte[]]$Body) | ConvertFrom-Json
            [pscustomobject]@{ name = 'hub'; location = 'https://registry.example' }
        }

        Add-PackageSource -Name hub -Location https://registry.example -Trusted $false | Out-Null

        $script:sent.insecure | Should -BeTrue
    }
}
