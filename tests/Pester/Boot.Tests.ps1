# Boot-verified drills (issue #16): a real bootable test machine (tests/Boot: syslinux, the Debian kernel, a busybox
# initramfs, an ext4 data partition whose /marker.txt the machine prints), protected, changed and broken between
# points; drills of each point booted under real QEMU (TCG here, KVM where /dev/kvm exists) straight from the drill's
# NBD exports. Runs on the local backend only: the boot reads the drill's NBD exports, which serve the same bytes from
# either backend (Lifecycle.Tests.ps1 covers drills on both).
# Without the tools the tests are skipped with the reason; under CI=true (.ci/run installs them and fetches the kernel
# package before the tests) they run and fail if they cannot.

Describe 'Boot-verified drills' -Tag Boot, Qemu, Slow {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason qemu-system-x86_64, qemu-img, syslinux, mcopy, mkfs.vfat, sfdisk, debugfs, cpio, busybox, chromium
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $bootScripts = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', 'Boot'))
        $disk = Join-TestPath $dir 'machine.img'
        # Markers unique to this run, so a console line cannot come from another test's machine.
        $run = [Guid]::NewGuid().ToString('N').Substring(0, 8)
        $first = "first-$run"; $second = "second-$run"
        & bash (Join-TestPath $bootScripts 'build-test-machine.sh') $disk $first 2>&1 | Write-Verbose
        if ($LASTEXITCODE -ne 0) { throw "build-test-machine.sh failed ($LASTEXITCODE)" }
        $ready = 'ASR-TEST-MACHINE READY'
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name bootvm -Disk $disk -Policy p -ErrorAction Stop | Out-Null
        $hashes = @{ 1 = Get-AsrSampleHash $disk }
        # Point 2: the same machine with other content; point 3: its boot code overwritten (data partition intact).
        & bash (Join-TestPath $bootScripts 'set-machine-content.sh') $disk $second 2>&1 | Write-Verbose
        if ($LASTEXITCODE -ne 0) { throw "set-machine-content.sh failed ($LASTEXITCODE)" }
        Get-AsrProtectedItem bootvm | Invoke-AsrReplication -ErrorAction Stop | Out-Null
        $hashes[2] = Get-AsrSampleHash $disk
        & bash (Join-TestPath $bootScripts 'break-machine.sh') $disk mbr 2>&1 | Write-Verbose
        if ($LASTEXITCODE -ne 0) { throw "break-machine.sh failed ($LASTEXITCODE)" }
        Get-AsrProtectedItem bootvm | Invoke-AsrReplication -ErrorAction Stop | Out-Null
        $hashes[3] = Get-AsrSampleHash $disk
        $target = New-AsrLocalTarget (Join-TestPath $dir 'drills')
        $planFile = Join-TestPath $dir 'bootplan.ps1'
        # Under TCG on a busy 2-core machine a boot takes 7-20 s; the broken machine never boots, so it gets 10 s.
        $timeout = 180

        function Start-Drill([int]$Sequence) {
            $job = Get-AsrProtectedItem bootvm | Start-AsrTestFailover -RecoveryPoint $Sequence -Target $target -ErrorAction Stop
            $job.State | Should -Be Succeeded
        }
        function Stop-Drill { Get-AsrProtectedItem bootvm | Start-AsrTestFailoverCleanup -Comment 'boot test' -Confirm:$false -ErrorAction Stop | Out-Null }
        function Test-Png([string]$Path) {
            $bytes = [IO.File]::ReadAllBytes($Path)
            $bytes.Length -gt 100 -and [Convert]::ToHexString($bytes, 0, 8) -eq '89504E470D0A1A0A'
        }
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        if ((Get-AsrProtectedItem bootvm -ErrorAction Ignore).State -eq 'TestFailedOver') { Stop-Drill }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'the three points hold three different machines' {
        $hashes[1] | Should -Not -Be $hashes[2]
        $hashes[2] | Should -Not -Be $hashes[3]
        (Get-AsrRecoveryPoint bootvm).Sequence | Should -Be @(1, 2, 3)
    }

    It 'a drill of point 1 boots, shows the content written before replication, answers on its forwarded port, and cannot reach out' {
        Start-Drill 1
        # The network must not reach out: the machine tries the host's 127.0.0.1:47654 through QEMU's gateway and says
        # whether it got through; here something listens there, so "reached" would be an escape.
        $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 47654)
        $listener.Start()
        try {
            $job = Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPattern 'ASR-NET-OUT: \w+' -ReadyPort 8080 -BootTimeoutSeconds $timeout -MemoryMiB 256 -Check {
                param($machine)
                $page = (Invoke-WebRequest "http://127.0.0.1:$($machine.HostPort(8080))/" -TimeoutSec 20).Content
                if ($page -notmatch "ASR-CONTENT: $first") { throw "the machine serves: $page" }
                "served $first"
            }
            $listener.Pending() | Should -BeFalse -Because 'no connection from the drilled machine may reach the host'
        } finally { $listener.Stop() }
        $job.State | Should -Be Succeeded
        $boot = $job.Result.Boot
        $boot.Outcome | Should -Be Passed
        $boot.Booted | Should -BeTrue
        $boot.ReadyAfterSeconds | Should -BeGreaterThan 0
        $boot.Detail | Should -Be 'console: ASR-NET-OUT: blocked; guest port 8080 answers'
        $boot.ConsoleTail | Should -Match 'ASR-TEST-MACHINE READY'
        $boot.CheckResult | Should -Be Passed
        $boot.CheckMessage | Should -Be "served $first"
        $boot.ConsoleTail | Should -Match "ASR-CONTENT: $first"
        $boot.ConsoleTail | Should -Not -Match $second
        $boot.Accelerator | Should -BeIn 'kvm', 'tcg'
        Test-Png $boot.ScreenshotPath | Should -BeTrue
        $job.Result.Boot.Outcome | Should -Be Passed
        $job.Result.Verified | Should -BeNullOrEmpty -Because 'a boot compares no bytes; Verified says only what a byte comparison showed'
        # Kept on the drill; the machine's writes (it mounts ext4 read-write) stayed in the boot's overlay:
        # the drill's disk is still byte for byte point 1.
        (Get-AsrProtectedItem bootvm).TestFailover.Boot.Outcome | Should -Be Passed
        $verify = Get-AsrProtectedItem bootvm | Test-AsrTestFailover
        $verify.Result.Verified | Should -BeTrue
        Stop-Drill
        $last = (Get-AsrProtectedItem bootvm).LastTestFailover
        $last.Boot.Outcome | Should -Be Passed
        $last.Boot.ReadyAfterSeconds | Should -Be $boot.ReadyAfterSeconds
    }

    It 'a drill of point 2 shows point 2''s content; a check that expects other content fails the job with DrillCheckFailed' {
        Start-Drill 2
        $err = $null
        $job = Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPattern $ready -BootTimeoutSeconds $timeout -MemoryMiB 256 `
            -Check { param($machine) $machine.ConsoleLog -match "ASR-CONTENT: $first" } -ErrorAction SilentlyContinue -ErrorVariable err
        $? | Should -BeFalse
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DrillCheckFailed*'
        $err[0].CategoryInfo.Category | Should -Be InvalidResult
        $job.State | Should -Be Failed
        $job.Result.Boot.Outcome | Should -Be CheckFailed
        $job.Result.Boot.Booted | Should -BeTrue
        $job.Result.Boot.CheckResult | Should -Be Failed
        $job.Result.Boot.ConsoleTail | Should -Match "ASR-CONTENT: $second"
        (Get-AsrProtectedItem bootvm).TestFailover.Boot.Outcome | Should -Be CheckFailed
        # The same drill boots again; with -AsJob the check runs in a runspace of its own (it sees only its argument).
        $again = Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPattern 'ASR-CONTENT: second-' -BootTimeoutSeconds $timeout -MemoryMiB 256 -AsJob `
            -Check { param($machine) if ($machine.ConsoleLog -match 'ASR-CONTENT: (\S+)') { $Matches[1] } else { $false } }
        $done = $again | Wait-AsrJob -TimeoutSeconds ($timeout + 60)
        $done.State | Should -Be Succeeded
        $done.Result.Boot.CheckMessage | Should -Be $second
        $done.Result.Boot.Detail | Should -Be "console: ASR-CONTENT: $second"
        Stop-Drill
    }

    It 'a drill of the broken point 3 fails the boot with DrillBootFailed, a console tail and a screenshot' {
        Start-Drill 3
        $err = $null
        $job = Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPattern $ready -BootTimeoutSeconds 10 -MemoryMiB 256 `
            -Check { throw 'a check must not run when the machine is not ready' } -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DrillBootFailed*'
        $err[0].CategoryInfo.Category | Should -Be OperationTimeout
        $err[0].Exception.Message | Should -Match "no readiness signal within 10 s \(waited for a console line matching '$ready'\)"
        $job.State | Should -Be Failed
        $boot = $job.Result.Boot
        $boot.Outcome | Should -Be NotReady
        $boot.Booted | Should -BeFalse
        $boot.ReadyAfterSeconds | Should -BeNullOrEmpty
        $boot.CheckResult | Should -Be NotRun
        $boot.ConsoleTail | Should -Not -Match 'ASR-TEST-MACHINE'
        Test-Png $boot.ScreenshotPath | Should -BeTrue
        # The data partition is intact: only the boot code was overwritten.
        $verify = Get-AsrProtectedItem bootvm | Test-AsrTestFailover
        $verify.Result.Verified | Should -BeTrue
        Stop-Drill
        (Get-AsrProtectedItem bootvm).LastTestFailover.Boot.Outcome | Should -Be NotReady
    }

    It 'a Test run of a plan with -Boot boots every machine, runs the plan''s checks, and fails the task of a machine that does not come up' {
        $planDisk = Join-TestPath $dir 'planvm.img'
        $third = "third-$run"
        & bash (Join-TestPath $bootScripts 'build-test-machine.sh') $planDisk $third 2>&1 | Write-Verbose
        if ($LASTEXITCODE -ne 0) { throw "build-test-machine.sh failed ($LASTEXITCODE)" }
        Enable-AsrReplication -Name planvm -Disk $planDisk -Policy p -ErrorAction Stop | Out-Null
        # planvm first (its check reads the content from the machine's web page); then bootvm, whose latest point (the one
        # a plan drills) is the broken machine.
        Set-Content -Path $planFile -Value @"
AsrRecoveryPlan 'bootplan' {
    AsrGroup 1 -Items planvm {
        AsrBootCheck -ReadyPattern '$ready' -ReadyPort 8080 -MemoryMiB 256 -BootTimeoutSeconds $timeout -Check {
            param(`$m)
            `$page = (Invoke-WebRequest "http://127.0.0.1:`$(`$m.HostPort(8080))/" -TimeoutSec 20).Content
            if (`$page -match 'ASR-CONTENT: (\S+)') { `$Matches[1] } else { `$false }
        }
    }
    AsrGroup 2 -Items bootvm
    AsrBootCheck -Items bootvm -ReadyPattern '$ready' -MemoryMiB 256 -BootTimeoutSeconds 10
}
"@
        # -Boot goes with a Test run only.
        { Start-AsrRecoveryPlan -Path $planFile -FailoverType Planned -Target $target -Boot -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPlanInvalid*'

        $err = $null
        $job = Start-AsrRecoveryPlan -Path $planFile -FailoverType Test -Target $target -Boot -ErrorAction SilentlyContinue -ErrorVariable err
        $job.State | Should -Be Failed
        $err[0].FullyQualifiedErrorId | Should -BeLike 'RecoveryPlanStepFailed*'
        $planTask = $job.Tasks | Where-Object Item -eq planvm
        $planTask.State | Should -Be Succeeded
        $planTask.Boot.Outcome | Should -Be Passed
        $planTask.Boot.CheckMessage | Should -Be $third
        $planTask.Boot.ReadyAfterSeconds | Should -BeGreaterThan 0
        $brokenTask = $job.Tasks | Where-Object Item -eq bootvm
        $brokenTask.State | Should -Be Failed
        $brokenTask.Error | Should -Match 'did not become ready'
        $brokenTask.Boot.Outcome | Should -Be NotReady
        (Get-AsrProtectedItem planvm).TestFailover.Boot.Outcome | Should -Be Passed
        $cleanup = Start-AsrRecoveryPlan -Path $planFile -FailoverType TestCleanup -ErrorAction Stop
        $cleanup.State | Should -Be Succeeded
        (Get-AsrProtectedItem planvm).State | Should -Be Protected
        (Get-AsrProtectedItem bootvm).LastTestFailover.Boot.Outcome | Should -Be NotReady
    }

    It 'the scheduled drill sample drills, boots, cleans up and reports, and its exit code says whether every machine came up' {
        $sample = [IO.Path]::GetFullPath((Join-TestPath $PSScriptRoot '../../samples/Invoke-AsrScheduledDrill.ps1'))
        $vaultPath = (Get-AsrVault).Location
        $drills = Join-TestPath $dir 'scheduled-drills'
        # The plan of the previous test: planvm boots, bootvm (its latest point is the broken machine) does not.
        $failing = Join-TestPath $dir 'scheduled-failing.html'
        $run = Invoke-PwshProcess -TimeoutSeconds 600 -Command @"
& '$sample' -Vault '$vaultPath' -Plan '$planFile' -DrillDirectory '$drills' -ReportPath '$failing' -Module AsrModule
"RESULT ok=`$?"
"RESULT code=`$LASTEXITCODE"
"@
        $run.Result.code | Should -Be '1'
        $run.Result.ok | Should -Be 'False'
        $run.Output | Should -Match 'planvm: Passed: ready after'
        $run.Output | Should -Match 'bootvm: NotReady: no readiness signal within 10 s'
        $run.Error | Should -Match 'bootvm: Failed: .*did not become ready'
        # Cleaned up, both; the report shows both drills.
        (Get-AsrProtectedItem planvm).State | Should -Be Protected
        (Get-AsrProtectedItem bootvm).State | Should -Be Protected
        (Get-AsrProtectedItem planvm).LastTestFailover.Comment | Should -Match 'scheduled drill .*: FAILED'
        $dom = Invoke-Chromium $failing
        $dom | Should -Match '<tr class="drill" data-item="bootvm" data-outcome="NotReady">'
        $dom | Should -Match '<tr class="drill" data-item="planvm" data-outcome="Passed">'
        $dom | Should -Match '<tr data-plan="bootplan">.*?<span class="badge Failed">Failed</span></td><td class="n">1 / 2</td>'
        # Real screenshots of the booted machines, as PNG in the page.
        ([regex]::Matches($dom, '<img class="shot" alt="screen of [a-z]+" src="data:image/png;base64,')).Count | Should -BeGreaterOrEqual 2

        # A plan whose machines all boot: exit code 0, and the recovery time in the summary and the report.
        $goodPlan = Join-TestPath $dir 'goodplan.ps1'
        Set-Content -Path $goodPlan -Value "AsrRecoveryPlan 'goodplan' { AsrGroup 1 -Items planvm { AsrBootCheck -ReadyPattern '$ready' -ReadyPort 8080 -MemoryMiB 256 -BootTimeoutSeconds $timeout } }"
        $passing = Join-TestPath $dir 'scheduled-passing.html'
        $run = Invoke-PwshProcess -TimeoutSeconds 600 -Command @"
`$s = & '$sample' -Vault '$vaultPath' -Plan '$goodPlan' -DrillDirectory '$drills' -ReportPath '$passing' -Module AsrModule
"RESULT ok=`$?"
"RESULT code=`$LASTEXITCODE"
"RESULT rto=`$(`$s[-1].AllReadyAfterSeconds)"
"RESULT ready=`$(`$s[-1].Ready)/`$(`$s[-1].Machines)"
"@
        $run.Result.code | Should -Be '0'
        $run.Result.ok | Should -Be 'True'
        $run.Result.ready | Should -Be '1/1'
        [double]$run.Result.rto | Should -BeGreaterThan 0
        (Get-AsrProtectedItem planvm).State | Should -Be Protected
        (Get-AsrProtectedItem planvm).LastTestFailover.Comment | Should -Match 'every machine booted and passed its check'
        $dom = Invoke-Chromium $passing
        $dom | Should -Match ('<tr data-plan="goodplan">.*?<span class="badge Succeeded">Succeeded</span></td><td class="n">1 / 1</td><td class="n">' + [regex]::Escape(([double]$run.Result.rto).ToString('0.0', [Globalization.CultureInfo]::InvariantCulture)) + ' s</td>')
    }

    It 'refuses boot settings that cannot work before anything starts' {
        Start-Drill 1
        { Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ErrorAction Stop } | Should -Throw -ErrorId 'BootSettingInvalid*'
        { Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPattern '([' -ErrorAction Stop } | Should -Throw -ErrorId 'BootSettingInvalid*'
        { Get-AsrProtectedItem bootvm | Test-AsrTestFailover -ReadyPort 22 -ErrorAction Stop } | Should -Throw -ErrorId 'BootSettingInvalid*'
        Stop-Drill
        { Get-AsrProtectedItem bootvm | Test-AsrTestFailover -Boot -ReadyPort 22 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition*'
        @(Get-ChildItem (Join-TestPath $dir 'drills') -ErrorAction Ignore).Count | Should -Be 0
        # A plan file whose boot settings cannot work does not load.
        $bad = Join-TestPath $dir 'badplan.ps1'
        Set-Content -Path $bad -Value "AsrRecoveryPlan 'bad' { AsrGroup 1 -Items bootvm { AsrBootCheck -MemoryMiB 256 } }"
        { Start-AsrRecoveryPlan -Path $bad -FailoverType Test -Target $target -Boot -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPlanInvalid*'
    }
}
