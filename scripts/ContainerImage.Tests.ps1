# Pester 5 tests of the ContainerImage module's registration of source
# mirrors, for a machine with PowerShell (5.1 or 7) and Pester 5:
#
#   PS> Invoke-Pester ./scripts/ContainerImage.Tests.ps1
#
# Invoke-RestMethod is mocked inside the module, so no providerd is needed.
# The machines that run `make test` have no PowerShell: there this file is
# only parsed (scripts/check-powershell.mjs), and the Go tests of
# test/e2e/powershell_mirrors_test.go check the same body from the module's
# text.

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
