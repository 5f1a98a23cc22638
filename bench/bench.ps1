<#
.SYNOPSIS
    One timed AsrModule step, on a local-directory or a blob vault, run in the pinned pwsh (`pwsh -File`) by
    bench/run-bench.sh (the PRODUCT.md comparison: local vault, positional arguments) and bench/blob-throughput.sh
    (-Backend Local|Blob), with the module snapshot under test first on PSModulePath.
.DESCRIPTION
    Steps (one pwsh process each, so the shell can swap the source image and drop the page cache between them):
      init   : New-AsrVault -EncryptionKey; New-AsrPolicy default (zstd-1); timed Enable-AsrReplication -Disk <Target>
      delta  : timed Get-AsrProtectedItem | Invoke-AsrReplication (one delta cycle)
      export : timed Get-AsrRecoveryPoint -Latest | Export-AsrRecoveryPoint -Destination <Target>
    -Backend Local (default): -Vault is a directory. -Backend Blob: -Vault is a container name in the account of the
    connection string in AZURE_STORAGE_CONNECTION_STRING (New-AsrVault / Connect-AsrVault -ConnectionString -Container).
    Only the cmdlet under test is inside the stopwatch. Afterwards it lists the vault's objects (either backend,
    through the vault's store) and prints one line 'BENCH key=value ...' for the shell. Exits 1 if the job failed.
    -WarmUp: first runs the same kind of step on a 64 MiB image of the same make (bench/make-image.py) in a scratch
    vault of its own, then drops the page cache (root), waits BENCH_SETTLE seconds (default 5, as run-bench.sh), then times the step: what a process that has already run one
    (the agent, a long session or runbook) pays, without the first use's JIT compiling and fresh memory.
#>
param(
    [Parameter(Mandatory)][ValidateSet('init', 'delta', 'export')][string]$Step,
    [Parameter(Mandatory)][string]$Vault,
    [Parameter(Mandatory)][string]$Key,
    [string]$Target,
    [ValidateSet('Local', 'Blob')][string]$Backend = 'Local',
    [switch]$WarmUp
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule

if ($WarmUp) {
    $scratch = Join-Path ([IO.Path]::GetTempPath()) "asr-bench-warmup-$PID"
    [void][IO.Directory]::CreateDirectory($scratch)
    try {
        & python3 (Join-Path $PSScriptRoot 'make-image.py') create "$scratch/v1.img" 64 5 | Out-Null
        New-AsrVault -Path "$scratch/vault" -EncryptionKey $Key | Connect-AsrVault
        New-AsrPolicy -Name default | Out-Null
        $warm = Enable-AsrReplication -Name warm -Disk "$scratch/v1.img" -Policy default
        if ($Step -eq 'delta') {
            & python3 (Join-Path $PSScriptRoot 'make-image.py') mutate "$scratch/v1.img" "$scratch/v2.img" 0.01 6 | Out-Null
            [IO.File]::Copy("$scratch/v2.img", "$scratch/v1.img", $true)
            $warm = Get-AsrProtectedItem warm | Invoke-AsrReplication
        }
        if ($Step -eq 'export') { $warm = Get-AsrRecoveryPoint -Item warm -Latest | Export-AsrRecoveryPoint -Destination "$scratch/export" }
        if ("$($warm.State)" -ne 'Succeeded') { throw "warm-up $Step ended $($warm.State)" }
        Disconnect-AsrVault
    }
    finally { [IO.Directory]::Delete($scratch, $true) }
    & sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches' 2> $null
    # As run-bench.sh does after its drops: the freed pages are reported to the VM's host before the timed step reads.
    Start-Sleep -Seconds ([double]($env:BENCH_SETTLE ?? 5))
}

$engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AsrModule.Engine' }
$config = if ($engine) { $engine.GetCustomAttributes([Reflection.AssemblyConfigurationAttribute], $false) | ForEach-Object { $_.Configuration } } else { '?' }
$item = 'bench'

$where = if ($Backend -eq 'Local') { @{ Path = $Vault } }
else {
    if (-not $env:AZURE_STORAGE_CONNECTION_STRING) { throw 'AZURE_STORAGE_CONNECTION_STRING is not set.' }
    @{ ConnectionString = $env:AZURE_STORAGE_CONNECTION_STRING; Container = $Vault }
}
if ($Step -eq 'init') {
    $v = New-AsrVault @where -EncryptionKey $Key | Connect-AsrVault -PassThru
    $policy = New-AsrPolicy -Name default
    [Console]::WriteLine("vault: $($v.Location) backend=$($v.Backend) encrypted=$($v.IsEncrypted); policy: compression=$($policy.Compression) level=$($policy.CompressionLevel)")
}
else {
    $v = Connect-AsrVault @where -EncryptionKey $Key -PassThru
}

$self = [Diagnostics.Process]::GetCurrentProcess()
$cpuBefore = $self.TotalProcessorTime
$ioBefore = if (Test-Path /proc/self/io) { Get-Content /proc/self/io } else { @() }
$sw = [Diagnostics.Stopwatch]::StartNew()
switch ($Step) {
    'init' { $job = Enable-AsrReplication -Name $item -Disk $Target -Policy default }
    'delta' { $job = Get-AsrProtectedItem $item | Invoke-AsrReplication }
    'export' { $job = Get-AsrRecoveryPoint -Item $item -Latest | Export-AsrRecoveryPoint -Destination $Target }
}
$sw.Stop()
$self.Refresh()
$ioAfter = if (Test-Path /proc/self/io) { Get-Content /proc/self/io } else { @() }
$io = for ($i = 0; $i -lt $ioAfter.Count; $i++) { $k, $a = $ioAfter[$i] -split ':\s*'; $b = ($ioBefore[$i] -split ':\s*')[1]; '{0}={1}' -f $k, ([long]$a - [long]$b) }
$cpu = ($self.TotalProcessorTime - $cpuBefore).TotalSeconds.ToString('F2', [Globalization.CultureInfo]::InvariantCulture)

$objects = 0; $vaultBytes = 0L
foreach ($o in $v.Store.ListAsync('', [Threading.CancellationToken]::None).GetAwaiter().GetResult()) { $objects++; $vaultBytes += $o.Length }
Disconnect-AsrVault

$job | Out-Default
foreach ($e in $job.Errors) { [Console]::WriteLine("job error: $e") }
$r = $job.Result
$files = if ($r -and $r.Files) { [string]::Join(';', $r.Files) } else { '' }
$seconds = $sw.Elapsed.TotalSeconds.ToString('F3', [Globalization.CultureInfo]::InvariantCulture)
[Console]::WriteLine("BENCH step=$Step backend=$Backend state=$($job.State) seconds=$seconds cpu_seconds=$cpu config=$config scanned=$($r.BytesScanned) changed=$($r.ChangedBytes) stored=$($r.BytesStored) vault_objects=$objects vault_bytes=$vaultBytes files=$files $($io -join ' ')")
if ("$($job.State)" -ne 'Succeeded') { exit 1 }
