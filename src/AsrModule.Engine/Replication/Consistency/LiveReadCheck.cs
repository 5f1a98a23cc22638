using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Sources.Linux;

namespace AsrModule.Engine.Replication.Consistency;

/// <summary>
/// The evidence a live read needs before its point may say CrashConsistent: each disk's write fingerprint (a file's
/// size, mtime, ctime, inode and allocated blocks; a block device's completed writes, sectors written and I/Os in
/// flight from /sys) taken at the capture instant and again after the last byte was read. Equal fingerprints show that
/// nothing wrote while the disks were read, so every block is from the capture instant; any difference makes the point
/// Inconsistent. A freeze does not replace the check: a freeze that did not stop the writes shows here too.
/// </summary>
internal sealed class LiveReadCheck
{
    private readonly List<(ProtectedDisk Disk, SourceWriteFingerprint Before)> _before;

    private LiveReadCheck(List<(ProtectedDisk, SourceWriteFingerprint)> before) => _before = before;

    /// <summary>Fingerprints every disk of <paramref name="item"/> now (call just before the capture).</summary>
    public static LiveReadCheck Begin(AsrProtectedItem item) =>
        new(item.Disks.Select(d => (d, SourceWriteFingerprint.Take(d.SourcePath))).ToList());

    /// <summary>
    /// Fingerprints the disks again (call after the read): null when no disk changed, with <paramref name="evidence"/>
    /// saying what shows it; otherwise what wrote, disk by disk.
    /// </summary>
    public string? Finish(out string evidence)
    {
        var changes = new List<string>();
        var quiet = new List<string>();
        foreach (var (disk, before) in _before)
        {
            // Guest data in other files (a backing or data file, VMDK extents) is not watched: quiet cannot be shown.
            if (Sources.ImageFiles.NotSelfContained(disk) is { } unwatched)
            {
                changes.Add($"disk '{disk.Name}' ({disk.SourcePath}): {unwatched}, whose other files are not watched, so no quiet read can be shown");
                continue;
            }
            var after = SourceWriteFingerprint.Take(disk.SourcePath);
            if (before.SameAs(after, out string? difference)) quiet.Add($"disk '{disk.Name}': {after.Describe()}");
            else changes.Add($"disk '{disk.Name}' ({disk.SourcePath}): {difference}");
        }
        if (changes.Count == 0)
        {
            evidence = "live read; nothing wrote during it (" + string.Join("; ", quiet) + ")";
            return null;
        }
        evidence = "live read during writes: " + string.Join("; ", changes);
        return string.Join("; ", changes);
    }
}
