using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Retention;

/// <summary>
/// Deletes the index objects and packs no listed point needs any more. Space comes back at pack
/// granularity: a pack stays whole while any one of its extents is still part of a listed point's
/// map, so a pruned point's pack is freed only once later points have overwritten all it held, or once
/// <see cref="PackRepacker"/> has moved what is still read of it and the manifests name the copies.
/// </summary>
internal static class UnreferencedObjectSweeper
{
    public sealed record SweepResult(List<string> DeletedPacks, long PackBytes, long IndexBytes);

    /// <summary>
    /// References are taken from the manifests listed now, so pruned manifests must be gone first.
    /// Objects above the latest listed point are left alone: they belong to a cycle that has not
    /// published (its leftovers are the cycle's to remove). Idempotent: a re-run deletes what an
    /// interrupted one did not.
    /// </summary>
    public static async Task<SweepResult> SweepAsync(AsrVault vault, AsrProtectedItem item, CancellationToken ct)
    {
        var points = await vault.GetPointsAsync(item, ct).ConfigureAwait(false);
        if (points.Count == 0) return new SweepResult([], 0, 0);
        long latest = points.Max(p => p.Sequence);

        // The index a manifest names is all that point reads itself (a relative map's parent is listed and names its own):
        // a rebased point's delta index, an older generation and a pruned point's indexes are garbage.
        var liveIndexes = points.SelectMany(p => p.Disks.Select(d => p.IndexGeneration == 0
            ? VaultLayout.PointIndex(item.Id, p.Sequence, p.AttemptId, d.DiskId)
            : VaultLayout.PointFullMap(item.Id, p.Sequence, d.DiskId, p.IndexGeneration))).ToHashSet(StringComparer.Ordinal);
        long indexBytes = 0;
        // Only objects named as the engine names them: a stray file is not ours to delete (OwnObjects warns about it).
        foreach (var (o, sequence) in VaultLayout.OwnObjects(await vault.Store.ListAsync(VaultLayout.IndexPrefix(item.Id), ct).ConfigureAwait(false), vault.Logger))
        {
            if (sequence > latest || liveIndexes.Contains(o.Key)) continue;
            await vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
            indexBytes += o.Length;
        }

        // A listed point's own packs stay (its delta index can only name those): every pack of its sequence and attempt
        // (for a point without an attempt id, every pack of its sequence named without one, as before). Any other pack
        // can only be needed through a rebased point's map (full or relative), which names the sequence that stored it (and the
        // manifest the attempt of that sequence). So a pack of a listed sequence but of another attempt (one that lost
        // the point, e.g. whose lease lapsed) is garbage like a pruned point's.
        var listed = points.ToDictionary(p => p.Sequence);
        var ownPacks = points.SelectMany(p => p.Packs).ToHashSet(StringComparer.Ordinal);
        var candidates = VaultLayout.OwnObjects(await vault.Store.ListAsync(VaultLayout.PacksPrefix(item.Id), ct).ConfigureAwait(false), vault.Logger)
            .Where(p => p.Sequence <= latest && !ownPacks.Contains(p.Object.Key) && !IsListedPointsOwn(p.Object.Key, listed))
            .Select(p => p.Object)
            .ToList();
        var deletedPacks = new List<string>();
        long packBytes = 0;
        if (candidates.Count == 0) return new SweepResult(deletedPacks, packBytes, indexBytes);

        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var point in points.Where(p => p.IndexGeneration > 0))
            foreach (var disk in point.Disks)
                foreach (var s in await RecoveryPointDiskReader.ReadRebasedMapAsync(vault, point, disk, ct).ConfigureAwait(false))
                    if (!s.IsZeroRun) referenced.Add(VaultLayout.Pack(item.Id, s.Extent.Sequence, point.AttemptOf(s.Extent.Sequence), s.Extent.Record.PackNumber));
        foreach (var o in candidates.Where(o => !referenced.Contains(o.Key)))
        {
            await vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
            deletedPacks.Add(o.Key);
            packBytes += o.Length;
        }
        return new SweepResult(deletedPacks, packBytes, indexBytes);
    }

    /// <summary>A pack named by the sequence and attempt of a listed point.</summary>
    private static bool IsListedPointsOwn(string packKey, Dictionary<long, AsrRecoveryPoint> listed) =>
        VaultLayout.TryParseObjectKey(packKey, out long sequence, out string? attempt)
        && listed.TryGetValue(sequence, out var point) && attempt == point.AttemptId;
}
