namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What the control plane reads back of a managed disk. <see cref="DiskState"/>: ReadyToUpload after creation,
/// ActiveUpload while a write SAS is out, Unattached once revoked, Attached to a VM (<see cref="ManagedBy"/>).
/// </summary>
public sealed record AzureDiskInfo(
    string Id,
    string Name,
    string Location,
    string? DiskState,
    string? ProvisioningState,
    long? UploadSizeBytes,
    string? ManagedBy,
    IReadOnlyDictionary<string, string> Tags);
