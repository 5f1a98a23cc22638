# The reliability suite of issue #12 (Reliability.Tests.ps1, BadInputs.Tests.ps1, bench/reliability-soak.ps1): error ids,
# seeded randomness, the kill -9 trial loop's mechanics, invariant checks run in a fresh process, per-step timeouts, and
# the counts every run reports. Dot-sourced after TestHelpers.ps1, by the test files and by the check processes they start.

# ---- what counts as a categorised error ----

function Get-AsrDocumentedErrorId {
    <# The module's documented error ids (the constants of AsrErrorIds in src/AsrModule.Engine/Errors/AsrException.cs,
       read from the source so the list cannot go stale) and the ids PowerShell itself gives a refused parameter binding. #>
    if (-not $script:AsrDocumentedErrorIds) {
        $source = [IO.File]::ReadAllText([IO.Path]::Combine($PSScriptRoot, '..', '..', 'src', 'AsrModule.Engine', 'Errors', 'AsrException.cs'))
        $ids = [Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
        foreach ($m in [regex]::Matches($source, 'public const string (\w+) = "(\w+)";')) { [void]$ids.Add($m.Groups[2].Value) }
        # Parameter binding and argument conversion (System.Management.Automation ParameterBindingException ids).
        foreach ($id in 'ParameterArgumentValidationError', 'ParameterArgumentValidationErrorEmptyStringNotAllowed',
            'ParameterArgumentValidationErrorNullNotAllowed', 'ParameterArgumentValidationErrorEmptyArrayNotAllowed',
            'ParameterArgumentTransformationError', 'CannotConvertArgumentNoMessage', 'CannotConvertArgument',
            'ParameterBindingFailed', 'MissingArgument', 'MissingMandatoryParameter', 'NamedParameterNotFound',
            'PositionalParameterNotFound', 'AmbiguousParameterSet', 'InputObjectNotBound', 'ParameterAlreadyBound') { [void]$ids.Add($id) }
        $script:AsrDocumentedErrorIds = $ids
    }
    $script:AsrDocumentedErrorIds
}

function Get-AsrErrorId($ErrorRecord) {
    <# The id part of a FullyQualifiedErrorId ('ProtectedItemBusy,AsrModule.Commands....' -> 'ProtectedItemBusy'). #>
    if (-not $ErrorRecord) { return $null }
    ([string]$ErrorRecord.FullyQualifiedErrorId).Split(',')[0]
}

function Test-AsrDocumentedError($ErrorRecord) {
    <# Whether an error is categorised: a documented id and a category other than NotSpecified. #>
    $id = Get-AsrErrorId $ErrorRecord
    $id -and (Get-AsrDocumentedErrorId).Contains($id) -and "$($ErrorRecord.CategoryInfo.Category)" -ne 'NotSpecified'
}

function Format-AsrError($ErrorRecord) {
    <# One line for reports: id, category, exception type and message. #>
    if (-not $ErrorRecord) { return '(no error)' }
    $message = ($ErrorRecord.Exception.Message -replace '\s+', ' ')
    if ($message.Length -gt 300) { $message = $message.Substring(0, 300) + '...' }
    "$($ErrorRecord.FullyQualifiedErrorId) [$($ErrorRecord.CategoryInfo.Category)] $($ErrorRecord.Exception.GetType().FullName): $message"
}

# ---- sizes of the run ----

function Get-ReliabilityTrialCount {
    <# Kill trials per operation: ASR_SOAK_TRIALS (bench/reliability-soak.ps1 sets 20), else 1: the short form CI runs. #>
    $n = 0
    if ([int]::TryParse([string]$env:ASR_SOAK_TRIALS, [ref]$n) -and $n -gt 0) { return $n }
    1
}

function Get-ReliabilitySeed {
    <# The seed of every random choice (kill moments, corruption offsets): ASR_RELIABILITY_SEED, else 12. Printed with the counts. #>
    $n = 0
    if ([int]::TryParse([string]$env:ASR_RELIABILITY_SEED, [ref]$n)) { return $n }
    12
}

function New-ReliabilityRandom([string]$Purpose) {
    <# A Random seeded from the run's seed and a purpose, so each area's choices do not depend on the others'. #>
    $hash = [Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes("$(Get-ReliabilitySeed)/$Purpose"))
    [Random]::new([BitConverter]::ToInt32($hash, 0))
}

# ---- counts ----

function Add-ReliabilityCount([string]$Area, [string]$Backend, [hashtable]$Counts) {
    <# Records one area's counts: in this process ($global:AsrReliabilityCounts) and, when ASR_RELIABILITY_REPORT names a
       file, as one JSON line appended to it (bench/reliability-soak.ps1 prints the table from it). #>
    $row = [ordered]@{ Area = $Area; Backend = $Backend; Seed = Get-ReliabilitySeed }
    foreach ($k in 'Trials', 'Kills', 'Lost', 'Corrupt', 'Stuck', 'Cases', 'Categorised', 'NothingWritten', 'Bugs') { if ($Counts.ContainsKey($k)) { $row[$k] = $Counts[$k] } }
    if (-not $global:AsrReliabilityCounts) { $global:AsrReliabilityCounts = [Collections.Generic.List[object]]::new() }
    $global:AsrReliabilityCounts.Add([pscustomobject]$row)
    if ($env:ASR_RELIABILITY_REPORT) { [IO.File]::AppendAllText($env:ASR_RELIABILITY_REPORT, (([pscustomobject]$row | ConvertTo-Json -Compress) + "`n")) }
    Write-Host ("RELIABILITY " + (($row.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ' '))
}

# ---- per-step timeouts ----

function New-TimedRunspace {
    <# A runspace of this process with the module imported, for Invoke-TimedStep: a step that hangs is stopped and
       reported instead of holding the run. #>
    $rs = [runspacefactory]::CreateRunspace()
    $rs.Open()
    $ps = [powershell]::Create($rs)
    try { [void]$ps.AddScript('Import-Module AsrModule; $ConfirmPreference = "None"; $ProgressPreference = "SilentlyContinue"').Invoke() } finally { $ps.Dispose() }
    $rs
}

function Invoke-TimedStep($Runspace, [string]$Script, [hashtable]$Arguments = @{}, [int]$TimeoutSeconds = 60, [string]$ErrorAction = 'Stop') {
    <# Runs $Script (with $Arguments as its parameters) in $Runspace with $ErrorActionPreference $ErrorAction. Returns
       Ok, Output, Error (the ErrorRecord of the first error), Errors (every error, non-terminating ones too) and
       TimedOut (the step did not end in time: it is stopped, and the runspace must not be reused). #>
    $ps = [powershell]::Create($Runspace)
    try {
        [void]$ps.AddScript("`$ErrorActionPreference = '$ErrorAction'`n" + $Script)
        foreach ($k in $Arguments.Keys) { [void]$ps.AddParameter($k, $Arguments[$k]) }
        $async = $ps.BeginInvoke()
        if (-not $async.AsyncWaitHandle.WaitOne($TimeoutSeconds * 1000)) {
            [void]$ps.BeginStop($null, $null)
            return [pscustomobject]@{ Ok = $false; TimedOut = $true; Output = @(); Error = $null; Errors = @() }
        }
        $output = $null; $thrown = $null
        try { $output = $ps.EndInvoke($async) }
        catch [Management.Automation.MethodInvocationException] { $thrown = $_.Exception.InnerException }
        catch { $thrown = $_.Exception }
        $errors = @($ps.Streams.Error)
        $first = if ($thrown -is [Management.Automation.IContainsErrorRecord]) { $thrown.ErrorRecord } elseif ($thrown) { [Management.Automation.ErrorRecord]::new($thrown, $thrown.GetType().Name, 'NotSpecified', $null) } elseif ($errors) { $errors[0] }
        [pscustomobject]@{ Ok = -not $first; TimedOut = $false; Output = @($output); Error = $first; Errors = @($errors) + @(if ($thrown -and $first) { $first }) }
    } finally { if ($ps.InvocationStateInfo.State -ne 'Running') { $ps.Dispose() } }
}

# ---- kill -9 trials ----

function Start-KilledOperation {
    <# Runs $Operation (a pipeline of the module's cmdlets, as text) in a real child pwsh connected to $Vault, and kills it
       (SIGKILL) $DelayMs after the operation began. The child writes <dir>/started right before the operation and
       <dir>/done (with its duration) right after: a kill that left no done marker landed mid-operation. #>
    param([string]$Vault, [string]$Operation, [string]$TrialDir, [int]$DelayMs, [string]$Prelude = '')
    [void][IO.Directory]::CreateDirectory($TrialDir)
    $started = Join-TestPath $TrialDir 'started'; $done = Join-TestPath $TrialDir 'done'
    $child = Start-PwshProcess @"
`$ErrorActionPreference = 'Stop'; `$ProgressPreference = 'SilentlyContinue'; `$ConfirmPreference = 'None'
Import-Module AsrModule
Connect-AsrVault -Path '$Vault'
$Prelude
[IO.File]::WriteAllText('$started', 'started')
`$watch = [Diagnostics.Stopwatch]::StartNew()
$Operation | Out-Null
[IO.File]::WriteAllText('$done', [string]`$watch.ElapsedMilliseconds)
"@
    $watch = [Diagnostics.Stopwatch]::StartNew()
    while (-not [IO.File]::Exists($started) -and -not $child.Process.HasExited -and $watch.Elapsed.TotalSeconds -lt 120) { [Threading.Thread]::Sleep(5) }
    $began = [IO.File]::Exists($started)
    if ($began) {
        $deadline = [Diagnostics.Stopwatch]::StartNew()
        while ($deadline.ElapsedMilliseconds -lt $DelayMs -and -not $child.Process.HasExited) { [Threading.Thread]::Sleep(2) }
    }
    $wasRunning = -not $child.Process.HasExited
    if ($wasRunning) { $child.Process.Kill($true) }
    $child.Process.WaitForExit()
    $finished = [IO.File]::Exists($done)
    [pscustomobject]@{
        Began            = $began
        KilledMidOperation = $began -and $wasRunning -and -not $finished
        DurationMs       = if ($finished) { [int][IO.File]::ReadAllText($done) } else { $null }
        DelayMs          = $DelayMs
        Output           = $child.Out.Result + $child.Err.Result
    }
}

function Invoke-ReliabilityCheck {
    <# Starts a fresh pwsh that checks the invariants after a kill and then lets the item go on (Invoke-ReliabilityChild,
       below, with $Request as its JSON request); returns its JSON report. #>
    param([hashtable]$Request, [string]$TrialDir, [int]$TimeoutSeconds = 300)
    $requestPath = Join-TestPath $TrialDir 'check-request.json'
    $reportPath = Join-TestPath $TrialDir 'check-report.json'
    $Request.ReportPath = $reportPath
    $Request.WorkDir = Join-TestPath $TrialDir 'check'
    [IO.File]::WriteAllText($requestPath, ($Request | ConvertTo-Json -Depth 8))
    $helpers = $PSScriptRoot
    $r = Invoke-PwshProcess @"
`$ErrorActionPreference = 'Stop'; `$ProgressPreference = 'SilentlyContinue'; `$ConfirmPreference = 'None'
. '$(Join-TestPath $helpers 'TestHelpers.ps1')'
. '$(Join-TestPath $helpers 'ReliabilityHelpers.ps1')'
Import-Module AsrModule
Invoke-ReliabilityChild -RequestPath '$requestPath'
"@ -TimeoutSeconds $TimeoutSeconds
    if (-not [IO.File]::Exists($reportPath)) { throw "The check process wrote no report (exit code $($r.ExitCode)): $($r.Output) $($r.Error)" }
    [IO.File]::ReadAllText($reportPath) | ConvertFrom-Json -AsHashtable
}

function Test-ExpectedPoint([string]$Item, [long]$Sequence, [hashtable]$Hashes, [string]$WorkDir) {
    <# Whether a listed point verifies (Test-AsrRecoveryPoint) and exports bit-exact (SHA-256 of every disk = $Hashes). #>
    $point = Get-AsrRecoveryPoint -Item $Item -Sequence $Sequence -ErrorAction Stop
    $verified = ($point | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue).Verified -eq $true
    $dest = Join-TestPath $WorkDir "$Item-$Sequence-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
    $problems = [Collections.Generic.List[string]]::new()
    try {
        $got = Get-ExportedHashes $point $dest
        foreach ($disk in $Hashes.Keys) { if ($got[$disk] -ne $Hashes[$disk]) { $problems.Add("disk $disk exports $($got[$disk]), expected $($Hashes[$disk])") } }
    } catch { $problems.Add("export failed: $(Format-AsrError $_)") }
    finally { if ([IO.Directory]::Exists($dest)) { [IO.Directory]::Delete($dest, $true) } }
    if (-not $verified) { $problems.Add('Test-AsrRecoveryPoint: not Verified') }
    @($problems)
}

function Invoke-ReliabilityChild([string]$RequestPath) {
    <# Runs in the fresh check process. The request: Vault, Expected (item -> sequence -> disk -> SHA-256 of the source when
       that point was made), Check (item -> sequences to export this time; every listed point is verified anyway when
       there are few), Pending (item -> disk -> hash a point published now must have), Operation and its GoOn arguments.
       Writes a report: Lost, Corrupt (lists of what and why), Stuck (why the item could not go on, or null), NewPoints. #>
    $req = [IO.File]::ReadAllText($RequestPath) | ConvertFrom-Json -AsHashtable
    [void][IO.Directory]::CreateDirectory($req.WorkDir)
    $report = [ordered]@{ Lost = @(); Corrupt = @(); Stuck = $null; NewPoints = @(); Notes = @(); StateAfterKill = @{}; Exported = @() }
    try {
        Connect-AsrVault -Path $req.Vault
        # 1. Every point listed before the kill is still listed, verifies, and (those in Check) exports bit-exact.
        foreach ($item in $req.Expected.Keys) {
            $listed = @(Get-AsrRecoveryPoint -Item $item -ErrorAction SilentlyContinue -ErrorVariable listErrors | ForEach-Object Sequence)
            foreach ($e in $listErrors) { $report.Corrupt += "$item listing: $(Format-AsrError $e)" }
            foreach ($seq in $req.Expected[$item].Keys) {
                if ([long]$seq -notin $listed) { $report.Lost += "$item point $seq is no longer listed"; continue }
                if ($req.Check[$item] -and [long]$seq -in @($req.Check[$item] | ForEach-Object { [long]$_ })) {
                    foreach ($p in Test-ExpectedPoint $item $seq $req.Expected[$item][$seq] $req.WorkDir) { $report.Corrupt += "$item point ${seq}: $p" }
                    $report.Exported += "$item/$seq"
                } else {
                    $point = Get-AsrRecoveryPoint -Item $item -Sequence $seq
                    if (($point | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue).Verified -ne $true) { $report.Corrupt += "$item point ${seq}: Test-AsrRecoveryPoint not Verified" }
                }
            }
        }
        foreach ($name in @($req.Items)) {
            $i = Get-AsrProtectedItem $name -ErrorAction SilentlyContinue
            $report.StateAfterKill[$name] = if ($i) { "$($i.State)" } else { 'absent' }
        }
        # 2. The item goes on: the operation's own way (Resume-KilledOperation).
        try { $report.Notes += @(Resume-KilledOperation -Request $req) }
        catch { $report.Stuck = Format-AsrError $_ }
        # 3. Points published since (by the killed operation or by its retry) equal the source when the operation began.
        foreach ($item in @($req.Pending.Keys)) {
            $known = if ($req.Expected.ContainsKey($item)) { @($req.Expected[$item].Keys | ForEach-Object { [long]$_ }) } else { @() }
            foreach ($seq in @(Get-AsrRecoveryPoint -Item $item -ErrorAction SilentlyContinue | ForEach-Object Sequence)) {
                if ($seq -in $known) { continue }
                $problems = @(Test-ExpectedPoint $item $seq $req.Pending[$item] $req.WorkDir)
                foreach ($p in $problems) { $report.Corrupt += "$item new point ${seq}: $p" }
                $report.NewPoints += @{ Item = $item; Sequence = $seq; Ok = $problems.Count -eq 0 }
                $report.Exported += "$item/$seq"
            }
        }
    } catch {
        $report.Stuck = "check failed: $(Format-AsrError $_)"
    } finally {
        if ([IO.Directory]::Exists($req.WorkDir)) { [IO.Directory]::Delete($req.WorkDir, $true) }
    }
    [IO.File]::WriteAllText($req.ReportPath, ($report | ConvertTo-Json -Depth 6))
}

function Wait-ItemLocksReleased([string]$Vault, [string[]]$Items) {
    <# A killed process's item lock frees at once on a local vault, within its lease (60 s) on a blob vault. #>
    foreach ($name in $Items) {
        $i = Get-AsrProtectedItem $name -ErrorAction SilentlyContinue
        if (-not $i) { continue }
        Wait-VaultLockReleased $Vault "locks/item-$($i.Id).lock" 120
        Wait-VaultLockReleased $Vault "locks/record-$($i.Id).lock" 120
    }
}

function Assert-Recovered($Item, [hashtable]$Expected) {
    <# The recovered disks of a FailedOver item equal the source hashes of the point it failed over to. #>
    $seq = [string]$Item.Failover.RecoveryPointSequence
    $hashes = $Expected[$Item.Name][$seq]
    if (-not $hashes) { throw "no recorded hashes for $($Item.Name) point $seq" }
    foreach ($d in $Item.Failover.RecoveredDisks.GetEnumerator()) {
        $h = Get-AsrSampleHash $d.Value
        if ($hashes.Values -notcontains $h) { throw "recovered disk $($d.Value) of $($Item.Name) hashes $h; point $seq had $($hashes.Values -join ', ')" }
    }
}

function Resume-KilledOperation([hashtable]$Request) {
    <# After a kill: what a user does next, per operation; throws when the item cannot go on. Returns notes. #>
    $vault = $Request.Vault; $a = $Request.GoOn
    Wait-ItemLocksReleased $vault @($Request.Items)
    switch ($Request.Operation) {
        'enable' {
            $item = Get-AsrProtectedItem $a.Name -ErrorAction SilentlyContinue
            if (-not $item) {
                # Killed before the item record existed: enable again. A name claim left without its record is taken over after 30 s.
                $watch = [Diagnostics.Stopwatch]::StartNew()
                while ($true) {
                    try { $job = Enable-AsrReplication -Name $a.Name -Disk $a.Disk -Policy $a.Policy; break }
                    catch { if ((Get-AsrErrorId $_) -ne 'ProtectedItemAlreadyExists' -or $watch.Elapsed.TotalSeconds -gt 45) { throw }; Start-Sleep -Seconds 2 }
                }
                if ($job.State -ne 'Succeeded') { throw "Enable-AsrReplication again: $($job.State)" }
                return "item absent after the kill; enabled again ($([int]$watch.Elapsed.TotalSeconds) s)"
            }
            $job = $item | Invoke-AsrReplication
            if ($job.State -ne 'Succeeded') { throw "Invoke-AsrReplication after the kill: $($job.State)" }
            if ((Get-AsrProtectedItem $a.Name).State -ne 'Protected') { throw "state after the next cycle: $((Get-AsrProtectedItem $a.Name).State)" }
            "was $($item.State); next cycle $($job.Result.Mode)"
        }
        'cycle' {
            $job = Get-AsrProtectedItem $a.Name | Invoke-AsrReplication
            if ($job.State -ne 'Succeeded') { throw "Invoke-AsrReplication after the kill: $($job.State)" }
            "next cycle $($job.Result.Mode)"
        }
        'export' {
            $point = Get-AsrRecoveryPoint -Item $a.Name -Sequence $a.Sequence
            $job = $point | Export-AsrRecoveryPoint -Destination $a.Destination -Force
            if ($job.State -ne 'Succeeded') { throw "Export-AsrRecoveryPoint again: $($job.State)" }
            $hashes = $Request.Expected[$a.Name][[string]$a.Sequence]
            foreach ($f in $job.Result.Files) { if ($hashes[[IO.Path]::GetFileName($f)] -ne (Get-AsrSampleHash $f)) { throw "the retried export of $f differs from the source" } }
            [IO.Directory]::Delete($a.Destination, $true)
            $pins = @(Get-VaultObjectKeys $vault 'pins/').Count
            "export retried -Force: bit-exact; $pins pin(s) left in the vault"
        }
        { $_ -in 'failover', 'plan' } {
            $names = @($a.Names)
            $states = @($names | ForEach-Object { "$((Get-AsrProtectedItem $_).State)" })
            foreach ($s in $states) { if ($s -notin 'Protected', 'FailedOver') { throw "killed $($Request.Operation) left the item in state $s" } }
            if ($Request.Operation -eq 'failover') {
                if ($states[0] -eq 'Protected') {
                    $job = Get-AsrProtectedItem $names[0] | Start-AsrFailover -Target (New-AsrLocalTarget $a.Target) -Confirm:$false
                    if ($job.State -ne 'Succeeded') { throw "Start-AsrFailover again: $($job.State)" }
                }
            } else {
                $run = @(Get-AsrJob -Operation 'RecoveryPlan*' | Sort-Object StartTimeUtc)[-1]
                if ($run -and $run.Id -notin @($a.PreviousRuns) -and "$($run.State)" -in 'Interrupted', 'Failed', 'Cancelled') {
                    $job = $run | Restart-AsrJob -Target (New-AsrLocalTarget $a.Target)
                    if ($job.State -ne 'Succeeded') { throw "Restart-AsrJob: $($job.State) $($job.StatusMessage)" }
                } elseif (-not $run -or $run.Id -in @($a.PreviousRuns)) {
                    # Killed before the run's record existed: start it again.
                    $job = Start-AsrRecoveryPlan -Path $a.Plan -FailoverType Unplanned -Target (New-AsrLocalTarget $a.Target) -Confirm:$false
                    if ($job.State -ne 'Succeeded') { throw "Start-AsrRecoveryPlan again: $($job.State) $($job.StatusMessage)" }
                } elseif ("$($run.State)" -ne 'Succeeded') { throw "the plan run is $($run.State)" }
            }
            foreach ($n in $names) {
                $i = Get-AsrProtectedItem $n
                if ("$($i.State)" -ne 'FailedOver') { throw "$n is $($i.State) after the failover went on" }
                Assert-Recovered $i $Request.Expected
                $undo = $i | Undo-AsrFailover -Confirm:$false
                if ($undo.State -ne 'Succeeded' -or "$((Get-AsrProtectedItem $n).State)" -ne 'Protected') { throw "Undo-AsrFailover of ${n}: $($undo.State)" }
            }
            "states after the kill: $($states -join ', '); failed over, recovered disks bit-exact, cancelled"
        }
        default { throw "unknown operation $($Request.Operation)" }
    }
}

function Format-ReliabilityTable($Rows) {
    <# The counts as a table (bench/reliability-soak.ps1, and the end of a Pester run). #>
    $Rows | Format-Table Area, Backend, Trials, Kills, Lost, Corrupt, Stuck, Cases, Categorised, NothingWritten, Bugs -AutoSize | Out-String -Width 200
}
