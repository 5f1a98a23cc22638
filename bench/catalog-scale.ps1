<#
.SYNOPSIS
    Steps of bench/catalog-scale.sh (issue #15 item 1): a blob vault of many items on Azurite; the cost of listing them
    and of an idle agent. Run in the pinned pwsh with the module under test first on PSModulePath.
.DESCRIPTION
      init  : New-AsrVault (encrypted) on -ConnectionString/-Container, a policy with 60-minute points (so nothing is due
              while the agent idles)
      setup : items -From .. -From + -Count - 1 of one small disk each (Enable-AsrReplication: the initial replication
              runs), item i assigned to agent host 'host(i mod -Hosts)'; the shell runs several of these at once
      list  : Connect-AsrVault, then -Rounds times Get-AsrProtectedItem (all) and -Rounds x 4 times Get-AsrProtectedItem
              -Name <a middle item>; prints each round's seconds (the first call of each pays the JIT: reported apart)
      snapshots: Start-AsrAgent for each of -Hosts hosts in turn, until it has read its items and written its catalog
              snapshot (hosts/<host>/catalog.json, issue #15), then Stop-AsrAgent: what a listing then reads instead of items
      agent : Start-AsrAgent -HostName host0, waits -SettleSeconds (its full read at start), prints 'MARK start', sleeps
              -IdleSeconds, prints 'MARK end', then Stop-AsrAgent. The shell counts Azurite's requests between the marks.
    Prints 'BENCH key=value ...' lines.
#>
param(
    [Parameter(Mandatory)][ValidateSet('init', 'setup', 'snapshots', 'list', 'agent')][string]$Step,
    [Parameter(Mandatory)][string]$ConnectionString,
    [Parameter(Mandatory)][string]$Container,
    [Parameter(Mandatory)][string]$Work,
    [int]$Items = 1000,
    [int]$From = 0,
    [int]$Count = 1000,
    [int]$Hosts = 10,
    [int]$Rounds = 5,
    [int]$SettleSeconds = 20,
    [int]$IdleSeconds = 60
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture
$key = 'bench-passphrase-0123456789'
function Seconds([scriptblock]$Block) { $sw = [Diagnostics.Stopwatch]::StartNew(); & $Block | Out-Null; $sw.Elapsed.TotalSeconds }
function Median([double[]]$Values) { $s = $Values | Sort-Object; if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 } }

switch ($Step) {
    'init' {
        New-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key | Connect-AsrVault
        [void](New-AsrPolicy -Name hourly -CrashConsistentFrequencyMinutes 60)
    }
    'setup' {
        Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key
        $disks = [IO.Path]::Combine($Work, 'disks')
        [void][IO.Directory]::CreateDirectory($disks)
        $rng = [Random]::new(15 + $From)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = $From; $i -lt $From + $Count; $i++) {
            $name = 'vm{0:D4}' -f $i
            $bytes = [byte[]]::new(64KB); $rng.NextBytes($bytes)
            $disk = [IO.Path]::Combine($disks, "$name.img")
            [IO.File]::WriteAllBytes($disk, $bytes)
            $job = Enable-AsrReplication -Name $name -Disk $disk -Policy hourly -AgentHost ('host{0}' -f ($i % $Hosts))
            if ("$($job.State)" -ne 'Succeeded') { throw "Enable of $name ended $($job.State)" }
            if (($i - $From + 1) % 50 -eq 0) { [Console]::WriteLine("  items $From..$i protected ($([int]$sw.Elapsed.TotalSeconds) s)") }
        }
        [Console]::WriteLine("BENCH step=setup from=$From count=$Count hosts=$Hosts seconds=$($sw.Elapsed.TotalSeconds.ToString('F1', $inv)) per_item_s=$(($sw.Elapsed.TotalSeconds / [math]::Max(1, $Count)).ToString('F2', $inv))")
    }
    'list' {
        Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key
        $middle = 'vm{0:D4}' -f [int]($Items / 2)
        $firstAll = Seconds { Get-AsrProtectedItem }
        $firstOne = Seconds { Get-AsrProtectedItem -Name $middle }
        $count = @(Get-AsrProtectedItem).Count
        $all = 1..$Rounds | ForEach-Object { Seconds { Get-AsrProtectedItem } }
        $one = 1..($Rounds * 4) | ForEach-Object { Seconds { Get-AsrProtectedItem -Name $middle } }
        [Console]::WriteLine("BENCH step=list items=$count all_median_s=$((Median $all).ToString('F3', $inv)) all_min_s=$(($all | Measure-Object -Minimum).Minimum.ToString('F3', $inv)) all_max_s=$(($all | Measure-Object -Maximum).Maximum.ToString('F3', $inv)) " +
            "one_median_ms=$((1000 * (Median $one)).ToString('F1', $inv)) one_max_ms=$((1000 * ($one | Measure-Object -Maximum).Maximum).ToString('F1', $inv)) first_all_s=$($firstAll.ToString('F3', $inv)) first_one_ms=$((1000 * $firstOne).ToString('F1', $inv))")
    }
    'snapshots' {
        Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $perHost = @(Get-AsrProtectedItem | Group-Object AgentHost -AsHashTable -AsString)[0]
        for ($h = 0; $h -lt $Hosts; $h++) {
            $hostName = 'host{0}' -f $h
            $expected = @($perHost[$hostName]).Count
            $log = [IO.Path]::Combine($Work, "agent-$hostName-snapshot-$PID.log")
            [void](Start-AsrAgent -HostName $hostName -EncryptionKey (ConvertTo-SecureString $key -AsPlainText -Force) -LogPath $log)
            $deadline = [DateTime]::UtcNow.AddMinutes(5)
            while ([DateTime]::UtcNow -lt $deadline -and @((Get-AsrAgent -HostName $hostName -ErrorAction SilentlyContinue).ProtectedItems).Count -lt $expected) { Start-Sleep -Milliseconds 500 }
            Start-Sleep -Seconds 3   # the snapshot is written at the tick after the full read
            Stop-AsrAgent -HostName $hostName | Out-Null
            [Console]::WriteLine("  $hostName : $expected items, snapshot written ($([int]$sw.Elapsed.TotalSeconds) s)")
        }
        [Console]::WriteLine("BENCH step=snapshots hosts=$Hosts seconds=$($sw.Elapsed.TotalSeconds.ToString('F1', $inv))")
    }
    'agent' {
        Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key
        $log = [IO.Path]::Combine($Work, "agent-host0-$PID.log")
        $agent = Start-AsrAgent -HostName host0 -EncryptionKey (ConvertTo-SecureString $key -AsPlainText -Force) -LogPath $log
        Start-Sleep -Seconds $SettleSeconds
        [Console]::WriteLine("MARK start $([DateTimeOffset]::UtcNow.ToString('o'))")
        Start-Sleep -Seconds $IdleSeconds
        [Console]::WriteLine("MARK end $([DateTimeOffset]::UtcNow.ToString('o'))")
        $record = Get-AsrAgent -HostName host0
        Stop-AsrAgent -HostName host0 | Out-Null
        [Console]::WriteLine("BENCH step=agent protected=$(@($record.ProtectedItems).Count) cycles_succeeded=$($record.CyclesSucceeded) cycles_failed=$($record.CyclesFailed) working_set_mib=$([int]($record.WorkingSetBytes / 1MB))")
    }
}
