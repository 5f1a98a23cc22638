param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Replication of a generated two-disk machine through three cycles of scattered writes [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $os = Join-TestPath $dir 'web01-os.img'
        $data = Join-TestPath $dir 'web01-data.img'
        New-AsrSampleDisk -Path $os -SizeBytes 40MB -Seed 1 | Out-Null
        New-AsrSampleDisk -Path $data -SizeBytes (24MB + 1536) -Seed 2 | Out-Null   # not a multiple of the block size
        New-AsrVault -Path (New-TestVaultLocation $dir) -EncryptionKey 'pester key' | Connect-AsrVault
        $policy = New-AsrPolicy -Name default -RecoveryPointRetentionHours 24 -CrashConsistentFrequencyMinutes 5 -AppConsistentFrequencyHours 4 -RpoThresholdMinutes 15

        # Source hashes at the moment each point is taken: what each exported point must equal.
        $expected = [Collections.Generic.List[hashtable]]::new()
        $expected.Add(@{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data })
        $enableJob = Enable-AsrReplication -Name web01 -Disk $os, $data -Policy $policy | Wait-AsrJob
        $written = [Collections.Generic.List[long]]::new()
        $cycleJobs = foreach ($cycle in 1..3) {
            $written.Add((Write-AsrSampleChange -Path $os -Fraction 0.01 -Seed (10 + $cycle)) + (Write-AsrSampleChange -Path $data -Fraction 0.02 -Seed (20 + $cycle)))
            $expected.Add(@{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data })
            Get-AsrProtectedItem web01 | Invoke-AsrReplication | Wait-AsrJob
        }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'initial replication ran as a job that published point 1' {
        $enableJob.State | Should -Be 'Succeeded'
        $enableJob.Operation | Should -Be 'EnableReplication'
        $enableJob.Result.RecoveryPointSequence | Should -Be 1
        $enableJob.Result.Mode | Should -Be 'Initial'
    }

    It 'each delta cycle found at most the written bytes and stored about that much' {
        for ($i = 0; $i -lt 3; $i++) {
            $job = $cycleJobs[$i]
            $job.State | Should -Be 'Succeeded'
            $job.Result.Mode | Should -Be 'Delta'
            $job.Result.ChangedBytes | Should -BeGreaterThan 0
            $job.Result.ChangedBytes | Should -BeLessOrEqual $written[$i]
            # random 4 KiB blocks do not compress: stored ~= changed, plus AES-GCM's 28 bytes per extent
            $job.Result.BytesStored | Should -BeLessOrEqual ($job.Result.ChangedBytes * 1.05)
        }
    }

    It 'lists four crash-consistent points, oldest first, covering both disks' {
        $points = @(Get-AsrRecoveryPoint -Item web01)
        $points.Count | Should -Be 4
        ($points | ForEach-Object Sequence) | Should -Be @(1, 2, 3, 4)
        ($points | ForEach-Object Consistency | Where-Object { $_ -ne 'CrashConsistent' }) | Should -BeNullOrEmpty
        $points[0].Disks.Name | Should -Be @('web01-os.img', 'web01-data.img')
        (Get-AsrRecoveryPoint -Item web01 -Latest).Sequence | Should -Be 4
    }

    It 'exports every point bit-exact: SHA-256 of each disk equals the source at that moment' {
        foreach ($point in Get-AsrRecoveryPoint -Item web01) {
            $got = Get-ExportedHashes $point (Join-TestPath $dir "restore-$($point.Sequence)")
            foreach ($disk in 'web01-os.img', 'web01-data.img') {
                $got[$disk] | Should -Be $expected[$point.Sequence - 1][$disk] -Because "disk $disk of point $($point.Sequence)"
            }
        }
    }

    It 'Export-AsrRecoveryPoint refuses to overwrite without -Force (ExportDestinationExists) and overwrites with it' {
        $dest = Join-TestPath $dir 'restore-force'
        $latest = Get-AsrRecoveryPoint -Item web01 -Latest
        $latest | Export-AsrRecoveryPoint -Destination $dest -Disk web01-data.img | Out-Null
        { $latest | Export-AsrRecoveryPoint -Destination $dest -Disk web01-data.img -ErrorAction Stop } | Should -Throw -ErrorId 'ExportDestinationExists,*'
        ($latest | Export-AsrRecoveryPoint -Destination $dest -Disk web01-data.img -Force).State | Should -Be 'Succeeded'
        Get-AsrSampleHash (Join-TestPath $dest 'web01-data.img') | Should -Be $expected[3]['web01-data.img']
    }

    It 'Get-AsrProtectedItem shows state, health, RPO and the operations allowed now' {
        $item = Get-AsrProtectedItem web01
        $item.State | Should -Be 'Protected'
        $item.ReplicationHealth | Should -Be 'Normal'
        $item.CurrentRpo.TotalMinutes | Should -BeLessThan 15
        $item.LastPointSequence | Should -Be 4
        $item.AllowedOperations | Should -Contain 'Invoke-AsrReplication'
        @(Get-AsrProtectedItem 'web*').Count | Should -Be 1
    }

    It 'binds by property name from the pipeline' {
        @([pscustomobject]@{ Name = 'web01' } | Get-AsrRecoveryPoint).Count | Should -Be 4
        ([pscustomobject]@{ Name = 'web01' } | Invoke-AsrReplication).Result.Mode | Should -Be 'Delta'
    }

    It 'Get-AsrJob lists every job with its result, filterable by target and state' {
        $all = @(Get-AsrJob -TargetName web01)
        @($all | Where-Object Operation -eq 'EnableReplication').Count | Should -Be 1
        @($all | Where-Object Operation -eq 'ReplicationCycle').Count | Should -BeGreaterOrEqual 3
        @(Get-AsrJob -State Failed).Count | Should -Be 0
        (Get-AsrJob -Id $enableJob.Id).Result.RecoveryPointSequence | Should -Be 1
    }
}

Describe 'Bad input: a clear ErrorRecord and an unchanged vault [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'd.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 3MB | Out-Null
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name existing -Disk $disk -Policy p | Out-Null
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }
    BeforeEach { $before = Get-VaultSnapshot $vaultPath }
    AfterEach { Get-VaultSnapshot $vaultPath | Should -Be $before -Because 'a refused operation must not change the vault' }

    It 'missing disk path: DiskNotFound (ObjectNotFound) naming the path' {
        $missing = Join-TestPath $dir 'missing.img'
        $err = { Enable-AsrReplication -Name m2 -Disk $disk, $missing -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskNotFound,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err.Exception.Message | Should -Match 'missing.img'
    }

    It 'duplicate item name: ProtectedItemAlreadyExists (ResourceExists)' {
        $err = { Enable-AsrReplication -Name EXISTING -Disk $disk -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemAlreadyExists,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ResourceExists'
    }

    It 'unknown policy: PolicyNotFound (ObjectNotFound) listing the existing policies' {
        $err = { Enable-AsrReplication -Name m3 -Disk $disk -Policy nope -ErrorAction Stop } | Should -Throw -ErrorId 'PolicyNotFound,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err.Exception.Message | Should -Match 'Existing policies: p'
    }

    It 'the same disk twice: DiskDuplicate (InvalidArgument)' {
        { Enable-AsrReplication -Name m4 -Disk $disk, $disk -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskDuplicate,*'
    }

    It 'an empty disk: DiskEmpty' {
        $empty = Join-TestPath $dir 'empty.img'
        [IO.File]::WriteAllBytes($empty, [byte[]]::new(0))
        { Enable-AsrReplication -Name m5 -Disk $empty -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskEmpty,*'
        [IO.File]::Delete($empty)
    }

    It 'an unreadable disk: DiskUnreadable (ReadError) naming the disk' {
        # Root reads anything, so the refusal comes from a real unprivileged process (setpriv as
        # nobody) opening a mode-000 image; run as non-root, this session itself is refused.
        $secret = Join-TestPath $dir 'secret.img'
        [IO.File]::WriteAllBytes($secret, [byte[]]::new(65536))
        [IO.File]::SetUnixFileMode($secret, [IO.UnixFileMode]::None)
        try {
            if ([Environment]::UserName -ne 'root') {
                $err = { Enable-AsrReplication -Name m6 -Disk $secret -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskUnreadable,*' -PassThru
                $err.CategoryInfo.Category | Should -Be 'ReadError'
                return
            }
            [IO.File]::Exists('/usr/bin/setpriv') | Should -BeTrue -Because 'util-linux setpriv runs the unprivileged process'
            # A world-readable copy of pwsh and the module, wherever they were installed (root's home is private).
            $shared = Join-TestPath $dir 'shared'
            $moduleBase = (Get-Module AsrModule).ModuleBase
            foreach ($pair in @(@($PSHOME, (Join-TestPath $shared 'pwsh')), @($moduleBase, (Join-TestPath $shared 'Modules/AsrModule')))) {
                foreach ($f in [IO.Directory]::EnumerateFiles($pair[0], '*', [IO.SearchOption]::AllDirectories)) {
                    $target = Join-TestPath $pair[1] ([IO.Path]::GetRelativePath($pair[0], $f))
                    [void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName($target))
                    [IO.File]::Copy($f, $target)
                }
            }
            $rx = [IO.UnixFileMode]'UserRead, UserWrite, UserExecute, GroupRead, GroupExecute, OtherRead, OtherExecute'
            foreach ($d in @($dir) + [IO.Directory]::GetDirectories($dir, '*', [IO.SearchOption]::AllDirectories)) { [IO.File]::SetUnixFileMode($d, $rx) }
            foreach ($f in [IO.Directory]::GetFiles($dir, '*', [IO.SearchOption]::AllDirectories)) { if ($f -ne $secret) { [IO.File]::SetUnixFileMode($f, [IO.UnixFileMode]'UserRead, UserWrite, GroupRead, OtherRead') } }
            $psi = [Diagnostics.ProcessStartInfo]::new('/usr/bin/setpriv')
            # The same pwsh as this one (Get-PwshCommand), started from the copy.
            $pwshCopy = @(Get-PwshCommand | ForEach-Object { if ($_.StartsWith($PSHOME)) { Join-TestPath (Join-TestPath $shared 'pwsh') ([IO.Path]::GetFileName($_)) } else { $_ } })
            foreach ($a in @('--reuid=65534', '--regid=65534', '--clear-groups') + $pwshCopy + @('-NoProfile', '-NonInteractive', '-Command',
                "Import-Module AsrModule; try { Enable-AsrReplication -Name m6 -Disk '$secret' -Policy p -Vault '$vaultPath' -ErrorAction Stop } catch { 'id=' + `$_.FullyQualifiedErrorId; 'category=' + `$_.CategoryInfo.Category; 'message=' + `$_.Exception.Message }")) { $psi.ArgumentList.Add($a) }
            $psi.Environment['HOME'] = '/tmp'; $psi.Environment['DOTNET_CLI_HOME'] = '/tmp'
            $psi.Environment['PSModulePath'] = Join-TestPath $shared 'Modules'
            $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
            $p = [Diagnostics.Process]::Start($psi)
            $out = $p.StandardOutput.ReadToEnd() + $p.StandardError.ReadToEnd()
            $p.WaitForExit()
            $out | Should -Match 'id=DiskUnreadable'
            $out | Should -Match 'category=ReadError'
            $out | Should -Match 'secret.img'
        } finally {
            [IO.File]::Delete($secret)
            if ([IO.Directory]::Exists((Join-TestPath $dir 'shared'))) { [IO.Directory]::Delete((Join-TestPath $dir 'shared'), $true) }
        }
    }

    It 'an unknown item: ProtectedItemNotFound (ObjectNotFound) listing the items' {
        $err = { Get-AsrProtectedItem nope -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemNotFound,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err.Exception.Message | Should -Match 'existing'
        { Invoke-AsrReplication -Name nope -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemNotFound,*'
        { Get-AsrRecoveryPoint -Item existing -Sequence 99 -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPointNotFound,*'
    }

    It 'an invalid machine name: ProtectedItemNameInvalid' {
        { Enable-AsrReplication -Name 'bad name' -Disk $disk -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemNameInvalid,*'
    }

    It 'WhatIf enables nothing' {
        Enable-AsrReplication -Name m7 -Disk $disk -Policy p -WhatIf
        @(Get-AsrProtectedItem).Name | Should -Be @('existing')
    }
}

Describe 'A disk that changed size marks the item for resync; resync sends only differing blocks [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'grow.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 16MB | Out-Null
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name g -Disk $disk -Policy p | Out-Null
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'DiskSizeChanged names the disk; the item becomes ResyncRequired; no point is added' {
        $fs = [IO.FileStream]::new($disk, [IO.FileMode]::Open); $fs.SetLength(17MB); $fs.Dispose()
        $script:written = Write-AsrSampleChange -Path $disk -Fraction 0.01 -Seed 5
        $err = { Get-AsrProtectedItem g | Invoke-AsrReplication -ErrorAction Stop } | Should -Throw -ErrorId 'DiskSizeChanged,*' -PassThru
        $err.Exception.Message | Should -Match 'grow.img'
        $item = Get-AsrProtectedItem g
        $item.State | Should -Be 'ResyncRequired'
        $item.ReplicationHealth | Should -Be 'Critical'
        $item.ResyncReason | Should -Match 'grow.img'
        @(Get-AsrRecoveryPoint -Item g).Count | Should -Be 1
    }

    It 'the next Invoke-AsrReplication resyncs by checksum, sending no more than the differing blocks' {
        $expected = Get-AsrSampleHash $disk
        $job = Get-AsrProtectedItem g | Invoke-AsrReplication
        $job.Operation | Should -Be 'ResyncReplication'
        $job.Result.Mode | Should -Be 'Resync'
        # ... plus the old and the new last block, which a resize always resends (either may be partial).
        $job.Result.ChangedBytes | Should -BeLessOrEqual ($script:written + 2 * 4096)
        (Get-AsrProtectedItem g).State | Should -Be 'Protected'
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item g -Latest) (Join-TestPath $dir 'r'))['grow.img'] | Should -Be $expected
    }
}

Describe 'Resync heals a damaged vault: the new point is whole, the damaged one stays damaged [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'heal.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 4MB -Seed 9 | Out-Null
        New-AsrVault -Path $vaultPath -EncryptionKey 'heal key' | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name heal -Disk $disk -Policy p | Out-Null
        Write-AsrSampleChange -Path $disk -Fraction 0.01 -Seed 10 | Out-Null
        Get-AsrProtectedItem heal | Invoke-AsrReplication | Out-Null
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'a flipped byte in the pack point 2 reads: Test-AsrRecoveryPoint names it, Resume-AsrResync publishes a point equal to the source' {
        # Point 1's pack: point 2 is a delta over it, so nearly all of point 2's data lives there.
        $pack = @(Get-VaultObjectKeys $vaultPath 'items/' | Where-Object { $_ -match '/packs/000000000001(\.[0-9a-f]{8})?-\d{4}\.pack$' })[0]
        $bytes = Read-VaultObject $vaultPath $pack
        for ($i = 0; $i -lt 16; $i++) { $bytes[[int]($bytes.Length / 2) + $i] = $bytes[[int]($bytes.Length / 2) + $i] -bxor 0x5a }
        Write-VaultObject $vaultPath $pack $bytes

        $damaged = Get-AsrRecoveryPoint -Item heal -Latest
        $check = $damaged | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue
        $check.Verified | Should -BeFalse
        $check.Disks[0].Error | Should -Match ([regex]::Escape($pack))

        Write-AsrSampleChange -Path $disk -Fraction 0.01 -Seed 11 | Out-Null   # the machine goes on writing
        $expected = Get-AsrSampleHash $disk
        $job = Get-AsrProtectedItem heal | Resume-AsrResync | Wait-AsrJob
        $job.State | Should -Be 'Succeeded'
        $job.Result.Mode | Should -Be 'Resync'
        $job.Result.Note | Should -Match 'Repaired'
        $healed = Get-AsrRecoveryPoint -Item heal -Latest
        $healed.Sequence | Should -Be 3
        ($healed | Test-AsrRecoveryPoint).Verified | Should -BeTrue
        (Get-ExportedHashes $healed (Join-TestPath $dir 'healed'))['heal.img'] | Should -Be $expected
        # Not silently "fixed": point 2 still reads the flipped bytes and says so.
        ($damaged | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue).Verified | Should -BeFalse
        (Get-AsrProtectedItem heal).State | Should -Be 'Protected'
    }
}

Describe 'Disable-AsrReplication [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'gone.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 4MB | Out-Null
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name gone -Disk $disk -Policy p | Out-Null
        Get-AsrProtectedItem gone | Invoke-AsrReplication | Out-Null
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'WhatIf removes nothing' {
        $before = Get-VaultSnapshot $vaultPath
        Get-AsrProtectedItem gone | Disable-AsrReplication -WhatIf
        Get-VaultSnapshot $vaultPath | Should -Be $before
    }

    It 'removes the item and every object it had in the vault; the name can be used again' {
        $id = (Get-AsrProtectedItem gone).Id
        @(Get-VaultObjectKeys $vaultPath "items/$id/").Count | Should -BeGreaterThan 0
        Get-AsrProtectedItem gone | Disable-AsrReplication -Confirm:$false
        { Get-AsrProtectedItem gone -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemNotFound,*'
        @(Get-VaultObjectKeys $vaultPath "items/$id/").Count | Should -Be 0
        (Enable-AsrReplication -Name gone -Disk $disk -Policy p).Result.RecoveryPointSequence | Should -Be 1
    }
}

Describe 'Bad inputs are refused before any job, and the vault is left unchanged [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines m
        $disk = Join-TestPath $dir 'm.img'
        $fifo = Join-TestPath $dir 'pipe'
        & mkfifo $fifo
        $folder = Join-TestPath $dir 'folder'
        [void][IO.Directory]::CreateDirectory($folder)
        $socketPath = Join-TestPath $dir 'sock'
        $socket = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::Unix, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Unspecified)
        $socket.Bind([Net.Sockets.UnixDomainSocketEndPoint]::new($socketPath))
        $other = Join-TestPath $dir 'other.img'
        New-AsrSampleDisk -Path $other -SizeBytes 1MB -Seed 9 | Out-Null
        $symlink = Join-TestPath $dir 'other-link.img'
        [void][IO.File]::CreateSymbolicLink($symlink, $other)
        $hardlink = Join-TestPath $dir 'other-hard.img'
        & ln $other $hardlink
        $point = Get-AsrRecoveryPoint -Item m -Latest
    }
    AfterAll { $socket.Dispose(); Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'a disk that is <What> is DiskUnsupported at once (no hang, nothing written)' -ForEach @(
        @{ What = 'a FIFO'; Disk = { $fifo } }
        @{ What = 'the /dev/null character device'; Disk = { '/dev/null' } }
        @{ What = 'the /dev/zero character device'; Disk = { '/dev/zero' } }
        @{ What = 'a directory'; Disk = { $folder } }
        @{ What = 'a socket'; Disk = { $socketPath } }
    ) {
        $path = & $Disk
        $before = Get-VaultSnapshot $vaultPath
        $err = { Enable-AsrReplication -Name bad -Disk $path -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskUnsupported,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -Match ([regex]::Escape($path))
        Get-VaultSnapshot $vaultPath | Should -Be $before
    }

    It 'the same disk twice through a <What> is DiskDuplicate' -ForEach @(
        @{ What = 'symlink'; Link = { $symlink } }
        @{ What = 'hard link'; Link = { $hardlink } }
    ) {
        $link = & $Link
        $before = Get-VaultSnapshot $vaultPath
        { Enable-AsrReplication -Name twice -Disk $other, $link -Policy p -ErrorAction Stop } | Should -Throw -ErrorId 'DiskDuplicate,*'
        Get-VaultSnapshot $vaultPath | Should -Be $before
    }

    It 'an export destination under <Root> is ExportDestinationInvalid; no job record, no pin' -ForEach @(
        @{ Root = '/proc' }, @{ Root = '/sys' }, @{ Root = '/dev' }
    ) {
        $before = Get-VaultSnapshot $vaultPath
        $err = { $point | Export-AsrRecoveryPoint -Destination "$Root/asr-export" -ErrorAction Stop } | Should -Throw -ErrorId 'ExportDestinationInvalid,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        Get-VaultSnapshot $vaultPath | Should -Be $before
    }

    It 'a failover target under /proc is FailoverTargetInvalid; the item stays Protected' {
        $before = Get-VaultSnapshot $vaultPath
        { Get-AsrProtectedItem m | Start-AsrFailover -RecoveryPoint LatestProcessed -Target '/proc/asr-target' -Confirm:$false -ErrorAction Stop } |
            Should -Throw -ErrorId 'FailoverTargetInvalid,*'
        Get-VaultSnapshot $vaultPath | Should -Be $before
        (Get-AsrProtectedItem m).State | Should -Be 'Protected'
    }

    It 'New-AsrVault at an existing file is VaultAlreadyExists (ResourceExists) and leaves the file' {
        $file = Join-TestPath $dir 'a-file'
        [IO.File]::WriteAllText($file, 'keep')
        $err = { New-AsrVault -Path $file -ErrorAction Stop } | Should -Throw -ErrorId 'VaultAlreadyExists,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ResourceExists'
        [IO.File]::ReadAllText($file) | Should -Be 'keep'
    }

    if ($Backend -eq 'Local') {
        It 'an export destination or failover target inside the local vault is refused' {
            $before = Get-VaultSnapshot $vaultPath
            { $point | Export-AsrRecoveryPoint -Destination (Join-Path $vaultPath 'export') -ErrorAction Stop } | Should -Throw -ErrorId 'ExportDestinationInvalid,*'
            { Get-AsrProtectedItem m | Start-AsrFailover -RecoveryPoint LatestProcessed -Target (Join-Path $vaultPath 'target') -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'FailoverTargetInvalid,*'
            Get-VaultSnapshot $vaultPath | Should -Be $before
            Test-Path (Join-Path $vaultPath 'export') | Should -BeFalse
            Test-Path (Join-Path $vaultPath 'target') | Should -BeFalse
        }
    }
}
