namespace AsrModule.Engine.Vault;

/// <summary>
/// Every key the vault uses, in one place. See docs/vault-format.md for the format.
/// </summary>
public static class VaultLayout
{
    public static string Policy(string name) => $"policies/{name.ToLowerInvariant()}.json";
    public const string PoliciesPrefix = "policies/";
    public const string ItemsPrefix = "items/";
    public static string Item(string itemId) => $"items/{itemId}/item.json";
    public static string ItemPrefix(string itemId) => $"items/{itemId}/";
    public static string ItemLock(string itemId) => $"locks/item-{itemId}.lock";
    public static string ItemRecordLock(string itemId) => $"locks/record-{itemId}.lock";
    public static string ItemNameClaim(string name) => $"names/{name.ToLowerInvariant()}";
    public static string PointsPrefix(string itemId) => $"items/{itemId}/points/";
    public static string PointManifest(string itemId, long sequence) => $"items/{itemId}/points/{sequence:D12}.json";
    public static string PointIndex(string itemId, long sequence, string diskId) => $"items/{itemId}/index/{sequence:D12}-{diskId}.idx";
    /// <summary>
    /// Full extent map of a point rebased by retention. Named by the point's sequence first (so
    /// <see cref="SequenceOf"/> and leftover cleanup treat it like the point's delta index) and by
    /// generation, so writing a new map never replaces the one a published manifest still names.
    /// </summary>
    public static string PointFullMap(string itemId, long sequence, string diskId, int generation) => $"items/{itemId}/index/{sequence:D12}-{diskId}.g{generation:D4}.map";
    public static string Tracker(string itemId, string diskId, long sequence) => $"items/{itemId}/tracker/{diskId}-{sequence:D12}.hashes";
    public static string TrackerPrefix(string itemId, string diskId) => $"items/{itemId}/tracker/{diskId}-";
    public static string Pack(string itemId, long sequence, int number) => $"items/{itemId}/packs/{sequence:D12}-{number:D4}.pack";
    public static string PacksPrefix(string itemId) => $"items/{itemId}/packs/";
    public static string IndexPrefix(string itemId) => $"items/{itemId}/index/";
    public static string TrackerDirPrefix(string itemId) => $"items/{itemId}/tracker/";
    public static string PinsPrefix(string itemId) => $"pins/{itemId}/";
    public static string Pin(string itemId, Guid pinId) => $"pins/{itemId}/{pinId:N}.json";

    /// <summary>The point sequence a pack, index or tracker object belongs to (parsed from its name).</summary>
    public static long SequenceOf(string key)
    {
        int slash = key.LastIndexOf('/');
        var name = key.AsSpan(slash + 1);
        int dash = name.LastIndexOf('-');
        // packs and indexes: "<seq>-..."; trackers: "<disk>-<seq>.hashes"
        if (name.EndsWith(".hashes"))
            return long.Parse(name[(dash + 1)..^7]);
        int firstDash = name.IndexOf('-');
        return long.Parse(name[..firstDash]);
    }
    public const string JobsPrefix = "jobs/";
    public static string GroupPointsPrefix(string group) => $"groups/{group.ToLowerInvariant()}/points/";
    public static string GroupPoint(string group, long sequence) => $"groups/{group.ToLowerInvariant()}/points/{sequence:D12}.json";
    public const string AgentsPrefix = "agents/";
    public static string Agent(string host) => $"agents/{host.ToLowerInvariant()}.json";
    public static string AgentStopRequest(string host) => $"agents/{host.ToLowerInvariant()}.stop";
    public static string AgentLock(string host) => $"locks/agent-{host.ToLowerInvariant()}.lock";
    public static string Job(Guid jobId) => $"jobs/{jobId:D}.json";

    /// <summary>Names of policies and items become key segments: letters, digits, '.', '_', '-' only, no "..".</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && !name.Contains("..", StringComparison.Ordinal)
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    public static bool TryParsePointSequence(string key, out long sequence)
    {
        sequence = 0;
        int slash = key.LastIndexOf('/');
        var name = key.AsSpan(slash + 1);
        return name.EndsWith(".json") && long.TryParse(name[..^5], out sequence);
    }
}
