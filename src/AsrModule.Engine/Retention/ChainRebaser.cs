using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Retention;

/// <summary>
/// Cuts a point loose from its ancestors so they can be pruned: each disk's map, flattened from the
/// chain as it reads today, is written as a full map, then the manifest is replaced to name it.
/// Extents are not moved (they are bound to the sequence that stored them); only the map changes.
/// </summary>
internal static class ChainRebaser
{
    /// <summary>
    /// Crash-safe at every step: until the manifest is replaced, readers follow the old chain and the
    /// new maps are unnamed leftovers (rewritten by a re-run, or swept); after it, the old chain is no
    /// longer needed by this point.
    /// </summary>
    public static async Task RebaseAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        int generation = point.IndexGeneration + 1;
        // The attempts of the sequences the full maps name: their manifests may be pruned next, and pack names need them.
        var attempts = new Dictionary<long, string>();
        foreach (var disk in point.Disks)
        {
            byte[] fullMap;
            using (var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, ct).ConfigureAwait(false))
            {
                fullMap = FullMapIndex.Encode(reader.Map);
                foreach (var (sequence, _, _) in reader.Map.Extents)
                    if (sequence != point.Sequence && reader.Attempts.TryGetValue(sequence, out var attempt)) attempts[sequence] = attempt;
            }
            string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, disk.DiskId, generation);
            await vault.Store.WriteAsync(key, MetadataSealer.Seal(fullMap, vault.Key, key), ct).ConfigureAwait(false);
            await CheckReadsBackAsync(vault, key, fullMap, ct).ConfigureAwait(false);
        }
        // Re-read, so only the fields this step owns change even if the listed copy is stale.
        var manifest = await vault.GetPointAsync(point.ItemId, point.Sequence, ct).ConfigureAwait(false);
        manifest.ParentSequence = null;
        manifest.IndexGeneration = generation;
        manifest.PackAttempts = attempts.Count > 0 ? attempts : null;
        await vault.Records.WriteAsync(VaultLayout.PointManifest(point.ItemId, point.Sequence), manifest, ct).ConfigureAwait(false);
        point.ParentSequence = null;
        point.IndexGeneration = generation;
        point.PackAttempts = manifest.PackAttempts;
    }

    /// <summary>
    /// The chain that could rebuild this map is about to be deleted, so what the store returns must be
    /// what was meant, before the manifest names it.
    /// </summary>
    internal static async Task CheckReadsBackAsync(AsrVault vault, string key, byte[] expected, CancellationToken ct)
    {
        var stored = await vault.Store.ReadAllAsync(key, ct).ConfigureAwait(false);
        if (stored is null || !MetadataSealer.Open(stored, vault.Key, key).AsSpan().SequenceEqual(expected))
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"The full extent map '{key}' did not read back as written; the point was not rebased and nothing was pruned.", key);
        FullMapIndex.Decode(expected, key);
    }
}
