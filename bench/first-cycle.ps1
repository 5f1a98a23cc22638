<#
.SYNOPSIS
    One step of bench/first-cycle.sh, in a fresh pwsh process: what a user's first cycle in a new session costs.
.DESCRIPTION
    init  : New-AsrVault (encrypted) + policy, then a timed Enable-AsrReplication of -Disk.
    delta : Connect-AsrVault, then a timed Invoke-AsrReplication of item 'bench' (the first cycle of this process: JIT,
            fresh memory and a cold page cache included), then a second, timed, in the same process (warm: nothing
            changed since, the page cache holds the disk).
    Prints one line 'FIRSTCYCLE step=... seconds=... second=... state=...'.
#>
param(
    [Parameter(Mandatory)][ValidateSet('init', 'delta')][string]$Step,
    [Parameter(Mandatory)][string]$Vault,
    [string]$Disk
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$key = 'bench-passphrase-0123456789'
if ($Step -eq 'init') {
    New-AsrVault -Path $Vault -EncryptionKey $key | Connect-AsrVault
    New-AsrPolicy -Name default | Out-Null
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $job = Enable-AsrReplication -Name bench -Disk $Disk -Policy default
    $seconds = $sw.Elapsed.TotalSeconds; $second = 0
}
else {
    Connect-AsrVault -Path $Vault -EncryptionKey $key
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $job = Get-AsrProtectedItem bench | Invoke-AsrReplication
    $seconds = $sw.Elapsed.TotalSeconds
    $sw.Restart()
    $again = Get-AsrProtectedItem bench | Invoke-AsrReplication
    $second = $sw.Elapsed.TotalSeconds
    if ("$($again.State)" -ne 'Succeeded') { $job = $again }
}
$inv = [Globalization.CultureInfo]::InvariantCulture
[Console]::WriteLine("FIRSTCYCLE step=$Step seconds=$($seconds.ToString('F3', $inv)) second=$($second.ToString('F3', $inv)) state=$($job.State) changed=$($job.Result.ChangedBytes)")
if ("$($job.State)" -ne 'Succeeded') { exit 1 }
