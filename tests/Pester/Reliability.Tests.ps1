param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Faults of issue #12 through real processes: an Enable-AsrReplication killed mid-copy (item 4) and a storage outage
# mid-job (item 10). The engine-level forms are tests/Unit/Reliability and tests/Unit/Azure/BlobOutageJobTests.

Describe 'An Enable-AsrReplication killed mid-copy can go on [<Backend>]' -Tag Reliability {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        # One row is enough: on a blob vault the killed process's lease only adds its minute (ProtectedItemBusy meanwhile).
        $skip = $Backend -ne 'Local'
        if ($skip) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'killed.img'
        $vaultPath = New-TestVaultLocation $dir
        New-AsrSampleDisk -Path $disk -SizeBytes 256MB -Seed 41 | Out-Null
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $sourceHash = Get-AsrSampleHash $disk

        # A real pwsh runs the initial replication and is killed (SIGKILL) once it has stored packs of point 1.
        $child = (Start-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Enable-AsrReplication -Name killed -Disk '$disk' -Policy p | Out-Null").Process
        $killedMidCopy = $false
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ($watch.Elapsed.TotalSeconds -lt 60 -and -not $child.HasExited) {
            $packs = @(Get-VaultObjectKeys $vaultPath 'items/' | Where-Object { $_ -match '/packs/000000000001-' })
            if ($packs.Count -gt 0) { $child.Kill(); $killedMidCopy = $true; break }
            [Threading.Thread]::Sleep(5)
        }
        $child.WaitForExit()
        $item = Get-AsrProtectedItem killed
        $orphans = @(Get-VaultObjectKeys $vaultPath "items/$($item.Id)/packs/")
    }
    AfterAll { if (-not $skip) { Disconnect-AsrVault; Remove-TestDirectory $dir } }

    It 'the process was killed while it was storing the initial copy' -Skip:($Backend -ne 'Local') {
        $killedMidCopy | Should -BeTrue
        $orphans.Count | Should -BeGreaterThan 0
        (Get-AsrJob -TargetName killed -Operation EnableReplication)[-1].State | Should -Be 'Interrupted'
    }

    It 'the item waits in InitialReplicationPending and says what to do' -Skip:($Backend -ne 'Local') {
        $item.State | Should -Be 'InitialReplicationPending'
        $item.NeedsResync | Should -BeFalse
        $item.AllowedOperations | Should -Be @('Invoke-AsrReplication', 'Resume-AsrResync', 'Disable-AsrReplication')
        $item.LastError | Should -Match 'did not complete.*Invoke-AsrReplication'
    }

    It 'Invoke-AsrReplication in a new process runs the initial replication again; the point equals the source by SHA-256' -Skip:($Backend -ne 'Local') {
        $r = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; `$j = Get-AsrProtectedItem killed | Invoke-AsrReplication; 'RESULT state=' + `$j.State; 'RESULT mode=' + `$j.Result.Mode"
        $r.Result.state | Should -Be 'Succeeded' -Because $r.Error
        $r.Result.mode | Should -Be 'Initial'
        $point = Get-AsrRecoveryPoint -Item killed -Latest
        $point.Sequence | Should -Be 1
        (Get-ExportedHashes $point (Join-TestPath $dir 'restore'))['killed.img'] | Should -Be $sourceHash
        (Get-AsrProtectedItem killed).State | Should -Be 'Protected'
    }

    It 'nothing of the killed attempt is left in the vault' -Skip:($Backend -ne 'Local') {
        $point = Get-AsrRecoveryPoint -Item killed -Latest
        @(Get-VaultObjectKeys $vaultPath "items/$($item.Id)/packs/" | Sort-AsrLines) | Should -Be @($point.Packs | Sort-AsrLines)
    }
}

Describe 'A job whose blob storage went away ends Failed in the vault too [<Backend>]' -Tag Reliability, Azurite {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
        # Starts and stops an Azurite of its own, so one row is enough: the Blob one.
        $skip = $Backend -ne 'Blob'
        if ($skip) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'outage.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 256MB -Seed 43 | Out-Null
        $azurite = Start-TestAzurite
        $vaultUrl = "$($azurite.Endpoint)/outage-$([Guid]::NewGuid().ToString('N').Substring(0, 12))"
        $environment = @{ AZURE_STORAGE_CONNECTION_STRING = $azurite.ConnectionString }
        $env:AZURE_STORAGE_CONNECTION_STRING, $saved = $azurite.ConnectionString, $env:AZURE_STORAGE_CONNECTION_STRING
        New-AsrVault -Path $vaultUrl | Out-Null
        New-AsrPolicy -Vault $vaultUrl -Name p | Out-Null

        # A real pwsh runs Enable-AsrReplication with the module's default retries; Azurite stops once packs are stored.
        # The child then stays alive (as a session or agent would) until the parent has read the vault again.
        $done = Join-TestPath $dir 'child-done'
        $release = Join-TestPath $dir 'release-child'
        $child = Start-PwshProcess (@"
Import-Module AsrModule
Connect-AsrVault -Path '$vaultUrl'
`$watch = [Diagnostics.Stopwatch]::StartNew()
`$job = Enable-AsrReplication -Name outage -Disk '$disk' -Policy p -ErrorAction SilentlyContinue
'RESULT state=' + `$job.State; 'RESULT error=' + `$job.Errors[0].ErrorId; 'RESULT id=' + `$job.Id
'RESULT seenHere=' + (Get-AsrJob -Id `$job.Id).State
Set-Content '$done' 'done'
while (-not (Test-Path '$release') -and `$watch.Elapsed.TotalSeconds -lt 180) { Start-Sleep -Milliseconds 200 }
"@) $environment
        $stoppedAt = $null
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ($watch.Elapsed.TotalSeconds -lt 90 -and -not $child.Process.HasExited -and -not (Test-Path $done)) {
            if (-not $stoppedAt -and @(Get-VaultObjectKeys $vaultUrl 'items/' | Where-Object { $_ -match '/packs/000000000001-' }).Count -gt 0) {
                Suspend-TestAzurite $azurite
                $stoppedAt = [Diagnostics.Stopwatch]::StartNew()
            }
            [Threading.Thread]::Sleep(20)
        }
        $reportedAfter = if ($stoppedAt) { $stoppedAt.Elapsed.TotalSeconds }
        Resume-TestAzurite $azurite
        # Another process's view of the job record, once the storage is back (the child's background retry writes it).
        $recordWatch = [Diagnostics.Stopwatch]::StartNew()
        do {
            Start-Sleep -Milliseconds 250
            $jobs = @(Get-AsrJob -Vault $vaultUrl -TargetName outage -Operation EnableReplication -ErrorAction SilentlyContinue)
        } until (($jobs.Count -gt 0 -and $jobs[-1].State -ne 'InProgress') -or $recordWatch.Elapsed.TotalSeconds -gt 30)
        $recordAfter = $recordWatch.Elapsed.TotalSeconds
        Set-Content $release 'go'
        $result = Wait-PwshProcess $child 60
        Write-Host "Outage reported $([Math]::Round($reportedAfter, 1)) s after Azurite stopped; the record read $($jobs[-1].State) $([Math]::Round($recordAfter, 1)) s after it restarted"
    }
    AfterAll {
        if (-not $skip) {
            $env:AZURE_STORAGE_CONNECTION_STRING = $saved
            if ($child -and -not $child.Process.HasExited) { $child.Process.Kill() }
            Stop-TestAzurite $azurite
            Remove-TestDirectory $dir
        }
    }

    It 'the job failed with VaultUnavailable within the documented retry budget (~15 s)' -Skip:($Backend -ne 'Blob') {
        $stoppedAt | Should -Not -BeNullOrEmpty
        $result.Result.state | Should -Be 'Failed' -Because $result.Output
        $result.Result.error | Should -Be 'VaultUnavailable'
        # 0.5 + 1 + 2 + 4 + 8 s of backoff (the SDK adds ±20% jitter), plus the request and the job's end.
        $reportedAfter | Should -BeLessThan 25
    }

    It 'its own process shows the true end, not Interrupted' -Skip:($Backend -ne 'Blob') {
        $result.Result.seenHere | Should -Be 'Failed'
    }

    It 'another process reads Failed once the storage is back (not InProgress, not Interrupted)' -Skip:($Backend -ne 'Blob') {
        $jobs[-1].Id | Should -Be $result.Result.id
        $jobs[-1].State | Should -Be 'Failed'
        $jobs[-1].Errors[0].ErrorId | Should -Be 'VaultUnavailable'
    }

    It 'the item can go on: the next cycle publishes the first point' -Skip:($Backend -ne 'Blob') {
        $j = Get-AsrProtectedItem -Vault $vaultUrl outage | Invoke-AsrReplication
        $j.State | Should -Be 'Succeeded'
        $j.Result.Mode | Should -Be 'Initial'
    }
}
