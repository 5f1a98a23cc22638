namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A managed disk to create for direct upload (creationData.createOption Upload). <see cref="UploadSizeBytes"/> is
/// the fixed VHD's length: a whole number of MiB plus the 512-byte footer, from 20 MiB + 512 to 32 TiB + 512.
/// <see cref="OsType"/> and <see cref="HyperVGeneration"/> are set on the OS disk only. Names should be derived
/// from the item and the job, so that a resumed job finds the disk it already made (a PUT of the same disk is
/// idempotent), and <see cref="Tags"/> should carry the job's tag so that cleanup finds it.
/// </summary>
public sealed record AzureDiskSpec(string Name, string Location, long UploadSizeBytes)
{
    /// <summary>An availability zone ("1", "2", "3"), or null for a regional disk. A zonal VM needs its disks in its zone.</summary>
    public string? Zone { get; init; }

    /// <summary>The disk SKU (DiskStorageAccountTypes): Standard_LRS, StandardSSD_LRS, Premium_LRS, ... (upload disks are billed as Standard HDD until revoked).</summary>
    public string Sku { get; init; } = "StandardSSD_LRS";

    public AzureOsType? OsType { get; init; }

    public AzureHyperVGeneration? HyperVGeneration { get; init; }

    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();
}
