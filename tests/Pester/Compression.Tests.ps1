# zstd is the system's libzstd where it loads, else ZstdSharp (ASR_ZSTD=managed forces it): the two write the same
# format, so one vault is written and read by processes using either (docs/design.md, "Pipeline").
Describe 'A vault written with the managed zstd reads with libzstd, and back' -Tag Compression {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Join-TestPath $dir 'vault'
        $key = 'compression-test-key-0123456789'
        $disk = Join-TestPath $dir 'text.img'
        # Text compresses (the point's stored bytes show zstd ran); random blocks do not and are stored as they are.
        function Write-Text([string]$Path, [int]$Seed, [long]$Offset) {
            $rng = [Random]::new($Seed)
            $words = 'the', 'vault', 'keeps', 'every', 'point', 'of', 'the', 'disk', 'and', 'its', 'blocks'
            $sb = [Text.StringBuilder]::new()
            while ($sb.Length -lt 2MB) { [void]$sb.Append($words[$rng.Next($words.Count)]).Append(' ') }
            $bytes = [Text.Encoding]::ASCII.GetBytes($sb.ToString(0, 2MB))
            $f = [IO.File]::Open($Path, 'OpenOrCreate', 'ReadWrite'); try { $f.Position = $Offset; $f.Write($bytes, 0, $bytes.Length) } finally { $f.Dispose() }
        }
        $f = [IO.File]::Create($disk); $f.SetLength(8MB); $f.Dispose()
        Write-Text $disk 1 0
        New-AsrSampleDisk -Path (Join-TestPath $dir 'random.img') -SizeBytes 2MB -Seed 9 | Out-Null
        $random = [IO.File]::ReadAllBytes((Join-TestPath $dir 'random.img'))
        $f = [IO.File]::OpenWrite($disk); try { $f.Position = 4MB; $f.Write($random, 0, $random.Length) } finally { $f.Dispose() }

        function Invoke-Managed([string]$Body) {
            $run = Invoke-PwshProcess -Environment @{ ASR_ZSTD = 'managed' } -Command @"
`$ErrorActionPreference = 'Stop'
Import-Module AsrModule
Connect-AsrVault -Path '$vaultPath' -EncryptionKey '$key'
$Body
"RESULT LibZstd=`$(@(Get-Content /proc/self/maps | Where-Object { `$_ -like '*libzstd*' }).Count)"
"@
            $run.ExitCode | Should -Be 0 -Because "the child said: $($run.Output) $($run.Error)"
            $run.Result.LibZstd | Should -Be 0 -Because 'with ASR_ZSTD=managed the child never loads libzstd'
            $run.Result
        }
    }

    It 'the managed port writes the points; libzstd here reads them bit-exact, writes the next, and the port reads that' {
        New-AsrVault -Path $vaultPath -EncryptionKey $key | Out-Null
        $first = Get-AsrSampleHash $disk
        $r = Invoke-Managed @"
New-AsrPolicy -Name p | Out-Null
`$job = Enable-AsrReplication -Name text -Disk '$disk' -Policy p
"RESULT State=`$(`$job.State)"
"RESULT Changed=`$(`$job.Result.ChangedBytes)"
"RESULT Stored=`$(`$job.Result.BytesStored)"
"@
        $r.State | Should -Be 'Succeeded'
        [long]$r.Stored | Should -BeLessThan ([long]$r.Changed * 0.75) -Because 'the text was compressed by the managed port'

        Connect-AsrVault -Path $vaultPath -EncryptionKey $key
        (Get-ExportedHashes (Get-AsrRecoveryPoint text -Latest) (Join-TestPath $dir 'e1'))['text.img'] | Should -Be $first

        Write-Text $disk 2 1MB
        $second = Get-AsrSampleHash $disk
        $job = Get-AsrProtectedItem text | Invoke-AsrReplication
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesStored | Should -BeLessThan ($job.Result.ChangedBytes * 0.75) -Because 'the text was compressed by libzstd'
        @(Get-Content "/proc/$PID/maps" | Where-Object { $_ -like '*libzstd*' }).Count | Should -BeGreaterThan 0 -Because 'this process compressed with libzstd'
        Disconnect-AsrVault

        $r = Invoke-Managed @"
`$points = @(Get-AsrRecoveryPoint text)
"RESULT Points=`$(`$points.Count)"
"RESULT Verified=`$(@(`$points | Test-AsrRecoveryPoint | Where-Object Verified).Count)"
`$export = Get-AsrRecoveryPoint text -Latest | Export-AsrRecoveryPoint -Destination '$(Join-TestPath $dir 'e2')'
"RESULT Export=`$(`$export.State)"
"@
        $r.Points | Should -Be 2
        $r.Verified | Should -Be 2
        $r.Export | Should -Be 'Succeeded'
        Get-AsrSampleHash (Join-TestPath (Join-TestPath $dir 'e2') 'text.img') | Should -Be $second
    }
}
