<#
.SYNOPSIS
    One timed AsrModule step of bench/live-capture.sh (reflink + FIEMAP delta vs full scan; sparse vs dense initial
    replication), run in the pinned pwsh (`pwsh -File`) with the module snapshot under test first on PSModulePath.
.DESCRIPTION
    Steps (one pwsh process each, so the shell can rewrite the source and drop the page cache between them):
      init   : New-AsrVault -EncryptionKey; New-AsrPolicy default (zstd-1); timed Enable-AsrReplication -Disk <Disk>
      delta  : timed Invoke-AsrReplication -Name <Item> (one cycle; the cmdlet waits for its job)
      export : timed Get-AsrRecoveryPoint -Item <Item> -Latest | Export-AsrRecoveryPoint -Destination <Destination>
    Only the cmdlet under test is inside the stopwatch. Prints one line 'BENCH key=value ...' (values without spaces)
    for the shell, then 'NOTE ...', 'CAPTURE ...' and 'EVIDENCE ...' lines with the job's Note, the item's capture
    method / reachable consistency and the latest point's consistency evidence. Exits 1 if the job failed.
#>
param(
    [Parameter(Mandatory)][ValidateSet('init', 'delta', 'export')][string]$Step,
    [Parameter(Mandatory)][string]$Vault,
    [Parameter(Mandatory)][string]$Key,
    [string]$Item = 'live',
    [string]$Disk,
    [string]$Destination
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture

$engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AsrModule.Engine' }
$config = if ($engine) { $engine.GetCustomAttributes([Reflection.AssemblyConfigurationAttribute], $false) | ForEach-Object { $_.Configuration } } else { '?' }

if ($Step -eq 'init') {
    $v = New-AsrVault -Path $Vault -EncryptionKey $Key | Connect-AsrVault -PassThru
    [void](New-AsrPolicy -Name default)
}
else {
    $v = Connect-AsrVault -Path $Vault -EncryptionKey $Key -PassThru
}

$sw = [Diagnostics.Stopwatch]::StartNew()
switch ($Step) {
    'init' { $job = Enable-AsrReplication -Name $Item -Disk $Disk -Policy default }
    'delta' { $job = Invoke-AsrReplication -Name $Item }
    'export' { $job = Get-AsrRecoveryPoint -Item $Item -Latest | Export-AsrRecoveryPoint -Destination $Destination }
}
$sw.Stop()
$job = @($job)[-1]

$pi = Get-AsrProtectedItem -Name $Item
$point = Get-AsrRecoveryPoint -Item $Item -Latest -ErrorAction SilentlyContinue
Disconnect-AsrVault

foreach ($e in $job.Errors) { [Console]::WriteLine("job error: $e") }
$r = $job.Result
$files = if ($r -and $r.Files) { [string]::Join(';', $r.Files) } else { '' }
$peakMiB = [Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64 / 1MB
[Console]::WriteLine("BENCH step=$Step state=$($job.State) seconds=$($sw.Elapsed.TotalSeconds.ToString('F3', $inv)) config=$config " +
    "mode=$($r.Mode) scanned=$($r.BytesScanned) changed=$($r.ChangedBytes) stored=$($r.BytesStored) " +
    "point=$($point.Sequence) consistency=$($point.Consistency) capture=$($pi.CaptureMethod) lastpoint=$($pi.LastPointConsistency) " +
    "itemid=$($pi.Id) peak_rss_mib=$($peakMiB.ToString('F0', $inv)) files=$files")
[Console]::WriteLine("NOTE $($r.Note)")
[Console]::WriteLine("CAPTURE $($pi.CaptureMethod): $($pi.ReachableConsistency)")
[Console]::WriteLine("EVIDENCE $($point.ConsistencyEvidence)")
if ("$($job.State)" -ne 'Succeeded') { exit 1 }
