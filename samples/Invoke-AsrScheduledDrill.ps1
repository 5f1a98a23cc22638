<#
.SYNOPSIS
    A scheduled disaster-recovery drill of a recovery plan that proves every machine boots: drill, boot and check each
    machine, clean up, write the health report; the exit code says how it went.

.DESCRIPTION
    Written for a scheduler (systemd timer: samples/systemd/asr-drill.timer; cron; Windows Task Scheduler; an Azure
    Automation hybrid worker with QEMU) and runs the same way by hand.

    1. Connects to the vault (-Vault: a directory or a blob container URL; -VaultKeyVariable names an environment
       variable holding an encrypted vault's key).
    2. Drills every machine of the plan -Plan with boot verification: Start-AsrRecoveryPlan -FailoverType Test -Boot
       into -DrillDirectory. Each machine is booted under QEMU from its drill with the plan's AsrBootCheck settings and
       its check runs. A pause in the plan is passed automatically, with a comment.
    3. Always (finally) cleans up the drills this run started (Start-AsrTestFailoverCleanup with a comment that records
       the outcome), also after a failure half-way, never a drill someone else started.
    4. Writes the health report (Export-AsrHealthReport -Path -ReportPath): the drill with each machine's boot result,
       time to ready and screenshot, the plan's time until every machine was ready, and the vault's health.

    It writes one summary object (Plan, JobId, State, Machines, Ready, AllReadyAfterSeconds, Failures, Report) and
    exits with 0 when every machine booted and passed its check and the cleanup and report succeeded, 1 when the drill
    failed (a machine that did not become ready, a failed check, a failed cleanup), 2 when it could not run at all
    (vault, plan or report not usable). Called from pwsh (& ./Invoke-AsrScheduledDrill.ps1 ...), $? is $false and
    $LASTEXITCODE is that code; a scheduler sees the process's exit code and can alert on it.

.EXAMPLE
    ./samples/Invoke-AsrScheduledDrill.ps1 -Vault /srv/asr/vault -Plan /srv/asr/plans/shop.ps1 `
        -DrillDirectory /srv/asr/drills -ReportPath /srv/asr/reports/shop-drill.html

.EXAMPLE
    # From a script that alerts on failure.
    & ./samples/Invoke-AsrScheduledDrill.ps1 -Vault $vault -Plan ./plans/shop.ps1 -DrillDirectory ./drills -ReportPath ./drill.html
    if ($LASTEXITCODE -ne 0) { Send-MailMessage ... }   # or any alerting of your own
#>
[CmdletBinding()]
param(
    # The vault: a directory, or a blob container URL.
    [Parameter(Mandatory)][string]$Vault,
    # The name of an environment variable holding the key of an encrypted vault (unset or empty: no key).
    [string]$VaultKeyVariable,
    # The recovery plan (a .ps1 calling AsrRecoveryPlan) whose machines are drilled; each needs AsrBootCheck settings.
    [Parameter(Mandatory)][string]$Plan,
    # Where the drills' overlays and boot files go (New-AsrLocalTarget).
    [Parameter(Mandatory)][string]$DrillDirectory,
    # The health report to write.
    [Parameter(Mandatory)][string]$ReportPath,
    # The report's period in days.
    [ValidateRange(1, 366)][int]$ReportDays = 14,
    # The module to import (a name, or the path of AsrModule.psd1).
    [string]$Module = 'AsrModule'
)

$ErrorActionPreference = 'Stop'
$started = [DateTimeOffset]::UtcNow
$failures = [Collections.Generic.List[string]]::new()
$summary = [ordered]@{ Plan = $Plan; JobId = $null; State = 'NotStarted'; Machines = 0; Ready = 0; AllReadyAfterSeconds = $null; Failures = $failures; Report = $null }

try {
    Import-Module $Module
    $connect = @{}
    if ($Vault -match '^https?://') { $connect.ContainerUri = $Vault } else { $connect.Path = $Vault }
    # An unset variable means no key: an encrypted vault then fails to open with VaultKeyRequired.
    $value = if ($VaultKeyVariable) { [Environment]::GetEnvironmentVariable($VaultKeyVariable) }
    if ($value) { $connect.EncryptionKey = ConvertTo-SecureString -String $value -AsPlainText -Force }
    Connect-AsrVault @connect
    if (-not (Test-Path -LiteralPath $DrillDirectory)) { $null = New-Item -ItemType Directory -Path $DrillDirectory }
    $target = New-AsrLocalTarget $DrillDirectory
} catch {
    Write-Error "The scheduled drill could not start: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]" -ErrorAction Continue
    [pscustomobject]$summary
    exit 2
}

try {
    # A failed run is a result, not an exception: its job says what failed.
    $job = Start-AsrRecoveryPlan -Path $Plan -FailoverType Test -Target $target -Boot -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable runErrors
    if (-not $job) { throw ($runErrors | Select-Object -First 1) }
    while ($job.State -eq 'Suspended') {
        "Plan paused: $($job.StatusMessage) (passed automatically by the scheduled drill)"
        $job = $job | Resume-AsrJob -Comment "scheduled drill $($started.ToString('u'))" -ErrorAction SilentlyContinue | Wait-AsrJob
    }
    $summary.JobId = $job.Id
    $summary.State = "$($job.State)"
    $machines = @($job.Tasks | Where-Object Kind -eq 'Machine')
    $readiness = $job.BootReadiness
    $summary.Machines = $readiness.Machines
    $summary.Ready = $readiness.Ready
    $summary.AllReadyAfterSeconds = $readiness.AllReadyAfterSeconds
    foreach ($task in $machines) {
        if ($task.Boot) { "$($task.Item): $($task.Boot)" }
        if ($task.State -ne 'Succeeded') { $failures.Add("$($task.Item): $($task.State): $($task.Error)") }
    }
    if ($job.State -ne 'Succeeded') { $failures.Add("The drill of '$Plan' ended $($job.State): $(@($job.Errors | ForEach-Object Message) -join '; ')") }
} catch {
    $failures.Add("The drill failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
} finally {
    # Every drill this run started, and only those: started by this process after this script began.
    $outcome = if ($failures.Count) { 'FAILED' } else { 'every machine booted and passed its check' }
    foreach ($candidate in @(Get-AsrProtectedItem -ErrorAction SilentlyContinue)) {
        $drill = $candidate.TestFailover
        if ($candidate.State -ne 'TestFailedOver' -or -not $drill -or $drill.StartedUtc -lt $started -or $drill.OwnerProcessId -ne $PID) { continue }
        try {
            $cleanup = $candidate | Start-AsrTestFailoverCleanup -Comment "scheduled drill $($started.ToString('u')): $outcome" -Confirm:$false
            if ($cleanup.State -ne 'Succeeded') { $failures.Add("$($candidate.Name): cleanup ended $($cleanup.State)") }
        } catch {
            $failures.Add("$($candidate.Name): cleanup failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
        }
    }
}

$exitCode = if ($failures.Count) { 1 } else { 0 }
try {
    $summary.Report = (Export-AsrHealthReport -Path $ReportPath -Days $ReportDays).FullName
} catch {
    Write-Error "The report could not be written: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]" -ErrorAction Continue
    $exitCode = 2
}
foreach ($f in $failures) { Write-Error $f -ErrorAction Continue }
[pscustomobject]$summary
exit $exitCode
