using System.Text.Json.Serialization;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// What a point's disks show of the machine. A point says CrashConsistent only when the product can show that nothing
/// wrote during its capture (a point-in-time capture: reflink clone or QEMU; a freeze; or a live read that the source's
/// write evidence shows was quiet). A live read that the source wrote through is Inconsistent: its blocks may come from
/// different instants, so LatestProcessed, time choices and plans skip it unless asked (-AllowInconsistent).
/// </summary>
public enum RecoveryPointConsistency { CrashConsistent, AppConsistent, Inconsistent }

/// <summary>
/// A published recovery point: the manifest object whose atomic appearance publishes the point.
/// Each disk's content is its extent index overlaid on the parent point's (logically full).
/// </summary>
public sealed class AsrRecoveryPoint
{
    /// <summary>
    /// The manifest format this module writes (3: attempt ids in object names). A manifest of a higher version was written
    /// by a newer module whose fields this one may not know (JSON drops them silently), so it is refused, not misread
    /// (<see cref="Vault.VaultRecordChecks.CheckPoint"/>).
    /// </summary>
    public const int CurrentFormatVersion = 3;

    public int FormatVersion { get; set; } = 1;
    public Guid PointId { get; set; }
    public long Sequence { get; set; }
    /// <summary>The point this one is a delta over; null for a full (base) point.</summary>
    public long? ParentSequence { get; set; }
    public string ItemId { get; set; } = "";
    public string ItemName { get; set; } = "";
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    public RecoveryPointConsistency Consistency { get; set; }
    /// <summary>
    /// What shows the consistency: how the disks were captured ("reflink clone", "QEMU capture", "live read; no write
    /// during it: ..."), or what wrote during a live read. Null in points written before it was recorded.
    /// </summary>
    public string? ConsistencyEvidence { get; set; }
    public Guid JobId { get; set; }
    /// <summary>Pack objects this point's own extents live in.</summary>
    public List<string> Packs { get; set; } = new();
    public List<RecoveryPointDisk> Disks { get; set; } = new();
    /// <summary>Set when the point belongs to a replication group's coordinated point (same id on every member).</summary>
    public Guid? GroupPointId { get; set; }
    public string? ReplicationGroup { get; set; }
    /// <summary>How the changes were found ("HashScan", "QemuDirtyBitmap").</summary>
    public string? Tracker { get; set; }
    /// <summary>
    /// 0: each disk's index is the point's delta over its parent. Above 0: the point was rebased by
    /// retention (its parent pruned) and each disk's index is a full map stored under this generation.
    /// </summary>
    public int IndexGeneration { get; set; }
    /// <summary>
    /// With <see cref="IndexGeneration"/> above 0: each disk's map under that generation is relative to the parent (only
    /// what differs from the parent's content, see <see cref="RelativeMapIndex"/>), not full. The parent is then an older
    /// point retention kept when it rebased this one; readers build its map through its own chain and overlay this one.
    /// </summary>
    public bool IndexRelativeToParent { get; set; }
    /// <summary>
    /// The cycle attempt that wrote this point (8 hex digits, random per attempt): part of the names of its packs, indexes
    /// and trackers, so an attempt whose lease lapsed cannot replace them. Null for points written before attempts were
    /// named; their objects keep the names without it.
    /// </summary>
    public string? AttemptId { get; set; }
    /// <summary>
    /// A rebased point's full map can name extents of pruned points: the attempt of each such sequence that had one (so
    /// their pack names can still be built once their manifests are gone). Null when there are none.
    /// </summary>
    public Dictionary<long, string>? PackAttempts { get; set; }

    /// <summary>The attempt id in the names of the objects of <paramref name="sequence"/>, as far as this manifest knows (null: names without one).</summary>
    public string? AttemptOf(long sequence) => sequence == Sequence ? AttemptId : PackAttempts?.GetValueOrDefault(sequence);

    [JsonIgnore] public string? VaultLocation { get; set; }
    [JsonIgnore] public long ChangedBytes => Disks.Sum(d => d.ChangedBytes);
    [JsonIgnore] public long StoredBytes => Disks.Sum(d => d.StoredBytes);

    public override string ToString() => $"{ItemName}@{Sequence}";
}

public sealed class RecoveryPointDisk
{
    public string DiskId { get; set; } = "";
    public string Name { get; set; } = "";
    public long SizeBytes { get; set; }
    public int BlockSize { get; set; }
    /// <summary>
    /// The digest of the disk's per-block keyed XxHash3 table at this point: verified on export, drill and test. With
    /// <see cref="DigestSegmentBlocks"/> (points of format 3) the XxHash128 of the XxHash128s of the table's segments of
    /// that many blocks; without it (older points) the XxHash128 of the whole table.
    /// </summary>
    public string ContentDigest { get; set; } = "";
    /// <summary>Blocks per segment of <see cref="ContentDigest"/> and of the tracker (null: the digest is over the whole table).</summary>
    public int? DigestSegmentBlocks { get; set; }
    public long ChangedBlocks { get; set; }
    public long ChangedBytes { get; set; }
    public long StoredBytes { get; set; }
    public int ExtentCount { get; set; }
}
