# Failover to Azure (issue #11) through the cmdlets, end to end, against tests/FakeArm: a documented FAKE of Azure
# Resource Manager (https on 127.0.0.1, self-signed certificate; it is not Azure) whose managed disks are real page
# blobs in a real Azurite. One Azurite and one fake serve the whole file (BeforeAll); each It protects its own
# machines in its own local vault (no -Backend: this file runs once).
#
# The module trusts the fake's certificate only in a pwsh STARTED with SSL_CERT_FILE, so every scenario runs in ONE
# child pwsh (Invoke-PwshProcess -Environment (Get-TestFakeArmEnvironment ...)) that prints "RESULT name=value" lines;
# the It asserts them. The child looks at the fake through its control API (GET /_fake/state, /_fake/requests) and
# at the managed disks' page blobs through Azurite with the account key: what Azure holds, not what the module says.
#
# Without dotnet, the built FakeArm.dll or azurite-blob the tests are reported as skipped with the reason, except
# under CI=true, where they run and fail.

Describe 'Failover to Azure (a fake Azure Resource Manager, page blobs in Azurite)' -Tag Azure, Slow {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestFakeArm.ps1'))
        $skipReason = Get-FakeArmSkipReason
        if ($skipReason) { return }
        $repoRoot = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', '..'))
        $azurite = Start-TestAzurite
        $fake = Start-TestFakeArm -AzuriteConnectionString $azurite.ConnectionString
        $subnet = New-TestSubnetId 'recovery'
        $testSubnet = New-TestSubnetId 'drill'
        Register-TestSubnet $fake $subnet, $testSubnet
        $childEnvironment = Get-TestFakeArmEnvironment $fake
        $TestsDir = $PSScriptRoot

        # The children's common start: the helpers, the module, the fake, a target on it, and a scratch directory.
        $Prologue = @"
`$ErrorActionPreference = 'Stop'
. '$TestsDir/TestHelpers.ps1'
. '$TestsDir/TestAzurite.ps1'
. '$TestsDir/TestFakeArm.ps1'
Import-Module AsrModule
`$repoRoot = '$repoRoot'
`$subnet = '$subnet'
`$testSubnet = '$testSubnet'
"@ + @'

$fake = Get-TestFakeArmFromEnvironment
$dir = New-TestDirectory
'RESULT Dir=' + $dir

function New-FakeTarget([string]$SubnetId = $subnet, [string]$TestSubnetId = $testSubnet, [hashtable]$Extra = @{}) {
    # The fake accepts any bearer token; the module trusts its certificate through SSL_CERT_FILE.
    New-AsrAzureTarget -SubscriptionId $fake.SubscriptionId -ResourceGroupName $fake.ResourceGroup -Location $fake.Region `
        -SubnetId $SubnetId -TestSubnetId $TestSubnetId -VMSize Standard_D2s_v5 -DiskSku StandardSSD_LRS `
        -AccessToken 'fake-token' -ResourceManagerUrl $fake.Endpoint -AuthorityHost 'https://login.microsoftonline.com/' @Extra
}

function Get-Outcome([scriptblock]$Command) {
    try { $null = & $Command; 'OK' } catch { $_.FullyQualifiedErrorId.Split(',')[0] + '|' + $_.CategoryInfo.Category }
}

function Format-Map($Map) { (@($Map.Keys | Sort-Object | ForEach-Object { "$_=$($Map[$_])" })) -join ';' }

function Get-ItemResources([string]$Name, $State) {
    # What the fake holds for an item: its asr-item tag is the item's name or id.
    $item = Get-AsrProtectedItem $Name
    @(Get-FakeArmResource -FakeArm $fake -State $State -TagName 'asr-item' -TagValue $item.Name, $item.Id)
}

function Get-AzureDiskHashes($Machine, $Item, $State) {
    # disk name -> SHA-256 of the first SizeBytes of the managed disk's page blob (what the guest reads as its disk).
    if (-not $State) { $State = Get-FakeArmState $fake }
    $hashes = @{}
    foreach ($d in $Item.Disks) {
        $id = $Machine.Disks[$d.DiskId]
        $json = @($State.disks | Where-Object { $_.id -eq $id })
        $hashes[$d.Name] = if ($json.Count -eq 1) { Get-FakeArmDiskHash -FakeArm $fake -Disk $json[0] -Length $d.SizeBytes } else { "missing:$id" }
    }
    $hashes
}

function Get-ManagedDisk($Machine, $Item, [string]$DiskName, $State) {
    if (-not $State) { $State = Get-FakeArmState $fake }
    $d = $Item.Disks | Where-Object Name -eq $DiskName
    @($State.disks | Where-Object { $_.id -eq $Machine.Disks[$d.DiskId] })[0]
}

function Get-LoggedOperationTags {
    # The asr-operation tags of the resources the module PUT since the request log was last cleared.
    $tags = foreach ($r in Get-FakeArmRequests $fake) {
        if ($r.method -ne 'PUT' -or -not $r.body) { continue }
        $body = $r.body | ConvertFrom-Json -AsHashtable
        if ($body.tags) { foreach ($k in $body.tags.Keys) { if ($k -eq 'asr-operation') { [string]$body.tags[$k] } } }
    }
    @($tags | Sort-Object -Unique)
}

function Get-ReceivedUtc($Request) {
    if ($Request.received -is [datetime]) { return $Request.received.ToUniversalTime() }
    [DateTimeOffset]::Parse([string]$Request.received, [Globalization.CultureInfo]::InvariantCulture).UtcDateTime
}

function Clear-FakeArmRequests { Invoke-FakeArmControl -FakeArm $fake -Method DELETE -Path '/_fake/requests' | Out-Null }

function Remove-TestFailover([string]$Name) {
    # Leaves the shared fake clean for the next test (best effort).
    try { if ((Get-AsrProtectedItem $Name).State -eq 'FailedOver') { Get-AsrProtectedItem $Name | Undo-AsrFailover -Confirm:$false | Out-Null } } catch { 'RESULT CleanupError=' + $_.Exception.Message }
}

'@
        function Invoke-AzureScenario([string]$Body, [hashtable]$Extra = @{}, [int]$TimeoutSeconds = 240) {
            <# One scenario in one child pwsh that trusts the fake; its directory is deleted afterwards. #>
            $run = Invoke-PwshProcess ($Prologue + $Body + "`n'RESULT Done=1'`n") (Get-TestFakeArmEnvironment $fake $Extra) $TimeoutSeconds
            if ($run.Result.Dir -and [IO.Directory]::Exists($run.Result.Dir)) { [IO.Directory]::Delete($run.Result.Dir, $true) }
            $run
        }
    }
    AfterAll {
        if ($skipReason) { return }
        Stop-TestFakeArm $fake
        Stop-TestAzurite $azurite
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }

    It 'a drill makes managed disks and a VM in the drill subnet, tagged; Test-AsrTestFailover verifies them; cleanup removes exactly the drill''s resources' {
        $run = Invoke-AzureScenario @'
$vaultPath = Initialize-TestVault $dir -Machines drill01 -SizeBytes 4MB
Write-AsrSampleChange -Path (Join-TestPath $dir 'drill01.img') -Fraction 0.02 -Seed 5 | Out-Null
Get-AsrProtectedItem drill01 | Invoke-AsrReplication | Out-Null
$t = New-FakeTarget -Extra @{ Tag = @{ costcenter = 'dr-drills' }; MachineSetting = @{ drill01 = @{ VMSize = 'Standard_D4s_v5' } } }
'RESULT Kind=' + $t.Kind
'RESULT Location=' + $t.Location
'RESULT SubscriptionId=' + $t.SubscriptionId
'RESULT ResourceGroupName=' + $t.ResourceGroupName
'RESULT Region=' + $t.Region
'RESULT SubnetId=' + $t.SubnetId
'RESULT TestSubnetId=' + $t.TestSubnetId
'RESULT CredentialKind=' + $t.CredentialKind
'RESULT TargetText=' + (($t | Format-List * | Out-String) -replace '\s+', ' ')
# A resource of another operation on the same item, made behind the module's back: cleanup must leave it alone.
$otherOperation = [Guid]::NewGuid().ToString()
New-FakeArmDisk -FakeArm $fake -Name 'drill01-other-operation' -Tags @{ 'asr-item' = 'drill01'; 'asr-operation' = $otherOperation } | Out-Null

$drill = Get-AsrProtectedItem drill01 | Start-AsrTestFailover -RecoveryPoint LatestProcessed -Target $t | Wait-AsrJob
'RESULT DrillState=' + $drill.State
$item = Get-AsrProtectedItem drill01
'RESULT ItemState=' + $item.State
$m = $item.TestFailover.Machine
'RESULT TargetKind=' + $m.TargetKind
'RESULT TargetLocation=' + $m.TargetLocation
'RESULT MachineId=' + $m.MachineId
'RESULT MachineDisks=' + $m.Disks.Count
$op = Get-FakeArmOperationTagValue $m.OperationId
'RESULT OperationId=' + $m.OperationId
'RESULT VmTags=' + (Format-Map (@(Get-FakeArmResource -FakeArm $fake | Where-Object Id -eq $m.MachineId)[0].Tags))
$state = Get-FakeArmState $fake
$vm = @($state.virtualMachines | Where-Object { $_.id -eq $m.MachineId })
'RESULT VmFound=' + $vm.Count
'RESULT VmSubnet=' + (@(Get-FakeArmVmSubnet $vm[0]) -join ',')
'RESULT VmSize=' + $vm[0].properties.hardwareProfile.vmSize
'RESULT VmCostCenter=' + $vm[0].tags.costcenter
$mine = @(Get-FakeArmResource -FakeArm $fake -State $state -TagName 'asr-operation' -TagValue $op)
'RESULT TaggedVms=' + @($mine | Where-Object Kind -eq 'VirtualMachine').Count
'RESULT TaggedDisks=' + @($mine | Where-Object Kind -eq 'Disk').Count
'RESULT ItemTags=' + ((@($mine | ForEach-Object { Get-FakeArmTag $_.Tags 'asr-item' }) | Sort-Object -Unique) -join ',')
'RESULT ItemId=' + $item.Id
'RESULT DisksAttached=' + @($state.disks | Where-Object { $m.Disks.Values -contains $_.id -and $_.managedBy -eq $m.MachineId }).Count
'RESULT DiskHashes=' + (Format-Map (Get-AzureDiskHashes $m $item $state))
'RESULT PointHashes=' + (Format-Map (Get-ExportedHashes (Get-AsrRecoveryPoint -Item drill01 -Sequence $item.TestFailover.RecoveryPointSequence) (Join-TestPath $dir 'point')))
'RESULT DrillPoint=' + $item.TestFailover.RecoveryPointSequence

$check = Get-AsrProtectedItem drill01 | Test-AsrTestFailover
'RESULT CheckState=' + $check.State
'RESULT Verified=' + $check.Result.Verified
'RESULT CheckNote=' + ($check.Result.Note -replace '\s+', ' ')

$cleanup = Get-AsrProtectedItem drill01 | Start-AsrTestFailoverCleanup -Comment 'azure drill ok' -Confirm:$false | Wait-AsrJob
'RESULT CleanupState=' + $cleanup.State
$after = Get-AsrProtectedItem drill01
'RESULT AfterState=' + $after.State
'RESULT AfterComment=' + $after.LastTestFailover.Comment
$state = Get-FakeArmState $fake
'RESULT LeftOfDrill=' + @(Get-FakeArmResource -FakeArm $fake -State $state -TagName 'asr-operation' -TagValue $op).Count
'RESULT VmLeft=' + @($state.virtualMachines | Where-Object { $_.id -eq $m.MachineId }).Count
'RESULT DisksLeft=' + @($state.disks | Where-Object { $m.Disks.Values -contains $_.id }).Count
'RESULT OtherLeft=' + @(Get-FakeArmResource -FakeArm $fake -State $state -TagName 'asr-operation' -TagValue $otherOperation).Count
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.Kind | Should -Be 'Azure' -Because $because
        $r.Location | Should -Be "/subscriptions/$($fake.SubscriptionId)/resourceGroups/$($fake.ResourceGroup)" -Because $because
        $r.SubscriptionId | Should -Be $fake.SubscriptionId
        $r.ResourceGroupName | Should -Be $fake.ResourceGroup
        $r.Region | Should -Be $fake.Region
        $r.SubnetId | Should -Be $subnet
        $r.TestSubnetId | Should -Be $testSubnet
        $r.CredentialKind | Should -Be 'AccessToken'
        $r.TargetText | Should -Not -Match 'fake-token' -Because 'a target shows how it authenticates, never the secret'
        $r.DrillState | Should -Be 'Succeeded' -Because $because
        $r.ItemState | Should -Be 'TestFailedOver'
        $r.TargetKind | Should -Be 'Azure'
        $r.TargetLocation | Should -Be $r.Location
        $r.MachineId | Should -Match "^/subscriptions/$($fake.SubscriptionId)/resourceGroups/$($fake.ResourceGroup)/providers/Microsoft\.Compute/virtualMachines/[^/]+$"
        $r.MachineDisks | Should -Be '1'
        $r.VmFound | Should -Be '1'
        $r.VmSubnet | Should -Be $testSubnet -Because 'a drill goes into the isolated drill subnet'
        $r.VmSize | Should -Be 'Standard_D4s_v5' -Because '-MachineSetting overrides the target''s -VMSize for drill01'
        $r.VmCostCenter | Should -Be 'dr-drills' -Because '-Tag adds tags to everything created'
        $r.TaggedVms | Should -Be '1'
        $r.TaggedDisks | Should -Be '1'
        $r.ItemTags | Should -BeIn @('drill01', $r.ItemId) -Because 'every resource is tagged with its item (name or id)'
        $r.DisksAttached | Should -Be '1'
        $r.DrillPoint | Should -Be '2'
        $r.DiskHashes | Should -Match '^drill01\.img=[0-9A-F]{64}$'
        $r.DiskHashes | Should -Be $r.PointHashes -Because 'the managed disk holds the point''s disk (then zero padding and the VHD footer)'
        $r.CheckState | Should -Be 'Succeeded' -Because $because
        $r.Verified | Should -Be 'True' -Because $r.CheckNote
        $r.CleanupState | Should -Be 'Succeeded' -Because $because
        $r.AfterState | Should -Be 'Protected'
        $r.AfterComment | Should -Be 'azure drill ok'
        $r.LeftOfDrill | Should -Be '0' -Because 'cleanup deletes every resource tagged with the drill''s operation'
        $r.VmLeft | Should -Be '0'
        $r.DisksLeft | Should -Be '0'
        $r.OtherLeft | Should -Be '1' -Because 'a resource of another operation is not the drill''s to delete'
        $r.Done | Should -Be '1' -Because $because
    }

    It 'unplanned failover, change of point, cancel, failover again, commit, reprotect and failback: every disk checked by SHA-256 in the page blobs' {
        $run = Invoke-AzureScenario -TimeoutSeconds 300 @'
$os = Join-TestPath $dir 'fo01-os.img'; $data = Join-TestPath $dir 'fo01-data.img'
New-AsrSampleDisk -Path $os -SizeBytes 4MB -Seed 11 | Out-Null
New-AsrSampleDisk -Path $data -SizeBytes (2MB + 4096) -Seed 12 | Out-Null     # not a whole MiB: padded in Azure
New-AsrVault -Path (Join-TestPath $dir 'vault') | Connect-AsrVault
New-AsrPolicy -Name p | Out-Null
Enable-AsrReplication -Name fo01 -Disk $os, $data -Policy p | Out-Null
$p1 = Get-ExportedHashes (Get-AsrRecoveryPoint -Item fo01 -Sequence 1) (Join-TestPath $dir 'p1')
Write-AsrSampleChange -Path $os -Fraction 0.05 -Seed 13 | Out-Null
Write-AsrSampleChange -Path $data -Fraction 0.05 -Seed 14 | Out-Null
Get-AsrProtectedItem fo01 | Invoke-AsrReplication | Out-Null
$p2 = Get-ExportedHashes (Get-AsrRecoveryPoint -Item fo01 -Sequence 2) (Join-TestPath $dir 'p2')
'RESULT Point1=' + (Format-Map $p1)
'RESULT Point2=' + (Format-Map $p2)
'RESULT Source=' + (Format-Map @{ 'fo01-os.img' = Get-AsrSampleHash $os; 'fo01-data.img' = Get-AsrSampleHash $data })
$t = New-FakeTarget

# Unplanned failover to point 2.
$job = Get-AsrProtectedItem fo01 | Start-AsrFailover -RecoveryPoint 2 -Target $t -Confirm:$false | Wait-AsrJob
'RESULT FailoverState=' + $job.State
$item = Get-AsrProtectedItem fo01
'RESULT FailedOver=' + $item.State + '/' + $item.ActiveLocation
$m1 = $item.Failover.Machine
'RESULT FailoverKind=' + $m1.TargetKind
'RESULT FailoverVm=' + $m1.MachineId
$state = Get-FakeArmState $fake
$vm = @($state.virtualMachines | Where-Object { $_.id -eq $m1.MachineId })
'RESULT FailoverVmFound=' + $vm.Count
'RESULT FailoverSubnet=' + (@(Get-FakeArmVmSubnet $vm[0]) -join ',')
'RESULT FailoverVmDisks=' + @($state.disks | Where-Object { $m1.Disks.Values -contains $_.id -and $_.managedBy -eq $m1.MachineId }).Count
'RESULT FailoverDisks=' + (Format-Map (Get-AzureDiskHashes $m1 $item $state))
$osDisk = Get-ManagedDisk $m1 $item 'fo01-os.img' $state
'RESULT OsUploadSize=' + $osDisk.properties.creationData.uploadSizeBytes
'RESULT OsFooter=' + [Text.Encoding]::ASCII.GetString((Get-FakeArmDiskFooter -FakeArm $fake -Disk $osDisk), 0, 8)
$dataDisk = Get-ManagedDisk $m1 $item 'fo01-data.img' $state
'RESULT DataUploadSize=' + $dataDisk.properties.creationData.uploadSizeBytes
$firstOperation = Get-FakeArmOperationTagValue $m1.OperationId

# Change of point: the VM's disks replaced by point 1's, the VM kept.
$job = Get-AsrProtectedItem fo01 | Switch-AsrRecoveryPoint -RecoveryPoint 1 -Confirm:$false | Wait-AsrJob
'RESULT SwitchState=' + $job.State
$item = Get-AsrProtectedItem fo01
$m2 = $item.Failover.Machine
'RESULT SwitchedPoint=' + $item.Failover.RecoveryPointSequence
'RESULT SwitchVmSame=' + ($m2.MachineId -eq $m1.MachineId)
'RESULT SwitchDisksNew=' + (@($m2.Disks.Values | Where-Object { $m1.Disks.Values -contains $_ }).Count -eq 0)
$state = Get-FakeArmState $fake
'RESULT OldDisksLeft=' + @($state.disks | Where-Object { $m1.Disks.Values -contains $_.id }).Count
'RESULT SwitchVmDisks=' + @($state.disks | Where-Object { $m2.Disks.Values -contains $_.id -and $_.managedBy -eq $m2.MachineId }).Count
'RESULT SwitchVmFound=' + @($state.virtualMachines | Where-Object { $_.id -eq $m2.MachineId }).Count
'RESULT SwitchDisks=' + (Format-Map (Get-AzureDiskHashes $m2 $item $state))

# Cancel: everything the failover made is deleted.
$job = Get-AsrProtectedItem fo01 | Undo-AsrFailover -Confirm:$false | Wait-AsrJob
'RESULT UndoState=' + $job.State
'RESULT AfterUndo=' + (Get-AsrProtectedItem fo01).State
'RESULT LeftAfterUndo=' + @(Get-ItemResources fo01).Count
'RESULT LeftOfFirstOperation=' + @(Get-FakeArmResource -FakeArm $fake -TagName 'asr-operation' -TagValue ($firstOperation + (Get-FakeArmOperationTagValue $m2.OperationId))).Count

# Failover again, commit.
$job = Get-AsrProtectedItem fo01 | Start-AsrFailover -RecoveryPoint LatestProcessed -Target $t -Confirm:$false | Wait-AsrJob
'RESULT Failover2State=' + $job.State
$job = Get-AsrProtectedItem fo01 | Complete-AsrFailover -Confirm:$false | Wait-AsrJob
'RESULT CommitState=' + $job.State
$item = Get-AsrProtectedItem fo01
'RESULT Committed=' + $item.State
$m3 = $item.Failover.Machine
'RESULT Failover2Disks=' + (Format-Map (Get-AzureDiskHashes $m3 $item))

# The VM in Azure writes three 4 KiB blocks; reprotect sends only the differing blocks to the original disks.
$written = Write-FakeArmDiskBlock -FakeArm $fake -Disk (Get-ManagedDisk $m3 $item 'fo01-os.img') -Offset 0, 1MB, (3MB + 8192) -Seed 21
'RESULT Written=' + $written
$azureAtReprotect = Get-AzureDiskHashes $m3 $item
$job = Get-AsrProtectedItem fo01 | Update-AsrProtectionDirection -Confirm:$false | Wait-AsrJob
'RESULT ReprotectState=' + $job.State
'RESULT BytesSent=' + $job.Result.BytesSent
'RESULT Reprotected=' + (Get-AsrProtectedItem fo01).State
'RESULT AzureAtReprotect=' + (Format-Map $azureAtReprotect)
'RESULT OriginalAfterReprotect=' + (Format-Map @{ 'fo01-os.img' = Get-AsrSampleHash $os; 'fo01-data.img' = Get-AsrSampleHash $data })

# It writes once more (the data disk); failback brings the original disks to the Azure disks.
Write-FakeArmDiskBlock -FakeArm $fake -Disk (Get-ManagedDisk $m3 $item 'fo01-data.img') -Offset 2MB -Seed 22 | Out-Null
$azureAtFailback = Get-AzureDiskHashes $m3 $item
$job = Get-AsrProtectedItem fo01 | Invoke-AsrFailback -Confirm:$false | Wait-AsrJob
'RESULT FailbackState=' + $job.State
$item = Get-AsrProtectedItem fo01
'RESULT AfterFailback=' + $item.State + '/' + $item.ActiveLocation
'RESULT AzureAtFailback=' + (Format-Map $azureAtFailback)
'RESULT OriginalAfterFailback=' + (Format-Map @{ 'fo01-os.img' = Get-AsrSampleHash $os; 'fo01-data.img' = Get-AsrSampleHash $data })
'RESULT LeftAfterFailback=' + @(Get-ItemResources fo01).Count
# The token never reaches the vault (item, job and event records); every ARM request carried a bearer token.
'RESULT TokenInVault=' + @(Get-ChildItem -Recurse -File (Join-TestPath $dir 'vault') | Where-Object { [IO.File]::ReadAllText($_.FullName).Contains('fake-token') }).Count
'RESULT WithoutBearer=' + @(Get-FakeArmRequests $fake | Where-Object { -not $_.bearer }).Count
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.Point2 | Should -Be $r.Source -Because $because
        $r.Point1 | Should -Not -Be $r.Point2
        # Failover: a VM in the recovery subnet whose managed disks hold point 2.
        $r.FailoverState | Should -Be 'Succeeded' -Because $because
        $r.FailedOver | Should -Be 'FailedOver/Recovery'
        $r.FailoverKind | Should -Be 'Azure'
        $r.FailoverVm | Should -Match '/providers/Microsoft\.Compute/virtualMachines/[^/]+$'
        $r.FailoverVmFound | Should -Be '1'
        $r.FailoverSubnet | Should -Be $subnet
        $r.FailoverVmDisks | Should -Be '2'
        $r.FailoverDisks | Should -Be $r.Point2 -Because 'each managed disk''s page blob holds the point''s disk'
        $r.OsUploadSize | Should -Be ([string](20MB + 512)) -Because 'a small disk is padded to the 20 MiB minimum, plus the footer'
        $r.OsFooter | Should -Be 'conectix'
        $r.DataUploadSize | Should -Be ([string](20MB + 512))
        # Change of point: same VM, new disks holding point 1, the old ones deleted.
        $r.SwitchState | Should -Be 'Succeeded' -Because $because
        $r.SwitchedPoint | Should -Be '1'
        $r.SwitchVmSame | Should -Be 'True'
        $r.SwitchDisksNew | Should -Be 'True'
        $r.OldDisksLeft | Should -Be '0'
        $r.SwitchVmFound | Should -Be '1'
        $r.SwitchVmDisks | Should -Be '2'
        $r.SwitchDisks | Should -Be $r.Point1
        # Cancel: nothing left.
        $r.UndoState | Should -Be 'Succeeded' -Because $because
        $r.AfterUndo | Should -Be 'Protected'
        $r.LeftAfterUndo | Should -Be '0'
        $r.LeftOfFirstOperation | Should -Be '0'
        # Failover again and commit.
        $r.Failover2State | Should -Be 'Succeeded' -Because $because
        $r.CommitState | Should -Be 'Succeeded' -Because $because
        $r.Committed | Should -Be 'Committed'
        $r.Failover2Disks | Should -Be $r.Point2
        # Reprotect: only the blocks the VM wrote travel; the original disks then equal the Azure disks.
        $r.ReprotectState | Should -Be 'Succeeded' -Because $because
        [long]$r.BytesSent | Should -BeGreaterThan 0
        [long]$r.BytesSent | Should -BeLessOrEqual (2 * [long]$r.Written) -Because 'reprotect compares both sides and sends only differing blocks'
        $r.Reprotected | Should -Be 'Reprotected'
        $r.AzureAtReprotect | Should -Not -Be $r.Point2 -Because 'the VM wrote to its OS disk'
        $r.OriginalAfterReprotect | Should -Be $r.AzureAtReprotect
        # Failback: the original disks equal the Azure disks; the item is protected again.
        $r.FailbackState | Should -Be 'Succeeded' -Because $because
        $r.AfterFailback | Should -Be 'Protected/Primary'
        $r.AzureAtFailback | Should -Not -Be $r.AzureAtReprotect -Because 'the VM wrote to its data disk after reprotect'
        $r.OriginalAfterFailback | Should -Be $r.AzureAtFailback
        $r.TokenInVault | Should -Be '0' -Because 'the access token is a secret: no vault record holds it'
        $r.WithoutBearer | Should -Be '0'
        $r.Done | Should -Be '1' -Because $because
    }

    It 'a QuotaExceeded failure of the VM''s creation fails the job with AzureQuotaExceeded, leaves nothing in Azure and the item Protected; a retry succeeds' {
        $run = Invoke-AzureScenario @'
Initialize-TestVault $dir -Machines q01 -SizeBytes 2MB | Out-Null
$t = New-FakeTarget
Clear-FakeArmRequests
Add-FakeArmFault -FakeArm $fake -Method PUT -Path '/virtualMachines/' -Lro -Code QuotaExceeded `
    -Message 'Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota.' | Out-Null
$job = Get-AsrProtectedItem q01 | Start-AsrFailover -Target $t -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable failure
'RESULT JobState=' + $job.State
'RESULT ErrorId=' + $failure[0].FullyQualifiedErrorId
'RESULT Category=' + $failure[0].CategoryInfo.Category
'RESULT Message=' + ($failure[0].Exception.Message -replace '\s+', ' ')
'RESULT JobErrorId=' + @((Get-AsrJob -TargetName q01 -State Failed | Select-Object -First 1).Errors)[0].ErrorId
'RESULT VmPuts=' + @(Get-FakeArmRequests $fake | Where-Object { $_.method -eq 'PUT' -and $_.path -match '/virtualMachines/' }).Count
$operations = Get-LoggedOperationTags
'RESULT OperationTags=' + $operations.Count
'RESULT LeftOfOperation=' + @(Get-FakeArmResource -FakeArm $fake -TagName 'asr-operation' -TagValue $operations).Count
'RESULT LeftOfItem=' + @(Get-ItemResources q01).Count
'RESULT ItemState=' + (Get-AsrProtectedItem q01).State
$retry = Get-AsrProtectedItem q01 | Start-AsrFailover -Target $t -Confirm:$false | Wait-AsrJob
'RESULT RetryState=' + $retry.State
$item = Get-AsrProtectedItem q01
'RESULT RetryItemState=' + $item.State
'RESULT RetryVm=' + @((Get-FakeArmState $fake).virtualMachines | Where-Object { $_.id -eq $item.Failover.Machine.MachineId }).Count
Remove-TestFailover q01
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.JobState | Should -Be 'Failed' -Because $because
        $r.ErrorId | Should -Match '^AzureQuotaExceeded,' -Because $because
        $r.Category | Should -Be 'InvalidOperation'
        $r.Message | Should -Match 'QuotaExceeded'
        $r.Message | Should -Not -Match 'fake-token'
        $r.JobErrorId | Should -Be 'AzureQuotaExceeded'
        $r.VmPuts | Should -Be '1'
        [int]$r.OperationTags | Should -BeGreaterThan 0 -Because 'the module tags what it creates with its operation'
        $r.LeftOfOperation | Should -Be '0' -Because 'what a failed failover made is deleted before the job ends'
        $r.LeftOfItem | Should -Be '0'
        $r.ItemState | Should -Be 'Protected'
        $r.RetryState | Should -Be 'Succeeded' -Because $because
        $r.RetryItemState | Should -Be 'FailedOver'
        $r.RetryVm | Should -Be '1'
        $r.Done | Should -Be '1' -Because $because
    }

    It 'a 429 with Retry-After: 1 on a disk''s creation is honoured (the retry comes at least 1 s later) and the failover succeeds' {
        $run = Invoke-AzureScenario @'
Initialize-TestVault $dir -Machines t01 -SizeBytes 2MB | Out-Null
$t = New-FakeTarget
Clear-FakeArmRequests
Add-FakeArmFault -FakeArm $fake -Method PUT -Path '/providers/Microsoft.Compute/disks/' -Status 429 -Code TooManyRequests -RetryAfter 1 | Out-Null
$job = Get-AsrProtectedItem t01 | Start-AsrFailover -Target $t -Confirm:$false | Wait-AsrJob
'RESULT JobState=' + $job.State
'RESULT ItemState=' + (Get-AsrProtectedItem t01).State
$puts = @(Get-FakeArmRequests $fake | Where-Object { $_.method -eq 'PUT' -and $_.path -match '/disks/' })
$first = $puts[0]
'RESULT FirstStatus=' + $first.status
$again = @($puts | Where-Object { $_.path -eq $first.path -and $_.sequence -gt $first.sequence })[0]
'RESULT RetryStatus=' + $again.status
'RESULT RetryDelayMs=' + [int]((Get-ReceivedUtc $again) - (Get-ReceivedUtc $first)).TotalMilliseconds
Remove-TestFailover t01
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.JobState | Should -Be 'Succeeded' -Because $because
        $r.ItemState | Should -Be 'FailedOver'
        $r.FirstStatus | Should -Be '429'
        $r.RetryStatus | Should -Be '200'
        [int]$r.RetryDelayMs | Should -BeGreaterOrEqual 995 -Because 'Retry-After: 1 is the least delay before the retry'
        $r.Done | Should -Be '1' -Because $because
    }

    It 'a recovery subnet that does not exist fails the failover with a categorised error and leaves nothing' {
        $run = Invoke-AzureScenario @'
Initialize-TestVault $dir -Machines u01 -SizeBytes 2MB | Out-Null
Clear-FakeArmRequests
try {
    $t = New-FakeTarget -SubnetId (New-TestSubnetId 'not-registered')
    Get-AsrProtectedItem u01 | Start-AsrFailover -Target $t -Confirm:$false -ErrorAction Stop | Out-Null
    'RESULT Outcome=OK'
} catch {
    'RESULT Outcome=' + $_.FullyQualifiedErrorId.Split(',')[0] + '|' + $_.CategoryInfo.Category
    'RESULT Message=' + ($_.Exception.Message -replace '\s+', ' ')
}
$operations = Get-LoggedOperationTags
'RESULT LeftOfOperation=' + @(Get-FakeArmResource -FakeArm $fake -TagName 'asr-operation' -TagValue $operations).Count
'RESULT LeftOfItem=' + @(Get-ItemResources u01).Count
'RESULT ItemState=' + (Get-AsrProtectedItem u01).State
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.Outcome | Should -Be 'AzureResourceNotFound|ObjectNotFound' -Because $because
        $r.Message | Should -Match 'InvalidResourceReference|subnet'
        $r.LeftOfOperation | Should -Be '0'
        $r.LeftOfItem | Should -Be '0'
        $r.ItemState | Should -Be 'Protected'
        $r.Done | Should -Be '1' -Because $because
    }

    It 'a recovery plan of three machines runs Unplanned into Azure, pauses between groups, resumes; a step gets the VMs'' ids from $Context.VmMap' {
        $run = Invoke-AzureScenario @'
Initialize-TestVault $dir -Machines az1, az2, az3 -SizeBytes 1MB | Out-Null
$out = Join-TestPath $dir 'vm-ids.txt'
$plan = Join-TestPath $dir 'azure-three.ps1'
[IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'azure-three' {
    AsrGroup 1 -Items az1
    AsrPause 'Check az1 in Azure' -FailoverType Unplanned
    AsrGroup 2 -Items az2, az3 {
        AsrStep 'Record VM ids' -After {
            param(`$Context)
            `$lines = foreach (`$n in 'az1', 'az2', 'az3') { `$vm = `$Context.VmMap[`$n]; "`$n `$(`$vm.TargetKind) `$(`$vm.VirtualMachineId)" }
            [IO.File]::WriteAllLines('$out', [string[]]`$lines)
            `$lines -join '; '
        }
    }
}
"@)
$t = New-FakeTarget
$job = Start-AsrRecoveryPlan -Path $plan -FailoverType Unplanned -Target $t -Confirm:$false
'RESULT FirstState=' + $job.State
'RESULT PauseText=' + $job.StatusMessage
'RESULT AtPause=' + (('az1', 'az2', 'az3' | ForEach-Object { (Get-AsrProtectedItem $_).State }) -join ',')
'RESULT VmsAtPause=' + (('az1', 'az2', 'az3' | ForEach-Object { @(Get-ItemResources $_ | Where-Object Kind -eq 'VirtualMachine').Count }) -join ',')
$done = Get-AsrJob -Id $job.Id | Resume-AsrJob -Comment 'az1 answers' | Wait-AsrJob
'RESULT FinalState=' + $done.State
'RESULT Tasks=' + (($done.Tasks | ForEach-Object { "$($_.Kind):$($_.State)" }) -join ',')
'RESULT StepOutput=' + ($done.Tasks | Where-Object Kind -eq 'StepAfter').Output
$state = Get-FakeArmState $fake
foreach ($n in 'az1', 'az2', 'az3') {
    $item = Get-AsrProtectedItem $n
    "RESULT State_$n=" + $item.State
    "RESULT Vm_$n=" + $item.Failover.Machine.MachineId
    "RESULT VmExists_$n=" + @($state.virtualMachines | Where-Object { $_.id -eq $item.Failover.Machine.MachineId }).Count
}
'RESULT File=' + ([IO.File]::ReadAllLines($out) -join '|')
foreach ($n in 'az1', 'az2', 'az3') { Remove-TestFailover $n }
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.FirstState | Should -Be 'Suspended' -Because $because
        $r.PauseText | Should -Match 'Check az1 in Azure'
        $r.AtPause | Should -Be 'FailedOver,Protected,Protected'
        $r.VmsAtPause | Should -Be '1,0,0'
        $r.FinalState | Should -Be 'Succeeded' -Because $because
        $r.Tasks | Should -Be 'Machine:Succeeded,Pause:Succeeded,Machine:Succeeded,Machine:Succeeded,StepAfter:Succeeded'
        foreach ($n in 'az1', 'az2', 'az3') {
            $r["State_$n"] | Should -Be 'FailedOver'
            $r["Vm_$n"] | Should -Match '/providers/Microsoft\.Compute/virtualMachines/[^/]+$'
            $r["VmExists_$n"] | Should -Be '1'
        }
        @($r.Vm_az1, $r.Vm_az2, $r.Vm_az3 | Sort-Object -Unique).Count | Should -Be 3
        $r.File | Should -Be "az1 Azure $($r.Vm_az1)|az2 Azure $($r.Vm_az2)|az3 Azure $($r.Vm_az3)"
        $r.StepOutput | Should -Be ($r.File -replace '\|', '; ')
        $r.Done | Should -Be '1' -Because $because
    }

    It 'samples/azure-drill-runbook.ps1 drills samples/plans/azure-plan.ps1 into Azure, verifies, cleans up, and exits non-zero when the drill fails' {
        $run = Invoke-AzureScenario @'
$vaultPath = Initialize-TestVault $dir -Machines sql01, app01, web01 -SizeBytes 1MB
Disconnect-AsrVault
$runbook = Join-Path $repoRoot 'samples/azure-drill-runbook.ps1'
$planPath = Join-Path $repoRoot 'samples/plans/azure-plan.ps1'
$inventory = Join-TestPath $dir 'inventory.json'
$env:ASR_PLAN_INVENTORY = $inventory
$common = @{
    VaultPath = $vaultPath; SubscriptionId = $fake.SubscriptionId; ResourceGroupName = $fake.ResourceGroup; Region = $fake.Region
    SubnetId = $subnet; PlanPath = $planPath
    AccessToken = 'fake-token'; ResourceManagerUrl = $fake.Endpoint; AuthorityHost = 'https://login.microsoftonline.com/'
}
Clear-FakeArmRequests
$output = & $runbook @common -TestSubnetId $testSubnet 6>&1 2>&1 | Out-String
'RESULT ExitCode=' + $LASTEXITCODE
'RESULT Output=' + ($output -replace '\s+', ' ')
$drillOperations = Get-LoggedOperationTags
'RESULT DrillOperations=' + $drillOperations.Count
'RESULT Inventory=' + ((@((Get-Content -Raw $inventory | ConvertFrom-Json -AsHashtable).GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Key)=$($_.Value)" })) -join ';')
Connect-AsrVault -Path $vaultPath
'RESULT States=' + (('sql01', 'app01', 'web01' | ForEach-Object { (Get-AsrProtectedItem $_).State }) -join ',')
'RESULT Comments=' + (('sql01', 'app01', 'web01' | ForEach-Object { (Get-AsrProtectedItem $_).LastTestFailover.Comment }) -join '|')
'RESULT LeftOfDrill=' + @(Get-FakeArmResource -FakeArm $fake -TagName 'asr-operation' -TagValue $drillOperations).Count
$requests = @(Get-FakeArmRequests $fake)
'RESULT VmPuts=' + @($requests | Where-Object { $_.method -eq 'PUT' -and $_.path -match '/virtualMachines/' }).Count
'RESULT DrillSubnetOnly=' + (@($requests | Where-Object { $_.method -eq 'PUT' -and $_.path -match '/virtualMachines/' -and $_.body -notmatch [regex]::Escape($testSubnet) }).Count -eq 0)
Disconnect-AsrVault

# The same drill into a subnet that does not exist: the runbook fails (non-zero), cleans up and leaves nothing.
Clear-FakeArmRequests
$output = & $runbook @common -TestSubnetId (New-TestSubnetId 'no-such-drill-subnet') 6>&1 2>&1 | Out-String
'RESULT FailedExitCode=' + $LASTEXITCODE
'RESULT FailedOutput=' + ($output -replace '\s+', ' ')
$failedOperations = Get-LoggedOperationTags
Connect-AsrVault -Path $vaultPath
'RESULT FailedStates=' + (('sql01', 'app01', 'web01' | ForEach-Object { (Get-AsrProtectedItem $_).State }) -join ',')
'RESULT LeftOfFailed=' + @(Get-FakeArmResource -FakeArm $fake -TagName 'asr-operation' -TagValue $failedOperations).Count
'RESULT LeftOfItems=' + @('sql01', 'app01', 'web01' | ForEach-Object { Get-ItemResources $_ }).Count
'@
        $r = $run.Result
        $because = "the child printed: $($run.Output) $($run.Error)"
        $r.ExitCode | Should -Be '0' -Because $because
        $r.Output | Should -Match 'sql01: drill verified'
        $r.Output | Should -Match 'web01: drill verified'
        [int]$r.DrillOperations | Should -BeGreaterThan 0
        $r.Inventory | Should -Match '^app01=/subscriptions/.+/virtualMachines/[^;]+;sql01=/subscriptions/.+/virtualMachines/[^;]+;web01=/subscriptions/.+/virtualMachines/[^;]+$' -Because 'the plan''s step read the drill VMs'' ids from the context'
        $r.States | Should -Be 'Protected,Protected,Protected'
        $r.Comments | Should -Match 'runbook'
        $r.LeftOfDrill | Should -Be '0' -Because 'the runbook cleans the drill up'
        $r.VmPuts | Should -Be '3'
        $r.DrillSubnetOnly | Should -Be 'True'
        $r.FailedExitCode | Should -Not -Be '0' -Because $because
        $r.FailedExitCode | Should -Not -BeNullOrEmpty
        $r.FailedStates | Should -Be 'Protected,Protected,Protected'
        $r.LeftOfFailed | Should -Be '0'
        $r.LeftOfItems | Should -Be '0'
        $r.Done | Should -Be '1' -Because $because
    }
}
