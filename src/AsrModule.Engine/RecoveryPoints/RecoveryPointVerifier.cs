using AsrModule.Engine.Vault;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>One disk of a verified point: whether the bytes the vault holds hash to the digest taken at capture.</summary>
public sealed record DiskVerification(string Disk, long SizeBytes, bool Verified, string ExpectedDigest, string ActualDigest);

/// <summary>The outcome of reading back a whole recovery point.</summary>
public sealed class RecoveryPointVerification
{
    public string ItemName { get; init; } = "";
    public long Sequence { get; init; }
    public DateTimeOffset RecoveryPointTimeUtc { get; init; }
    public RecoveryPointConsistency Consistency { get; init; }
    public bool Verified => Disks.All(d => d.Verified);
    public List<DiskVerification> Disks { get; init; } = new();
    public override string ToString() => $"{ItemName}@{Sequence}: {(Verified ? "verified" : "FAILED")}";
}

/// <summary>
/// Reads every stored extent of a point (decrypting and decompressing, as a restore would) and checks
/// that the per-block hashes give the content digest recorded when the point was captured.
/// </summary>
public static class RecoveryPointVerifier
{
    public static async Task<RecoveryPointVerification> VerifyAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        // The piped point may predate a rebase by retention; the pin re-reads it and keeps it while it is read.
        await using var pin = await PointPin.AcquireAsync(vault, point, "Verify", ct).ConfigureAwait(false);
        point = pin.Point;
        var result = new RecoveryPointVerification
        {
            ItemName = point.ItemName, Sequence = point.Sequence, RecoveryPointTimeUtc = point.RecoveryPointTimeUtc, Consistency = point.Consistency,
        };
        foreach (var disk in point.Disks)
        {
            using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, ct).ConfigureAwait(false);
            var table = await reader.ComputeBlockHashesAsync(ct).ConfigureAwait(false);
            string actual = table.Digest();
            result.Disks.Add(new DiskVerification(disk.Name, disk.SizeBytes, actual == disk.ContentDigest, disk.ContentDigest, actual));
        }
        return result;
    }
}
