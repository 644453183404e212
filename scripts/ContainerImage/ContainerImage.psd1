@{
    RootModule           = 'ContainerImage.psm1'
    ModuleVersion        = '1.1.0'
    GUID                 = '6f0e8a53-2c1d-4d7b-9a55-1c3e0b7d9f21'
    Author               = 'ContainerProvider'
    Description          = 'Find, install, save and manage container images through providerd''s local HTTP API.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    FormatsToProcess     = @('ContainerImage.format.ps1xml')
    FunctionsToExport    = @(
        'Find-ContainerImage', 'Install-ContainerImage', 'Get-ContainerImage', 'Remove-ContainerImage',
        'Save-ContainerImage', 'New-ContainerImage',
        'New-Container', 'Get-Container', 'Start-Container', 'Stop-Container', 'Remove-Container',
        'Register-ContainerImageSource', 'Get-ContainerImageSource', 'Unregister-ContainerImageSource',
        'Update-ContainerImageSource', 'Get-ContainerImageJob', 'Wait-ContainerImageJob', 'Stop-ContainerImageJob'
    )
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        # PackageManagement loads this provider from the module's folder, so
        # that Find-Package -ProviderName ContainerImage and
        # Install-Package -ProviderName ContainerImage NanoServer work too.
        PackageManagementProviders = @('ContainerImageProvider.psm1')
        PSData                     = @{
            Tags = @('Containers', 'OCI', 'ContainerImage')
        }
    }
}
