<#
.SYNOPSIS
    End-to-end DR scenario on generated disks: a local-directory vault (default), or a blob vault in a
    private Azurite (-Backend Azurite).
.DESCRIPTION
    Protects a two-disk machine, changes its disks between three replication cycles, lists the
    recovery points, exports every point and proves by SHA-256 that each exported disk equals the
    source as it was when that point was taken. Then the failover lifecycle: a drill served over NBD
    and verified while replication continues, a planned failover with no data lost, commit,
    reprotect after the recovered machine diverged, failback and a checksum resync.
    Exits non-zero on any mismatch.

    -Backend Azurite runs the same steps against an Azure Blob Storage container: it starts its own
    azurite-blob (npm install -g azurite) on a free 127.0.0.1 port with its data in the work dir, creates
    the vault with New-AsrVault -ConnectionString -Container, and stops Azurite at the end, also on failure.
    The agent opens the same container: Start-AsrAgent forwards the connection string through its environment.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Scenario      # builds, then runs this script in the pinned pwsh
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Scenario -ScenarioBackend Azurite
#>
param(
    [ValidateSet('Local', 'Azurite')]
    [string]$Backend = 'Local',
    [string]$WorkDir = [IO.Path]::Combine([IO.Path]::GetTempPath(), "asr-scenario-" + [Guid]::NewGuid().ToString('N').Substring(0, 8)),
    [long]$OsDiskBytes = 96MB,
    [long]$DataDiskBytes = 64MB + 1536,
    [string]$EncryptionKey,
    [switch]$Keep
)
$ErrorActionPreference = 'Stop'
. ([IO.Path]::Combine($PSScriptRoot, 'AsrSampleDisks.ps1'))
. ([IO.Path]::Combine($PSScriptRoot, 'AsrSampleAzurite.ps1'))
Import-Module AsrModule
function Step([string]$Text) { [Console]::WriteLine(); [Console]::WriteLine("== $Text") }

$where = if ($Backend -eq 'Azurite') { 'a blob vault (Azurite)' } else { 'a local vault' }
[Console]::WriteLine("AsrModule end-to-end scenario: protect a two-disk machine in $where, change its disks")
[Console]::WriteLine('between replication cycles, export every recovery point and check it by SHA-256; then drill,')
[Console]::WriteLine('fail over, commit, reprotect, fail back and resync, checking the disks at every step; then the agent')
[Console]::WriteLine('protects the machine continuously.')
[void][IO.Directory]::CreateDirectory($WorkDir)
$os = [IO.Path]::Combine($WorkDir, 'web01-os.img')
$data = [IO.Path]::Combine($WorkDir, 'web01-data.img')
$azurite = $null
try {
    if ($Backend -eq 'Azurite') {
        Step 'Starting Azurite (the Azure Storage emulator, blob service) on 127.0.0.1'
        $azurite = Start-AsrSampleAzurite -DataPath ([IO.Path]::Combine($WorkDir, 'azurite'))
        [Console]::WriteLine("azurite-blob process $($azurite.Process.Id) at $($azurite.BlobEndpoint), data in $($azurite.DataPath)")
        $vaultArgs = @{ ConnectionString = $azurite.ConnectionString; Container = 'web01-vault' }
    }
    else {
        $vaultArgs = @{ Path = [IO.Path]::Combine($WorkDir, 'vault') }
    }

    Step "Generating disks in $WorkDir"
    New-AsrSampleDisk -Path $os -SizeBytes $OsDiskBytes -Seed 1 | Out-Null
    New-AsrSampleDisk -Path $data -SizeBytes $DataDiskBytes -Seed 2 | Out-Null
    [Console]::WriteLine("web01-os.img $OsDiskBytes bytes, web01-data.img $DataDiskBytes bytes (25% random, 25% text, 50% zeros)")

    Step 'New-AsrVault | Connect-AsrVault; New-AsrPolicy'
    if ($EncryptionKey) { $vaultArgs.EncryptionKey = $EncryptionKey }
    $vault = New-AsrVault @vaultArgs | Connect-AsrVault -PassThru
    $vault | Out-Default
    $policy = New-AsrPolicy -Name default -RecoveryPointRetentionHours 24 -CrashConsistentFrequencyMinutes 5 -AppConsistentFrequencyHours 4 -RpoThresholdMinutes 15
    $policy | Out-Default

    # What each point must contain: the source hashes at the moment the cycle ran.
    $expected = [Collections.Generic.List[object]]::new()
    Step 'Enable-AsrReplication (initial replication)'
    $expected.Add(@{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data })
    Enable-AsrReplication -Name web01 -Disk $os, $data -Policy $policy | Wait-AsrJob | Out-Default

    foreach ($cycle in 1..3) {
        Step "Cycle ${cycle}: 1% of 4 KiB blocks rewritten at random, then Invoke-AsrReplication"
        $changed = (Write-AsrSampleChange -Path $os -Fraction 0.01 -Seed (10 + $cycle)) + (Write-AsrSampleChange -Path $data -Fraction 0.01 -Seed (20 + $cycle))
        $expected.Add(@{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data })
        $job = Get-AsrProtectedItem web01 | Invoke-AsrReplication | Wait-AsrJob
        $job | Out-Default
        [Console]::WriteLine("written: $changed bytes; changed blocks found: $($job.Result.ChangedBytes) bytes; stored in the vault: $($job.Result.BytesStored) bytes")
    }

    Step 'Get-AsrProtectedItem; Get-AsrRecoveryPoint'
    Get-AsrProtectedItem web01 | Out-Default
    $points = @(Get-AsrRecoveryPoint -Item web01)
    $points | Out-Default

    Step 'Export-AsrRecoveryPoint of every point, verified by SHA-256 against the source at that moment'
    $failures = 0
    $rows = foreach ($point in $points) {
        $dest = [IO.Path]::Combine($WorkDir, 'restore', "point-$($point.Sequence)")
        $job = $point | Export-AsrRecoveryPoint -Destination $dest
        foreach ($file in $job.Result.Files) {
            $name = [IO.Path]::GetFileName($file)
            $actual = Get-AsrSampleHash $file
            $want = $expected[$point.Sequence - 1][$name]
            if ($actual -ne $want) { $failures++ }
            [pscustomobject]@{ Point = $point.Sequence; Disk = $name; Sha256 = $actual.Substring(0, 16) + '...'; Matches = ($actual -eq $want) }
        }
    }
    $rows | Out-Default

    Step 'Drill: Start-AsrTestFailover (served over NBD, copy-on-write), verified while replication continues'
    $item = Get-AsrProtectedItem web01
    $drill = $item | Start-AsrTestFailover -RecoveryPoint LatestProcessed -Target (New-AsrLocalTarget ([IO.Path]::Combine($WorkDir, 'drills'))) | Wait-AsrJob
    foreach ($e in $drill.Result.Exports.GetEnumerator()) { [Console]::WriteLine("  $($e.Key) -> $($e.Value)") }
    [Console]::WriteLine("  disks readable $($drill.Result.ReadyAfterMilliseconds) ms after the drill started (qemu-system-x86_64 -drive file=<uri>,format=raw boots them)")
    Write-AsrSampleChange -Path $os -Fraction 0.01 -Seed 40 | Out-Null
    [Console]::WriteLine("  production replication during the drill: $(($item | Invoke-AsrReplication).Result.Mode) cycle")
    $check = $item | Test-AsrTestFailover
    [Console]::WriteLine("  Test-AsrTestFailover: verified=$($check.Result.Verified): $($check.Result.Note)")
    if (-not $check.Result.Verified) { throw 'The drill does not present the recovery point.' }
    $item | Start-AsrTestFailoverCleanup -Comment 'drill ok' -Confirm:$false | Out-Default

    Step 'Planned failover: stop the source (hook), final sync, no data lost; then commit'
    Write-AsrSampleChange -Path $data -Fraction 0.01 -Seed 41 | Out-Null   # written just before the failover
    $recovery = New-AsrLocalTarget ([IO.Path]::Combine($WorkDir, 'recovery'))
    $item | Start-AsrFailover -Planned -Target $recovery -Confirm:$false -StopSource { param($i) [Console]::WriteLine("  StopSource hook: here '$($i.Name)' would be shut down") } | Out-Default
    $recoveredOs = [IO.Path]::Combine($recovery.Path, 'web01', 'web01-os.img')
    $recoveredData = [IO.Path]::Combine($recovery.Path, 'web01', 'web01-data.img')
    $same = ((Get-AsrSampleHash $recoveredOs) -eq (Get-AsrSampleHash $os)) -and ((Get-AsrSampleHash $recoveredData) -eq (Get-AsrSampleHash $data))
    [Console]::WriteLine("  recovered disks equal the source after its last write: $same")
    if (-not $same) { throw 'The planned failover lost data.' }
    $item | Complete-AsrFailover -Confirm:$false | Out-Default

    Step 'The recovered machine runs (2% of its OS disk changes); reprotect sends only what differs'
    $diverged = Write-AsrSampleChange -Path $recoveredOs -Fraction 0.02 -Seed 42
    $re = $item | Update-AsrProtectionDirection -Confirm:$false
    $re | Out-Default
    [Console]::WriteLine("  diverged: $diverged bytes; reprotect compared $($re.Result.BlocksCompared) blocks on both sides and sent $($re.Result.BytesSent) bytes")

    Step 'Failback: final reverse sync, original disks become the machine again, protection to the vault resumes'
    Write-AsrSampleChange -Path $recoveredData -Fraction 0.01 -Seed 43 | Out-Null
    $expectedBack = @{ 'web01-os.img' = Get-AsrSampleHash $recoveredOs; 'web01-data.img' = Get-AsrSampleHash $recoveredData }
    $fb = $item | Invoke-AsrFailback -Confirm:$false
    $fb | Out-Default
    $back = ((Get-AsrSampleHash $os) -eq $expectedBack['web01-os.img']) -and ((Get-AsrSampleHash $data) -eq $expectedBack['web01-data.img'])
    [Console]::WriteLine("  original disks equal the recovered machine: $back; $($fb.Result.Note)")
    if (-not $back) { throw 'Failback did not bring the recovered data home.' }

    Step 'Resume-AsrResync: checksum compare of every block with the vault'
    $rs = $item | Resume-AsrResync
    [Console]::WriteLine("  compared $($rs.Result.BlocksCompared) blocks, sent $($rs.Result.ChangedBlocks) ($($rs.Result.BytesSent) bytes)")
    Get-AsrProtectedItem web01 | Out-Default

    Step 'Continuous protection: Set-AsrProtectedItem -Policy (30-second points); Start-AsrAgent; the disks keep changing'
    $continuous = New-AsrPolicy -Name continuous -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 0 -RecoveryPointRetentionHours 24 -RpoThresholdMinutes 1
    $agentHost = 'scenario-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
    Set-AsrProtectedItem web01 -Policy $continuous -AgentHost $agentHost
    $before = (Get-AsrProtectedItem web01).LastPointSequence
    $agentArgs = @{ HostName = $agentHost; LogPath = [IO.Path]::Combine($WorkDir, 'agent.log'); TickInterval = '00:00:00.250' }
    if ($EncryptionKey) { $agentArgs.EncryptionKey = $EncryptionKey }
    $agent = Start-AsrAgent @agentArgs
    [Console]::WriteLine("  agent '$agentHost' running as process $($agent.ProcessId); it takes a point when the newest is 30 s old")
    Write-AsrSampleChange -Path $data -Fraction 0.01 -Seed 44 | Out-Null
    $expectedAgent = @{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data }
    $deadline = [DateTime]::UtcNow.AddSeconds(90)
    while ((Get-AsrProtectedItem web01).LastPointSequence -le $before) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "The agent published no point within 90 s; see $($agentArgs.LogPath)" }
        [Threading.Thread]::Sleep(250)
    }
    $agentPoint = Get-AsrRecoveryPoint -Item web01 -Latest
    $agentFiles = ($agentPoint | Export-AsrRecoveryPoint -Destination ([IO.Path]::Combine($WorkDir, 'restore', 'agent-point'))).Result.Files
    $agentOk = @($agentFiles | Where-Object { (Get-AsrSampleHash $_) -ne $expectedAgent[[IO.Path]::GetFileName($_)] }).Count -eq 0
    [Console]::WriteLine("  the agent published point $($agentPoint.Sequence) at $($agentPoint.RecoveryPointTimeUtc.ToString('u')); it equals the disks: $agentOk")
    if (-not $agentOk) { throw 'The point the agent took does not equal the source.' }
    Get-AsrProtectedItem web01 | Out-Default
    Get-AsrAgent -HostName $agentHost | Out-Default
    Stop-AsrAgent -HostName $agentHost
    Get-AsrEvent | Out-Default

    Step 'Get-AsrJob'
    Get-AsrJob | Out-Default

    $vaultBytes = Get-AsrSampleVaultBytes $vault
    Step 'Result'
    $allPoints = @(Get-AsrRecoveryPoint -Item web01).Count
    [Console]::WriteLine("source disks: $($OsDiskBytes + $DataDiskBytes) bytes; vault: $vaultBytes bytes for $allPoints points")
    if ($failures -gt 0) { throw "$failures exported disk(s) did not match the source at their point." }
    [Console]::WriteLine("OK: $($rows.Count) exported disks across $($points.Count) recovery points match the source bit for bit;")
    [Console]::WriteLine("    the drill presented its point exactly, the planned failover lost no write, failback brought every block home,")
    [Console]::WriteLine("    and the agent's continuous point equals the disks.")
}
finally {
    try {
        if ($agentHost) { try { Stop-AsrAgent -HostName $agentHost -Force -TimeoutSeconds 30 -ErrorAction SilentlyContinue } catch { } }
        Disconnect-AsrVault
    }
    finally {
        if ($azurite) { Stop-AsrSampleAzurite $azurite }   # SIGTERM: Azurite saves its metadata (kept with -Keep)
        if (-not $Keep) { [IO.Directory]::Delete($WorkDir, $true) }
    }
}
