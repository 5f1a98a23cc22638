# An export (and a local failover, which exports) writes whole pages of its disks past the page cache where Linux allows
# it (O_DIRECT), the rest through it, and fsyncs; ASR_DIRECT_WRITES=0 writes everything through the page cache
# (docs/design.md, "Reading"). Both give the disk bit-exact; the verbose stream says how many bytes went direct.
Describe 'Export writes past the page cache, and through it when told to' -Tag DirectWrites {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Join-TestPath $dir 'vault'
        $disk = Join-TestPath $dir 'web.img'
        # 24 MiB + 5 KiB: the disk's last extent is not whole pages, so it goes through the page cache either way.
        New-AsrSampleDisk -Path $disk -SizeBytes (24MB + 5KB) -Seed 21 | Out-Null
        $expected = Get-AsrSampleHash $disk
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name web -Disk $disk -Policy p | Out-Null
        function Get-DirectBytes([object[]]$Verbose) {
            $line = @($Verbose | Where-Object { "$_" -match 'bytes written past the page cache' }) | Select-Object -Last 1
            $line | Should -Not -BeNullOrEmpty -Because 'the export says how it wrote each disk'
            if ("$line" -notmatch "Disk 'web\.img' of .*: ([\d,]+) of ([\d,]+) bytes") { throw "unexpected message: $line" }
            [pscustomobject]@{ Direct = [long]($Matches[1] -replace ',', ''); Written = [long]($Matches[2] -replace ',', '') }
        }
    }
    AfterAll { Disconnect-AsrVault -ErrorAction Ignore; Remove-TestDirectory $dir }

    It 'writes the disk bit-exact with most of its bytes direct' {
        $dest = Join-TestPath $dir 'e1'
        $verbose = Get-AsrRecoveryPoint -Item web -Latest | Export-AsrRecoveryPoint -Destination $dest -Verbose 4>&1 |
            Where-Object { $_ -is [Management.Automation.VerboseRecord] }
        Get-AsrSampleHash (Join-TestPath $dest 'web.img') | Should -Be $expected
        $bytes = Get-DirectBytes $verbose
        $bytes.Written | Should -BeGreaterThan 0
        $bytes.Direct | Should -BeGreaterThan 0 -Because 'the test directory is on a file system that takes O_DIRECT (ext4, XFS, btrfs)'
        $bytes.Direct | Should -BeLessThan $bytes.Written -Because 'the disk''s partial last extent is written through the page cache'
        $bytes.Direct % 4096 | Should -Be 0
    }

    It 'with ASR_DIRECT_WRITES=0 writes everything through the page cache, with the same bytes' {
        $dest = Join-TestPath $dir 'e2'
        $run = Invoke-PwshProcess -Environment @{ ASR_DIRECT_WRITES = '0' } -Command @"
`$ErrorActionPreference = 'Stop'
Import-Module AsrModule
Connect-AsrVault -Path '$vaultPath'
`$v = Get-AsrRecoveryPoint -Item web -Latest | Export-AsrRecoveryPoint -Destination '$dest' -Verbose 4>&1 | Where-Object { `$_ -is [Management.Automation.VerboseRecord] }
`$v | ForEach-Object { "VERBOSE `$_" }
"@
        $run.ExitCode | Should -Be 0 -Because "the child said: $($run.Output) $($run.Error)"
        Get-AsrSampleHash (Join-TestPath $dest 'web.img') | Should -Be $expected
        $bytes = Get-DirectBytes @($run.Output -split "`n" | Where-Object { $_.StartsWith('VERBOSE ') })
        $bytes.Direct | Should -Be 0
        $bytes.Written | Should -BeGreaterThan 0
    }
}
