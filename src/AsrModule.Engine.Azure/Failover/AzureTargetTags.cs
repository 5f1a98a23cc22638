namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The tags <see cref="AsrAzureTarget"/> puts on every disk, VM and snapshot it makes. <see cref="Operation"/> is how
/// what one failover or drill made is found again and deleted (<see cref="IAzureControlPlane.DeleteByTagAsync"/>, in the
/// target's resource group only); the others say where a resource came from, for a person in the portal.
/// </summary>
public static class AzureTargetTags
{
    /// <summary>The vault's id.</summary>
    public const string Vault = "asr-vault";
    /// <summary>The protected item's name.</summary>
    public const string Item = "asr-item";
    /// <summary>The protected item's id.</summary>
    public const string ItemId = "asr-item-id";
    /// <summary>The job that made it.</summary>
    public const string Job = "asr-job";
    /// <summary>The recovery point's sequence number.</summary>
    public const string Point = "asr-point";
    /// <summary>The operation (failover, change of point, drill): a GUID without dashes ("N").</summary>
    public const string Operation = "asr-operation";
    /// <summary>TestFailover, Failover, or Reprotect (the snapshots read by reprotect and failback).</summary>
    public const string Purpose = "asr-purpose";

    /// <summary>The purpose tag of the snapshots <see cref="AsrAzureTarget.OpenRecoveredDisksAsync"/> takes.</summary>
    public const string ReprotectPurpose = "Reprotect";

    /// <summary>All of ours: a user tag of one of these names is overridden.</summary>
    public static IReadOnlyList<string> All { get; } = [Vault, Item, ItemId, Job, Point, Operation, Purpose];

    /// <summary>Azure's limit of tags on one resource.</summary>
    public const int MaxTagsPerResource = 50;

    /// <summary>The value of <see cref="Operation"/> for an operation id.</summary>
    public static string OperationValue(Guid operationId) => operationId.ToString("N");

    /// <summary><paramref name="ours"/> over the user's <paramref name="extra"/> (ours win on a clash, compared case-insensitively as Azure does).</summary>
    internal static Dictionary<string, string> Merge(IReadOnlyDictionary<string, string> extra, IReadOnlyDictionary<string, string> ours)
    {
        var tags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in extra) tags[key] = value;
        foreach (var (key, value) in ours) tags[key] = value;
        return tags;
    }
}
