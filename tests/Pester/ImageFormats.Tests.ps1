param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# A machine handed back in its hypervisor's format: sources in VMDK, VHDX, qcow2 and VDI (made with qemu-img) are
# protected, exported and failed over with -Format Source, and failed back into the original image. Bytes are compared
# as the guest sees them (qemu-img convert -O raw, then SHA-256). The vault backend does not matter here: Local only.
# Without its tools the tests are reported as skipped with the reason; CI installs them, and under CI=true they run (and fail if they cannot).

if ($Backend -eq 'Local') {
    Describe 'A <Format> machine comes back as <Format> [<Backend>]' -Tag Qemu -ForEach @(
        @{ Format = 'vmdk'; Extension = '.vmdk'; Seed = 61 }
        @{ Format = 'vhdx'; Extension = '.vhdx'; Seed = 62 }
        @{ Format = 'qcow2'; Extension = '.qcow2'; Seed = 63 }
        @{ Format = 'vdi'; Extension = '.vdi'; Seed = 64 }
    ) {
        BeforeAll {
            . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
            $skipReason = Get-MissingCommandReason qemu-img, qemu-io, qemu-nbd
            if ($skipReason) { return }
            Import-Module AsrModule
            $dir = New-TestDirectory
            New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
            New-AsrPolicy -Name p | Out-Null
            $sample = Join-TestPath $dir 'sample.raw'
            New-AsrSampleDisk -Path $sample -SizeBytes 8MB -Seed $Seed | Out-Null
            $source = Join-TestPath $dir "vm$Extension"
            Invoke-Native 'qemu-img' @('convert', '-f', 'raw', '-O', $Format, $sample, $source) | Out-Null
            $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery') -Format Source
            $recovered = Join-TestPath $target.Path "vm/vm$Extension"
            $state = @{}

            function Get-GuestHash([string]$Image, [string]$ImageFormat = $Format) {
                <# SHA-256 of the guest's bytes of an image: converted to raw by qemu-img (not by the code under test). #>
                $raw = Join-TestPath $dir ("guest-" + [Guid]::NewGuid().ToString('N').Substring(0, 8) + '.raw')
                Invoke-Native 'qemu-img' @('convert', '-f', $ImageFormat, '-O', 'raw', $Image, $raw) | Out-Null
                try { Get-AsrSampleHash $raw } finally { [IO.File]::Delete($raw) }
            }
            function Get-ProbedFormat([string]$Image) {
                <# The format qemu-img itself finds in the file (probing is fine for a file this test made). #>
                $info = Invoke-Native 'qemu-img' @('info', '--output=json', $Image)
                [Text.Json.JsonDocument]::Parse($info).RootElement.GetProperty('format').GetString()
            }
            function Write-Guest([string]$Image, [string]$Command) { Invoke-Native 'qemu-io' @('-f', $Format, '-c', $Command, $Image) | Out-Null }
        }
        BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
        AfterAll {
            if ($skipReason) { return }
            Disconnect-AsrVault
            Remove-TestDirectory $dir
        }

        It 'is detected and protected as <Format>' {
            (Enable-AsrReplication -Name vm -Disk $source -Policy p).State | Should -Be 'Succeeded'
            $disk = (Get-AsrProtectedItem vm).Disks[0]
            $disk.SourceFormat | Should -Be $Format
            $disk.SizeBytes | Should -Be 8MB
        }

        It 'replicates what is written into the image' {
            Write-Guest $source 'write -P 0x5a 1M 64k'
            $state.Source = Get-GuestHash $source
            $job = Get-AsrProtectedItem vm | Invoke-AsrReplication
            $job.State | Should -Be 'Succeeded'
            $job.Result.ChangedBytes | Should -BeGreaterThan 0
        }

        It 'Export-AsrRecoveryPoint -Format Source writes a <Format> file with the source''s guest bytes' {
            $job = Get-AsrRecoveryPoint -Item vm -Latest | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'export') -Format Source
            $job.State | Should -Be 'Succeeded'
            @($job.Result.Files).Count | Should -Be 1
            $file = @($job.Result.Files)[0]
            [IO.Path]::GetFileName($file) | Should -Be "vm$Extension"
            Get-ProbedFormat $file | Should -Be $Format
            Get-GuestHash $file | Should -Be $state.Source
            @(Get-ChildItem -LiteralPath (Join-TestPath $dir 'export') -Name) | Should -Be @("vm$Extension") -Because 'no .partial file or directory is left'
        }

        It 'a failover to a -Format Source target gives a <Format> machine' {
            $target.Format | Should -Be 'Source'
            $job = Get-AsrProtectedItem vm | Start-AsrFailover -Target $target -RecoveryPoint LatestProcessed -Confirm:$false
            $job.State | Should -Be 'Succeeded'
            $job.Result.Files | Should -Contain $recovered
            Get-ProbedFormat $recovered | Should -Be $Format
            Get-GuestHash $recovered | Should -Be $state.Source
            $machine = [Text.Json.JsonDocument]::Parse([IO.File]::ReadAllText((Join-TestPath $target.Path 'vm/machine.json'))).RootElement
            $machine.GetProperty('disks')[0].GetProperty('format').GetString() | Should -Be $Format
            $machine.GetProperty('disks')[0].GetProperty('location').GetString() | Should -Be "vm$Extension"
            $machine.GetProperty('qemuCommand').GetString() | Should -Match ([regex]::Escape("file=vm$Extension,format=$Format"))
            (Get-AsrProtectedItem vm).Failover.Machine.Properties['DiskFormat'] | Should -Be 'Source'
        }

        It 'reprotect and failback write the recovered machine back into the original <Format> image' {
            (Get-AsrProtectedItem vm | Complete-AsrFailover -Confirm:$false).State | Should -Be 'Succeeded'
            # The recovered machine writes: reprotect must carry that to the original, not the other way round.
            Write-Guest $recovered 'write -P 0xa7 3M 128k'
            $afterWrite = Get-GuestHash $recovered
            $afterWrite | Should -Not -Be $state.Source
            $re = Get-AsrProtectedItem vm | Update-AsrProtectionDirection -Confirm:$false
            $re.State | Should -Be 'Succeeded'
            $re.Result.BytesSent | Should -BeGreaterOrEqual 128KB
            Get-GuestHash $source | Should -Be $afterWrite
            Get-GuestHash $recovered | Should -Be $afterWrite -Because 'the recovered disk is only read'

            Write-Guest $recovered 'write -P 0x3c 5M 4k'
            $final = Get-GuestHash $recovered
            $fb = Get-AsrProtectedItem vm | Invoke-AsrFailback -Confirm:$false
            $fb.State | Should -Be 'Succeeded'
            $fb.Result.ChangedBlocks | Should -Be 1
            Get-ProbedFormat $source | Should -Be $Format
            Get-GuestHash $source | Should -Be $final
            $item = Get-AsrProtectedItem vm
            $item.State | Should -Be 'Protected'
            $item.Disks[0].SourcePath | Should -Be $source
            $item.Disks[0].SourceFormat | Should -Be $Format
            # Protection resumed from the original image: the new point holds the failed-back bytes.
            (Get-ExportedHashes (Get-AsrRecoveryPoint -Item vm -Latest) (Join-TestPath $dir 'after-failback'))["vm$Extension"] | Should -Be $final
        }
    }
}
