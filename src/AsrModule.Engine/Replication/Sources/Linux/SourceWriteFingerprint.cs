using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>What a <see cref="SourceWriteFingerprint"/> was taken of.</summary>
internal enum FingerprintedSourceKind
{
    /// <summary>Missing, unreadable, or neither a regular file nor a block device: nothing can show it stayed quiet.</summary>
    Unknown,
    RegularFile,
    BlockDevice,
}

/// <summary>
/// Evidence that a live source was not written while the engine read it: take one before reading and
/// one after, and <see cref="SameAs"/> says whether anything that records a write changed in between.
/// When a source cannot be cloned or snapshotted, this is what lets a read of it count as consistent.
/// </summary>
/// <remarks>
/// <para>
/// A regular file is compared by file system, inode, size, allocated blocks, modification time and
/// status-change time (nanoseconds). Every write(2) updates mtime and ctime; a write within one timer
/// tick of the previous one used to leave them unchanged (the "coarse" clock is ~1-4 ms). Since Linux
/// 6.13, XFS, ext4, btrfs and tmpfs use multigrain timestamps: once a process has read a file's ctime
/// (this statx does), the next change gets a fine-grained, strictly later time, so a write after the
/// first fingerprint does show. On older kernels or other file systems, two fingerprints can agree
/// across writes made in the same tick as the first fingerprint, and this limitation stands. The inode
/// and blocks catch a file replaced by rename or a hole filled without a size change.
/// </para>
/// <para>
/// Writes through a shared writable mapping update the times only when a clean page is first written
/// (page fault), not on later stores to a page already dirty. So, before reading the times, <see cref="Take"/>
/// writes the source's dirty pages back (sync_file_range; no device cache flush): that write-protects the
/// pages, and a later store faults and updates the times. It costs a write-back of whatever the source has
/// dirty. What remains: a page first stored to in the instant between that write-back and the statx is
/// writable again when the fingerprint is taken, so later stores to that page go unseen.
/// </para>
/// <para>
/// A block device is compared by the block layer's counters (<see cref="BlockDeviceWriteCounters"/>):
/// writes and discards completed, sectors written, writes in flight (must be 0 at both ends), size and disk
/// sequence. The device's dirty pages are written back first, since buffered writes are counted only then.
/// </para>
/// </remarks>
internal sealed class SourceWriteFingerprint
{
    private const int AtFdCwd = -100, AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1, StatxMtime = 0x40, StatxCtime = 0x80, StatxIno = 0x100, StatxSize = 0x200, StatxBlocks = 0x400;
    private const uint StatxWanted = StatxType | StatxMtime | StatxCtime | StatxIno | StatxSize | StatxBlocks;
    private const uint SyncFileRangeWaitBefore = 1, SyncFileRangeWrite = 2, SyncFileRangeWaitAfter = 4;

    [DllImport("libc", SetLastError = true, EntryPoint = "statx")]
    private static extern unsafe int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);

    [DllImport("libc", SetLastError = true, EntryPoint = "sync_file_range")]
    private static extern int sync_file_range(int fd, long offset, long length, uint flags);

    private SourceWriteFingerprint(string path, FingerprintedSourceKind kind) { Path = path; Kind = kind; }

    public string Path { get; }
    public FingerprintedSourceKind Kind { get; }

    /// <summary>For <see cref="FingerprintedSourceKind.Unknown"/>: why the source cannot be fingerprinted.</summary>
    public string? UnknownReason { get; private init; }

    /// <summary>Why the dirty pages could not be written back first (the fingerprint is then weaker), or null.</summary>
    public string? WriteBackFailure { get; private init; }

    /// <summary>Regular file: the device of its file system (major &lt;&lt; 32 | minor) and its inode.</summary>
    public ulong FileSystemDevice { get; private init; }
    public ulong Inode { get; private init; }
    public ulong Size { get; private init; }
    /// <summary>stx_blocks: 512-byte units allocated.</summary>
    public ulong Blocks { get; private init; }
    public FileTimestamp Modified { get; private init; }
    public FileTimestamp Changed { get; private init; }

    /// <summary>Block device: the device number it names.</summary>
    public uint DeviceMajor { get; private init; }
    public uint DeviceMinor { get; private init; }
    public BlockDeviceWriteCounters Counters { get; private init; }

    /// <summary>Fingerprints <paramref name="path"/> now (following symlinks).</summary>
    public static unsafe SourceWriteFingerprint Take(string path)
    {
        if (!OperatingSystem.IsLinux())
            return new SourceWriteFingerprint(path, FingerprintedSourceKind.Unknown) { UnknownReason = "write fingerprints need Linux" };

        byte* buffer = stackalloc byte[256];
        var info = new Span<byte>(buffer, 256);
        // The type is read before opening: opening a FIFO would block.
        if (statx(AtFdCwd, path, 0, StatxWanted, buffer) != 0)
            return Unknown(path, $"cannot stat it: {Errno.Describe(Marshal.GetLastPInvokeError())}");
        ushort type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(info[28..]) & 0xF000);
        if (type is not (0x8000 or 0x6000))
            return Unknown(path, $"it is {DescribeType(type)}, and only a regular file or a block device records its writes");

        string? writeBackFailure = null;
        using (var handle = PosixFile.TryOpen(path, PosixFile.ReadOnly | PosixFile.NonBlocking, 0, out int openErrno))
        {
            if (handle is null)
                writeBackFailure = $"cannot open it to write back its dirty pages: {Errno.Describe(openErrno)}";
            else
            {
                writeBackFailure = WriteBack(handle);
                // Read the times of what was opened and flushed, not of whatever the path names by now.
                if (StatOpen(handle, buffer) is { } errno)
                    return Unknown(path, $"cannot stat it once open: {Errno.Describe(errno)}");
                if ((BinaryPrimitives.ReadUInt16LittleEndian(info[28..]) & 0xF000) != type)
                    return Unknown(path, "it was replaced by another kind of file while being fingerprinted");
            }
        }

        uint returnedMask = BinaryPrimitives.ReadUInt32LittleEndian(info);
        if (type == 0x8000)
        {
            if ((returnedMask & StatxWanted) != StatxWanted)
                return Unknown(path, $"its file system does not report all of size, blocks, inode, mtime and ctime (statx mask 0x{returnedMask:X})");
            return new SourceWriteFingerprint(path, FingerprintedSourceKind.RegularFile)
            {
                WriteBackFailure = writeBackFailure,
                Inode = BinaryPrimitives.ReadUInt64LittleEndian(info[32..]),
                Size = BinaryPrimitives.ReadUInt64LittleEndian(info[40..]),
                Blocks = BinaryPrimitives.ReadUInt64LittleEndian(info[48..]),
                Changed = ReadTimestamp(info[96..]),
                Modified = ReadTimestamp(info[112..]),
                FileSystemDevice = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(info[136..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(info[140..]),
            };
        }

        uint major = BinaryPrimitives.ReadUInt32LittleEndian(info[128..]);
        uint minor = BinaryPrimitives.ReadUInt32LittleEndian(info[132..]);
        if (BlockDeviceWriteCounters.Read(major, minor, out string? whyNot) is not { } counters)
            return Unknown(path, whyNot!);
        if (!counters.StatisticsEnabled)
            return Unknown(path, $"I/O accounting is switched off for device {major}:{minor} (queue/iostats is 0), so its write counters do not move");
        return new SourceWriteFingerprint(path, FingerprintedSourceKind.BlockDevice)
        {
            WriteBackFailure = writeBackFailure,
            DeviceMajor = major,
            DeviceMinor = minor,
            Counters = counters,
        };
    }

    /// <summary>
    /// True when nothing that records a write differs between this (earlier) fingerprint and
    /// <paramref name="later"/>. Otherwise <paramref name="difference"/> says what changed, or why quiet
    /// cannot be shown (an unknown source, writes in flight).
    /// </summary>
    public bool SameAs(SourceWriteFingerprint later, out string? difference)
    {
        var differences = new List<string>();
        if (Kind == FingerprintedSourceKind.Unknown || later.Kind == FingerprintedSourceKind.Unknown)
        {
            var unknown = Kind == FingerprintedSourceKind.Unknown ? this : later;
            difference = $"cannot show '{unknown.Path}' was not written: {unknown.UnknownReason}";
            return false;
        }
        if (later.Path != Path) differences.Add($"the fingerprints are of different paths ('{Path}' and '{later.Path}')");
        if (later.Kind != Kind) differences.Add($"'{Path}' was a {Kind} and is now a {later.Kind}");
        else if (Kind == FingerprintedSourceKind.RegularFile) CompareFile(later, differences);
        else CompareDevice(later, differences);

        difference = differences.Count == 0 ? null : string.Join("; ", differences);
        return differences.Count == 0;
    }

    /// <summary>One line for logs and job notes.</summary>
    public string Describe()
    {
        string caveat = WriteBackFailure is null ? "" : $" (dirty pages not written back first: {WriteBackFailure})";
        return Kind switch
        {
            FingerprintedSourceKind.RegularFile =>
                $"file '{Path}' (inode {Inode} on {FileSystemDevice >> 32}:{FileSystemDevice & 0xFFFFFFFF}): size {Size}, {Blocks} blocks allocated, mtime {Modified}, ctime {Changed}{caveat}",
            FingerprintedSourceKind.BlockDevice =>
                $"block device '{Path}' ({DeviceMajor}:{DeviceMinor}): {Counters.WritesCompleted} writes completed, {Counters.SectorsWritten} sectors written, "
                + $"{Counters.WritesInFlight} writes in flight, {Counters.DiscardsCompleted?.ToString() ?? "unknown"} discards, "
                + $"{Counters.SizeSectors} sectors, diskseq {Counters.DiskSequence ?? "unknown"}{caveat}",
            _ => $"'{Path}': cannot be fingerprinted: {UnknownReason}",
        };
    }

    private void CompareFile(SourceWriteFingerprint later, List<string> differences)
    {
        if (later.FileSystemDevice != FileSystemDevice || later.Inode != Inode)
            differences.Add($"'{Path}' now names another file (inode {Inode} became {later.Inode})");
        if (later.Size != Size) differences.Add($"size changed from {Size} to {later.Size}");
        if (later.Blocks != Blocks) differences.Add($"allocated blocks changed from {Blocks} to {later.Blocks}");
        if (later.Modified != Modified) differences.Add($"mtime changed from {Modified} to {later.Modified}");
        if (later.Changed != Changed) differences.Add($"ctime changed from {Changed} to {later.Changed}");
    }

    private void CompareDevice(SourceWriteFingerprint later, List<string> differences)
    {
        string device = $"{Path} ({DeviceMajor}:{DeviceMinor})";
        if (later.DeviceMajor != DeviceMajor || later.DeviceMinor != DeviceMinor)
        {
            differences.Add($"'{Path}' now names device {later.DeviceMajor}:{later.DeviceMinor} instead of {DeviceMajor}:{DeviceMinor}");
            return;
        }
        BlockDeviceWriteCounters before = Counters, after = later.Counters;
        if (after.DiskSequence != before.DiskSequence)
            differences.Add($"{device} got new media (diskseq {before.DiskSequence} became {after.DiskSequence})");
        if (after.WritesCompleted != before.WritesCompleted)
            differences.Add($"{after.WritesCompleted - before.WritesCompleted} writes completed on {device} during the read");
        if (after.SectorsWritten != before.SectorsWritten)
            differences.Add($"{after.SectorsWritten - before.SectorsWritten} sectors written to {device} during the read");
        if (after.DiscardsCompleted != before.DiscardsCompleted)
            differences.Add($"{after.DiscardsCompleted - before.DiscardsCompleted} discards completed on {device} during the read");
        if (after.SectorsDiscarded != before.SectorsDiscarded)
            differences.Add($"{after.SectorsDiscarded - before.SectorsDiscarded} sectors discarded on {device} during the read");
        if (after.SizeSectors != before.SizeSectors)
            differences.Add($"{device} changed size from {before.SizeSectors} to {after.SizeSectors} sectors");
        if (before.WritesInFlight != 0)
            differences.Add($"{before.WritesInFlight} writes were in flight on {device} when the read began");
        if (after.WritesInFlight != 0)
            differences.Add($"{after.WritesInFlight} writes were in flight on {device} when the read ended");
    }

    private static string DescribeType(ushort type) => type switch
    {
        0x4000 => "a directory",
        0x2000 => "a character device",
        0x1000 => "a FIFO (named pipe)",
        0xC000 => "a socket",
        _ => $"a file of type 0{type >> 12:X}",
    };

    private static SourceWriteFingerprint Unknown(string path, string reason) =>
        new(path, FingerprintedSourceKind.Unknown) { UnknownReason = reason };

    private static FileTimestamp ReadTimestamp(ReadOnlySpan<byte> timestamp) =>
        new(BinaryPrimitives.ReadInt64LittleEndian(timestamp), BinaryPrimitives.ReadUInt32LittleEndian(timestamp[8..]));

    /// <summary>Writes back the dirty pages of the whole file or device and waits for them; null when done.</summary>
    private static string? WriteBack(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            int rc = sync_file_range((int)handle.DangerousGetHandle(), 0, 0, SyncFileRangeWaitBefore | SyncFileRangeWrite | SyncFileRangeWaitAfter);
            return rc == 0 ? null : $"sync_file_range failed: {Errno.Describe(Marshal.GetLastPInvokeError())}";
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>statx of the open descriptor (AT_EMPTY_PATH) into <paramref name="buffer"/>; the errno on failure.</summary>
    private static unsafe int? StatOpen(SafeFileHandle handle, byte* buffer)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, StatxWanted, buffer) == 0 ? null : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }
}
