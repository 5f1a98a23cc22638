param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Export-AsrHealthReport (issue #16): the report of a vault with items, points, a failed job, drill results (one
# planted with HTML in its console text, damaged ones), rendered by real headless Chromium (Debian's chromium): the DOM
# must hold every item, the charts and the drill rows; the page's screenshot is a real image. The boot-verified drills'
# own screenshots in a report are covered by Boot.Tests.ps1.

Describe 'Export-AsrHealthReport [<Backend>]' -Tag Report {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason chromium
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vault = Initialize-TestVault $dir @('web01', 'db01', 'app01') -SizeBytes 1MB
        foreach ($i in 1..2) { Get-AsrProtectedItem web01 | Invoke-AsrReplication -ErrorAction Stop | Out-Null }
        # A failed job: app01's packs are gone from the vault, so exporting its point fails (VaultDataCorrupt).
        $app = Get-AsrProtectedItem app01
        foreach ($key in @(Get-VaultObjectKeys $vault "items/$($app.Id)/packs/")) { Remove-VaultObject $vault $key }
        Get-AsrRecoveryPoint app01 -Latest | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'export') -ErrorAction SilentlyContinue | Out-Null
        $web = Get-AsrProtectedItem web01
        $now = [DateTimeOffset]::UtcNow
        # Drill results behind the module's back (an unencrypted vault keeps plain JSON records): a valid one whose
        # console and check texts carry HTML, one whose "screenshot" is not a PNG, and one that is not JSON at all.
        $png = [IO.File]::ReadAllBytes((Join-TestPath $PSScriptRoot '../../docs/images/health-report.png'))
        $hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
        # Records are camelCase JSON.
        $drill = @{
            itemId = $web.Id; itemName = 'web01'; drillId = [Guid]::NewGuid(); jobId = [Guid]::NewGuid(); recoveryPointSequence = 1; recoveryPointTimeUtc = $now.AddMinutes(-5)
            boot = @{ outcome = 'Passed'; booted = $true; readyAfterSeconds = 12.5; detail = 'console: login:'; checkResult = 'Failed'; checkMessage = $hostile; consoleTail = "ok`n$hostile"; accelerator = 'tcg'; startedUtc = $now.AddMinutes(-4); endedUtc = $now.AddMinutes(-3) }
            screenshot = [Convert]::ToBase64String($png)
        }
        $prefix = "items/$($web.Id)/drills/"
        Write-VaultObject $vault "$($prefix)20261201T000000000-$([Guid]::NewGuid().ToString('N')).json" ($drill | ConvertTo-Json -Depth 5)
        $fake = $drill.Clone(); $fake.screenshot = [Convert]::ToBase64String([Text.Encoding]::ASCII.GetBytes('GIF89a not a png at all'))
        $notPngKey = "$($prefix)20261201T000000001-$([Guid]::NewGuid().ToString('N')).json"
        Write-VaultObject $vault $notPngKey ($fake | ConvertTo-Json -Depth 5)
        $garbageKey = "$($prefix)20261201T000000002-$([Guid]::NewGuid().ToString('N')).json"
        Write-VaultObject $vault $garbageKey 'not json {'
        $report = Join-TestPath $dir 'health.html'
        $warnings = $null
        $file = Export-AsrHealthReport -Path $report -WarningVariable warnings -WarningAction SilentlyContinue
        $html = [IO.File]::ReadAllText($report)
        $shot = Join-TestPath $dir 'health.png'
        $dom = Invoke-Chromium $report -Screenshot $shot
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'writes one self-contained file that cannot fetch anything' {
        $file.FullName | Should -Be ([IO.Path]::GetFullPath($report))
        $html | Should -Match '<meta http-equiv="Content-Security-Policy" content="default-src ''none''; img-src data:; style-src ''unsafe-inline''">'
        $html | Should -Not -Match '(src|href)\s*=\s*"(https?:)?//'
        $html | Should -Not -Match '<script|<link|<iframe'
        @(Get-ChildItem $dir -Filter 'health.html.tmp-*').Count | Should -Be 0
    }

    It 'Chromium renders every item, its state and health, and the charts' {
        foreach ($name in 'web01', 'db01', 'app01') {
            $dom | Should -Match "<tr data-item=""$name"">"
            $dom | Should -Match "<figure class=""chart"" data-chart=""rpo"" data-item=""$name""><svg"
        }
        $dom | Should -Match '<figure class="chart" data-chart="points-per-day"><svg'
        $dom | Should -Match '<figure class="chart" data-chart="vault-size"><svg'
        ([regex]::Matches($dom, '<svg')).Count | Should -BeGreaterOrEqual 5
        $dom | Should -Match '<tr data-item="web01"><td>web01</td><td>Protected</td><td><span class="badge Normal">Normal</span></td>'
        # web01 has 3 crash-consistent points.
        $dom | Should -Match '<tr data-item="web01">.*?<td class="n">3</td><td class="n">3 / 0 / 0</td>'
        $dom | Should -Match 'id="card-items"><b>3</b>'
    }

    It 'shows the failed job with its error id, and the events' {
        $dom | Should -Match '<table id="failed-jobs">'
        $dom | Should -Match '<td>ExportRecoveryPoint</td><td>app01</td><td><span class="badge Failed">Failed</span></td><td class="n">[^<]*</td><td>VaultDataCorrupt: Disk'
        $dom | Should -Match '<h2 id="failures">Failures</h2>\s*<table id="failed-jobs">'
        $dom | Should -Match '<table id="events">'
    }

    It 'shows a drill result with its screenshot, and vault text only as text' {
        $dom | Should -Match '<tr class="drill" data-item="web01" data-outcome="Passed">'
        $dom | Should -Match '<img class="shot" alt="screen of web01" src="data:image/png;base64,'
        # The console and check texts are text in the page, not elements.
        $dom | Should -Match ([regex]::Escape('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;'))
        $dom | Should -Not -Match '<script'
        $dom | Should -Not -Match '<img src="x"'
    }

    It 'leaves out drill records that are damaged or not valid, and names them' {
        ([regex]::Matches($dom, '<tr class="drill"')).Count | Should -Be 1
        $dom | Should -Match '<h2 id="skipped">'
        $dom | Should -Match ([regex]::Escape($notPngKey))
        $dom | Should -Match ([regex]::Escape($garbageKey))
        ($warnings -join "`n") | Should -Match ([regex]::Escape($notPngKey))
        ($warnings -join "`n") | Should -Match ([regex]::Escape($garbageKey))
    }

    It 'Chromium draws the page: a real screenshot' {
        $size = Get-PngSize $shot
        $size.Width | Should -Be 1280
        $size.Height | Should -Be 2400
        (Get-Item $shot).Length | Should -BeGreaterThan 30KB
    }

    It 'keeps a size sample per report, so the next report draws the vault''s course' {
        @(Get-VaultObjectKeys $vault 'stats/size/').Count | Should -Be 1
        Export-AsrHealthReport -Path $report -WarningAction SilentlyContinue | Out-Null
        @(Get-VaultObjectKeys $vault 'stats/size/').Count | Should -Be 2
        # Two measured samples: the chart's measured series has two markers.
        [IO.File]::ReadAllText($report) | Should -Match 'data-chart="vault-size"'
    }

    It 'refuses to replace a file with -NoClobber, and a missing directory' {
        { Export-AsrHealthReport -Path $report -NoClobber -ErrorAction Stop } | Should -Throw -ErrorId 'ExportDestinationExists*'
        { Export-AsrHealthReport -Path (Join-TestPath $dir 'no/such/dir/r.html') -ErrorAction Stop } | Should -Throw -ErrorId 'ExportDestinationInvalid*'
        Export-AsrHealthReport -Path (Join-TestPath $dir 'whatif.html') -WhatIf | Should -BeNullOrEmpty
        Test-Path (Join-TestPath $dir 'whatif.html') | Should -BeFalse
    }
}

Describe 'Export-AsrHealthReport of an encrypted vault [<Backend>]' -Tag Report {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vault = New-TestVaultLocation $dir
        $key = ConvertTo-SecureString 'report-test-passphrase-0123456789' -AsPlainText -Force
        New-AsrVault -Path $vault -EncryptionKey $key | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $disk = Join-TestPath $dir 'sealed01.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 1MB -Seed 5 | Out-Null
        Enable-AsrReplication -Name sealed01 -Disk $disk -Policy p -ErrorAction Stop | Out-Null
        $item = Get-AsrProtectedItem sealed01
    }
    AfterAll {
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'a drill result planted without the key is not authenticated, so it is left out and named; the size sample is sealed' {
        $planted = "items/$($item.Id)/drills/20261201T000000000-$([Guid]::NewGuid().ToString('N')).json"
        $record = @{ itemId = $item.Id; itemName = 'sealed01'; boot = @{ outcome = 'Passed'; startedUtc = [DateTimeOffset]::UtcNow; consoleTail = 'forged' } } | ConvertTo-Json -Depth 4
        Write-VaultObject $vault $planted $record
        $warnings = $null
        $report = Join-TestPath $dir 'sealed.html'
        Export-AsrHealthReport -Path $report -WarningVariable warnings -WarningAction SilentlyContinue | Out-Null
        $html = [IO.File]::ReadAllText($report)
        $html | Should -Match '<tr data-item="sealed01">'
        $html | Should -Not -Match 'forged'
        $html | Should -Match ([regex]::Escape($planted))
        ($warnings -join "`n") | Should -Match ([regex]::Escape($planted))
        $sample = @(Get-VaultObjectKeys $vault 'stats/size/')
        $sample.Count | Should -Be 1
        # Sealed: not readable JSON without the key.
        [Text.Encoding]::UTF8.GetString((Read-VaultObject $vault $sample[0])) | Should -Not -Match '"bytes"'
    }
}
