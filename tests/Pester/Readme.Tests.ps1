# Every PowerShell example of README.md runs as written, in order, in a fresh pwsh started where a newcomer
# stands after the README's build (a folder with out/, samples/ and tests/ of this repository), with its own home
# folder so the agent's log and PowerShell's settings stay private. A block whose first line starts with
# "# Not run by the README test" is left out (it needs Azure, root and a mount, or changes the user's settings); the count of
# such blocks is pinned so a new example cannot slip out of the test unnoticed.

Describe 'README examples' -Tag Readme, Slow {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $repo = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', '..'))
        $readme = [IO.File]::ReadAllText([IO.Path]::Combine($repo, 'README.md'))
        $blocks = @([regex]::Matches($readme, '(?ms)^```powershell\r?\n(.*?)^```') | ForEach-Object { $_.Groups[1].Value })
        $notRun = @($blocks | Where-Object { $_.StartsWith('# Not run by the README test') })
        $run = @($blocks | Where-Object { -not $_.StartsWith('# Not run by the README test') })

        $dir = New-TestDirectory
        $home_ = Join-TestPath $dir 'home'
        [void][IO.Directory]::CreateDirectory($home_)
        foreach ($name in 'out', 'samples', 'tests') { [void][IO.Directory]::CreateSymbolicLink((Join-TestPath $dir $name), (Join-TestPath $repo $name)) }
        # Each block's errors stop the script (a failed example is a failed test); a marker line tells where each block ends.
        $script = [Text.StringBuilder]::new()
        [void]$script.AppendLine('$ErrorActionPreference = ''Stop''')
        for ($i = 0; $i -lt $run.Count; $i++) {
            [void]$script.AppendLine($run[$i])
            [void]$script.AppendLine("'README-BLOCK-DONE $i' | Out-Host")
        }
        $file = Join-TestPath $dir 'readme-examples.ps1'
        [IO.File]::WriteAllText($file, $script.ToString())
        $child = Start-PwshProcess ". '$file'" -WorkingDirectory $dir -Environment @{ HOME = $home_; XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_STATE_HOME = $null; XDG_CACHE_HOME = $null }
        $result = Wait-PwshProcess $child 600
        # What a person reads: the output without terminal colour sequences.
        $output = $result.Output -replace "`e\[[0-9;?]*[A-Za-z]", ''
    }
    AfterAll {
        # An agent the examples started and did not stop (only when a block failed before Stop-AsrAgent).
        if ($result -and $result.Output -notmatch "README-BLOCK-DONE $($run.Count - 1)") {
            Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$dir/demo/vault'; Stop-AsrAgent -Force -ErrorAction Ignore" -Environment @{ HOME = $home_ } | Out-Null
        }
        Remove-TestDirectory $dir
    }

    It 'has PowerShell examples, and only the Azure (blob vault, Azure target) and package-install ones are not run' {
        $run.Count | Should -BeGreaterOrEqual 4
        $notRun.Count | Should -Be 4
    }

    It 'runs every example block to its end without an error' {
        $result.ExitCode | Should -Be 0 -Because "the examples printed:`n$($result.Output)`n$($result.Error)"
        for ($i = 0; $i -lt $run.Count; $i++) { $result.Output | Should -Match "README-BLOCK-DONE $i\b" -Because "block $i must finish:`n$($run[$i])`n$($result.Error)" }
        $result.Error | Should -BeNullOrEmpty
    }

    It 'the exported point equals the disk (the quick start prints True) and the table views render' {
        $output | Should -Match '(?m)^True\s*$'
        $output | Should -Match 'Name\s+State\s+ReplicationHealth\s+CurrentRpo\s+LastPointSequence'
        $output | Should -Match 'web01\s+Protected'
        $output | Should -Match 'Sequence\s+Consistency\s+RecoveryPointTimeUtc\s+ChangedBytes'
    }

    It 'the boot-verified drill example booted the test machine, passed its check and wrote the report' {
        $output | Should -Match '(?m)^Outcome\s+:\s+Passed\s*$'
        $output | Should -Match '(?m)^CheckResult\s+:\s+Passed\s*$'
        [IO.File]::ReadAllText((Join-TestPath $dir 'demo/health.html')) | Should -Match '<tr class="drill" data-item="bootvm" data-outcome="Passed">'
    }

    It 'the drill, failover, reprotect, failback and plan examples left the machine protected at home' {
        $check = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$dir/demo/vault'; `$i = Get-AsrProtectedItem web01; 'RESULT State=' + `$i.State; 'RESULT Plans=' + ((Get-AsrJob -Operation 'RecoveryPlan*').State -join ',')" -Environment @{ HOME = $home_ }
        $check.ExitCode | Should -Be 0 -Because $check.Error
        $check.Result.State | Should -Be 'Protected'
        $check.Result.Plans | Should -Match 'Succeeded'
    }
}
