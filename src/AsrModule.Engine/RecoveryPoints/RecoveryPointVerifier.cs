using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// One disk of a verified point: whether the bytes the vault holds hash to the digest taken at capture.
/// <paramref name="Error"/> says why a disk could not be read at all (a missing, short or damaged object: the
/// VaultDataCorrupt message naming disk, point and object); its ActualDigest is then empty.
/// </summary>
public sealed record DiskVerification(string Disk, long SizeBytes, bool Verified, string ExpectedDigest, string ActualDigest, string? Error = null);

/// <summary>The outcome of reading back a whole recovery point.</summary>
public sealed class RecoveryPointVerification
{
    public string ItemName { get; init; } = "";
    public long Sequence { get; init; }
    public DateTimeOffset RecoveryPointTimeUtc { get; init; }
    public RecoveryPointConsistency Consistency { get; init; }
    public bool Verified => Error is null && Disks.All(d => d.Verified);
    public List<DiskVerification> Disks { get; init; } = new();
    /// <summary>Why the point as a whole could not be verified (its manifest is damaged); null otherwise.</summary>
    public string? Error { get; init; }
    public override string ToString() => $"{ItemName}@{Sequence}: {(Verified ? "verified" : "FAILED")}";
}

/// <summary>
/// Reads every stored extent of a point (decrypting and decompressing, as a restore would) and checks
/// that the per-block hashes give the content digest recorded when the point was captured.
/// </summary>
/// <remarks>
/// Verification writes nothing to the vault (no pin record: it works on a read-only vault and leaves the vault as
/// it found it). The point is kept from this process's retention by an in-process hold
/// (<see cref="PointPin.HoldInProcess"/>); retention in another process (an agent) may still prune or rebase it
/// meanwhile, so a disk that fails to read or verify is judged only after re-reading the manifest: a point that is
/// gone is RecoveryPointNotFound (not "corrupt"), a point rebased meanwhile is verified again through its new map.
/// A damaged point is a result (Verified = false, with each disk's error), not an exception.
/// </remarks>
public static class RecoveryPointVerifier
{
    public static async Task<RecoveryPointVerification> VerifyAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            // The piped point may predate a rebase by retention: read the manifest as the vault holds it now.
            AsrRecoveryPoint current;
            try
            {
                current = await PointPin.CurrentAsync(vault, point, ct).ConfigureAwait(false);
            }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt)
            {
                return new RecoveryPointVerification
                {
                    ItemName = point.ItemName, Sequence = point.Sequence, RecoveryPointTimeUtc = point.RecoveryPointTimeUtc, Consistency = point.Consistency,
                    Error = ex.Message,
                };
            }
            RecoveryPointVerification result;
            string chainBefore = await ChainGenerationsAsync(vault, current, ct).ConfigureAwait(false);
            using (PointPin.HoldInProcess(vault, current))
                result = await ReadAsync(vault, current, ct).ConfigureAwait(false);
            if (result.Verified) return result;
            // Failed: was it pruned, rebased or repacked by another process while it was read? A repack gives every
            // point whose map it moves a new generation; a delta point reads it through the base of its chain.
            var after = await PointPin.CurrentAsync(vault, point, ct).ConfigureAwait(false);
            if (attempt == 0 && (after.IndexGeneration != current.IndexGeneration || await ChainGenerationsAsync(vault, after, ct).ConfigureAwait(false) != chainBefore)) continue;
            return result;
        }
    }

    /// <summary>Each link of the point's chain with the generation of its map ("" when the chain does not read).</summary>
    private static async Task<string> ChainGenerationsAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        try
        {
            return string.Join(",", (await vault.GetPointChainAsync(point, ct).ConfigureAwait(false)).Select(l => $"{l.Sequence}.{l.IndexGeneration}"));
        }
        catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.VaultDataCorrupt or AsrErrorIds.RecoveryPointNotFound)
        {
            return "";
        }
    }

    private static async Task<RecoveryPointVerification> ReadAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        var result = new RecoveryPointVerification
        {
            ItemName = point.ItemName, Sequence = point.Sequence, RecoveryPointTimeUtc = point.RecoveryPointTimeUtc, Consistency = point.Consistency,
        };
        foreach (var disk in point.Disks)
        {
            try
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, ct).ConfigureAwait(false);
                var table = await reader.ComputeBlockHashesAsync(ct).ConfigureAwait(false);
                string actual = Replication.TrackerTables.HashSegments.DigestOf(table, disk);
                result.Disks.Add(new DiskVerification(disk.Name, disk.SizeBytes, actual == disk.ContentDigest, disk.ContentDigest, actual));
            }
            catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.VaultDataCorrupt or AsrErrorIds.RecoveryPointNotFound)
            {
                // RecoveryPointNotFound here is a parent of the chain that is missing: damage, or a rebase meanwhile (checked after).
                result.Disks.Add(new DiskVerification(disk.Name, disk.SizeBytes, false, disk.ContentDigest, "", ex.Message));
            }
        }
        return result;
    }
}
