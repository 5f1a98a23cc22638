using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Sources.Linux;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Tracking.Reflink;

/// <summary>
/// Point-in-time capture and change tracking of image files on a file system that clones (XFS with reflink=1,
/// btrfs). At the capture each disk's file is cloned (FICLONE): one atomic, near-instant step that shares every
/// extent, so a freeze script holds the application for the clone only, and the cycle then reads the clone while the
/// machine writes on. The previous point's clone is kept; the next cycle compares the two clones' extent maps
/// (FIEMAP): the file system copies a shared extent before writing it, so a range both clones map to the same
/// physical place holds the same bytes, and only the other ranges are read. When the maps cannot be trusted (the
/// previous clone is gone or is not the one of the latest point, delayed allocation, inline data) the cycle reads
/// the whole clone and compares block hashes, as a scan does.
/// </summary>
/// <remarks>
/// The disks of a machine are cloned one after the other (microseconds apart). For a machine of several disks the
/// sources' write fingerprints are taken around all the clones; when one changed, the clones are made again (up to
/// <see cref="MaxCloneRounds"/> times) and, if writes kept coming, the point says Inconsistent with what wrote.
/// A clone holds the blocks the machine overwrites since: the space it costs is what changed between two points.
/// </remarks>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
internal sealed class ReflinkCloneTracker : IChangeTracker
{
    private const int MaxCloneRounds = 3;
    private readonly ILogger _logger;
    private readonly List<(ProtectedDisk Disk, ReflinkCloneDirectory Directory, string Clone)> _made = new();
    private readonly List<IDiskCapture> _open = new();
    private string? _lastAttemptId;
    private string _attemptId = "00000000";
    private string? _inconsistency;

    private ReflinkCloneTracker(ILogger logger) => _logger = logger;

    public string Kind => "ReflinkClone";
    public bool CapturesPointInTime => true;
    public string CaptureEvidence => _inconsistency is null
        ? "point-in-time reflink clone (FICLONE) of every disk's image file"
        : "reflink clones of the disks, but the disks were written between their clones: " + _inconsistency;
    public string? CaptureInconsistency => _inconsistency;

    /// <summary>
    /// A tracker for <paramref name="item"/> when every disk is a regular file (a raw image, or VMDK, VHDX, qcow2, VDI read
    /// through qemu-nbd from its clone) on a file system that clones (probed by
    /// cloning a small file in the clone directory); otherwise null, with <paramref name="whyNot"/> saying why.
    /// </summary>
    public static ReflinkCloneTracker? TryOpen(AsrProtectedItem item, ILogger logger, out string? whyNot)
    {
        foreach (var disk in item.Disks)
        {
            if (disk.IsBlockDevice || DiskFileType.Of(disk.SourcePath) is not { Kind: DiskFileKind.RegularFile })
            {
                whyNot = $"disk '{disk.Name}' is not a regular file";
                return null;
            }
            if (ProbeProblem(item, disk) is { } problem)
            {
                whyNot = problem;
                return null;
            }
        }
        whyNot = null;
        return new ReflinkCloneTracker(logger);
    }

    /// <summary>Null when the disk's file system clones files into its clone directory.</summary>
    internal static string? ProbeProblem(AsrProtectedItem item, ProtectedDisk disk)
    {
        if (Sources.ImageFiles.NotSelfContained(disk) is { } reason) return reason + " (a clone of it alone is not the disk)";
        string? fs = FileClone.FileSystemName(disk.SourcePath);
        if (fs is not ("xfs" or "btrfs"))
            return $"disk '{disk.Name}' is on {fs ?? "an unknown file system"}, which does not clone files (XFS with reflink=1 and btrfs do)";
        var directory = ReflinkCloneDirectory.Of(item, disk);
        if (directory.Ensure() is { } problem) return problem;
        string probe = System.IO.Path.Combine(directory.Path, $"probe.{Guid.NewGuid():N}");
        string probeClone = probe + ".copy";
        try
        {
            File.WriteAllBytes(probe, new byte[4096]);
            return FileClone.TryClone(probe, probeClone, out string? whyNot) ? null : $"disk '{disk.Name}': {whyNot}";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"disk '{disk.Name}': the clone directory '{directory.Path}' is not writable: {ex.Message}";
        }
        finally
        {
            ReflinkCloneDirectory.TryDelete(probe);
            ReflinkCloneDirectory.TryDelete(probeClone);
        }
    }

    public void UseAttempts(string? lastAttemptId, string attemptId)
    {
        _lastAttemptId = lastAttemptId;
        _attemptId = attemptId;
    }

    // The clone is the instant: there is nothing to pause.
    public Task PauseSourceAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task ResumeSourceAsync() => Task.CompletedTask;

    public async Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken)
    {
        try
        {
            CloneAll(item, nextSequence, cancellationToken);
            foreach (var (disk, directory, clone) in _made)
            {
                // A raw image's extents are the guest's blocks; an image of another format (VMDK, qcow2, ...) maps them
                // through its own metadata, so its clone is read whole through qemu-nbd (holes and unallocated clusters skipped).
                bool raw = disk.SourceFormat is null or "raw";
                var (changed, lost) = raw ? ChangesSincePrevious(item, disk, directory, clone, lastSequence) : (null, null);
                var source = await Sources.SourceDisks.OpenAsync(clone, disk.SourceFormat, cancellationToken).ConfigureAwait(false);
                _open.Add(new FileDiskCapture(disk.DiskId, source, changed, lost, await source.GetDataRangesAsync(cancellationToken).ConfigureAwait(false)));
            }
            return _open.ToList();
        }
        catch
        {
            Close();
            DeleteMade();
            throw;
        }
    }

    /// <summary>Clones every disk; for several disks, again while a disk was written between the first clone and the last.</summary>
    private void CloneAll(AsrProtectedItem item, long nextSequence, CancellationToken ct)
    {
        for (int round = 1; ; round++)
        {
            ct.ThrowIfCancellationRequested();
            var before = item.Disks.Count > 1 ? item.Disks.Select(d => SourceWriteFingerprint.Take(d.SourcePath)).ToList() : null;
            foreach (var disk in item.Disks)
            {
                EnsureSameDisk(item, disk);
                var directory = ReflinkCloneDirectory.Of(item, disk);
                if (directory.Ensure() is { } problem)
                    throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.WriteError, $"Disk '{disk.Name}' of '{item.Name}' cannot be cloned: {problem}.", disk.Name);
                string clone = directory.CloneOf(disk.DiskId, nextSequence, _attemptId);
                ReflinkCloneDirectory.TryDelete(clone);
                if (!FileClone.TryClone(disk.SourcePath, clone, out string? whyNot))
                    throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                        $"Disk '{disk.Name}' ({disk.SourcePath}) of '{item.Name}' could not be cloned for point {nextSequence}: {whyNot}. The next cycle tries again; nothing was published.", disk.Name);
                _made.Add((disk, directory, clone));
            }
            if (before is null) return;
            var changes = item.Disks.Select((d, i) => before[i].SameAs(SourceWriteFingerprint.Take(d.SourcePath), out string? diff) ? null : $"disk '{d.Name}': {diff}")
                .Where(c => c is not null).ToList();
            if (changes.Count == 0) { _inconsistency = null; return; }
            _inconsistency = string.Join("; ", changes);
            if (round == MaxCloneRounds)
            {
                _logger.LogWarning("Item {Item}: disks written between their clones in {Rounds} rounds: {Changes}", item.Name, round, _inconsistency);
                return;
            }
            DeleteMade();
        }
    }

    /// <summary>The clone is made of the file the disk was protected as, never of whatever the path names now.</summary>
    private static void EnsureSameDisk(AsrProtectedItem item, ProtectedDisk disk)
    {
        if (disk.SourceIdentity is { } recorded && DiskFileType.Of(disk.SourcePath)?.Identity is { } now && now != recorded)
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.InvalidOperation,
                $"Disk '{disk.Name}' of '{item.Name}': '{disk.SourcePath}' is now {now}, not the {recorded} it was protected as; it is not cloned. " +
                "If the disk was replaced on purpose, protect the machine again (Disable-AsrReplication, Enable-AsrReplication).", disk.Name);
    }

    /// <summary>The ranges that differ from the previous point's clone, or null and why the whole clone is read.</summary>
    private (IReadOnlyList<ByteRange>? Changed, string? Lost) ChangesSincePrevious(AsrProtectedItem item, ProtectedDisk disk, ReflinkCloneDirectory directory, string clone, long lastSequence)
    {
        if (lastSequence == 0) return (null, null);
        if (_lastAttemptId is null) return (null, $"point {lastSequence} was not captured by a clone");
        string previous = directory.CloneOf(disk.DiskId, lastSequence, _lastAttemptId);
        if (!File.Exists(previous)) return (null, $"the clone of point {lastSequence} ('{previous}') is gone");
        try
        {
            using var a = File.OpenHandle(previous, FileMode.Open, FileAccess.Read);
            using var b = File.OpenHandle(clone, FileMode.Open, FileAccess.Read);
            long size = RandomAccess.GetLength(b);
            if (RandomAccess.GetLength(a) != disk.SizeBytes) return (null, $"the clone of point {lastSequence} is not the size of the disk");
            var changed = ExtentMapDiff.ChangedRanges(FileExtentMap.Read(a), FileExtentMap.Read(b), size, out string? untrusted);
            if (changed is null) return (null, $"the extent maps cannot be compared ({untrusted})");
            // The clone of a grown disk maps ranges the previous one did not have: they are in the diff already.
            return (changed, null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(ex, "Item {Item}: extent maps of disk {Disk} not read", item.Name, disk.Name);
            return (null, $"the extent maps could not be read ({ex.Message})");
        }
    }

    /// <summary>The point is published: only its clones are kept, for the next cycle's comparison.</summary>
    public Task CommitAsync(CancellationToken cancellationToken)
    {
        Close();
        foreach (var (disk, directory, clone) in _made) directory.DeleteClonesOf(disk.DiskId, keep: clone);
        _made.Clear();
        return Task.CompletedTask;
    }

    /// <summary>Not published: the new clones go, the previous point's stay (its comparison base).</summary>
    public Task AbortAsync()
    {
        Close();
        DeleteMade();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }

    private void DeleteMade()
    {
        foreach (var (_, _, clone) in _made) ReflinkCloneDirectory.TryDelete(clone);
        _made.Clear();
    }

    private void Close()
    {
        foreach (var c in _open) c.Dispose();
        _open.Clear();
    }
}
