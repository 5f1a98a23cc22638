# What only a real host shows (issue #13 item 5): Ctrl+C, formatting, help, tab completion, -WhatIf/-Confirm,
# PowerShell's own background jobs and runbook-style error handling, each through real pwsh processes.
# Runs once (no vault backend: every Describe makes its own local vault under a temp folder and removes it).

BeforeDiscovery {
    # Every cmdlet that supports ShouldProcess, with a command line that reaches its ShouldProcess call on the vault
    # the -WhatIf Describe prepares. The variables ($target, $newVault, ...) are set by the child's runner script.
    # Target: what the "What if:" message names. Absent: a path under the test folder that -WhatIf must not create.
    $shouldProcessCases = @(
        @{ Name = 'New-AsrVault'; Command = 'New-AsrVault -Path $newVault'; Target = 'new-vault'; Absent = 'new-vault' }
        @{ Name = 'New-AsrPolicy'; Command = 'New-AsrPolicy -Name whatif'; Target = 'whatif' }
        @{ Name = 'Remove-AsrPolicy'; Command = 'Remove-AsrPolicy -Name spare'; Target = 'spare' }
        @{ Name = 'Enable-AsrReplication'; Command = 'Enable-AsrReplication -Name newm -Disk $newDisk -Policy p'; Target = 'newm' }
        @{ Name = 'Set-AsrProtectedItem'; Command = 'Set-AsrProtectedItem -Name prot -AgentHost elsewhere'; Target = 'prot' }
        @{ Name = 'Invoke-AsrReplication'; Command = 'Get-AsrProtectedItem prot | Invoke-AsrReplication'; Target = 'prot' }
        @{ Name = 'Resume-AsrResync'; Command = 'Get-AsrProtectedItem prot | Resume-AsrResync'; Target = 'prot' }
        @{ Name = 'Export-AsrRecoveryPoint'; Command = 'Get-AsrRecoveryPoint -Item prot -Latest | Export-AsrRecoveryPoint -Destination $exportDir'; Target = 'prot@2'; Absent = 'export' }
        @{ Name = 'Export-AsrHealthReport'; Command = 'Export-AsrHealthReport -Path (Join-Path $Dir whatif-report.html)'; Target = 'whatif-report.html'; Absent = 'whatif-report.html' }
        @{ Name = 'Start-AsrTestFailover'; Command = 'Get-AsrProtectedItem prot | Start-AsrTestFailover -Target $target'; Target = 'prot'; Absent = 'whatif-target' }
        @{ Name = 'Start-AsrTestFailoverCleanup'; Command = 'Get-AsrProtectedItem drill | Start-AsrTestFailoverCleanup'; Target = 'drill' }
        @{ Name = 'Start-AsrFailover'; Command = 'Get-AsrProtectedItem prot | Start-AsrFailover -RecoveryPoint LatestProcessed -Target $target'; Target = 'prot'; Absent = 'whatif-target' }
        @{ Name = 'Switch-AsrRecoveryPoint'; Command = 'Get-AsrProtectedItem fo | Switch-AsrRecoveryPoint -RecoveryPoint 1'; Target = 'fo' }
        @{ Name = 'Undo-AsrFailover'; Command = 'Get-AsrProtectedItem fo | Undo-AsrFailover'; Target = 'fo' }
        @{ Name = 'Complete-AsrFailover'; Command = 'Get-AsrProtectedItem fo | Complete-AsrFailover'; Target = 'fo' }
        @{ Name = 'Update-AsrProtectionDirection'; Command = 'Get-AsrProtectedItem com | Update-AsrProtectionDirection'; Target = 'com' }
        @{ Name = 'Invoke-AsrFailback'; Command = 'Get-AsrProtectedItem rep | Invoke-AsrFailback'; Target = 'rep' }
        @{ Name = 'Disable-AsrReplication'; Command = 'Get-AsrProtectedItem prot | Disable-AsrReplication'; Target = 'prot' }
        @{ Name = 'Start-AsrRecoveryPlan'; Command = 'Start-AsrRecoveryPlan -Path $drillPlan -FailoverType Test -Target $target'; Target = 'drill-plan'; Absent = 'whatif-target' }
        @{ Name = 'Stop-AsrJob'; Command = 'Stop-AsrJob -Id $suspendedJob'; Target = 'approve' }
        @{ Name = 'Resume-AsrJob'; Command = 'Resume-AsrJob -Id $suspendedJob'; Target = 'approve' }
        @{ Name = 'Restart-AsrJob'; Command = 'Restart-AsrJob -Id $failedJob'; Target = 'gate' }
        @{ Name = 'Start-AsrAgent'; Command = 'Start-AsrAgent -HostName whatif-agent -LogPath $agentLog'; Target = 'whatif-agent'; Absent = 'whatif-agent.log' }
        @{ Name = 'Stop-AsrAgent'; Command = 'Stop-AsrAgent -HostName whatif-agent'; Target = 'whatif-agent' }
    )
    # The ConfirmImpact High cmdlets, run for real with -Confirm:$false in this order (each leaves the state the next needs).
    $confirmCases = @(
        @{ Name = 'Start-AsrTestFailoverCleanup'; Command = 'Get-AsrProtectedItem drill | Start-AsrTestFailoverCleanup'; Item = 'drill'; State = 'Protected' }
        @{ Name = 'Start-AsrFailover'; Command = 'Get-AsrProtectedItem prot | Start-AsrFailover -RecoveryPoint LatestProcessed -Target $target'; Item = 'prot'; State = 'FailedOver' }
        @{ Name = 'Switch-AsrRecoveryPoint'; Command = 'Get-AsrProtectedItem prot | Switch-AsrRecoveryPoint -RecoveryPoint 1'; Item = 'prot'; State = 'FailedOver' }
        @{ Name = 'Undo-AsrFailover'; Command = 'Get-AsrProtectedItem prot | Undo-AsrFailover'; Item = 'prot'; State = 'Protected' }
        @{ Name = 'Complete-AsrFailover'; Command = 'Get-AsrProtectedItem fo | Complete-AsrFailover'; Item = 'fo'; State = 'Committed' }
        @{ Name = 'Update-AsrProtectionDirection'; Command = 'Get-AsrProtectedItem com | Update-AsrProtectionDirection'; Item = 'com'; State = 'Reprotected' }
        @{ Name = 'Invoke-AsrFailback'; Command = 'Get-AsrProtectedItem rep | Invoke-AsrFailback'; Item = 'rep'; State = 'Protected' }
        @{ Name = 'Disable-AsrReplication'; Command = 'Get-AsrProtectedItem prot | Disable-AsrReplication'; Item = 'prot'; State = 'gone' }
    )
    # Every output type's table view: its column labels, and the labels Format-List shows for it (a snapshot: a
    # change to a view or to a type's public properties shows up here). Source: how the child gets one or more objects.
    $viewCases = @(
        @{ Type = 'AsrVault'; Source = 'Get-AsrVault'
            Table = 'Location | Backend | Encrypted | Format | Created | VaultId'
            List = 'Location | Backend | Authentication | VaultId | FormatVersion | IsEncrypted | CreatedUtc' }
        @{ Type = 'AsrPolicy'; Source = 'Get-AsrPolicy'
            Table = 'Name | RetentionHours | CrashFreqMin | AppFreqHours | RpoThresholdMin | Compression'
            List = 'Name | Id | CreatedUtc | RecoveryPointRetentionHours | CrashConsistentFrequencyMinutes | AppConsistentFrequencyHours | RpoThresholdMinutes | Compression | CompressionLevel | CrashConsistentFrequencySeconds' }
        @{ Type = 'AsrProtectedItem'; Source = 'Get-AsrProtectedItem'
            Table = 'Name | State | Location | Health | Rpo | LastPoint | Points | Disks | Policy | LastError'
            List = 'Name | Id | PolicyName | CreatedUtc | State | ResyncReason | Disks | LastPointSequence | LastRecoveryPointTimeUtc | LastCycleUtc | LastError | LastJobId | AgentHost | ReplicationGroup | AppConsistencyScript | AppConsistencyScriptSha256 | QmpSocketPath | LastAppConsistentPointTimeUtc | LastPointConsistency | CaptureMethod | ReachableConsistency | FreezeHeldByJobId | CurrentRpo | ReplicationHealth | VaultLocation | TestFailover | LastTestFailover | Failover | Reverse | ExclusiveOperation | CycleInProgressJobId | ActiveJobPercent | ActiveJobOperation | ActiveLocation | NeedsResync | AllowedOperations | Health' }
        @{ Type = 'AsrRecoveryPoint'; Source = 'Get-AsrRecoveryPoint -Item m'
            Table = 'Item | Sequence | RecoveryPointTime | Consistency | Disks | ChangedMB | StoredMB'
            List = 'FormatVersion | PointId | Sequence | ParentSequence | ItemId | ItemName | RecoveryPointTimeUtc | Consistency | ConsistencyEvidence | JobId | Packs | Disks | GroupPointId | ReplicationGroup | Tracker | IndexGeneration | IndexRelativeToParent | AttemptId | PackAttempts | VaultLocation | ChangedBytes | StoredBytes | DiskCount | Time' }
        @{ Type = 'AsrGroupRecoveryPoint'; Source = 'New-GroupPointForView'
            Table = 'ReplicationGroup | Sequence | RecoveryPointTime | Consistency | Members'
            List = 'GroupPointId | ReplicationGroup | Sequence | RecoveryPointTimeUtc | Consistency | Members | VaultLocation | MemberNames' }
        @{ Type = 'RecoveryPointVerification'; Source = 'Get-AsrRecoveryPoint -Item m -Latest | Test-AsrRecoveryPoint'
            Table = 'Item | Sequence | RecoveryPointTime | Consistency | Verified | Disks | FailedDisks'
            List = 'ItemName | Sequence | RecoveryPointTimeUtc | Consistency | Verified | Disks | Error' }
        @{ Type = 'AsrJob'; Source = 'Get-AsrJob'
            Table = 'Id | Operation | Target | State | % | Started | Duration | Status'
            List = 'Id | Operation | TargetName | TargetId | State | PercentComplete | StatusMessage | StartTimeUtc | EndTimeUtc | Errors | Result | Tasks | Plan | OwnerProcessId | OwnerProcessStartUtc | OwnerHost | StartedBy | VaultLocation | IsFinished | BootReadiness | Duration | AllowedActions | ShortId' }
        @{ Type = 'AsrAgentRecord'; Source = 'Get-AsrAgent'
            Table = 'HostName | State | PID | Machine | LastHeartbeat | Items | MemoryMB | ActiveCycles | ProtectedItems'
            List = 'HostName | MachineName | ProcessId | Version | StartedUtc | LastHeartbeatUtc | StoppedUtc | RecordedState | HeartbeatIntervalSeconds | ProtectedItems | ActiveCycles | CyclesSucceeded | CyclesFailed | LastError | WorkingSetBytes | VaultLocation | State' }
        @{ Type = 'AsrEvent'; Source = 'Get-AsrEvent'
            Table = 'Time | Severity | EventType | Item / Group | Message'
            List = 'Id | TimeUtc | Severity | EventType | ItemName | ReplicationGroup | AgentHost | JobId | Message' }
        @{ Type = 'AsrLocalTarget'; Source = 'New-AsrLocalTarget $targetPath'
            Table = 'Kind | Format | Path'
            List = 'Path | Kind | Location | Format' }
        @{ Type = 'AsrAzureTarget'; Source = 'New-AsrAzureTarget -SubscriptionId 00000000-0000-0000-0000-0000000000aa -ResourceGroupName dr-rg -Location westeurope -SubnetId /subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/prod -AccessToken fake-token'
            Table = 'Kind | Region | ResourceGroup | VMSize | Credential | Subnet'
            List = 'Kind | Cloud | SubscriptionId | ResourceGroupName | Region | SubnetId | TestSubnetId | VmSize | DiskSku | Zone | CredentialKind' }
        @{ Type = 'PlanTask'; Source = '(Get-AsrJob -Id $planJob).Tasks'
            Table = '# | Kind | Name | State | Started | Ended | Error / Output'
            List = 'Index | Kind | Name | GroupId | Item | StepId | State | StartTimeUtc | EndTimeUtc | Error | Output | Boot' }
    )
}

Describe 'Host: Ctrl+C (SIGINT) in a real pwsh stops a foreground cycle cleanly' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule

        function Write-RandomDisk([string]$Path, [long]$SizeBytes, [int]$Seed) {
            <# Every byte random: a cycle after a full rewrite sends the whole disk, so it lasts long enough to interrupt. #>
            $rng = [Random]::new($Seed); $buffer = [byte[]]::new(1MB)
            $fs = [IO.FileStream]::new($Path, [IO.FileMode]::Create, [IO.FileAccess]::Write)
            try { for ($off = 0L; $off -lt $SizeBytes; $off += $buffer.Length) { $rng.NextBytes($buffer); $fs.Write($buffer, 0, $buffer.Length) } } finally { $fs.Dispose() }
        }

        # pwsh's ConsoleHost maps SIGINT (Console.CancelKeyPress) to stopping the running pipeline, also in a
        # -NonInteractive child. A process started with SIGINT ignored (nohup, a background job of a script) passes
        # SIG_IGN on to its children and .NET keeps ignoring it, so the child is started through
        # `env --default-signal=INT` (GNU coreutils 8.31+), which restores the default first.
        $sigintIgnoredHere = ([Convert]::ToUInt64((([IO.File]::ReadAllLines('/proc/self/status') | Where-Object { $_ -like 'SigIgn:*' }) -split '\s+')[1], 16) -band 2) -ne 0
        $envResetsSignals = $false
        try { $envResetsSignals = (Invoke-Native 'env' @('--default-signal=INT', 'true')) -eq '' } catch { }
        $skipReason = if (-not $envResetsSignals -and $sigintIgnoredHere) { 'SIGINT is ignored in this process and its children, and env --default-signal (GNU coreutils 8.31+) is not there to restore it' }
        if ($skipReason) { return }

        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'm.img'
        Write-RandomDisk $disk 384MB 1
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name m -Disk $disk -Policy p | Out-Null
        Write-RandomDisk $disk 384MB 2   # a full rewrite: the next cycle sends all 384 MiB
        $expected = Get-AsrSampleHash $disk
        $pointsBefore = @(Get-AsrRecoveryPoint -Item m).Count
        $item = Get-AsrProtectedItem m

        # The foreground cycle in another real pwsh: `Get-AsrProtectedItem m | Invoke-AsrReplication`, as typed at a prompt.
        $pwsh = @(Get-PwshCommand)
        $psi = [Diagnostics.ProcessStartInfo]::new($(if ($envResetsSignals) { 'env' } else { $pwsh[0] }))
        $arguments = @(if ($envResetsSignals) { '--default-signal=INT'; $pwsh[0] }) + @($pwsh | Select-Object -Skip 1) +
            @('-NoProfile', '-NonInteractive', '-Command', "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Get-AsrProtectedItem m | Invoke-AsrReplication; 'AFTER THE CYCLE'")
        foreach ($a in $arguments) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($psi)
        $child = [pscustomobject]@{ Process = $process; Out = $process.StandardOutput.ReadToEndAsync(); Err = $process.StandardError.ReadToEndAsync() }

        # Interrupt once the cycle is well under way: it has written packs of point 2 to the vault.
        $point2Packs = "items/$($item.Id)/packs/000000000002"  # point 2: "<seq>.<attempt>-<n>.pack"
        $deadline = [DateTime]::UtcNow.AddSeconds(180)
        $underWay = $false
        while (-not $process.HasExited -and [DateTime]::UtcNow -lt $deadline) {
            if (@(Get-VaultObjectKeys $vaultPath $point2Packs).Count -gt 0) { $underWay = $true; break }
            [Threading.Thread]::Sleep(20)
        }
        if ($underWay) { Invoke-Native '/bin/sh' @('-c', "kill -INT $($process.Id)") | Out-Null }   # pwsh's `kill` is Stop-Process
        $run = Wait-PwshProcess $child 180
    }
    AfterAll {
        if ($process -and -not $process.HasExited) { $process.Kill($true); $process.WaitForExit() }
        if ($dir) { Disconnect-AsrVault; Remove-TestDirectory $dir }
    }

    It 'the cycle was interrupted while it wrote data; pwsh stopped the pipeline and ended normally' {
        if ($skipReason) { Set-ItResult -Skipped -Because $skipReason; return }
        $underWay | Should -BeTrue -Because 'the cycle must still run when SIGINT arrives (make the disk larger if it finished first)'
        # A stopped pipeline makes `pwsh -Command` exit 1; a process killed by the signal would exit 130 and leave the job Interrupted.
        $run.ExitCode | Should -Be 1 -Because "pwsh handles SIGINT as Ctrl+C. stderr: $($run.Error)"
        $run.Output | Should -Not -Match 'AFTER THE CYCLE' -Because 'Ctrl+C stops the whole command line'
    }

    It 'the job record shows Cancelled' {
        if ($skipReason) { Set-ItResult -Skipped -Because $skipReason; return }
        $job = @(Get-AsrJob -TargetName m -Operation ReplicationCycle)
        $job.Count | Should -Be 1
        $job[0].State | Should -Be 'Cancelled'
        $job[0].StatusMessage | Should -Match 'cancelled'
        $job[0].OwnerProcessId | Should -Be $process.Id
    }

    It 'no partial point is published' {
        if ($skipReason) { Set-ItResult -Skipped -Because $skipReason; return }
        @(Get-AsrRecoveryPoint -Item m).Count | Should -Be $pointsBefore
        (Get-AsrProtectedItem m).State | Should -Be 'Protected'
    }

    It 'the next cycle succeeds and its point exports equal to the disk by SHA-256' {
        if ($skipReason) { Set-ItResult -Skipped -Because $skipReason; return }
        $next = Get-AsrProtectedItem m | Invoke-AsrReplication
        $next.State | Should -Be 'Succeeded'
        @(Get-AsrRecoveryPoint -Item m).Count | Should -Be ($pointsBefore + 1)
        $export = Get-AsrRecoveryPoint -Item m -Latest | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'restored')
        $export.State | Should -Be 'Succeeded'
        Get-AsrSampleHash (Join-TestPath $dir 'restored/m.img') | Should -Be $expected
    }
}

Describe 'Host: every output type renders through its format view in a real pwsh' -Tag Host -ForEach @(@{ AllViews = $viewCases }) {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines m
        Get-AsrProtectedItem m | Invoke-AsrReplication | Out-Null
        # A plan run waiting at its pause: a job with tasks (nothing is failed over).
        $plan = Join-TestPath $dir 'approve.ps1'
        [IO.File]::WriteAllText($plan, "AsrRecoveryPlan 'approve' { AsrPause 'Approve'; AsrGroup 1 -Items m }")
        $planJob = (Start-AsrRecoveryPlan -Path $plan -FailoverType Unplanned -Target (New-AsrLocalTarget (Join-TestPath $dir 'recovery')) -Confirm:$false).Id
        # A real agent, started and stopped: its record and its AgentStarted/AgentStopped events.
        $agentHost = 'fmt-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
        Start-AsrAgent -HostName $agentHost -LogPath (Join-TestPath $dir 'agent.log') | Out-Null
        Stop-AsrAgent -HostName $agentHost | Out-Null
        Disconnect-AsrVault

        # The child writes `Format-Table | Out-String -Width 200` and `Format-List` of each type to files.
        $outDir = Join-TestPath $dir 'rendered'
        [void][IO.Directory]::CreateDirectory($outDir)
        $runner = Join-TestPath $dir 'render.ps1'
        [IO.File]::WriteAllText($runner, @'
param([string]$VaultPath, [string]$OutDir, [string]$PlanJob, [string]$TargetPath, [string]$CasesPath)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
Connect-AsrVault -Path $VaultPath
$planJob = [Guid]$PlanJob; $targetPath = $TargetPath
function New-GroupPointForView {
    # No cheap way to a real group point (agents take them): one made from the type Get-AsrRecoveryPoint declares.
    $type = ((Get-Command Get-AsrRecoveryPoint).OutputType | Where-Object Name -like '*AsrGroupRecoveryPoint').Type
    $point = [Activator]::CreateInstance($type)
    $point.ReplicationGroup = 'trio'; $point.Sequence = 3; $point.RecoveryPointTimeUtc = [DateTimeOffset]::UtcNow
    foreach ($name in 'g0', 'g1') {
        $member = [Activator]::CreateInstance($point.Members.GetType().GetGenericArguments()[0])
        $member.ItemName = $name; $member.PointSequence = 5
        $point.Members.Add($member)
    }
    $point
}
foreach ($case in (Get-Content -Raw -LiteralPath $CasesPath | ConvertFrom-Json)) {
    $objects = @(& ([scriptblock]::Create($case.Source)))
    [IO.File]::WriteAllText([IO.Path]::Combine($OutDir, "$($case.Type).types"), (($objects | ForEach-Object { $_.PSObject.TypeNames[0] }) -join "`n"))
    [IO.File]::WriteAllText([IO.Path]::Combine($OutDir, "$($case.Type).table"), ($objects | Format-Table | Out-String -Width 200))
    [IO.File]::WriteAllText([IO.Path]::Combine($OutDir, "$($case.Type).list"), ($objects | Select-Object -First 1 | Format-List | Out-String -Width 200))
    # -DisplayError shows a failing view script as #ERR in its cell (plain Format-Table leaves the cell empty).
    [IO.File]::WriteAllText([IO.Path]::Combine($OutDir, "$($case.Type).errors"), ($objects | Format-Table -DisplayError | Out-String -Width 200))
}
'@)
        $casesPath = Join-TestPath $dir 'cases.json'
        [IO.File]::WriteAllText($casesPath, (ConvertTo-Json -InputObject @($AllViews | ForEach-Object { @{ Type = $_['Type']; Source = $_['Source'] } })))
        $run = Invoke-PwshProcess "& '$runner' -VaultPath '$vaultPath' -OutDir '$outDir' -PlanJob '$planJob' -TargetPath '$(Join-TestPath $dir 'target')' -CasesPath '$casesPath'"

        function Read-Rendered([string]$Type, [string]$Kind) { [IO.File]::ReadAllText((Join-TestPath $outDir "$Type.$Kind")) }
        function Get-TableLabels([string]$Text) {
            <# The column labels: the header text above each run of dashes in the line under it (labels may contain spaces). #>
            $lines = @($Text -split "`r?`n")
            $at = [Array]::FindIndex($lines, [Predicate[string]] { param($l) $l -match '^\s*-+(\s+-+)*\s*$' })
            if ($at -lt 1) { return "(no table header in: $Text)" }
            $header = $lines[$at - 1].PadRight($lines[$at].Length)
            (@([regex]::Matches($lines[$at], '-+') | ForEach-Object { $header.Substring($_.Index, $_.Length).Trim() })) -join ' | '
        }
        function Get-ListLabels([string]$Text) {
            <# The property labels of the first record (continuation lines of wrapped values start with blanks). #>
            (@($Text -split "`r?`n" | Where-Object { $_ -match '^\S[^:]*?\s*: ' -or $_ -match '^\S[^:]*?\s*:$' } | ForEach-Object { ($_ -split ':', 2)[0].Trim() })) -join ' | '
        }
    }
    AfterAll {
        # Stopped already, unless setup failed half-way.
        try { if ($vaultPath -and $agentHost) { Stop-AsrAgent -Vault $vaultPath -HostName $agentHost -Force -ErrorAction SilentlyContinue | Out-Null } } catch { }
        Remove-TestDirectory $dir
    }

    It 'the child pwsh rendered every type without an error' {
        $run.ExitCode | Should -Be 0 -Because $run.Error
        $run.Error | Should -BeNullOrEmpty
    }

    It 'every type named in an exported cmdlet''s [OutputType] has a table view' {
        $missing = [Collections.Generic.List[string]]::new()
        foreach ($command in (Get-Module AsrModule).ExportedCmdlets.Values) {
            foreach ($output in $command.OutputType) {
                $type = $output.Type
                if ($null -eq $type -or -not $type.FullName.StartsWith('AsrModule.', [StringComparison]::Ordinal)) { continue }
                $views = @(Get-FormatData -TypeName $type.FullName | ForEach-Object { $_.FormatViewDefinition } | Where-Object { $_.Control -is [System.Management.Automation.TableControl] })
                if ($views.Count -eq 0) { $missing.Add("$($type.FullName) (output of $($command.Name))") }
            }
        }
        ($missing | Sort-Object -Unique) -join [Environment]::NewLine | Should -BeNullOrEmpty
    }

    It '<Type>: the objects are the module''s type and Format-Table shows the view''s columns' -ForEach $viewCases {
        $typeNames = @((Read-Rendered $Type 'types') -split "`n")
        $typeNames.Count | Should -BeGreaterThan 0
        @($typeNames | Where-Object { $_ -notlike "AsrModule.*.$Type" }) | Should -BeNullOrEmpty
        $rendered = Read-Rendered $Type 'table'   # (not $table: PowerShell names are case-insensitive, and $Table is the expectation)
        Get-TableLabels $rendered | Should -BeExactly $Table -Because "the view's header as rendered:`n$rendered"
    }

    It '<Type>: Format-List shows the expected labels' -ForEach $viewCases {
        $rendered = Read-Rendered $Type 'list'
        Get-ListLabels $rendered | Should -BeExactly $List -Because "Format-List as rendered:`n$rendered"
    }

    It '<Type>: no view script fails and no exception text is rendered' -ForEach $viewCases {
        foreach ($kind in 'table', 'list', 'errors') {
            $text = Read-Rendered $Type $kind
            $text | Should -Not -Match '#ERR' -Because "a view script failed ($kind):`n$text"
            $text | Should -Not -MatchExactly 'Exception' -Because "($kind):`n$text"
            $text.Trim() | Should -Not -BeNullOrEmpty
        }
    }
}

Describe 'Host: Get-Help -Full of every exported cmdlet in a fresh pwsh' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $expectedCmdlets = @((Get-Module AsrModule).ExportedCmdlets.Keys | Sort-Object)
        $dir = New-TestDirectory
        $outPath = Join-TestPath $dir 'help.json'
        # The module imported by name in a new process: help comes from the packaged MAML beside the cmdlets' assembly.
        $run = Invoke-PwshProcess @"
`$ErrorActionPreference = 'Stop'
Import-Module AsrModule
`$help = foreach (`$name in (Get-Module AsrModule).ExportedCmdlets.Keys | Sort-Object) {
    `$h = Get-Help -Name `$name -Full
    [pscustomobject]@{
        Name = `$name
        Synopsis = "`$(`$h.Synopsis)".Trim()
        Examples = @(`$h.examples.example | Where-Object { `$null -ne `$_ -and "`$(`$_.code)".Trim() }).Count
        Text = `$h | Out-String -Width 200
    }
}
ConvertTo-Json -InputObject @(`$help) -Depth 3 | Set-Content -LiteralPath '$outPath'
"@
        $help = @{}
        if ([IO.File]::Exists($outPath)) { foreach ($h in ([IO.File]::ReadAllText($outPath) | ConvertFrom-Json)) { $help[$h.Name] = $h } }
    }
    AfterAll { Remove-TestDirectory $dir }

    It 'the fresh pwsh imported the module by name and read help for every exported cmdlet' {
        $run.ExitCode | Should -Be 0 -Because $run.Error
        $run.Error | Should -BeNullOrEmpty
        @($help.Keys | Sort-Object) | Should -Be $expectedCmdlets
    }

    It 'every cmdlet''s help has a real synopsis (not the generated syntax)' {
        $failures = foreach ($name in $expectedCmdlets) {
            $synopsis = "$($help[$name].Synopsis)"
            if ($synopsis -eq '' -or $synopsis.StartsWith($name, [StringComparison]::OrdinalIgnoreCase)) { "${name}: synopsis '$synopsis'" }
        }
        $failures -join [Environment]::NewLine | Should -BeNullOrEmpty
    }

    It 'every cmdlet''s help has at least one example with code' {
        $failures = foreach ($name in $expectedCmdlets) { if ($help[$name].Examples -lt 1) { "${name}: no example" } }
        $failures -join [Environment]::NewLine | Should -BeNullOrEmpty
    }

    It 'no help says "Get-Help cannot find"; the full text shows the synopsis and the examples' {
        $failures = foreach ($name in $expectedCmdlets) {
            $text = "$($help[$name].Text)"
            if ($text -match 'Get-Help cannot find') { "${name}: Get-Help cannot find its help" }
            if (-not ($text -replace '\s+', ' ').Contains(($help[$name].Synopsis -replace '\s+', ' '))) { "${name}: the synopsis is not in the -Full text" }
            if ($text -notmatch '-+ Example 1\b') { "${name}: no 'Example 1' in the -Full text" }
        }
        $failures -join [Environment]::NewLine | Should -BeNullOrEmpty
    }
}

Describe 'Host: tab completion of items, policies, recovery points and jobs (TabExpansion2)' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines web01, web02, db01
        New-AsrPolicy -Name gold | Out-Null
        Get-AsrProtectedItem web01 | Invoke-AsrReplication | Out-Null   # web01 has points 1 and 2
        $jobIds = @(Get-AsrJob | Sort-Object StartTimeUtc -Descending | ForEach-Object { $_.Id.ToString() })

        function Get-Completion([string]$InputScript) {
            $r = TabExpansion2 -inputScript $InputScript -cursorColumn $InputScript.Length
            @($r.CompletionMatches)
        }
        function Get-CompletionText([string]$InputScript) { @(Get-Completion $InputScript | ForEach-Object CompletionText) }
    }
    AfterAll {
        Set-Location ([IO.Path]::GetTempPath())
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'item names: <Line>' -ForEach @(
        @{ Line = 'Get-AsrProtectedItem -Name w'; Expected = @('web01', 'web02') }
        @{ Line = 'Get-AsrProtectedItem '; Expected = @('db01', 'web01', 'web02') }
        @{ Line = 'Get-AsrProtectedItem -Name ''we'; Expected = @('web01', 'web02') }
        @{ Line = 'Invoke-AsrReplication -Name d'; Expected = @('db01') }
        @{ Line = 'Get-AsrRecoveryPoint -Item web0'; Expected = @('web01', 'web02') }
        @{ Line = 'Set-AsrProtectedItem -Name db'; Expected = @('db01') }
        @{ Line = 'Get-AsrEvent -ProtectedItem x'; Expected = @() }
    ) {
        Get-CompletionText $Line | Should -Be $Expected
    }

    It 'policies: <Line>' -ForEach @(
        @{ Line = 'Enable-AsrReplication -Name n -Disk d -Policy '; Expected = @('gold', 'p') }
        @{ Line = 'Set-AsrProtectedItem -Name web01 -Policy g'; Expected = @('gold') }
        @{ Line = 'Get-AsrPolicy '; Expected = @('gold', 'p') }
        @{ Line = 'Remove-AsrPolicy -Name p'; Expected = @('p') }
    ) {
        Get-CompletionText $Line | Should -Be $Expected
    }

    It 'recovery points: <Line>' -ForEach @(
        @{ Line = 'Get-AsrRecoveryPoint -Item web01 -Sequence '; Expected = @('2', '1') }
        @{ Line = 'Start-AsrTestFailover -Name web01 -RecoveryPoint '; Expected = @('Latest', 'LatestProcessed', 'LatestAppConsistent', '2', '1') }
        @{ Line = 'Get-AsrProtectedItem web01 | Start-AsrTestFailover -RecoveryPoint '; Expected = @('Latest', 'LatestProcessed', 'LatestAppConsistent', '2', '1') }
        @{ Line = 'Get-AsrProtectedItem -Name web01 | Start-AsrFailover -RecoveryPoint LatestA'; Expected = @('LatestAppConsistent') }
        @{ Line = 'Switch-AsrRecoveryPoint -Name web01 -RecoveryPoint 1'; Expected = @('1') }
        @{ Line = 'Start-AsrTestFailover -Name db01 -RecoveryPoint '; Expected = @('Latest', 'LatestProcessed', 'LatestAppConsistent', '1') }
        @{ Line = 'Start-AsrTestFailover -Name nosuch -RecoveryPoint Latest'; Expected = @('Latest', 'LatestProcessed', 'LatestAppConsistent') }
    ) {
        Get-CompletionText $Line | Should -Be $Expected
    }

    It 'job ids, newest first: <Line>' -ForEach @(
        @{ Line = 'Get-AsrJob -Id ' }
        @{ Line = 'Wait-AsrJob -Id ' }
        @{ Line = 'Stop-AsrJob -Id ' }
        @{ Line = 'Resume-AsrJob -Id ' }
        @{ Line = 'Restart-AsrJob -Id ' }
    ) {
        Get-CompletionText $Line | Should -Be $jobIds
    }

    It 'a job id completes from its first characters and the list shows what the job is' {
        $job = Get-AsrJob -Id $jobIds[-1]
        $matches = @(Get-Completion "Get-AsrJob -Id $($jobIds[-1].Substring(0, 8))")
        $matches.CompletionText | Should -Be @($jobIds[-1])
        $matches[0].ListItemText | Should -Match "$($job.Operation) $($job.TargetName)"
        $matches[0].ToolTip | Should -Match $job.State
    }

    It 'results are parameter values with a tooltip' {
        foreach ($m in Get-Completion 'Start-AsrTestFailover -Name web01 -RecoveryPoint ') {
            $m.ResultType | Should -Be 'ParameterValue'
            $m.ToolTip | Should -Not -BeNullOrEmpty
        }
        (Get-Completion 'Get-AsrRecoveryPoint -Item web01 -Sequence 2')[0].ToolTip | Should -Match 'Point 2 of ''web01'''
    }

    It 'reads the vault given by -Vault (a path, relative too, or a vault object) when none is connected' {
        $vault = Get-AsrVault
        Disconnect-AsrVault
        try {
            Get-CompletionText 'Get-AsrProtectedItem -Name w' | Should -BeNullOrEmpty -Because 'no vault is connected'
            Get-CompletionText "Get-AsrProtectedItem -Vault '$vaultPath' -Name w" | Should -Be @('web01', 'web02')
            Get-CompletionText "Get-AsrPolicy -Vault $vaultPath -Name g" | Should -Be @('gold')
            Push-Location $dir
            try { Get-CompletionText 'Get-AsrRecoveryPoint -Vault ./vault -Item web01 -Sequence ' | Should -Be @('2', '1') }
            finally { Pop-Location }
            Get-CompletionText 'Get-AsrJob -Vault $vault -Id ' | Should -Be $jobIds
        } finally { $vault | Connect-AsrVault }
    }

    It 'never fails: a -Vault that is not a vault, or an unknown item, yields nothing' {
        $errorsBefore = $Error.Count
        Get-CompletionText "Get-AsrProtectedItem -Vault '$dir' -Name " | Should -BeNullOrEmpty
        Get-CompletionText "Get-AsrProtectedItem -Vault '$(Join-TestPath $dir 'missing')' -Name " | Should -BeNullOrEmpty
        Get-CompletionText 'Get-AsrRecoveryPoint -Item nosuch -Sequence ' | Should -BeNullOrEmpty
        $Error.Count | Should -Be $errorsBefore
    }
}

Describe 'Host: -WhatIf and -Confirm:$false on every state-changing cmdlet, in a non-interactive pwsh' -Tag Host -ForEach @(@{ AllCases = $shouldProcessCases; AllConfirmCases = $confirmCases }) {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines prot, fo, com, rep, drill, planned
        New-AsrPolicy -Name spare | Out-Null
        Get-AsrProtectedItem prot | Invoke-AsrReplication | Out-Null   # prot has points 1 and 2
        New-AsrSampleDisk -Path (Join-TestPath $dir 'newm.img') -SizeBytes 1MB | Out-Null
        # Items in each state a High-impact cmdlet starts from: FailedOver, Committed, Reprotected, TestFailedOver.
        $recovery = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
        foreach ($name in 'fo', 'com', 'rep') { Get-AsrProtectedItem $name | Start-AsrFailover -Target $recovery -Confirm:$false | Out-Null }
        foreach ($name in 'com', 'rep') { Get-AsrProtectedItem $name | Complete-AsrFailover -Confirm:$false | Out-Null }
        Get-AsrProtectedItem rep | Update-AsrProtectionDirection -Confirm:$false | Out-Null
        # The drill is started by a process that then exits (so no process of this test keeps serving it).
        $drillRun = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Get-AsrProtectedItem drill | Start-AsrTestFailover -Target (New-AsrLocalTarget '$(Join-TestPath $dir 'drills')') | Out-Null"
        # Plan runs: one waiting at its pause (Stop-/Resume-AsrJob), one failed at its first step (Restart-AsrJob).
        $plans = @{ 'approve' = "AsrRecoveryPlan 'approve' { AsrPause 'Approve'; AsrGroup 1 -Items planned }"
            'gate' = "AsrRecoveryPlan 'gate' { AsrStep 'Gate' -Before { throw 'not ready' }; AsrGroup 1 -Items planned }"
            'drill-plan' = "AsrRecoveryPlan 'drill-plan' { AsrGroup 1 -Items planned }" }
        foreach ($p in $plans.Keys) { [IO.File]::WriteAllText((Join-TestPath $dir "$p.ps1"), $plans[$p]) }
        $suspendedJob = (Start-AsrRecoveryPlan -Path (Join-TestPath $dir 'approve.ps1') -FailoverType Unplanned -Target $recovery -Confirm:$false).Id
        $failedJob = (Start-AsrRecoveryPlan -Path (Join-TestPath $dir 'gate.ps1') -FailoverType Unplanned -Target $recovery -Confirm:$false -ErrorAction SilentlyContinue -WarningAction SilentlyContinue).Id
        $states = @{}
        foreach ($i in Get-AsrProtectedItem) { $states[$i.Name] = "$($i.State)" }
        Disconnect-AsrVault

        # One child runs every case in order; per case it writes markers around what the host printed, and whether
        # the vault changed (-WhatIf) or which states resulted (-Confirm:$false). Nothing in it can prompt
        # (-NonInteractive): a prompt would fail the case at once rather than hang.
        $runner = Join-TestPath $dir 'runner.ps1'
        [IO.File]::WriteAllText($runner, @'
param([string]$Helpers, [string]$VaultPath, [string]$Dir, [string]$CasesPath, [string]$Mode, [string]$SuspendedJob, [string]$FailedJob)
$ErrorActionPreference = 'Stop'
. $Helpers
Import-Module AsrModule
Connect-AsrVault -Path $VaultPath
$newVault = Join-Path $Dir 'new-vault'; $exportDir = Join-Path $Dir 'export'; $agentLog = Join-Path $Dir 'whatif-agent.log'
$newDisk = Join-Path $Dir 'newm.img'; $drillPlan = Join-Path $Dir 'drill-plan.ps1'
$suspendedJob = [Guid]$SuspendedJob; $failedJob = [Guid]$FailedJob
$target = New-AsrLocalTarget (Join-Path $Dir $(if ($Mode -eq 'WhatIf') { 'whatif-target' } else { 'recovery' }))
foreach ($case in (Get-Content -Raw -LiteralPath $CasesPath | ConvertFrom-Json)) {
    $before = Get-VaultSnapshot $VaultPath
    Write-Host "<<<BEGIN $($case.Name)>>>"
    $jobState = 'none'
    try {
        $command = $case.Command + $(if ($Mode -eq 'WhatIf') { ' -WhatIf' } else { ' -Confirm:$false' })
        $out = @(& ([scriptblock]::Create($command)))
        $job = $out | Where-Object { $_.PSObject.TypeNames[0] -like '*.AsrJob' } | Select-Object -Last 1
        if ($job) { $jobState = "$($job.State)" }
        if ($out.Count -gt 0 -and $Mode -eq 'WhatIf') { Write-Host "OUTPUT: $($out.Count) object(s)" }
    } catch {
        Write-Host "ERROR $($_.FullyQualifiedErrorId): $($_.Exception.Message)"
    }
    Write-Host "<<<END $($case.Name)>>>"
    Write-Host "RESULT unchanged:$($case.Name)=$($before -eq (Get-VaultSnapshot $VaultPath))"
    Write-Host "RESULT job:$($case.Name)=$jobState"
    if ($case.Item) {
        $item = Get-AsrProtectedItem -Name $case.Item -ErrorAction SilentlyContinue
        Write-Host "RESULT item:$($case.Name)=$(if ($item) { $item.State } else { 'gone' })"
    }
}
'@)
        function Invoke-Runner([string]$Mode, $RunCases) {
            $casesPath = Join-TestPath $dir "$Mode.json"
            [IO.File]::WriteAllText($casesPath, (ConvertTo-Json -InputObject @($RunCases | ForEach-Object { @{ Name = $_['Name']; Command = $_['Command']; Item = $_['Item'] } })))
            $r = Invoke-PwshProcess ("& '$runner' -Helpers '$([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))' -VaultPath '$vaultPath' -Dir '$dir' " +
                "-CasesPath '$casesPath' -Mode $Mode -SuspendedJob $suspendedJob -FailedJob $failedJob") -TimeoutSeconds 300
            $printed = @{}
            foreach ($m in [regex]::Matches($r.Output, '(?s)<<<BEGIN (?<name>[^>]+)>>>\r?\n(?<text>.*?)<<<END \k<name>>>>')) { $printed[$m.Groups['name'].Value] = $m.Groups['text'].Value }
            [pscustomobject]@{ Run = $r; Printed = $printed }
        }
        $snapshotBefore = Get-VaultSnapshot $vaultPath
        $whatIf = Invoke-Runner 'WhatIf' $AllCases
        $snapshotAfterWhatIf = Get-VaultSnapshot $vaultPath
        $agentsAfterWhatIf = @(Get-AsrAgent -Vault $vaultPath)
        $confirm = Invoke-Runner 'Confirm' $AllConfirmCases
    }
    AfterAll {
        # -WhatIf started no agent; should a broken Start-AsrAgent have started one, it is stopped here.
        try { foreach ($a in @(Get-AsrAgent -Vault $vaultPath -ErrorAction SilentlyContinue | Where-Object State -eq 'Running')) { Stop-AsrAgent -Vault $vaultPath -HostName $a.HostName -Force -ErrorAction SilentlyContinue | Out-Null } } catch { }
        Remove-TestDirectory $dir
    }

    It 'the vault was prepared: items in every state the cases start from' {
        $drillRun.ExitCode | Should -Be 0 -Because $drillRun.Error
        $states['prot'] | Should -Be 'Protected'
        $states['fo'] | Should -Be 'FailedOver'
        $states['com'] | Should -Be 'Committed'
        $states['rep'] | Should -Be 'Reprotected'
        $states['drill'] | Should -Be 'TestFailedOver'
        (Get-AsrJob -Vault $vaultPath -Id $suspendedJob).State | Should -Be 'Suspended'
        (Get-AsrJob -Vault $vaultPath -Id $failedJob).State | Should -Be 'Failed'
    }

    It 'the table has a working invocation for every exported cmdlet that supports ShouldProcess' {
        $supporting = @((Get-Module AsrModule).ExportedCmdlets.Values | Where-Object { $_.Parameters.ContainsKey('WhatIf') } | ForEach-Object Name | Sort-Object)
        $missing = @($supporting | Where-Object { $_ -notin $AllCases.Name })
        $missing -join ', ' | Should -BeNullOrEmpty -Because 'every ShouldProcess cmdlet needs a row in $shouldProcessCases'
        @($AllCases.Name | Where-Object { $_ -notin $supporting }) | Should -BeNullOrEmpty
    }

    It 'every ConfirmImpact High cmdlet has a -Confirm:$false case' {
        $high = @((Get-Module AsrModule).ExportedCmdlets.Values | Where-Object {
                @($_.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $true))[0].ConfirmImpact -eq 'High'
            } | ForEach-Object Name | Sort-Object)
        $high.Count | Should -BeGreaterThan 0
        @($AllConfirmCases.Name | Sort-Object) | Should -Be $high
    }

    It '<Name> -WhatIf prints "What if:" naming its target, and changes nothing' -ForEach $shouldProcessCases {
        $whatIf.Run.ExitCode | Should -Be 0 -Because $whatIf.Run.Error
        $printed = $whatIf.Printed[$Name]
        $printed | Should -Not -BeNullOrEmpty -Because "the runner printed:`n$($whatIf.Run.Output)`n$($whatIf.Run.Error)"
        $printed | Should -Not -Match '(?m)^ERROR ' -Because 'the command must reach its ShouldProcess call'
        $printed | Should -Match ('What if: Performing the operation ".+" on target ".*' + [regex]::Escape($Target))
        $printed | Should -Not -Match 'OUTPUT:' -Because '-WhatIf writes no object'
        $whatIf.Run.Result["unchanged:$Name"] | Should -Be 'True' -Because 'the vault (every object''s hash) must be as before'
        if ($Absent) { Test-Path -LiteralPath (Join-TestPath $dir $Absent) | Should -BeFalse -Because "-WhatIf must not create $Absent" }
    }

    It 'the -WhatIf run as a whole left the vault as it was and started no agent' {
        $snapshotAfterWhatIf | Should -Be $snapshotBefore
        $agentsAfterWhatIf.HostName | Should -Not -Contain 'whatif-agent'
    }

    It '<Name> -Confirm:$false proceeds without a prompt in a non-interactive pwsh: the item ends <State>' -ForEach $confirmCases {
        $confirm.Run.ExitCode | Should -Be 0 -Because $confirm.Run.Error
        $printed = $confirm.Printed[$Name]
        $printed | Should -Not -Match '(?m)^ERROR ' -Because 'it must run without prompting'
        $printed | Should -Not -Match 'What if:|Confirm'
        if ($Name -ne 'Disable-AsrReplication') { $confirm.Run.Result["job:$Name"] | Should -Be 'Succeeded' }
        $confirm.Run.Result["item:$Name"] | Should -Be $State
        $confirm.Run.Result["unchanged:$Name"] | Should -Be 'False' -Because 'it changed the vault'
    }

    It 'without -Confirm:$false, a High-impact cmdlet in a non-interactive pwsh fails at once (it cannot ask) and changes nothing' {
        Get-AsrProtectedItem -Vault $vaultPath fo | Should -Not -BeNullOrEmpty
        $before = Get-VaultSnapshot $vaultPath
        $r = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; try { Get-AsrProtectedItem fo | Disable-AsrReplication -ErrorAction Stop; 'DISABLED' } catch { 'ERRORID=' + `$_.FullyQualifiedErrorId + ' ' + `$_.Exception.Message }" -TimeoutSeconds 120
        $r.ExitCode | Should -Be 0 -Because $r.Error
        $r.Output | Should -Not -Match 'DISABLED'
        $r.Output | Should -Match 'ERRORID=InvalidOperation,AsrModule\.Commands\.DisableAsrReplicationCommand .*NonInteractive'
        Get-VaultSnapshot $vaultPath | Should -Be $before
    }
}

Describe 'Host: Start-Job (PowerShell''s background job, another process) runs a replication cycle' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines m -SizeBytes 8MB
        $disk = Join-TestPath $dir 'm.img'
        Write-AsrSampleChange -Path $disk -Fraction 0.05 -Seed 11 | Out-Null
        $expected = Get-AsrSampleHash $disk
        $job = Start-Job { Import-Module AsrModule; Connect-AsrVault -Path $using:vaultPath; Get-AsrProtectedItem m | Invoke-AsrReplication }
        $finished = $job | Wait-Job -Timeout 300
        $received = @($job | Receive-Job -ErrorAction SilentlyContinue -ErrorVariable jobErrors)
        $jobState = "$($job.State)"
    }
    AfterAll {
        if ($job) { $job | Remove-Job -Force -ErrorAction SilentlyContinue }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'Receive-Job gives the finished job record: Succeeded, run by the background job''s process' {
        $finished | Should -Not -BeNullOrEmpty -Because 'the background job must finish within 300 s'
        $jobState | Should -Be 'Completed'
        $jobErrors | Should -BeNullOrEmpty
        $received.Count | Should -Be 1
        $received[0].PSObject.TypeNames[0] | Should -Be 'Deserialized.AsrModule.Engine.Jobs.AsrJob'
        $received[0].State | Should -Be 'Succeeded'
        $received[0].Operation | Should -Be 'ReplicationCycle'
        $received[0].OwnerProcessId | Should -Not -Be $PID
        (Get-AsrJob -Id $received[0].Id).State | Should -Be 'Succeeded'
    }

    It 'the new point exports equal to the disk by SHA-256' {
        $point = Get-AsrRecoveryPoint -Item m -Latest
        $point.Sequence | Should -Be 2
        $point.JobId | Should -Be $received[0].Id
        (Get-ExportedHashes $point (Join-TestPath $dir 'restored'))['m.img'] | Should -Be $expected
    }
}

Describe 'Host: a runbook run by pwsh -File with $ErrorActionPreference = ''Stop''' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines m
        $destination = Join-TestPath $dir 'restore'
        Disconnect-AsrVault
        $runbook = Join-TestPath $dir 'runbook.ps1'
        [IO.File]::WriteAllText($runbook, @"
`$ErrorActionPreference = 'Stop'
Import-Module AsrModule
Connect-AsrVault -Path '$vaultPath'
`$point = Get-AsrRecoveryPoint -Item m -Latest
`$point | Export-AsrRecoveryPoint -Destination '$destination' | Out-Null
'FIRST EXPORT DONE'
try {
    `$point | Export-AsrRecoveryPoint -Destination '$destination'   # its file exists now
    'NOT REACHED: after the second export'
} catch {
    "CAUGHT `$(`$_.FullyQualifiedErrorId) `$(`$_.CategoryInfo.Category)"
}
'CONTINUED after the catch'
Get-AsrProtectedItem m | Complete-AsrFailover -Confirm:`$false   # no failover to commit: InvalidStateTransition, not caught
'NOT REACHED: after the uncaught error'
"@)
        $pwsh = @(Get-PwshCommand)
        $psi = [Diagnostics.ProcessStartInfo]::new($pwsh[0])
        foreach ($a in @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $runbook)) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($psi)
        $run = Wait-PwshProcess ([pscustomobject]@{ Process = $process; Out = $process.StandardOutput.ReadToEndAsync(); Err = $process.StandardError.ReadToEndAsync() }) 240
    }
    AfterAll {
        if ($process -and -not $process.HasExited) { $process.Kill($true) }
        Remove-TestDirectory $dir
    }

    It 'the try/catch sees a terminating error with the cmdlet''s FullyQualifiedErrorId; the statement after it did not run' {
        $run.Output | Should -Match 'FIRST EXPORT DONE'
        $run.Output | Should -Match 'CAUGHT ExportDestinationExists,AsrModule\.Commands\.ExportAsrRecoveryPointCommand ResourceExists'
        $run.Output | Should -Not -Match 'NOT REACHED: after the second export'
        $run.Output | Should -Match 'CONTINUED after the catch'
    }

    It 'an uncaught failure ends the script there, and pwsh -File exits non-zero' {
        $run.Output | Should -Not -Match 'NOT REACHED: after the uncaught error'
        $run.ExitCode | Should -Not -Be 0
        $run.Error | Should -Match 'Complete-AsrFailover'
        $run.Error | Should -Match 'state Protected'
    }
}
