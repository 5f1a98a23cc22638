<#
.SYNOPSIS
    One timed AsrModule step of the benchmark, run by bench/run-bench.sh through tools/AsrHost.
.DESCRIPTION
    Steps (one AsrHost process each, so the shell can swap the source image and drop the page cache
    between them exactly as it does for the other tools):
      init   <vault> <key> <disk> : New-AsrVault -EncryptionKey; New-AsrPolicy default (zstd, default level);
                                    timed Enable-AsrReplication (initial replication)
      delta  <vault> <key>        : timed Get-AsrProtectedItem | Invoke-AsrReplication (one delta cycle)
      export <vault> <key> <dest> : timed Get-AsrRecoveryPoint -Latest | Export-AsrRecoveryPoint
    Only the cmdlet under test is inside the stopwatch; the vault is created/connected outside it.
    Prints the job and one line 'BENCH key=value ...' for the shell to parse. Exits 1 if the job
    did not succeed.
#>
param(
    [Parameter(Mandatory)][ValidateSet('init', 'delta', 'export')][string]$Step,
    [Parameter(Mandatory)][string]$Vault,
    [Parameter(Mandatory)][string]$Key,
    [string]$Target
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule

$engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AsrModule.Engine' }
$config = if ($engine) { $engine.GetCustomAttributes([Reflection.AssemblyConfigurationAttribute], $false) | ForEach-Object { $_.Configuration } } else { '?' }
$item = 'bench'

if ($Step -eq 'init') {
    New-AsrVault -Path $Vault -EncryptionKey $Key | Connect-AsrVault
    $policy = New-AsrPolicy -Name default
    [Console]::WriteLine("policy: compression=$($policy.Compression) level=$($policy.CompressionLevel)")
}
else {
    Connect-AsrVault -Path $Vault -EncryptionKey $Key
}

$sw = [Diagnostics.Stopwatch]::StartNew()
switch ($Step) {
    'init' { $job = Enable-AsrReplication -Name $item -Disk $Target -Policy default }
    'delta' { $job = Get-AsrProtectedItem $item | Invoke-AsrReplication }
    'export' { $job = Get-AsrRecoveryPoint -Item $item -Latest | Export-AsrRecoveryPoint -Destination $Target }
}
$sw.Stop()
Disconnect-AsrVault

$job | Out-Default
$job.Result | Out-Default
foreach ($e in $job.Errors) { [Console]::WriteLine("job error: $e") }
$r = $job.Result
$files = if ($r -and $r.Files) { [string]::Join(';', $r.Files) } else { '' }
$seconds = $sw.Elapsed.TotalSeconds.ToString('F3', [Globalization.CultureInfo]::InvariantCulture)
[Console]::WriteLine("BENCH step=$Step state=$($job.State) seconds=$seconds config=$config scanned=$($r.BytesScanned) changed=$($r.ChangedBytes) stored=$($r.BytesStored) files=$files")
if ("$($job.State)" -ne 'Succeeded') { exit 1 }
