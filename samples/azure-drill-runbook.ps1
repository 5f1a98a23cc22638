<#
.SYNOPSIS
    A scheduled disaster-recovery drill into Azure: recover machines from the vault as managed disks and VMs in an
    isolated drill subnet, verify them against their recovery points, and delete them again.

.DESCRIPTION
    Written as an Azure Automation runbook (PowerShell 7 runtime, AsrModule imported into the Automation account,
    the account's managed identity allowed to create disks and VMs in the resource group and to join the subnets);
    it runs the same way from any scheduled pwsh.

    1. Connects to the vault (a directory, or a blob container URL; -UseManagedIdentity uses the identity there too).
    2. Creates the Azure target (New-AsrAzureTarget): -UseManagedIdentity in Azure Automation, -AccessToken from a
       pipeline that already holds one, else the module's default Azure credential.
    3. Drills: every machine of the recovery plan -PlanPath (Start-AsrRecoveryPlan -FailoverType Test; a pause in
       the plan is passed automatically, with a comment), or each item of -Item (Start-AsrTestFailover).
    4. Verifies every drill VM's disks against its recovery point (Test-AsrTestFailover).
    5. Always (finally) cleans up the drills this run made (Start-AsrTestFailoverCleanup, with a comment that
       records the outcome), also when a step failed.

    The script exits with 0 when every machine was drilled and verified, and 1 otherwise, so the Automation job,
    the scheduler or the pipeline sees the failure.

.EXAMPLE
    # Azure Automation: a schedule with these parameters; the Automation account's managed identity does the rest.
    ./azure-drill-runbook.ps1 -VaultPath https://contoso.blob.core.windows.net/asr-vault -VaultEncryptionKeyVariable AsrVaultKey `
        -SubscriptionId 11111111-2222-3333-4444-555555555555 -ResourceGroupName dr-rg -Region westeurope `
        -SubnetId /subscriptions/.../virtualNetworks/dr-vnet/subnets/recovery -TestSubnetId /subscriptions/.../virtualNetworks/drill-vnet/subnets/drill `
        -PlanPath ./plans/azure-plan.ps1 -UseManagedIdentity

.EXAMPLE
    # A pipeline that already holds an ARM token, drilling two items.
    $token = (Get-AzAccessToken -ResourceUrl https://management.azure.com/).Token
    ./samples/azure-drill-runbook.ps1 -VaultPath /srv/asr-vault -SubscriptionId $sub -ResourceGroupName dr-rg -Region westeurope `
        -SubnetId $recovery -TestSubnetId $drill -Item web01, db01 -AccessToken $token
#>
[CmdletBinding(DefaultParameterSetName = 'Plan')]
param(
    # The vault: a directory, or a blob container URL (https://<account>.blob.core.windows.net/<container>).
    [Parameter(Mandatory)][string]$VaultPath,
    # The name of an encrypted Automation variable (outside Automation: an environment variable) holding the
    # vault's encryption key; none for an unencrypted vault.
    [string]$VaultEncryptionKeyVariable,
    [Parameter(Mandatory)][string]$SubscriptionId,
    # Where the drill's disks and VMs are created.
    [Parameter(Mandatory)][string]$ResourceGroupName,
    # The Azure region of the resource group, e.g. westeurope.
    [Parameter(Mandatory)][string]$Region,
    # The recovery subnet (for real failovers with the same target; a drill does not use it).
    [Parameter(Mandatory)][string]$SubnetId,
    # The isolated subnet the drill VMs are connected to.
    [Parameter(Mandatory)][string]$TestSubnetId,
    # A recovery plan script (samples/plans/azure-plan.ps1): all its machines are drilled.
    [Parameter(Mandatory, ParameterSetName = 'Plan')][string]$PlanPath,
    # Or these protected items, each on its own.
    [Parameter(Mandatory, ParameterSetName = 'Items')][string[]]$Item,
    # The point each item is drilled from (-Item only): LatestProcessed, Latest, LatestAppConsistent or a sequence.
    [Parameter(ParameterSetName = 'Items')][string]$RecoveryPoint = 'LatestProcessed',
    [string]$VMSize,
    # Azure Automation (or an Azure VM): the managed identity authenticates to ARM and to a blob vault.
    [switch]$UseManagedIdentity,
    # A user-assigned managed identity's client id (default: the system-assigned one).
    [string]$ManagedIdentityClientId,
    # An ARM bearer token instead (a pipeline that holds one; it is not renewed, so keep drills short).
    [string]$AccessToken,
    [ValidateSet('AzureCloud', 'AzureChinaCloud', 'AzureUSGovernment')][string]$Environment = 'AzureCloud',
    # A custom cloud or an ARM endpoint of your own (with -AuthorityHost); overrides -Environment.
    [string]$ResourceManagerUrl,
    [string]$AuthorityHost
)

$ErrorActionPreference = 'Stop'
Import-Module AsrModule

$started = [DateTimeOffset]::UtcNow
$failures = [Collections.Generic.List[string]]::new()
$target = $null
$drilled = [Collections.Generic.List[string]]::new()

function Get-VaultKey {
    if (-not $VaultEncryptionKeyVariable) { return $null }
    $value = if (Get-Command Get-AutomationVariable -ErrorAction Ignore) { Get-AutomationVariable -Name $VaultEncryptionKeyVariable }
             else { [Environment]::GetEnvironmentVariable($VaultEncryptionKeyVariable) }
    if (-not $value) { throw "The vault key variable '$VaultEncryptionKeyVariable' is empty or does not exist." }
    ConvertTo-SecureString -String $value -AsPlainText -Force
}

try {
    # 1. The vault.
    $vaultParameters = @{}
    $key = Get-VaultKey
    if ($key) { $vaultParameters.EncryptionKey = $key }
    if ($VaultPath -match '^https://') {
        $vaultParameters.ContainerUri = $VaultPath
        if ($UseManagedIdentity) { $vaultParameters.ManagedIdentity = $true }
    } else {
        $vaultParameters.Path = $VaultPath
    }
    Connect-AsrVault @vaultParameters

    # 2. The Azure target.
    $targetParameters = @{
        SubscriptionId = $SubscriptionId; ResourceGroupName = $ResourceGroupName; Location = $Region
        SubnetId = $SubnetId; TestSubnetId = $TestSubnetId
    }
    if ($VMSize) { $targetParameters.VMSize = $VMSize }
    if ($ResourceManagerUrl) {
        $targetParameters.ResourceManagerUrl = $ResourceManagerUrl
        if ($AuthorityHost) { $targetParameters.AuthorityHost = $AuthorityHost }
    } else {
        $targetParameters.Environment = $Environment
    }
    if ($UseManagedIdentity) {
        $targetParameters.ManagedIdentity = $true
        if ($ManagedIdentityClientId) { $targetParameters.ManagedIdentityClientId = $ManagedIdentityClientId }
    } elseif ($AccessToken) {
        $targetParameters.AccessToken = ConvertTo-SecureString -String $AccessToken -AsPlainText -Force
    }
    $target = New-AsrAzureTarget @targetParameters
    "Drill into $($target.Location) ($Region), drill subnet $TestSubnetId"

    # 3. The drill.
    if ($PSCmdlet.ParameterSetName -eq 'Plan') {
        $job = Start-AsrRecoveryPlan -Path $PlanPath -FailoverType Test -Target $target -Confirm:$false
        while ($job.State -eq 'Suspended') {
            "Plan paused: $($job.StatusMessage) (passed automatically by the drill runbook)"
            $job = $job | Resume-AsrJob -Comment "automatic drill runbook $($started.ToString('u'))" | Wait-AsrJob
        }
        if ($job.State -ne 'Succeeded') { throw "The drill of plan '$PlanPath' ended $($job.State): $(@($job.Errors | ForEach-Object Message) -join '; ')" }
        foreach ($task in $job.Tasks) {
            if ($task.Kind -eq 'Machine' -and $task.Item) { $drilled.Add($task.Item) }
            if ($task.Output) { "  $($task.Name): $($task.Output)" }
        }
    } else {
        foreach ($name in $Item) {
            $job = Get-AsrProtectedItem $name | Start-AsrTestFailover -RecoveryPoint $RecoveryPoint -Target $target | Wait-AsrJob
            if ($job.State -ne 'Succeeded') { throw "The drill of $name ended $($job.State)." }
            $drilled.Add($name)
        }
    }

    # 4. Verification: each drill VM's disks read back and compared with its recovery point.
    foreach ($name in $drilled) {
        $protected = Get-AsrProtectedItem $name
        $check = $protected | Test-AsrTestFailover
        if ($check.State -eq 'Succeeded' -and $check.Result.Verified) {
            "${name}: drill verified (recovery point $($protected.TestFailover.RecoveryPointSequence), VM $($protected.TestFailover.Machine.MachineId))"
        } else {
            $failures.Add("${name}: drill NOT verified: $($check.Result.Note)")
        }
    }
} catch {
    $failures.Add("The drill failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
} finally {
    # 5. Cleanup of every drill this run made (also those of a plan run that failed half-way), never another's.
    $outcome = if ($failures.Count) { 'FAILED' } else { 'verified' }
    if ($target) {
        # (Not $item: PowerShell variables ignore case, and that would be the -Item parameter.)
        foreach ($candidate in @(Get-AsrProtectedItem -ErrorAction SilentlyContinue)) {
            $drill = $candidate.TestFailover
            if ($candidate.State -ne 'TestFailedOver' -or -not $drill -or $drill.StartedUtc -lt $started -or
                -not $drill.Machine -or $drill.Machine.TargetLocation -ne $target.Location) { continue }
            try {
                $cleanup = $candidate | Start-AsrTestFailoverCleanup -Target $target -Comment "drill runbook $($started.ToString('u')): $outcome" -Confirm:$false | Wait-AsrJob
                "$($candidate.Name): drill cleaned up ($($cleanup.State))"
                if ($cleanup.State -ne 'Succeeded') { $failures.Add("$($candidate.Name): cleanup ended $($cleanup.State)") }
            } catch {
                $failures.Add("$($candidate.Name): cleanup failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
            }
        }
    }
}

if ($failures.Count) {
    foreach ($f in $failures) { Write-Error $f -ErrorAction Continue }
    exit 1
}
'Drill succeeded: ' + ($drilled -join ', ')
exit 0
