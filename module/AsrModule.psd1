@{
    RootModule           = 'AsrModule.psm1'
    # Stamped from Directory.Build.props (AsrModuleVersion) when the module is packaged.
    ModuleVersion        = '0.0.0-stamped-at-build'
    GUID                 = '5b0f2f55-3a55-4f0c-9a8e-2a5d8f7d0a11'
    Author               = 'AsrModule contributors'
    Description          = 'Self-hosted site recovery: block-level replication of machine disks into a vault, recovery points, drills, failover and failback, driven from PowerShell.'
    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('AsrModule.Format.ps1xml')
    TypesToProcess       = @('AsrModule.Types.ps1xml')
    CmdletsToExport      = @(
        'New-AsrVault', 'Connect-AsrVault', 'Disconnect-AsrVault', 'Get-AsrVault',
        'New-AsrPolicy', 'Get-AsrPolicy', 'Remove-AsrPolicy',
        'Enable-AsrReplication', 'Get-AsrProtectedItem', 'Invoke-AsrReplication', 'Disable-AsrReplication',
        'Get-AsrRecoveryPoint', 'Export-AsrRecoveryPoint', 'Export-AsrHealthReport',
        'Get-AsrJob', 'Wait-AsrJob', 'Stop-AsrJob',
        'New-AsrLocalTarget', 'New-AsrAzureTarget', 'Start-AsrTestFailover', 'Start-AsrTestFailoverCleanup',
        'Start-AsrFailover', 'Switch-AsrRecoveryPoint', 'Undo-AsrFailover', 'Complete-AsrFailover',
        'Update-AsrProtectionDirection', 'Invoke-AsrFailback', 'Resume-AsrResync', 'Test-AsrTestFailover',
        'Start-AsrRecoveryPlan', 'Resume-AsrJob', 'Restart-AsrJob',
        'Set-AsrProtectedItem', 'Test-AsrRecoveryPoint', 'Get-AsrEvent',
        'Start-AsrAgent', 'Stop-AsrAgent', 'Get-AsrAgent'
    )
    NestedModules        = @('AsrModule.Plans.psm1')
    FunctionsToExport    = @('AsrRecoveryPlan', 'AsrGroup', 'AsrStep', 'AsrPause', 'AsrBootCheck')
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags = @('DisasterRecovery', 'Replication', 'SiteRecovery', 'Backup')
        }
    }
}
