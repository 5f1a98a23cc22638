namespace AsrModule.Engine.Errors;

/// <summary>
/// The one exception type the engine throws on purpose. <see cref="ErrorId"/> is stable
/// (<c>&lt;Noun&gt;&lt;Condition&gt;</c>) so scripts can match on it; <see cref="Target"/> names the
/// item, disk, path or point the error is about.
/// </summary>
public sealed class AsrException : Exception
{
    public AsrException(string errorId, AsrErrorKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }

    public string ErrorId { get; }
    public AsrErrorKind Kind { get; }
    public object? Target { get; }

    /// <summary>What the failed job found before it failed (a drill's boot result): kept as the job's Result.</summary>
    public Jobs.AsrJobResult? PartialResult { get; init; }
}

/// <summary>Stable error ids. Kept in one place so docs, tests and cmdlets agree.</summary>
public static class AsrErrorIds
{
    public const string VaultNotFound = "VaultNotFound";
    public const string VaultAlreadyExists = "VaultAlreadyExists";
    public const string VaultFormatUnsupported = "VaultFormatUnsupported";
    public const string VaultNotConnected = "VaultNotConnected";
    public const string VaultKeyRequired = "VaultKeyRequired";
    public const string VaultKeyInvalid = "VaultKeyInvalid";
    public const string VaultKeyNotExpected = "VaultKeyNotExpected";
    public const string VaultDataCorrupt = "VaultDataCorrupt";
    /// <summary>Data the scan hashed changed in memory before it was stored (an internal fault): the cycle stops, publishes nothing, and the next resyncs.</summary>
    public const string ReplicationDataChanged = "ReplicationDataChanged";
    /// <summary>The vault's storage endpoint cannot be reached (still failing after the retries with backoff); AsrErrorKind.ConnectionError.</summary>
    public const string VaultUnavailable = "VaultUnavailable";
    /// <summary>
    /// The vault's storage refused the credential, key or SAS (authentication or authorization), or a local vault's
    /// directory is not writable for this user or on a read-only file system (EACCES, EPERM, EROFS); AsrErrorKind.SecurityError.
    /// </summary>
    public const string VaultAccessDenied = "VaultAccessDenied";
    /// <summary>
    /// The vault's file system is full or the user's quota is used up (ENOSPC, EDQUOT), also when not a byte is free;
    /// AsrErrorKind.ResourceUnavailable. Nothing published is lost; free space and run the operation again.
    /// </summary>
    public const string VaultStorageFull = "VaultStorageFull";
    /// <summary>The vault's storage refused a request for another reason (the message carries the status and the service's error code).</summary>
    public const string VaultRequestFailed = "VaultRequestFailed";
    /// <summary>The vault's credential cannot be handed to an agent process (a fixed access token expires and cannot be renewed).</summary>
    public const string VaultCredentialNotForwardable = "VaultCredentialNotForwardable";
    public const string PolicyNotFound = "PolicyNotFound";
    public const string PolicyAlreadyExists = "PolicyAlreadyExists";
    public const string PolicyInUse = "PolicyInUse";
    public const string PolicySettingInvalid = "PolicySettingInvalid";
    public const string ProtectedItemNotFound = "ProtectedItemNotFound";
    public const string ProtectedItemAlreadyExists = "ProtectedItemAlreadyExists";
    public const string ProtectedItemNameInvalid = "ProtectedItemNameInvalid";
    public const string ProtectedItemBusy = "ProtectedItemBusy";
    public const string InvalidStateTransition = "InvalidStateTransition";
    public const string DiskNotFound = "DiskNotFound";
    public const string DiskUnreadable = "DiskUnreadable";
    /// <summary>A disk path names something that is neither a regular file nor a block device (a directory, FIFO, character device, socket); AsrErrorKind.InvalidArgument.</summary>
    public const string DiskUnsupported = "DiskUnsupported";
    public const string DiskDuplicate = "DiskDuplicate";
    public const string DiskEmpty = "DiskEmpty";
    public const string BlockSizeInvalid = "BlockSizeInvalid";
    public const string DiskSizeChanged = "DiskSizeChanged";
    public const string RecoveryPointNotFound = "RecoveryPointNotFound";
    public const string RecoveryPointVerificationFailed = "RecoveryPointVerificationFailed";
    public const string ExportDestinationExists = "ExportDestinationExists";
    /// <summary>An export destination inside the (local) vault or under /proc, /sys, /dev or a system directory (/etc, /usr, ...); AsrErrorKind.InvalidArgument.</summary>
    public const string ExportDestinationInvalid = "ExportDestinationInvalid";
    public const string JobNotFound = "JobNotFound";
    public const string JobNotRunningHere = "JobNotRunningHere";
    public const string OperationCancelled = "OperationCancelled";
    public const string HookFailed = "HookFailed";
    public const string ReplicationGroupNotFound = "ReplicationGroupNotFound";
    public const string ReplicationGroupInvalid = "ReplicationGroupInvalid";
    public const string GroupPointNotConsistent = "GroupPointNotConsistent";
    public const string AppConsistencyScriptInvalid = "AppConsistencyScriptInvalid";
    public const string QmpSocketNotFound = "QmpSocketNotFound";
    public const string AgentAlreadyRunning = "AgentAlreadyRunning";
    public const string AgentNotFound = "AgentNotFound";
    public const string AgentStartFailed = "AgentStartFailed";
    public const string AgentStopTimeout = "AgentStopTimeout";
    public const string AgentHostNameInvalid = "AgentHostNameInvalid";
    /// <summary>The agent's vault lock (a blob lease) lapsed during a storage outage; the agent stopped so that two agents never serve one host.</summary>
    public const string AgentLockLost = "AgentLockLost";
    public const string FailoverTargetInvalid = "FailoverTargetInvalid";
    /// <summary>An operation on a failover or drill in another target (Azure) was called without that target (pass -Target, or create it with New-AsrAzureTarget in this session).</summary>
    public const string RecoveryTargetRequired = "RecoveryTargetRequired";
    /// <summary>The target given is not the one the failover or drill was made in (other kind, subscription or resource group).</summary>
    public const string RecoveryTargetMismatch = "RecoveryTargetMismatch";
    public const string SourceStillWriting = "SourceStillWriting";
    public const string RecoveryPlanInvalid = "RecoveryPlanInvalid";
    public const string RecoveryPlanStepFailed = "RecoveryPlanStepFailed";
    public const string JobNotResumable = "JobNotResumable";
    /// <summary>The item's QEMU cannot be reached over QMP, or does not have one of the item's disks open.</summary>
    public const string QemuSourceUnavailable = "QemuSourceUnavailable";
    /// <summary>QEMU refused a QMP command the tracker needs (the message carries QEMU's error class and text).</summary>
    public const string QemuCommandFailed = "QemuCommandFailed";
    /// <summary>A disk image whose format cannot be read as a source or written as an output (raw, qcow2, VMDK, VHDX and VDI are; legacy VHD is read only); AsrErrorKind.InvalidArgument.</summary>
    public const string DiskFormatUnsupported = "DiskFormatUnsupported";
    /// <summary>A disk image format other than raw needs QEMU's tools (qemu-nbd, qemu-img; Debian package qemu-utils) and they are not installed; AsrErrorKind.ResourceUnavailable.</summary>
    public const string DiskImageToolMissing = "DiskImageToolMissing";
    /// <summary>
    /// qemu-nbd or qemu-img failed on a disk image (the message carries its own words); AsrErrorKind.ReadError or WriteError,
    /// ResourceBusy when a running VM holds QEMU's image lock, InvalidData for a dirty bitmap a crashed QEMU left in use.
    /// </summary>
    public const string DiskImageFailed = "DiskImageFailed";
    /// <summary>A drilled machine gave no readiness signal within the boot timeout, or QEMU could not run it (OperationTimeout / InvalidOperation).</summary>
    public const string DrillBootFailed = "DrillBootFailed";
    /// <summary>The drilled machine booted but the item's check failed (InvalidResult: the job's Result.Boot says why).</summary>
    public const string DrillCheckFailed = "DrillCheckFailed";
    /// <summary>The drill's disks are not served any more (the process that started the drill ended): clean it up and drill again.</summary>
    public const string DrillNotServed = "DrillNotServed";
    /// <summary>A boot setting is not valid (no readiness signal, a bad pattern or port): nothing was started.</summary>
    public const string BootSettingInvalid = "BootSettingInvalid";
    /// <summary>qemu-system-x86_64 is not installed or cannot start.</summary>
    public const string BootHypervisorMissing = "BootHypervisorMissing";
}
