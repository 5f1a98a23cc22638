using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication;

/// <summary>
/// What a cycle finds of its item's objects before it starts and what it removes after it publishes: leftovers of an
/// unpublished cycle, damage the listings show of the latest point, trackers no longer needed.
/// </summary>
internal static class CycleObjects
{
    /// <summary>
    /// The latest point's own objects as the cycle's listings show them: each disk's index (or full map) present and
    /// not empty, each of its packs present, and its packs together as long as the extents its manifest counts. A
    /// flipped byte, or damage to an older point's objects, does not show in a listing; readers find those.
    /// </summary>
    public static string? LatestPointDamage(string itemId, AsrRecoveryPoint latest, IReadOnlyDictionary<string, IReadOnlyList<Storage.VaultObjectInfo>> listings)
    {
        var indexes = listings[VaultLayout.IndexPrefix(itemId)].ToDictionary(o => o.Key, o => o.Length, StringComparer.Ordinal);
        var packs = listings[VaultLayout.PacksPrefix(itemId)].ToDictionary(o => o.Key, o => o.Length, StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var disk in latest.Disks)
        {
            string key = latest.IndexGeneration > 0
                ? VaultLayout.PointFullMap(itemId, latest.Sequence, disk.DiskId, latest.IndexGeneration)
                : VaultLayout.PointIndex(itemId, latest.Sequence, latest.AttemptId, disk.DiskId);
            if (!indexes.TryGetValue(key, out long length)) problems.Add($"'{key}' is missing");
            else if (length == 0) problems.Add($"'{key}' is empty");
        }
        long packBytes = 0;
        foreach (var pack in latest.Packs)
        {
            if (packs.TryGetValue(pack, out long length)) packBytes += length;
            else problems.Add($"'{pack}' is missing");
        }
        long expected = latest.Disks.Sum(d => d.StoredBytes);
        if (problems.Count == 0 && packBytes != expected)
            problems.Add($"its packs ({string.Join(", ", latest.Packs.Select(p => $"'{p}'"))}) hold {packBytes:N0} bytes, its extents {expected:N0} (truncated)");
        return problems.Count == 0 ? null
            : $"The vault's copy of point {latest} is damaged: {string.Join("; ", problems)}. The cycle resyncs (compares checksums) and sends what it lacks from the source.";
    }

    /// <summary>
    /// Deletes what an unpublished cycle left behind: objects of sequences after the latest point, and objects of the
    /// latest point's sequence written by another attempt than the one that published it (an attempt that lost it, e.g.
    /// whose lease lapsed). Full maps carry no attempt and are the latest point's own.
    /// </summary>
    /// <returns>The listing of each prefix (what was there before the leftovers were deleted).</returns>
    public static async Task<Dictionary<string, IReadOnlyList<Storage.VaultObjectInfo>>> RemoveLeftoversAsync(AsrVault vault, string itemId, AsrRecoveryPoint? latest, ILogger logger, CancellationToken ct)
    {
        long latestSequence = latest?.Sequence ?? 0;
        var listings = new Dictionary<string, IReadOnlyList<Storage.VaultObjectInfo>>(StringComparer.Ordinal);
        foreach (var prefix in new[] { VaultLayout.PacksPrefix(itemId), VaultLayout.IndexPrefix(itemId), VaultLayout.TrackerDirPrefix(itemId) })
        {
            await vault.Store.DeleteIncompleteAsync(prefix, ct).ConfigureAwait(false);
            var listing = await vault.Store.ListAsync(prefix, ct).ConfigureAwait(false);
            listings[prefix] = listing;
            foreach (var (o, objectSequence) in VaultLayout.OwnObjects(listing, logger))
                if (objectSequence > latestSequence || (objectSequence == latestSequence && IsOtherAttempts(o.Key, latest!)))
                    await vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
        }
        return listings;
    }

    /// <summary>An object of <paramref name="point"/>'s sequence that another attempt than the point's wrote (not a full map).</summary>
    private static bool IsOtherAttempts(string key, AsrRecoveryPoint point) =>
        !key.EndsWith(".map", StringComparison.Ordinal)
        && VaultLayout.TryParseObjectKey(key, out long sequence, out string? attempt) && sequence == point.Sequence && attempt != point.AttemptId;

    /// <summary>
    /// After point <paramref name="sequence"/> is published: every tracker object of it or older but the new point's
    /// (<paramref name="keep"/>: its maps and the segments they name, some written by older cycles) goes, older points'
    /// and other attempts' alike. Nothing when a later sequence's tracker exists (a session that took the item over while
    /// this one stalled published since, and may name older segments), nor once this cycle's lock on the item lapsed.
    /// </summary>
    public static async Task RemoveOldTrackersAsync(AsrVault vault, string itemId, long sequence, IReadOnlySet<string> keep, ILogger logger)
    {
        var own = VaultLayout.OwnObjects(await vault.Store.ListAsync(VaultLayout.TrackerDirPrefix(itemId), CancellationToken.None).ConfigureAwait(false), logger);
        // A later point's tracker means another session published after this one (its lease lapsed meanwhile): the
        // older segments may be that point's too, so this cycle leaves the cleanup to the next one.
        if (own.Any(o => o.Sequence > sequence))
        {
            logger.LogWarning("Item {Item}: tracker objects newer than point {Sequence} exist; old trackers are left for the next cycle to remove", itemId, sequence);
            return;
        }
        foreach (var (o, _) in own)
        {
            if (keep.Contains(o.Key)) continue;
            if (vault.Store.LockLapsed(VaultLayout.ItemLock(itemId))) return;
            await vault.Store.DeleteAsync(o.Key, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
