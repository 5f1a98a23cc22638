param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# A disk of exactly 1 TiB (268,435,456 blocks of 4 KiB) with a few MiB of data, through the public cmdlets (issue #15
# item 3): the change tracker is segments of 256 MiB of disk, so a cycle never holds or writes the 2 GiB table whole.
Describe 'A terabyte sparse disk [<Backend>]' -Tag Scale {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        Import-Module AsrModule
        $ProgressPreference = 'SilentlyContinue'
        $dir = New-TestDirectory
        $vault = New-TestVaultLocation $dir
        New-AsrVault -Path $vault -EncryptionKey 'tib key' | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $disk = Join-TestPath $dir 'tib.img'
        $TiB = 1TB
        function Write-Random([long]$Offset, [int]$Length, [int]$Seed) {
            $bytes = [byte[]]::new($Length); [Random]::new($Seed).NextBytes($bytes)
            $fs = [IO.FileStream]::new($disk, 'Open', 'Write')
            try { $fs.Position = $Offset; $fs.Write($bytes, 0, $Length) } finally { $fs.Dispose() }
        }
        $fs = [IO.FileStream]::new($disk, 'Create', 'Write'); $fs.SetLength($TiB); $fs.Dispose()
        Write-Random 0 1MB 1; Write-Random 300GB 1MB 2; Write-Random ($TiB - 1MB) 1MB 3
        $enable = Enable-AsrReplication -Name tib -Disk $disk -Policy p | Wait-AsrJob
        $id = (Get-AsrProtectedItem tib).Id
        function Get-Segments([long]$Sequence) {
            @(Get-VaultObjectKeys $vault "items/$id/tracker/" | Where-Object { $_ -like "*-$('{0:D12}' -f $Sequence).*.seg" } | ForEach-Object { $_.Substring($_.Length - 10, 6) })
        }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'replicates: only the segments with data are stored, and the point verifies' {
        $enable.State | Should -Be 'Succeeded'
        $enable.Result.Mode | Should -Be 'Initial'
        (Get-AsrRecoveryPoint -Item tib -Latest).Disks[0].SizeBytes | Should -Be $TiB
        Get-Segments 1 | Should -Be @('000000', '001200', '004095')   # 0, 300 GiB and the last 256 MiB
        (Get-AsrRecoveryPoint -Item tib -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
    }

    It 'a delta writes only the segments it changed and names the others where they are' {
        Write-Random 12KB 4KB 4          # segment 0
        Write-Random 512GB 4KB 5         # segment 2048, zero until now
        $job = Get-AsrProtectedItem tib | Invoke-AsrReplication | Wait-AsrJob
        $job.State | Should -Be 'Succeeded'
        $job.Result.Mode | Should -Be 'Delta'
        $job.Result.ChangedBytes | Should -Be 8KB
        Get-Segments 2 | Should -Be @('000000', '002048')
        Get-Segments 1 | Should -Be @('001200', '004095')             # carried over; point 1's segment 0 is gone
        foreach ($p in Get-AsrRecoveryPoint -Item tib) { ($p | Test-AsrRecoveryPoint).Verified | Should -BeTrue -Because "point $($p.Sequence)" }
    }

    It 'a damaged segment fails the next cycle as VaultDataCorrupt naming it; the item resyncs and verifies' {
        $segment = Get-VaultObjectKeys $vault "items/$id/tracker/" | Where-Object { $_ -like '*.001200.seg' }
        $bytes = Read-VaultObject $vault $segment
        $bytes[$bytes.Length - 20] = $bytes[$bytes.Length - 20] -bxor 0xFF
        Write-VaultObject $vault $segment $bytes
        Write-Random (300GB + 8KB) 4KB 6   # segment 1200: the delta reads that segment of the tracker
        Get-AsrProtectedItem tib | Invoke-AsrReplication -ErrorVariable failure -ErrorAction SilentlyContinue | Out-Null
        Get-AsrErrorId $failure[0] | Should -Be 'VaultDataCorrupt'
        "$($failure[0].CategoryInfo.Category)" | Should -Be 'InvalidData'
        $failure[0].Exception.Message | Should -BeLike "*$segment*ResyncRequired*"
        (Get-AsrProtectedItem tib).State | Should -Be 'ResyncRequired'
        @(Get-AsrRecoveryPoint -Item tib).Count | Should -Be 2   # nothing published, nothing lost

        $job = Get-AsrProtectedItem tib | Invoke-AsrReplication | Wait-AsrJob
        $job.State | Should -Be 'Succeeded'
        $job.Result.Mode | Should -Be 'Resync'
        (Get-AsrProtectedItem tib).State | Should -Be 'Protected'
        (Get-AsrRecoveryPoint -Item tib -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
    }
}
