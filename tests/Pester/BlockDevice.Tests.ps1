param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Without its tools the tests are reported as skipped with the reason; CI installs them, and under CI=true they run (and fail if they cannot).

Describe 'Linux block devices as sources [<Backend>]' -Tag LoopDevice {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason losetup -NeedsRoot
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $backing = Join-TestPath $dir 'backing.img'
        New-AsrSampleDisk -Path $backing -SizeBytes 24MB -Seed 9 | Out-Null
        $device = Invoke-Native '/usr/sbin/losetup' @('--find', '--show', $backing)
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        if ($device) { Invoke-Native '/usr/sbin/losetup' @('--detach', $device) | Out-Null }
        Remove-TestDirectory $dir
    }

    It 'replicates a loop device and exports it bit-exact, twice' {
        $expected1 = Get-AsrSampleHash $device
        $job = Enable-AsrReplication -Name loopy -Disk $device -Policy p
        $job.State | Should -Be 'Succeeded'
        (Get-AsrProtectedItem loopy).Disks[0].IsBlockDevice | Should -BeTrue
        (Get-AsrProtectedItem loopy).Disks[0].SizeBytes | Should -Be 24MB
        # Write through the device node itself, as a guest would.
        Write-AsrSampleChange -Path $device -Fraction 0.02 -Seed 10 | Out-Null
        $expected2 = Get-AsrSampleHash $device
        (Get-AsrProtectedItem loopy | Invoke-AsrReplication).Result.ChangedBytes | Should -BeGreaterThan 0
        $points = @(Get-AsrRecoveryPoint -Item loopy)
        $name = $points[0].Disks[0].Name
        (Get-ExportedHashes $points[0] (Join-TestPath $dir 'r1'))[$name] | Should -Be $expected1
        (Get-ExportedHashes $points[1] (Join-TestPath $dir 'r2'))[$name] | Should -Be $expected2
    }
}
