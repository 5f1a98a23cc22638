using System.Globalization;
using AsrModule.Engine.Storage;
using Microsoft.Extensions.Logging;

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
    /// <summary>
    /// The sequence part of the names of a cycle attempt's packs, indexes and trackers: <c>&lt;sequence:D12&gt;</c> for points
    /// written before attempts were named (no attempt id in their manifest), else <c>&lt;sequence:D12&gt;.&lt;attempt&gt;</c>
    /// (8 hex digits, random per attempt: <see cref="NewAttemptId"/>). Two attempts at one sequence (a cycle whose lease
    /// lapsed and the one that took the item over) never share a name, so neither can replace what the other wrote.
    /// </summary>
    private static string SequenceToken(long sequence, string? attemptId) =>
        attemptId is null ? sequence.ToString("D12", CultureInfo.InvariantCulture) : $"{sequence.ToString("D12", CultureInfo.InvariantCulture)}.{attemptId}";

    /// <summary>A new cycle attempt's id: 8 lowercase hex digits, random.</summary>
    public static string NewAttemptId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    /// <summary>An attempt id as <see cref="NewAttemptId"/> writes it.</summary>
    public static bool IsValidAttemptId(string? attemptId) =>
        attemptId is { Length: 8 } && attemptId.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>The delta index of a disk of <paramref name="point"/> (named by the attempt that wrote the point).</summary>
    public static string PointIndex(RecoveryPoints.AsrRecoveryPoint point, string diskId) => PointIndex(point.ItemId, point.Sequence, point.AttemptId, diskId);
    /// <summary>The tracker of a disk at <paramref name="point"/>.</summary>
    public static string Tracker(RecoveryPoints.AsrRecoveryPoint point, string diskId) => Tracker(point.ItemId, diskId, point.Sequence, point.AttemptId);

    public static string PointIndex(string itemId, long sequence, string? attemptId, string diskId) => $"items/{itemId}/index/{SequenceToken(sequence, attemptId)}-{diskId}.idx";
    /// <summary>
    /// Full extent map of a point rebased by retention. Named by the point's sequence first (so
    /// <see cref="SequenceOf"/> and leftover cleanup treat it like the point's delta index) and by
    /// generation, so writing a new map never replaces the one a published manifest still names.
    /// </summary>
    public static string PointFullMap(string itemId, long sequence, string diskId, int generation) => $"items/{itemId}/index/{sequence:D12}-{diskId}.g{generation:D4}.map";
    public static string Tracker(string itemId, string diskId, long sequence, string? attemptId) => $"items/{itemId}/tracker/{diskId}-{SequenceToken(sequence, attemptId)}.hashes";
    /// <summary>The tracker map of a disk at <paramref name="point"/> (a point of format 3, which always has an attempt id).</summary>
    public static string TrackerMap(RecoveryPoints.AsrRecoveryPoint point, string diskId) =>
        TrackerMap(point.ItemId, diskId, point.Sequence, point.AttemptId ?? throw new ArgumentException($"Point {point} has no attempt id, so no tracker map.", nameof(point)));
    /// <summary>The tracker map of a disk at a point of format 3 (<see cref="Replication.TrackerTables.TrackerMap"/>).</summary>
    public static string TrackerMap(string itemId, string diskId, long sequence, string attemptId) => $"items/{itemId}/tracker/{diskId}-{SequenceToken(sequence, attemptId)}.trk";
    /// <summary>Segment <paramref name="segment"/> of a disk's tracker, written by the cycle of <paramref name="sequence"/> (later maps may name it too).</summary>
    public static string TrackerSegment(string itemId, string diskId, long sequence, string attemptId, int segment) =>
        $"items/{itemId}/tracker/{diskId}-{SequenceToken(sequence, attemptId)}.{segment.ToString("D6", CultureInfo.InvariantCulture)}.seg";
    public static string TrackerPrefix(string itemId, string diskId) => $"items/{itemId}/tracker/{diskId}-";
    public static string Pack(string itemId, long sequence, string? attemptId, int number) => $"items/{itemId}/packs/{SequenceToken(sequence, attemptId)}-{number:D4}.pack";
    public static string PacksPrefix(string itemId) => $"items/{itemId}/packs/";
    public static string IndexPrefix(string itemId) => $"items/{itemId}/index/";
    public static string TrackerDirPrefix(string itemId) => $"items/{itemId}/tracker/";
    /// <summary>The drill history of an item: one record per boot verification, named by its start time and drill.</summary>
    public static string DrillsPrefix(string itemId) => $"items/{itemId}/drills/";
    public static string DrillResult(string itemId, DateTimeOffset startedUtc, Guid drillId) =>
        $"items/{itemId}/drills/{startedUtc.UtcDateTime:yyyyMMdd'T'HHmmssfff}-{drillId:N}.json";
    public static string PinsPrefix(string itemId) => $"pins/{itemId}/";
    public static string Pin(string itemId, Guid pinId) => $"pins/{itemId}/{pinId:N}.json";

    /// <summary>The point sequence a pack, index or tracker object belongs to (parsed from its name).</summary>
    public static long SequenceOf(string key) =>
        TryParseObjectKey(key, out long sequence, out _) ? sequence : throw new FormatException($"'{key}' is not a pack, index or tracker name.");

    /// <summary>
    /// The point sequence of an object under an item's packs/, index/ or tracker/ folder, when its key is one this
    /// engine writes (<see cref="Pack"/>, <see cref="PointIndex"/>, <see cref="PointFullMap"/>, <see cref="Tracker"/>):
    /// directly in that folder and named exactly as those methods name it. False for anything else: a stray file
    /// (notes, a copy, a nested folder) is not ours, so the engine neither reads nor deletes it.
    /// </summary>
    public static bool TryParseObjectSequence(string key, out long sequence) => TryParseObjectKey(key, out sequence, out _);

    /// <summary>
    /// <see cref="TryParseObjectSequence"/>, with the attempt id in the name (null for names without one: objects of points
    /// written before attempts were named, and full maps, which are named by their point's sequence and generation).
    /// </summary>
    public static bool TryParseObjectKey(string key, out long sequence, out string? attemptId)
    {
        sequence = 0;
        attemptId = null;
        var parts = key.Split('/');
        if (parts.Length != 4 || parts[0] != "items" || !IsValidName(parts[1])) return false;
        string name = parts[3];
        switch (parts[2])
        {
            case "packs": // <token>-<number:D4>.pack
            {
                if (!name.EndsWith(".pack", StringComparison.Ordinal)) return false;
                int dash = name.IndexOf('-');
                return dash > 0 && TryParseSequenceToken(name[..dash], out sequence, out attemptId)
                    && TryCanonicalNumber(name[(dash + 1)..^5], 4, out _);
            }
            case "index": // <token>-<disk>.idx or <sequence:D12>-<disk>.g<generation:D4>.map
            {
                int dash = name.IndexOf('-');
                if (dash <= 0 || !TryParseSequenceToken(name[..dash], out sequence, out attemptId)) return false;
                string rest = name[(dash + 1)..];
                if (rest.EndsWith(".idx", StringComparison.Ordinal)) return IsValidName(rest[..^4]);
                int generation = rest.LastIndexOf(".g", StringComparison.Ordinal);
                return attemptId is null && rest.EndsWith(".map", StringComparison.Ordinal) && generation > 0 && generation + 2 <= rest.Length - 4
                    && TryCanonicalNumber(rest[(generation + 2)..^4], 4, out _) && IsValidName(rest[..generation]);
            }
            case "tracker": // <disk>-<token>.hashes (format 2), <disk>-<token>.trk and <disk>-<token>.<segment:D6>.seg (format 3)
            {
                string stem;
                if (name.EndsWith(".hashes", StringComparison.Ordinal)) stem = name[..^7];
                else if (name.EndsWith(".trk", StringComparison.Ordinal)) stem = name[..^4];
                else if (name.EndsWith(".seg", StringComparison.Ordinal))
                {
                    stem = name[..^4];
                    int dot = stem.LastIndexOf('.');
                    if (dot < 0 || !TryCanonicalNumber(stem[(dot + 1)..], 6, out _)) return false;
                    stem = stem[..dot];
                }
                else return false;
                int dash = stem.LastIndexOf('-');
                return dash > 0 && dash + 1 < stem.Length && IsValidName(stem[..dash])
                    && TryParseSequenceToken(stem[(dash + 1)..], out sequence, out attemptId)
                    && (attemptId is not null || name.EndsWith(".hashes", StringComparison.Ordinal));
            }
            default:
                return false;
        }
    }

    /// <summary>
    /// The objects of a listing that are the engine's own (<see cref="TryParseObjectSequence"/>), with their
    /// sequences; every other one is logged as a warning and left alone (never deleted: it is not ours).
    /// </summary>
    internal static List<(VaultObjectInfo Object, long Sequence)> OwnObjects(IEnumerable<VaultObjectInfo> listing, ILogger logger)
    {
        var own = new List<(VaultObjectInfo, long)>();
        foreach (var o in listing)
        {
            if (TryParseObjectSequence(o.Key, out long sequence)) own.Add((o, sequence));
            else logger.LogWarning("Ignoring vault object '{Key}': its name is not one this module writes, so it is neither read nor deleted", o.Key);
        }
        return own;
    }

    /// <summary><c>&lt;sequence:D12&gt;</c> or <c>&lt;sequence:D12&gt;.&lt;attempt&gt;</c>, exactly as <see cref="SequenceToken"/> writes it.</summary>
    private static bool TryParseSequenceToken(string token, out long sequence, out string? attemptId)
    {
        attemptId = null;
        int dot = token.IndexOf('.');
        if (dot >= 0)
        {
            attemptId = token[(dot + 1)..];
            if (!IsValidAttemptId(attemptId)) { sequence = 0; return false; }
            token = token[..dot];
        }
        return TryCanonicalNumber(token, 12, out sequence) && sequence > 0;
    }

    /// <summary>ASCII digits written as <c>ToString("D" + width)</c> writes them (no sign, no spaces, no other padding).</summary>
    private static bool TryCanonicalNumber(string text, int width, out long value)
    {
        value = 0;
        if (text.Length < width || text.Length > 18 || !text.All(char.IsAsciiDigit)) return false;
        value = long.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
        return text == value.ToString("D" + width, CultureInfo.InvariantCulture);
    }

    public const string JobsPrefix = "jobs/";
    public static string GroupPointsPrefix(string group) => $"groups/{group.ToLowerInvariant()}/points/";
    public static string GroupPoint(string group, long sequence) => $"groups/{group.ToLowerInvariant()}/points/{sequence:D12}.json";
    public const string AgentsPrefix = "agents/";
    public static string Agent(string host) => $"agents/{host.ToLowerInvariant()}.json";
    /// <summary>Stop-AsrAgent's request, in the host's folder: the agent's one listing per tick sees it (issue #15).</summary>
    public static string AgentStopRequest(string host) => $"hosts/{host.ToLowerInvariant()}/stop";
    /// <summary>
    /// The host's folder: one listing of it tells an agent everything it watches between full reads (issue #15):
    /// an entry per item assigned to the host (<see cref="HostItem"/>) and the stop request.
    /// </summary>
    public static string HostPrefix(string host) => $"hosts/{host.ToLowerInvariant()}/";
    public static string HostItemsPrefix(string host) => $"hosts/{host.ToLowerInvariant()}/items/";
    public const string HostsPrefix = "hosts/";
    /// <summary>
    /// The host's agent's snapshot of the items it keeps (<see cref="HostCatalogSnapshot"/>): Get-AsrProtectedItem takes an
    /// item from it while the item's change marker still has the version the snapshot names, instead of reading the item.
    /// </summary>
    public static string HostCatalog(string host) => $"hosts/{host.ToLowerInvariant()}/catalog.json";
    /// <summary>
    /// The change marker of an item assigned to <paramref name="host"/>: rewritten after every write of the item's record,
    /// so its version in a listing changes with the item. A hint only: the agent acts on the item record it then reads.
    /// </summary>
    public static string HostItem(string host, string itemId) => $"hosts/{host.ToLowerInvariant()}/items/{itemId}";
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
        return name.EndsWith(".json") && long.TryParse(name[..^5], NumberStyles.None, CultureInfo.InvariantCulture, out sequence);
    }
}
