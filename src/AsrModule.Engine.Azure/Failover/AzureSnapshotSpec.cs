namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A snapshot of a managed disk (creationData.createOption Copy from <see cref="SourceDiskId"/>), taken while the disk
/// may be attached to a running VM: reprotect reads a point-in-time copy of an Azure VM's disk through it.
/// <see cref="Incremental"/> snapshots are billed by changed data and can be compared page-range by page-range.
/// </summary>
public sealed record AzureSnapshotSpec(string Name, string Location, string SourceDiskId)
{
    public bool Incremental { get; init; } = true;

    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();
}
