# Pester 5 tests of the ContainerImage module: the registration of source
# mirrors, pipeline binding, and the OneGet provider under the functions
# PackageManagement loads before it, for a machine with PowerShell (5.1 or
# 7) and Pester 5:
#
#   PS> Invoke-Pester ./scripts/ContainerImage.Tests.ps1
#
# Invoke-ContainerProviderApi, the one call of providerd that the cmdlets
# and the provider make (ContainerProviderApi.psm1), is mocked in the module
# under test, so no providerd is needed; scripts/test-powershell.ps1 drives
# the module against a real one. The machines that run `make test` have no
# PowerShell: there this file is only parsed (scripts/check-powershell.mjs),
# and the Go tests of test/e2e/powershell_*_test.go check the same from the
# module's text and replay its requests.

BeforeAll {
    Import-Module (Join-Path (Join-Path $PSScriptRoot 'ContainerImage') 'ContainerImage.psd1') -Force
}

Describe 'Register-ContainerImageSource -Mirror' {
    BeforeEach {
        # The body of the last request, decoded.
        $script:sent = $null
        Mock -ModuleName ContainerImage Invoke-ContainerProviderApi {
            $script:sent = [pscustomobject]$Body
            return $script:sent
        }
    }

    It 'sends one mirror per URL with the credential, the capabilities and insecure' {
        $password = ConvertTo-SecureString 's3cret' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential -ArgumentList 'cacheuser', $password
        Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror 'http://127.0.0.1:5001', 'https://cache.example:5000' -MirrorCredential $cred -MirrorCapability Pull -MirrorInsecure | Out-Null

        Should -Invoke -ModuleName ContainerImage Invoke-ContainerProviderApi -Times 1 -Exactly -ParameterFilter { $Route -eq 'AddSource' }
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
        @($script:sent.mirrors[0].Keys) | Should -Be @('location')
    }

    It 'sends -MirrorNamespace as each mirror''s namespace' {
        Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000 -Mirror https://harbor.example -MirrorNamespace proxy-project -MirrorCapability pull | Out-Null

        $script:sent.mirrors[0].namespace | Should -Be 'proxy-project'
    }

    It 'sends no mirrors without -Mirror' {
        Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000 | Out-Null

        $script:sent.PSObject.Properties.Name | Should -Not -Contain 'mirrors'
    }

    It 'sends -Credential as the registry''s username and password' {
        $password = ConvertTo-SecureString 's3cret' -AsPlainText -Force
        Register-ContainerImageSource -Name hub -Location https://registry.example -Credential (New-Object System.Management.Automation.PSCredential -ArgumentList 'reguser', $password) | Out-Null

        $script:sent.username | Should -Be 'reguser'
        $script:sent.password | Should -Be 's3cret'
    }

    It 'sends -Trusted as the source''s trusted, and nothing without it' {
        Register-ContainerImageSource -Name catalog -Location http://127.0.0.1:5000 -Trusted | Out-Null
        $script:sent.trusted | Should -BeTrue

        Register-ContainerImageSource -Name other -Location http://127.0.0.1:5001 | Out-Null
        $script:sent.PSObject.Properties.Name | Should -Not -Contain 'trusted'
    }

    It 'refuses <Mirror> with an InvalidArgument error and sends nothing' -ForEach @(
        @{ Mirror = 'ftp://cache.example' }
        @{ Mirror = '127.0.0.1:5001' }
        @{ Mirror = 'http://cache.example/?q=1' }
        @{ Mirror = 'http://user:pw@cache.example' }
    ) {
        $err = $null
        Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror $Mirror -ErrorAction SilentlyContinue -ErrorVariable err

        Should -Invoke -ModuleName ContainerImage Invoke-ContainerProviderApi -Times 0 -Exactly
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.InvalidArgument*'
        $err[0].Exception.Message | Should -BeLike "The mirror $Mirror *"
    }

    It 'refuses -MirrorCapability without -Mirror and sends nothing' {
        $err = $null
        Register-ContainerImageSource -Name hub -Location https://registry.example -MirrorCapability pull -ErrorAction SilentlyContinue -ErrorVariable err

        Should -Invoke -ModuleName ContainerImage Invoke-ContainerProviderApi -Times 0 -Exactly
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.InvalidArgument*'
    }

    It 'refuses a capability outside pull and resolve at binding' {
        { Register-ContainerImageSource -Name hub -Location https://registry.example -Mirror http://127.0.0.1:5001 -MirrorCapability push } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError'
    }
}

Describe 'Get-ContainerImageSource mirrors' {
    BeforeEach {
        Mock -ModuleName ContainerImage Invoke-ContainerProviderApi {
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
# piped object an -InputObject (-Image). The static check
# scripts/check-powershell-contract.mjs holds the binding rule too.
Describe 'Piping to Install-, Save- and Remove-ContainerImage' {
    BeforeEach {
        $script:calls = New-Object System.Collections.Generic.List[object]
        Mock -ModuleName ContainerImage Invoke-ContainerProviderApi {
            $script:calls.Add([pscustomobject]@{ Route = $Route; Query = $Query; Body = $Body; OutFile = $OutFile })
            switch ($Route) {
                'InstallImage' { return [pscustomobject]@{ id = 'j1'; state = 'queued' } }
                'SaveImage' {
                    if ($Body['whatIf']) {
                        return [pscustomobject]@{ whatIf = $true; path = ('{0}-10-0-10586-0.tar' -f $Body['name']); image = [pscustomobject]@{ name = $Body['name']; version = '10.0.10586.0'; digest = 'sha256:0123' } }
                    }
                    Set-Content -LiteralPath $OutFile -Value 'archive'
                    return $null
                }
                'RemoveImages' {
                    if ($Query['whatIf']) {
                        return [pscustomobject]@{ whatIf = $true; removed = @([pscustomobject]@{ name = 'DemoImage'; version = '1.0.0.0'; digest = 'sha256:0123' }) }
                    }
                    return [pscustomobject]@{ removed = @([pscustomobject]@{ name = 'DemoImage'; version = '1.0.0.0'; digest = 'sha256:0123' }) }
                }
            }
        }
        Mock -ModuleName ContainerImage Wait-ContainerProviderJob {
            [pscustomobject]@{ id = 'j1'; state = 'succeeded'; message = 'Downloaded in 0 hours, 0 minutes, 1 second.'; result = [pscustomobject]@{ name = 'NanoServer'; version = '10.0.10586.0' } }
        }
        Mock -ModuleName ContainerImage Write-Host -MockWith { return }
    }

    It 'installs a piped string as the -Name, and cancels the job on Ctrl+C' {
        $out = 'NanoServer' | Install-ContainerImage -Confirm:$false

        $script:calls[0].Body.name | Should -Be 'NanoServer'
        Should -Invoke -ModuleName ContainerImage Wait-ContainerProviderJob -Times 1 -Exactly -ParameterFilter { $Id -eq 'j1' -and $CancelOnStop }
        Should -Invoke -ModuleName ContainerImage Write-Host -Times 1 -Exactly -ParameterFilter { "$Object" -eq 'Downloaded in 0 hours, 0 minutes, 1 second.' }
        $out | Should -BeNullOrEmpty
    }

    It 'writes the installed image with -PassThru' {
        $out = Install-ContainerImage -Name NanoServer -PassThru -Confirm:$false

        $out.Name | Should -Be 'NanoServer'
        $out.PSObject.TypeNames | Should -Contain 'ContainerProvider.ContainerImage'
    }

    It 'installs a piped find entry with its version and source' {
        [pscustomobject]@{ Name = 'NanoServer'; Version = '10.0.10586.0'; Source = 'catalog' } | Install-ContainerImage -Confirm:$false

        $script:calls[0].Body.name | Should -Be 'NanoServer'
        $script:calls[0].Body.requiredVersion | Should -Be '10.0.10586.0'
        $script:calls[0].Body.source | Should -Be 'catalog'
    }

    It 'saves each piped string to the file providerd names, -Destination naming the folder' {
        'NanoServer', 'WindowsServerCore' | Save-ContainerImage -Destination TestDrive:\ -Confirm:$false

        @($script:calls | Where-Object { $_.OutFile } | ForEach-Object { $_.Body.name }) | Should -Be @('NanoServer', 'WindowsServerCore')
        @($script:calls | Where-Object { $_.OutFile } | ForEach-Object { $_.Body.requiredVersion }) | Should -Be @('10.0.10586.0', '10.0.10586.0')
        Join-Path TestDrive:\ 'NanoServer-10-0-10586-0.tar' | Should -Exist
        Join-Path TestDrive:\ 'WindowsServerCore-10-0-10586-0.tar' | Should -Exist
    }

    It 'checks and writes nothing with -WhatIf' {
        Save-ContainerImage -Name NanoServer -Path (Join-Path TestDrive:\ 'missing\') -WhatIf -ErrorVariable err

        @($err).Count | Should -Be 0
        @($script:calls | Where-Object { $_.OutFile }).Count | Should -Be 0
        Join-Path TestDrive:\ 'missing' | Should -Not -Exist
    }

    It 'removes a piped string as the -Name, by the digests of the plan, writing nothing without -PassThru' {
        $out = 'DemoImage' | Remove-ContainerImage -Force

        $script:calls[0].Query.name | Should -Be 'DemoImage'
        $script:calls[1].Query.id | Should -Be 'sha256:0123'
        $out | Should -BeNullOrEmpty
        ('DemoImage' | Remove-ContainerImage -Force -PassThru).Name | Should -Be 'DemoImage'
    }
}

Describe 'ParentImage' {
    It 'prints as the 2016 module''s CIM instance did' {
        Mock -ModuleName ContainerImage Invoke-ContainerProviderApi {
            [pscustomobject]@{ images = @([pscustomobject]@{ name = 'NanoServerIIS'; version = '1.0.0.0'; parentImage = [pscustomobject]@{ name = 'NanoServer'; publisher = 'CN=Microsoft'; version = '10.0.10586.0'; digest = 'sha256:0123' } }) }
        }

        $image = Get-ContainerImage -Name NanoServerIIS

        $image.ParentImage.Digest | Should -Be 'sha256:0123'
        "$($image.ParentImage)" | Should -Be "ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']"
        ($image | Select-Object -Property 'Name', 'ParentImage' | Format-Table -HideTableHeaders | Out-String -Width 200) | Should -Match "NanoServerIIS\s+ContainerImage \(Name = 'NanoServer'\) \[Publisher = 'CN=Microsoft', Version = '10\.0\.10586\.0'\]"
    }
}

# The OneGet provider under the functions PackageManagement loads into its
# runspace first (OneGet's PackageProviderFunctions.psm1, copied here with
# their mandatory parameters; its Write-Error makes a warning of an error,
# so the provider must not call it: $global:ProviderErrors stays empty).
# The provider's errors are read from its error stream (2>&1).
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
                [System.Collections.Hashtable]$details = $null,
                [System.Collections.ArrayList]$entities = $null,
                [System.Collections.ArrayList]$links = $null,
                [bool]$fromTrustedSource = $false
            )
            [pscustomobject]@{ FastPackageReference = $fastPackageReference; Name = $name; Version = $version; Source = $source; FullPath = $fullPath; FromTrustedSource = $fromTrustedSource }
        }
        # The provider imports ContainerProviderApi.psm1 itself.
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
        $script:calls = New-Object System.Collections.Generic.List[object]
    }

    It 'reports the failure of an install as an error, with its id and category, not as PackageManagement''s warning' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            # The mock runs in this file's scope: the record is made in the module's.
            throw (& (Get-Module ContainerImageProvider) { New-ContainerProviderError -Code Conflict -Message 'image NanoServer 10.0.10586.0 is being installed by job j0' })
        }

        $errors = @(Install-Package -fastPackageReference 'NanoServer|10.0.10586.0|catalog||' 2>&1 | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })

        $errors.Count | Should -Be 1
        $errors[0].Exception.Message | Should -BeLike '*being installed by job j0*'
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'ContainerProvider.Conflict*'
        [string]$errors[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
        $global:ProviderErrors.Count | Should -Be 0
    }

    It 'finds nothing, without an error, for a name that no source has: PackageManagement says so' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            if ($Route -eq 'GetSources') {
                return [pscustomobject]@{ sources = @() }
            }
            throw (& (Get-Module ContainerImageProvider) { New-ContainerProviderError -Code NotFound -Message 'no image matches NoSuch' })
        }

        $out = @(Find-Package -names 'NoSuch' 2>&1 3>&1)

        $out.Count | Should -Be 0
    }

    It 'warns, without an error that would end PackageManagement''s whole request, when providerd is down' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            throw (& (Get-Module ContainerImageProvider) { New-ContainerProviderError -Code Unavailable -Message 'providerd at http://127.0.0.1:5050: connection refused' })
        }

        $out = @(Find-Package -names 'NanoServer' 2>&1 3>&1)

        @($out | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }).Count | Should -Be 0
        @($out | Where-Object { $_ -is [System.Management.Automation.WarningRecord] -and $_.Message -like '*connection refused*' }).Count | Should -BeGreaterThan 0
    }

    It 'answers Unregister-PackageSource with the removed source and its location' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            $script:calls.Add([pscustomobject]@{ Route = $Route; PathValues = $PathValues })
            if ($Route -eq 'GetSources') {
                return [pscustomobject]@{ sources = @([pscustomobject]@{ name = 'catalog'; location = 'http://127.0.0.1:5000'; trusted = $true }) }
            }
        }

        $out = @(Remove-PackageSource -Name catalog 2>&1)
        $source = $out | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }

        @($out | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }).Count | Should -Be 0
        $source.Location | Should -Be 'http://127.0.0.1:5000'
        $source.IsRegistered | Should -BeFalse
        $source.IsTrusted | Should -BeTrue
        $script:calls[1].Route | Should -Be 'RemoveSource'
        $script:calls[1].PathValues.name | Should -Be 'catalog'
    }

    It 'searches each source that -Source names, and marks the packages of a trusted one' {
        $global:request.PackageSources = @('a', 'b')
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            if ($Route -eq 'GetSources') {
                return [pscustomobject]@{ sources = @([pscustomobject]@{ name = 'a'; location = 'http://a.example'; trusted = $true }, [pscustomobject]@{ name = 'b'; location = 'http://b.example' }) }
            }
            $script:calls.Add([pscustomobject]@{ Query = $Query })
            [pscustomobject]@{ images = @([pscustomobject]@{ name = 'NanoServer'; version = '10.0.10586.0'; source = $Query['source']; digest = 'sha256:0123' }) }
        }

        $packages = @(Find-Package -names 'NanoServer')

        @($script:calls.Query.source) | Should -Be @('a', 'b')
        @($packages.FromTrustedSource) | Should -Be @($true, $false)
        # A find entry is not installed: its reference names no digest, so
        # that Save-Package saves it from its source.
        $packages[0].FastPackageReference | Should -Be 'NanoServer|10.0.10586.0|a||'
    }

    It 'gives an installed image of no source the source local, and its digest to Uninstall-Package' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            $script:calls.Add([pscustomobject]@{ Route = $Route; Query = $Query })
            [pscustomobject]@{ images = @([pscustomobject]@{ name = 'DemoImage'; version = '1.0.0.0'; digest = 'sha256:0123' }); removed = @() }
        }

        $package = Get-InstalledPackage -name 'DemoImage'
        $errors = @(Uninstall-Package -fastPackageReference $package.FastPackageReference 2>&1 | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })

        $errors.Count | Should -Be 0
        $package.Source | Should -Be 'local'
        $package.FastPackageReference | Should -Be 'DemoImage|1.0.0.0||sha256:0123|'
        $script:calls[1].Route | Should -Be 'RemoveImages'
        $script:calls[1].Query.id | Should -Be 'sha256:0123'
        $script:calls[1].Query.Keys | Should -Not -Contain 'name'
    }

    It 'sends Register-PackageSource -Credential and -Trusted as the registry''s, never as providerd''s token' {
        $password = ConvertTo-SecureString 's3cret' -AsPlainText -Force
        $global:request = [pscustomobject]@{ Options = @{}; PackageSources = @(); Credential = (New-Object System.Management.Automation.PSCredential -ArgumentList 'reguser', $password); IsCanceled = $false }
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            $script:sent = [pscustomobject]$Body
            [pscustomobject]@{ name = 'hub'; location = 'https://registry.example'; username = 'reguser'; trusted = $true }
        }

        $source = Add-PackageSource -Name hub -Location https://registry.example -Trusted $true

        $script:sent.username | Should -Be 'reguser'
        $script:sent.password | Should -Be 's3cret'
        $script:sent.trusted | Should -BeTrue
        $source.IsTrusted | Should -BeTrue
    }

    It 'sends -Insecure, a declared Source option, as the source''s insecure' {
        $global:request.Options = @{ Insecure = $true }
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi {
            $script:sent = [pscustomobject]$Body
            [pscustomobject]@{ name = 'hub'; location = 'https://registry.example' }
        }

        Add-PackageSource -Name hub -Location https://registry.example -Trusted $false | Out-Null

        $script:sent.insecure | Should -BeTrue
    }

    It 'cancels the install job when PackageManagement cancels the request, and writes no error' {
        Mock -ModuleName ContainerImageProvider Invoke-ContainerProviderApi { [pscustomobject]@{ id = 'j1'; state = 'queued' } }
        Mock -ModuleName ContainerImageProvider Wait-ContainerProviderJob {
            $global:request.IsCanceled = $true
            $script:asked = & $CancelWhen
            [pscustomobject]@{ id = 'j1'; state = 'canceled'; message = 'The install was canceled.' }
        }

        $out = Install-Package -fastPackageReference 'NanoServer|10.0.10586.0|catalog||' 2>&1

        $script:asked | Should -BeTrue
        $out | Should -BeNullOrEmpty
        Should -Invoke -ModuleName ContainerImageProvider Wait-ContainerProviderJob -Times 1 -Exactly -ParameterFilter { $CancelOnStop }
    }

    It 'names the images of a saved archive for Install-Package .\file.tar' {
        $dir = Join-Path $TestDrive 'archive'
        New-Item -ItemType Directory -Path $dir | Out-Null
        Set-Content -LiteralPath (Join-Path $dir 'manifest.json') -Value '[{"Config":"blobs/sha256/00","RepoTags":["127.0.0.1:5000/microsoft/iis:1.0.0.0"],"Layers":[]}]'
        $file = Join-Path $TestDrive 'iis.tar'
        tar -cf $file -C $dir manifest.json

        $package = Find-PackageByFile -files @($file)

        $package.Name | Should -Be 'microsoft/iis'
        $package.Version | Should -Be '1.0.0.0'
        $package.FullPath | Should -Be $file
        $package.FastPackageReference | Should -Be ('microsoft/iis|1.0.0.0|||{0}' -f $file)
    }
}
