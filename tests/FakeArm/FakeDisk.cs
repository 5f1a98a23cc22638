using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>A managed disk held by the fake (Microsoft.Compute/disks, api-version 2023-04-02).</summary>
internal sealed class FakeDisk
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string ResourceGroup { get; init; }
    public required string Location { get; set; }
    public JsonObject? Sku { get; set; }
    public JsonArray? Zones { get; set; }
    public JsonObject? Tags { get; set; }
    /// <summary>The writable properties as sent (osType, hyperVGeneration, creationData ...).</summary>
    public JsonObject Properties { get; set; } = [];
    public string ProvisioningState { get; set; } = "Succeeded";
    /// <summary>ReadyToUpload → ActiveUpload (write SAS granted) → Unattached (revoked) → Attached (to a VM).</summary>
    public string DiskState { get; set; } = "Unattached";
    public string? ManagedBy { get; set; }
    public string UniqueId { get; } = Guid.NewGuid().ToString();
    public DateTimeOffset TimeCreated { get; } = DateTimeOffset.UtcNow;
    public long UploadSizeBytes => (long?)Properties["creationData"]?["uploadSizeBytes"] ?? 0;
    /// <summary>The page blob behind the disk while it has (had) a SAS.</summary>
    public string? BlobName { get; set; }
    /// <summary>The creation of <see cref="BlobName"/>'s blob, which every grant awaits; null again when it failed.</summary>
    public Task? BlobCreated { get; set; }

    /// <summary>The disk as DiskRP answers it (shape of Disk_Get.json and Disk_Create_UploadDisk.json).</summary>
    public JsonObject ToJson()
    {
        var properties = (JsonObject)Properties.DeepClone();
        properties["provisioningState"] = ProvisioningState;
        properties["diskState"] = DiskState;
        properties["timeCreated"] = TimeCreated.ToString("O");
        properties["uniqueId"] = UniqueId;
        if (DiskState is "Unattached" or "Attached" && UploadSizeBytes > 512)
        {
            long bytes = UploadSizeBytes - 512;
            properties["diskSizeBytes"] = bytes;
            properties["diskSizeGB"] = (int)((bytes + (1L << 30) - 1) >> 30);
        }
        var disk = new JsonObject
        {
            ["id"] = Id,
            ["name"] = Name,
            ["type"] = "Microsoft.Compute/disks",
            ["location"] = Location,
        };
        if (ManagedBy is not null) disk["managedBy"] = ManagedBy;
        if (Sku is not null)
        {
            var sku = (JsonObject)Sku.DeepClone();
            string name = (string?)sku["name"] ?? "";
            sku["tier"] = name.StartsWith("Premium", StringComparison.OrdinalIgnoreCase) ? "Premium" : name.StartsWith("Ultra", StringComparison.OrdinalIgnoreCase) ? "Ultra" : "Standard";
            disk["sku"] = sku;
        }
        if (Zones is not null) disk["zones"] = Zones.DeepClone();
        if (Tags is not null) disk["tags"] = Tags.DeepClone();
        disk["properties"] = properties;
        return disk;
    }
}
