param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# The bad-input catalogue of issue #12: each case calls a public cmdlet with one bad input and expects the error PowerShell
# users can match on (a documented FullyQualifiedErrorId: one of the module's ids in AsrErrorIds, or PowerShell's own
# parameter-binding ids) with its category, and NOTHING written: the vault is byte-for-byte what it was (Get-VaultSnapshot),
# no job record was created, and nothing appeared where the bad input pointed. Cases a product bug still fails are marked
# with Bug: they run, and when they fail as described they are reported Pending with the error they gave (a fixed bug then
# simply passes). More bad inputs, on the item lifecycle, are in Replication.Tests.ps1 and Lifecycle.Tests.ps1.

$cases = @(
    # ---- vaults ----
    @{ Case = 'New-AsrVault -Path empty'; Run = { New-AsrVault -Path '' }; Id = 'ParameterArgumentValidationErrorEmptyStringNotAllowed'; Category = 'InvalidData' }
    @{ Case = 'New-AsrVault over the existing vault'; Run = { New-AsrVault -Path $vault }; Id = 'VaultAlreadyExists'; Category = 'ResourceExists' }
    @{ Case = 'New-AsrVault over an existing file'; Run = { New-AsrVault -Path $plainFile }; Id = 'VaultAlreadyExists'; Category = 'ResourceExists' }
    @{ Case = 'New-AsrVault under /proc'; Run = { New-AsrVault -Path '/proc/asr-vault' }; Id = 'VaultAccessDenied'; Category = 'InvalidArgument'; Absent = { '/proc/asr-vault' } }
    @{ Case = 'New-AsrVault -ContainerUri ftp://'; Run = { New-AsrVault -ContainerUri 'ftp://127.0.0.1/container' }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrVault -ContainerUri without a container'; Run = { New-AsrVault -ContainerUri 'https://127.0.0.1' }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'Connect-AsrVault -ContainerUri relative'; Run = { Connect-AsrVault -ContainerUri 'not/a/uri' }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'Connect-AsrVault -ContainerUri with an invalid container name'; Run = { Connect-AsrVault -ContainerUri 'https://127.0.0.1:1/account/Bad_Container!' }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'Connect-AsrVault to a directory that does not exist'; Run = { Connect-AsrVault -Path $missingPath }; Id = 'VaultNotFound'; Category = 'ObjectNotFound'; Absent = { $missingPath } }
    @{ Case = 'Connect-AsrVault to a file'; Run = { Connect-AsrVault -Path $plainFile }; Id = 'VaultNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Connect-AsrVault with a key to an unencrypted vault'; Run = { Connect-AsrVault -Path $vault -EncryptionKey 'a key' }; Id = 'VaultKeyNotExpected'; Category = 'InvalidArgument' }
    @{ Case = 'Connect-AsrVault -ConnectionString garbage'; Run = { Connect-AsrVault -ConnectionString (ConvertTo-SecureString 'not a connection string' -AsPlainText -Force) -Container container1 }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'Connect-AsrVault -AccountKey not base64'; Run = { Connect-AsrVault -ContainerUri 'https://127.0.0.1:1/account/container1' -AccountKey (ConvertTo-SecureString 'not base64 !!' -AsPlainText -Force) }; Id = 'VaultNotFound'; Category = 'InvalidArgument' }
    @{ Case = 'a cmdlet with -Vault naming a missing directory'; Run = { Get-AsrPolicy -Vault $missingPath }; Id = 'VaultNotFound'; Category = 'ObjectNotFound'; Absent = { $missingPath } }
    # ---- policies ----
    @{ Case = 'New-AsrPolicy an existing name'; Run = { New-AsrPolicy -Name p }; Id = 'PolicyAlreadyExists'; Category = 'ResourceExists' }
    @{ Case = 'New-AsrPolicy -Name with /'; Run = { New-AsrPolicy -Name 'a/b' }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -Name ..'; Run = { New-AsrPolicy -Name '..' }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -Name whitespace'; Run = { New-AsrPolicy -Name '   ' }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -Name with NUL'; Run = { New-AsrPolicy -Name "a$([char]0)b" }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -RecoveryPointRetentionHours -1'; Run = { New-AsrPolicy -Name q -RecoveryPointRetentionHours -1 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -RecoveryPointRetentionHours huge'; Run = { New-AsrPolicy -Name q -RecoveryPointRetentionHours ([int]::MaxValue) }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -RecoveryPointRetentionHours beyond Int32'; Run = { New-AsrPolicy -Name q -RecoveryPointRetentionHours 99999999999 }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -RecoveryPointRetentionHours not a number'; Run = { New-AsrPolicy -Name q -RecoveryPointRetentionHours 'abc' }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CrashConsistentFrequencyMinutes 0'; Run = { New-AsrPolicy -Name q -CrashConsistentFrequencyMinutes 0 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CrashConsistentFrequencyMinutes below 5 s'; Run = { New-AsrPolicy -Name q -CrashConsistentFrequencyMinutes 0.05 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CrashConsistentFrequencySeconds 4'; Run = { New-AsrPolicy -Name q -CrashConsistentFrequencySeconds 4 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CrashConsistentFrequencyMinutes NaN'; Run = { New-AsrPolicy -Name q -CrashConsistentFrequencyMinutes ([double]::NaN) }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CrashConsistentFrequencyMinutes infinite'; Run = { New-AsrPolicy -Name q -CrashConsistentFrequencyMinutes ([double]::PositiveInfinity) }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -AppConsistentFrequencyHours -3'; Run = { New-AsrPolicy -Name q -AppConsistentFrequencyHours -3 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -RpoThresholdMinutes 0'; Run = { New-AsrPolicy -Name q -RpoThresholdMinutes 0 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CompressionLevel 99'; Run = { New-AsrPolicy -Name q -CompressionLevel 99 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -CompressionLevel -5'; Run = { New-AsrPolicy -Name q -CompressionLevel -5 }; Id = 'PolicySettingInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'New-AsrPolicy -Compression unknown'; Run = { New-AsrPolicy -Name q -Compression Brotli }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'Remove-AsrPolicy of a policy in use'; Run = { Remove-AsrPolicy -Name p -Confirm:$false }; Id = 'PolicyInUse'; Category = 'InvalidOperation' }
    @{ Case = 'Remove-AsrPolicy of an unknown policy'; Run = { Remove-AsrPolicy -Name nope -Confirm:$false }; Id = 'PolicyNotFound'; Category = 'ObjectNotFound' }
    # ---- Enable-AsrReplication: source formats (#14) ----
    @{ Case = 'Enable -SourceFormat Qcow2 for a raw file'; Run = { Enable-AsrReplication -Name fmt -Disk $disk2 -Policy p -SourceFormat Qcow2 }; Id = 'DiskImageFailed'; Category = 'ReadError' }
    @{ Case = 'Enable -SourceFormat not a format'; Run = { Enable-AsrReplication -Name fmt -Disk $disk2 -Policy p -SourceFormat Vmdkx }; Id = 'ParameterArgumentValidationError'; Category = 'InvalidData' }
    # ---- Enable-AsrReplication: names ----
    @{ Case = 'Enable -Name empty'; Run = { Enable-AsrReplication -Name '' -Disk $disk2 -Policy p }; Id = 'ParameterArgumentValidationErrorEmptyStringNotAllowed'; Category = 'InvalidData' }
    @{ Case = 'Enable -Name whitespace'; Run = { Enable-AsrReplication -Name '   ' -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name with /'; Run = { Enable-AsrReplication -Name 'a/b' -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name ..'; Run = { Enable-AsrReplication -Name '..' -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name ../escape'; Run = { Enable-AsrReplication -Name '../escape' -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name with NUL'; Run = { Enable-AsrReplication -Name "a$([char]0)b" -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name of 300 characters'; Run = { Enable-AsrReplication -Name ('x' * 300) -Disk $disk2 -Policy p }; Id = 'ProtectedItemNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Name of an existing item'; Run = { Enable-AsrReplication -Name M -Disk $disk2 -Policy p }; Id = 'ProtectedItemAlreadyExists'; Category = 'ResourceExists' }
    # ---- Enable-AsrReplication: disks ----
    @{ Case = 'Enable -Disk missing'; Run = { Enable-AsrReplication -Name n -Disk $missingPath -Policy p }; Id = 'DiskNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Enable -Disk empty string'; Run = { Enable-AsrReplication -Name n -Disk '' -Policy p }; Id = 'ParameterArgumentValidationErrorEmptyStringNotAllowed'; Category = 'InvalidData' }
    @{ Case = 'Enable -Disk empty list'; Run = { Enable-AsrReplication -Name n -Disk @() -Policy p }; Id = 'ParameterArgumentValidationErrorEmptyArrayNotAllowed'; Category = 'InvalidData' }
    @{ Case = 'Enable -Disk a directory'; Run = { Enable-AsrReplication -Name n -Disk $folder -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk a FIFO'; Run = { Enable-AsrReplication -Name n -Disk $fifo -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk /dev/null'; Run = { Enable-AsrReplication -Name n -Disk '/dev/null' -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk /dev/urandom'; Run = { Enable-AsrReplication -Name n -Disk '/dev/urandom' -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk a socket'; Run = { Enable-AsrReplication -Name n -Disk $socketPath -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk /proc/cpuinfo (a file that stats empty)'; Run = { Enable-AsrReplication -Name n -Disk '/proc/cpuinfo' -Policy p }; Id = 'DiskEmpty'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk an empty file'; Run = { Enable-AsrReplication -Name n -Disk $emptyFile -Policy p }; Id = 'DiskEmpty'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk the same path twice'; Run = { Enable-AsrReplication -Name n -Disk $disk2, $disk2 -Policy p }; Id = 'DiskDuplicate'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk the same disk through a symlink'; Run = { Enable-AsrReplication -Name n -Disk $disk2, $symlink -Policy p }; Id = 'DiskDuplicate'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk the same disk through a hard link'; Run = { Enable-AsrReplication -Name n -Disk $disk2, $hardlink -Policy p }; Id = 'DiskDuplicate'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk a dangling symlink'; Run = { Enable-AsrReplication -Name n -Disk $dangling -Policy p }; Id = 'DiskUnreadable'; Category = 'ReadError' }
    @{ Case = 'Enable -Policy unknown'; Run = { Enable-AsrReplication -Name n -Disk $disk2 -Policy nope }; Id = 'PolicyNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Enable -AppConsistencyScript missing'; Run = { Enable-AsrReplication -Name n -Disk $disk2 -Policy p -AppConsistencyScript $missingPath }; Id = 'AppConsistencyScriptInvalid'; Category = 'ObjectNotFound' }
    @{ Case = 'Enable -QmpSocket missing'; Run = { Enable-AsrReplication -Name n -Disk $disk2 -Policy p -QmpSocket $missingPath }; Id = 'QmpSocketNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Enable -AgentHost with /'; Run = { Enable-AsrReplication -Name n -Disk $disk2 -Policy p -AgentHost 'bad/host' }; Id = 'AgentHostNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -ReplicationGroup with /'; Run = { Enable-AsrReplication -Name n -Disk $disk2 -Policy p -ReplicationGroup 'bad/group' }; Id = 'ReplicationGroupInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Enable -Disk a file inside the vault'; Run = { Enable-AsrReplication -Name invault -Disk (Join-Path $vault 'asrvault.json') -Policy p }; Id = 'DiskUnsupported'; Category = 'InvalidArgument'; LocalOnly = $true }
    # ---- items and points ----
    @{ Case = 'Get-AsrProtectedItem unknown'; Run = { Get-AsrProtectedItem nope }; Id = 'ProtectedItemNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Invoke-AsrReplication unknown item'; Run = { Invoke-AsrReplication -Name nope }; Id = 'ProtectedItemNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Invoke-AsrReplication -InputObject of the wrong type'; Run = { Invoke-AsrReplication -InputObject 42 }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'Set-AsrProtectedItem unknown item'; Run = { Set-AsrProtectedItem -Name nope -Policy p }; Id = 'ProtectedItemNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Set-AsrProtectedItem -Policy unknown'; Run = { Set-AsrProtectedItem -Name m -Policy nope }; Id = 'PolicyNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrRecoveryPoint -Sequence unknown'; Run = { Get-AsrRecoveryPoint -Item m -Sequence 999 }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrRecoveryPoint -Sequence negative'; Run = { Get-AsrRecoveryPoint -Item m -Sequence -1 }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrRecoveryPoint -Sequence Int64.MaxValue'; Run = { Get-AsrRecoveryPoint -Item m -Sequence ([long]::MaxValue) }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrRecoveryPoint -Sequence not a number'; Run = { Get-AsrRecoveryPoint -Item m -Sequence 'abc' }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'Get-AsrRecoveryPoint -ReplicationGroup unknown'; Run = { Get-AsrRecoveryPoint -ReplicationGroup nope }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Test-AsrRecoveryPoint of a string'; Run = { Test-AsrRecoveryPoint -RecoveryPoint 'point 1' }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    # ---- exports ----
    @{ Case = 'Export -Destination under /proc'; Run = { $point | Export-AsrRecoveryPoint -Destination '/proc/asr-export' }; Id = 'ExportDestinationInvalid'; Category = 'InvalidArgument'; Absent = { '/proc/asr-export' } }
    @{ Case = 'Export -Destination under /sys'; Run = { $point | Export-AsrRecoveryPoint -Destination '/sys/asr-export' }; Id = 'ExportDestinationInvalid'; Category = 'InvalidArgument'; Absent = { '/sys/asr-export' } }
    @{ Case = 'Export -Destination under /dev'; Run = { $point | Export-AsrRecoveryPoint -Destination '/dev/asr-export' }; Id = 'ExportDestinationInvalid'; Category = 'InvalidArgument'; Absent = { '/dev/asr-export' } }
    @{ Case = 'Export -Destination inside the vault'; Run = { $point | Export-AsrRecoveryPoint -Destination (Join-Path $vault 'export') }; Id = 'ExportDestinationInvalid'; Category = 'InvalidArgument'; LocalOnly = $true; Absent = { Join-Path $vault 'export' } }
    @{ Case = 'Export -Destination the vault itself'; Run = { $point | Export-AsrRecoveryPoint -Destination $vault }; Id = 'ExportDestinationInvalid'; Category = 'InvalidArgument'; LocalOnly = $true }
    @{ Case = 'Export -Destination where the disk already is (no -Force)'; Run = { $point | Export-AsrRecoveryPoint -Destination $exported }; Id = 'ExportDestinationExists'; Category = 'ResourceExists' }
    @{ Case = 'Export -Destination an existing file'; Run = { $point | Export-AsrRecoveryPoint -Destination $plainFile }; Id = 'ExportDestinationExists'; Category = 'InvalidArgument' }
    @{ Case = 'Export -Destination empty'; Run = { $point | Export-AsrRecoveryPoint -Destination '' }; Id = 'ParameterArgumentValidationErrorEmptyStringNotAllowed'; Category = 'InvalidData' }
    @{ Case = 'Export -Disk unknown'; Run = { $point | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'export-unknown-disk') -Disk nope.img }; Id = 'DiskNotFound'; Category = 'ObjectNotFound'; Absent = { Join-TestPath $dir 'export-unknown-disk' } }
    # ---- failover targets and recovery points ----
    @{ Case = 'Start-AsrFailover -Target under /proc'; Run = { Get-AsrProtectedItem m | Start-AsrFailover -Target '/proc/asr-target' -Confirm:$false }; Id = 'FailoverTargetInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Start-AsrFailover -Target inside the vault'; Run = { Get-AsrProtectedItem m | Start-AsrFailover -Target (Join-Path $vault 'target') -Confirm:$false }; Id = 'FailoverTargetInvalid'; Category = 'InvalidArgument'; LocalOnly = $true; Absent = { Join-Path $vault 'target' } }
    @{ Case = 'Start-AsrFailover -Target where <target>/<item> holds the protected disk'; Run = { Get-AsrProtectedItem inplace | Start-AsrFailover -Target $inplaceTarget -Confirm:$false }; Id = 'FailoverTargetInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Start-AsrFailover -RecoveryPoint unknown'; Run = { Get-AsrProtectedItem m | Start-AsrFailover -RecoveryPoint 999 -Target (Join-TestPath $dir 'fo-999') -Confirm:$false }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound'; Absent = { Join-TestPath $dir 'fo-999' } }
    @{ Case = 'Start-AsrFailover -Planned with -RecoveryPoint'; Run = { Get-AsrProtectedItem m | Start-AsrFailover -Planned -SourceStopped -RecoveryPoint 1 -Target (Join-TestPath $dir 'fo-planned') -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidArgument'; Absent = { Join-TestPath $dir 'fo-planned' } }
    @{ Case = 'Start-AsrFailover -Target empty'; Run = { Get-AsrProtectedItem m | Start-AsrFailover -Target '' -Confirm:$false }; Id = 'ParameterArgumentTransformationError'; Category = 'InvalidData' }
    @{ Case = 'Start-AsrTestFailover -Target under /sys'; Run = { Get-AsrProtectedItem m | Start-AsrTestFailover -Target '/sys/asr-drill' }; Id = 'FailoverTargetInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Start-AsrTestFailover -RecoveryPoint unknown'; Run = { Get-AsrProtectedItem m | Start-AsrTestFailover -RecoveryPoint 999 -Target (Join-TestPath $dir 'drill-999') }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound'; Absent = { Join-TestPath $dir 'drill-999' } }
    @{ Case = 'New-AsrLocalTarget -Path empty'; Run = { New-AsrLocalTarget -Path '' }; Id = 'ParameterArgumentValidationErrorEmptyStringNotAllowed'; Category = 'InvalidData' }
    # ---- state transitions: m is Protected, fo is FailedOver ----
    @{ Case = 'Complete-AsrFailover before a failover'; Run = { Complete-AsrFailover -Name m -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Undo-AsrFailover before a failover'; Run = { Undo-AsrFailover -Name m -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Switch-AsrRecoveryPoint before a failover'; Run = { Switch-AsrRecoveryPoint -Name m -RecoveryPoint 1 -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Update-AsrProtectionDirection before a commit'; Run = { Update-AsrProtectionDirection -Name m -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Invoke-AsrFailback before a reprotect'; Run = { Invoke-AsrFailback -Name m -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Start-AsrTestFailoverCleanup without a drill'; Run = { Start-AsrTestFailoverCleanup -Name m -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Test-AsrTestFailover without a drill'; Run = { Test-AsrTestFailover -Name m }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Invoke-AsrReplication of a failed-over item'; Run = { Invoke-AsrReplication -Name fo }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Resume-AsrResync of a failed-over item'; Run = { Resume-AsrResync -Name fo }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Start-AsrFailover of a failed-over item'; Run = { Start-AsrFailover -Name fo -Target (Join-TestPath $dir 'fo-again') -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation'; Absent = { Join-TestPath $dir 'fo-again' } }
    @{ Case = 'Start-AsrTestFailover of a failed-over item'; Run = { Start-AsrTestFailover -Name fo -Target (Join-TestPath $dir 'drill-fo') }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation'; Absent = { Join-TestPath $dir 'drill-fo' } }
    @{ Case = 'Update-AsrProtectionDirection of a failover not committed'; Run = { Update-AsrProtectionDirection -Name fo -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Invoke-AsrFailback of a failover not committed'; Run = { Invoke-AsrFailback -Name fo -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Disable-AsrReplication of a failed-over item'; Run = { Disable-AsrReplication -Name fo -Confirm:$false }; Id = 'InvalidStateTransition'; Category = 'InvalidOperation' }
    @{ Case = 'Switch-AsrRecoveryPoint to an unknown point'; Run = { Switch-AsrRecoveryPoint -Name fo -RecoveryPoint 999 -Confirm:$false }; Id = 'RecoveryPointNotFound'; Category = 'ObjectNotFound' }
    # ---- jobs ----
    @{ Case = 'Get-AsrJob -Id unknown'; Run = { Get-AsrJob -Id $g }; Id = 'JobNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrJob -Id not a GUID'; Run = { Get-AsrJob -Id 'not-a-guid' }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    @{ Case = 'Wait-AsrJob -Id unknown'; Run = { Wait-AsrJob -Id $g }; Id = 'JobNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Stop-AsrJob -Id unknown'; Run = { Stop-AsrJob -Id $g }; Id = 'JobNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Resume-AsrJob of a finished job'; Run = { Resume-AsrJob -Id $doneJob }; Id = 'JobNotResumable'; Category = 'InvalidOperation' }
    @{ Case = 'Restart-AsrJob of a finished job'; Run = { Restart-AsrJob -Id $doneJob }; Id = 'JobNotResumable'; Category = 'InvalidOperation' }
    @{ Case = 'Wait-AsrJob -TimeoutSeconds negative'; Run = { Wait-AsrJob -Id $doneJob -TimeoutSeconds -5 }; Id = 'ParameterArgumentValidationError'; Category = 'InvalidData' }
    # ---- recovery plans ----
    @{ Case = 'Start-AsrRecoveryPlan -Path missing'; Run = { Start-AsrRecoveryPlan -Path $missingPath -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Start-AsrRecoveryPlan -Path a directory'; Run = { Start-AsrRecoveryPlan -Path $folder -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan with a syntax error'; Run = { Start-AsrRecoveryPlan -Path $plans.Syntax -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan naming an unknown machine'; Run = { Start-AsrRecoveryPlan -Path $plans.Unknown -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan with a group number twice'; Run = { Start-AsrRecoveryPlan -Path $plans.DuplicateGroup -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan with one machine in two groups'; Run = { Start-AsrRecoveryPlan -Path $plans.MachineTwice -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan file that defines two plans'; Run = { Start-AsrRecoveryPlan -Path $plans.TwoPlans -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan file that defines no plan'; Run = { Start-AsrRecoveryPlan -Path $plans.NoPlan -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a plan file that throws'; Run = { Start-AsrRecoveryPlan -Path $plans.Throws -FailoverType Test -Target (Join-TestPath $dir 'plan-t') }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'an Unplanned plan run without -Target'; Run = { Start-AsrRecoveryPlan -Path $plans.Ok -FailoverType Unplanned -Confirm:$false }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a Commit plan run of machines not failed over'; Run = { Start-AsrRecoveryPlan -Path $plans.Ok -FailoverType Commit -Confirm:$false }; Id = 'RecoveryPlanInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'a Test plan run with a target under /proc'; Run = { Start-AsrRecoveryPlan -Path $plans.Ok -FailoverType Test -Target '/proc/asr-plan' }; Id = 'FailoverTargetInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Start-AsrRecoveryPlan -FailoverType unknown'; Run = { Start-AsrRecoveryPlan -Path $plans.Ok -FailoverType Sideways }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
    # ---- agents and events ----
    @{ Case = 'Start-AsrAgent -HostName with /'; Run = { Start-AsrAgent -HostName 'bad/host' }; Id = 'AgentHostNameInvalid'; Category = 'InvalidArgument' }
    @{ Case = 'Stop-AsrAgent of an unknown host'; Run = { Stop-AsrAgent -HostName nohost }; Id = 'AgentNotFound'; Category = 'ObjectNotFound' }
    @{ Case = 'Get-AsrEvent -Newest negative'; Run = { Get-AsrEvent -Newest -1 }; Id = 'ParameterArgumentValidationError'; Category = 'InvalidData' }
    @{ Case = 'Get-AsrEvent -Severity unknown'; Run = { Get-AsrEvent -Severity Apocalyptic }; Id = 'CannotConvertArgumentNoMessage'; Category = 'InvalidArgument' }
)

Describe 'Bad inputs: a categorised error and nothing written [<Backend>]' -Tag Reliability, BadInput {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        Import-Module AsrModule
        $ProgressPreference = 'SilentlyContinue'
        $dir = New-TestDirectory
        $vault = Initialize-TestVault $dir -Machines m, fo
        Write-AsrSampleChange -Path (Join-TestPath $dir 'm.img') -Fraction 0.05 -Seed 90 | Out-Null
        Get-AsrProtectedItem m | Invoke-AsrReplication | Out-Null
        Get-AsrProtectedItem fo | Start-AsrFailover -Target (New-AsrLocalTarget (Join-TestPath $dir 'recovery')) -Confirm:$false | Out-Null
        $point = Get-AsrRecoveryPoint -Item m -Latest
        $exported = Join-TestPath $dir 'exported'
        $point | Export-AsrRecoveryPoint -Destination $exported | Out-Null
        $g = '7d1c5f0e-0000-4000-8000-000000000000'   # a job id that does not exist
        # An item whose disk lies at <target>/<item>/<disk>: a failover to <target> would write over the protected disk.
        $inplaceTarget = Join-TestPath $dir 'host'
        New-AsrSampleDisk -Path (Join-TestPath $inplaceTarget 'inplace/inplace.img') -SizeBytes 1MB -Seed 92 | Out-Null
        Enable-AsrReplication -Name inplace -Disk (Join-TestPath $inplaceTarget 'inplace/inplace.img') -Policy p | Out-Null
        $doneJob = (Get-AsrJob -TargetName m | Where-Object State -eq 'Succeeded')[0].Id
        $disk2 = Join-TestPath $dir 'n.img'
        New-AsrSampleDisk -Path $disk2 -SizeBytes 1MB -Seed 91 | Out-Null
        $symlink = Join-TestPath $dir 'n-link.img'; [void][IO.File]::CreateSymbolicLink($symlink, $disk2)
        $hardlink = Join-TestPath $dir 'n-hard.img'; Invoke-Native ln @($disk2, $hardlink) | Out-Null
        $dangling = Join-TestPath $dir 'dangling.img'; [void][IO.File]::CreateSymbolicLink($dangling, (Join-TestPath $dir 'gone.img'))
        $missingPath = Join-TestPath $dir 'missing'
        $plainFile = Join-TestPath $dir 'plain.txt'; [IO.File]::WriteAllText($plainFile, 'keep')
        $emptyFile = Join-TestPath $dir 'empty.img'; [IO.File]::WriteAllBytes($emptyFile, [byte[]]::new(0))
        $folder = Join-TestPath $dir 'folder'; [void][IO.Directory]::CreateDirectory($folder)
        $fifo = Join-TestPath $dir 'pipe'; Invoke-Native mkfifo @($fifo) | Out-Null
        $socketPath = Join-TestPath $dir 'sock'
        $socket = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::Unix, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Unspecified)
        $socket.Bind([Net.Sockets.UnixDomainSocketEndPoint]::new($socketPath))
        $plans = @{}
        foreach ($p in @{
                Syntax = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items m {"
                Unknown = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items ghost }"
                DuplicateGroup = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items m; AsrGroup 1 -Items n }"
                MachineTwice = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items m; AsrGroup 2 -Items m }"
                TwoPlans = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items m }`nAsrRecoveryPlan 'y' { AsrGroup 1 -Items m }"
                NoPlan = "'this file defines no plan'"
                Throws = "throw 'the plan file fails'"
                Ok = "AsrRecoveryPlan 'ok' { AsrGroup 1 -Items m }"
            }.GetEnumerator()) {
            $plans[$p.Key] = Join-TestPath $dir "plan-$($p.Key).ps1"
            [IO.File]::WriteAllText($plans[$p.Key], $p.Value)
        }
        $results = [Collections.Generic.List[object]]::new()
    }
    AfterAll {
        $counts = @{
            Cases = $results.Count; Categorised = @($results | Where-Object Categorised).Count
            NothingWritten = @($results | Where-Object NothingWritten).Count; Bugs = @($results | Where-Object Bug).Count
        }
        Add-ReliabilityCount 'bad inputs' $Backend $counts
        Write-Host "bad inputs [$Backend]: $($counts.Cases) cases, $($counts.Categorised) with the expected categorised error, $($counts.NothingWritten) with nothing written"
        foreach ($r in $results | Where-Object { -not $_.Categorised -or -not $_.NothingWritten }) { Write-Host "  NOT OK: $($r.Case): $($r.Got)$(if (-not $r.NothingWritten) { ' (wrote to the vault)' })" }
        $socket.Dispose()
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    # The whole catalogue runs on a local vault. On a blob vault (where every snapshot of the vault is a listing and
    # a read of every blob) the cases whose refusal depends on the store run: locations and credentials, and the ones
    # that would create a record (policies, item names); the rest are refused before the vault is touched either way.
    It '<Case>: <Id> (<Category>), nothing written' -ForEach @($cases | Where-Object {
            $Backend -eq 'Local' -or (-not $_.LocalOnly -and $_.Case -match '^(New-AsrVault|Connect-AsrVault|a cmdlet with -Vault|New-AsrPolicy|Remove-AsrPolicy|Enable -Name)') }) {
        $before = Get-VaultSnapshot $vault
        $jobsBefore = @(Get-VaultObjectKeys $vault 'jobs/')
        $caught = $null; $output = $null
        try {
            $ErrorActionPreference = 'Stop'; $ConfirmPreference = 'None'
            $output = & $Run
        } catch { $caught = $_ }
        finally { $ErrorActionPreference = 'Continue' }
        $after = Get-VaultSnapshot $vault
        $absentPath = if ($Absent) { & $Absent }
        $written = $after -ne $before -or @(Get-VaultObjectKeys $vault 'jobs/').Count -ne $jobsBefore.Count -or ($absentPath -and (Test-Path -LiteralPath $absentPath))
        $gotId = Get-AsrErrorId $caught
        $categorised = $gotId -eq $Id -and "$($caught.CategoryInfo.Category)" -eq $Category -and (Test-AsrDocumentedError $caught)
        $got = if ($caught) { Format-AsrError $caught } else { "no error (output: $(@($output) -join ', '))" }
        $results.Add([pscustomobject]@{ Case = $Case; Categorised = $categorised; NothingWritten = -not $written; Got = $got; Bug = [bool]$Bug })
        try {
            $gotId | Should -Be $Id -Because "the case must fail with a documented id: $got"
            "$($caught.CategoryInfo.Category)" | Should -Be $Category -Because $got
            Test-AsrDocumentedError $caught | Should -BeTrue
            $after | Should -Be $before -Because 'a refused operation writes nothing to the vault'
            @(Get-VaultObjectKeys $vault 'jobs/').Count | Should -Be $jobsBefore.Count -Because 'a refused operation records no job'
            if ($absentPath) { Test-Path -LiteralPath $absentPath | Should -BeFalse -Because 'nothing is created where the bad input pointed' }
        } catch {
            if ($Bug) { Set-ItResult -Pending -Because "product bug: $Bug (got: $got)"; return }
            throw
        }
    }
}
