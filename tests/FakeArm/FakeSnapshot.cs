using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// A snapshot held by the fake (Microsoft.Compute/snapshots, api-version 2023-04-02): creationData.createOption Copy of
/// a managed disk, whose page blob was copied when the snapshot was created (a point-in-time copy).
/// </summary>
internal sealed class FakeSnapshot
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string ResourceGroup { get; init; }
    public required string Location { get; set; }
    public JsonObject? Tags { get; set; }
    /// <summary>The writable properties as sent (creationData, incremental).</summary>
    public JsonObject Properties { get; set; } = [];
    /// <summary>The source disk's uniqueId (creationData.sourceUniqueId), osType and hyperVGeneration, as DiskRP copies them.</summary>
    public string? SourceUniqueId { get; init; }
    public JsonNode? OsType { get; init; }
    public JsonNode? HyperVGeneration { get; init; }
    /// <summary>The source disk's size (its uploadSizeBytes less the 512-byte footer).</summary>
    public long DiskSizeBytes { get; init; }
    public string ProvisioningState { get; set; } = "Succeeded";
    /// <summary>Unattached, or ActiveSAS while a read SAS is granted.</summary>
    public string DiskState { get; set; } = "Unattached";
    public string UniqueId { get; } = Guid.NewGuid().ToString();
    public string IncrementalSnapshotFamilyId { get; init; } = Guid.NewGuid().ToString();
    public DateTimeOffset TimeCreated { get; } = DateTimeOffset.UtcNow;
    public bool Incremental => (bool?)Properties["incremental"] ?? false;
    /// <summary>The page blob holding the copy (payload and footer, as the source disk's).</summary>
    public required string BlobName { get; init; }

    /// <summary>The snapshot as DiskRP answers it (shape of Snapshot_Get.json, Snapshot_GetIncrementalSnapshot.json and Snapshot_Create_FromAnExistingSnapshot.json).</summary>
    public JsonObject ToJson()
    {
        var properties = (JsonObject)Properties.DeepClone();
        if (OsType is not null) properties["osType"] = OsType.DeepClone();
        if (HyperVGeneration is not null) properties["hyperVGeneration"] = HyperVGeneration.DeepClone();
        if (properties["creationData"] is JsonObject creation && SourceUniqueId is not null) creation["sourceUniqueId"] = SourceUniqueId;
        properties["diskSizeGB"] = (int)((DiskSizeBytes + (1L << 30) - 1) >> 30);
        properties["diskSizeBytes"] = DiskSizeBytes;
        properties["incremental"] = Incremental;
        if (Incremental) properties["incrementalSnapshotFamilyId"] = IncrementalSnapshotFamilyId;
        properties["diskState"] = DiskState;
        properties["uniqueId"] = UniqueId;
        properties["timeCreated"] = TimeCreated.ToString("O");
        properties["provisioningState"] = ProvisioningState;
        var snapshot = new JsonObject
        {
            ["id"] = Id,
            ["name"] = Name,
            ["type"] = "Microsoft.Compute/snapshots",
            ["location"] = Location,
        };
        if (Tags is not null) snapshot["tags"] = Tags.DeepClone();
        snapshot["properties"] = properties;
        return snapshot;
    }
}
