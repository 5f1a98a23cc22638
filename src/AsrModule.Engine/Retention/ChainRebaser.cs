using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Retention;

/// <summary>
/// Cuts a point loose from the ancestors retention prunes. With a kept ancestor (the nearest older point of its chain
/// that stays), each disk's map is written relative to that ancestor's (only what differs) and the manifest names the
/// ancestor as its parent; without one, each disk's map, flattened from the chain, is written whole and the manifest
/// names no parent. Extents are not moved (they are bound to the sequence that stored them); only the maps change.
/// </summary>
internal static class ChainRebaser
{
    /// <summary>
    /// Crash-safe at every step: until the manifest is replaced, readers follow the old chain and the new maps are
    /// unnamed leftovers (rewritten by a re-run, or swept); after it, the point reads its kept ancestor's chain and its
    /// relative maps (or its full maps), never the points being pruned. <paramref name="keptAncestor"/> must be in the
    /// point's chain and stay listed while the point names it (retention keeps it: see <see cref="RetentionPlan"/>).
    /// </summary>
    public static async Task RebaseAsync(AsrVault vault, AsrRecoveryPoint point, AsrRecoveryPoint? keptAncestor, CancellationToken ct)
    {
        int generation = point.IndexGeneration + 1;
        var chain = await vault.GetPointChainAsync(point, ct).ConfigureAwait(false);
        var ancestorChain = keptAncestor is null ? null : await vault.GetPointChainAsync(keptAncestor, ct).ConfigureAwait(false);
        // The attempts of the pruned sequences the maps name: their manifests may be pruned next, and pack names need them.
        var attempts = new Dictionary<long, string>();
        foreach (var disk in point.Disks)
        {
            var map = await RecoveryPointDiskReader.BuildMapAsync(vault, point, disk, chain, ct).ConfigureAwait(false);
            List<FlattenedSegment> written;
            byte[] encoded;
            if (ancestorChain is not null)
            {
                var basis = await RecoveryPointDiskReader.BuildMapAsync(vault, point, disk, ancestorChain, ct).ConfigureAwait(false);
                written = RelativeMapDifference.Between(basis, map, (disk.SizeBytes + disk.BlockSize - 1) / disk.BlockSize);
                encoded = RelativeMapIndex.Encode(disk.SizeBytes, written);
            }
            else
            {
                written = map.Flatten().ToList();
                encoded = FullMapIndex.Encode(written);
            }
            CollectAttempts(point, disk, map, written, attempts);
            await WriteMapAsync(vault, point, disk, generation, encoded, relative: ancestorChain is not null, ct).ConfigureAwait(false);
        }
        // Re-read, so only the fields this step owns change even if the listed copy is stale.
        var manifest = await vault.GetPointAsync(point.ItemId, point.Sequence, ct).ConfigureAwait(false);
        manifest.ParentSequence = keptAncestor?.Sequence;
        manifest.IndexRelativeToParent = keptAncestor is not null;
        manifest.IndexGeneration = generation;
        manifest.PackAttempts = attempts.Count > 0 ? attempts : null;
        await vault.Records.WriteAsync(VaultLayout.PointManifest(point.ItemId, point.Sequence), manifest, ct).ConfigureAwait(false);
        point.ParentSequence = manifest.ParentSequence;
        point.IndexRelativeToParent = manifest.IndexRelativeToParent;
        point.IndexGeneration = generation;
        point.PackAttempts = manifest.PackAttempts;
    }

    /// <summary>
    /// The pack attempt of every other sequence the <paramref name="written"/> segments read, as <paramref name="map"/>
    /// reads it. A manifest names one attempt per sequence. The links of a chain read disjoint sequences (a relative map
    /// names only what came after its parent), so one chain never reads a sequence under two attempts; if one did, the
    /// rebase refuses rather than guess which (the chain stays, and a repack merges the attempts).
    /// </summary>
    private static void CollectAttempts(AsrRecoveryPoint point, RecoveryPointDisk disk, ExtentMap map, List<FlattenedSegment> written, Dictionary<long, string> attempts)
    {
        var seen = new Dictionary<long, string?>();
        foreach (var segment in written)
        {
            long sequence = segment.Extent.Sequence;
            if (segment.IsZeroRun || sequence == point.Sequence) continue;
            string? attempt = map.AttemptOf(map.Segments[map.FindSegment(segment.FirstBlock)].ExtentRef);
            if ((seen.TryGetValue(sequence, out var other) || attempts.TryGetValue(sequence, out other)) && other != attempt)
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"Point {point} reads the packs of point {sequence} under two attempts ('{other}' and '{attempt}', disk '{disk.Name}'). " +
                    "It is not rebased and its chain stays; a repack merges the two.", VaultLayout.PointManifest(point.ItemId, point.Sequence));
            seen[sequence] = attempt;
            if (attempt is not null) attempts[sequence] = attempt;
        }
    }

    /// <summary>
    /// Writes a rebased point's map of one disk under <paramref name="generation"/> and checks that it reads back as
    /// written and decodes: the chain that could rebuild it is about to go, so what the store returns must be what was
    /// meant before a manifest names it.
    /// </summary>
    internal static async Task WriteMapAsync(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, int generation, byte[] map, bool relative, CancellationToken ct)
    {
        string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, disk.DiskId, generation);
        await vault.Store.WriteAsync(key, MetadataSealer.Seal(map, vault.Key, key), ct).ConfigureAwait(false);
        var stored = await vault.Store.ReadAllAsync(key, ct).ConfigureAwait(false);
        if (stored is null || !MetadataSealer.Open(stored, vault.Key, key).AsSpan().SequenceEqual(map))
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"The extent map '{key}' did not read back as written; the point was not rebased and nothing was pruned.", key);
        if (relative) RelativeMapIndex.Decode(map, key, point.Sequence, disk.SizeBytes, disk.BlockSize);
        else FullMapIndex.Decode(map, key);
    }
}
