using System.Globalization;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// The block layer's write accounting for one block device, from /sys/dev/block/MAJOR:MINOR/: how many
/// writes and discards have completed, how many writes are in flight, the device's size and its disk
/// sequence number. Two readings that agree, with nothing in flight, show no write reached the device
/// in between.
/// </summary>
/// <remarks>
/// <para>
/// The counters count requests submitted to this device node's queue. They do not see writes that reach
/// the same storage another way: a loop device's backing file written directly, the whole disk written
/// at a partition's offset (a partition has its own counters), or the other paths of a multipath device.
/// Buffered writes through the device's page cache are counted only when written back, which is why
/// <see cref="SourceWriteFingerprint.Take"/> writes the device's dirty pages back first. Accounting can be
/// switched off per queue (queue/iostats = 0, the default for zram, for example); then the counters prove
/// nothing and <see cref="StatisticsEnabled"/> is false.
/// </para>
/// <para>
/// Discards count as well as writes: a discard (fstrim, BLKDISCARD) changes what reads return. Write-zeroes
/// requests are accounted as writes. The disk sequence number (diskseq, Linux 5.15+) changes when the
/// device is given new media, such as a loop device re-attached to another file, which no counter shows.
/// </para>
/// </remarks>
internal readonly record struct BlockDeviceWriteCounters(
    long WritesCompleted,
    long SectorsWritten,
    long WritesInFlight,
    long? DiscardsCompleted,
    long? SectorsDiscarded,
    long SizeSectors,
    string? DiskSequence,
    bool StatisticsEnabled)
{
    /// <summary>Reads the counters of device MAJOR:MINOR; null with the reason when /sys does not have them.</summary>
    public static BlockDeviceWriteCounters? Read(uint major, uint minor, out string? whyNot)
    {
        string directory = $"/sys/dev/block/{major}:{minor}";
        string? stat = ReadSysfs(Path.Combine(directory, "stat"));
        if (stat is null)
        {
            whyNot = $"the block layer has no statistics for device {major}:{minor} ({directory}/stat is missing)";
            return null;
        }
        // Fields (Documentation/block/stat.rst), 1-based: 5 writes completed, 7 sectors written, 9 I/Os in
        // flight, 12 discards completed, 14 sectors discarded (12 and later since Linux 4.18).
        long[] fields = stat.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => long.Parse(f, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        if (fields.Length < 11)
        {
            whyNot = $"{directory}/stat has {fields.Length} fields, fewer than the 11 every kernel since 2.6 writes";
            return null;
        }

        // A partition shares its disk's queue and sequence number; they live in the disk's directory.
        string disk = File.Exists(Path.Combine(directory, "partition")) ? Path.Combine(directory, "..") : directory;
        whyNot = null;
        return new BlockDeviceWriteCounters(
            WritesCompleted: fields[4],
            SectorsWritten: fields[6],
            WritesInFlight: WritesInFlightOf(directory) ?? fields[8],
            DiscardsCompleted: fields.Length >= 14 ? fields[11] : null,
            SectorsDiscarded: fields.Length >= 14 ? fields[13] : null,
            SizeSectors: long.Parse(ReadSysfs(Path.Combine(directory, "size")) ?? "0", NumberStyles.None, CultureInfo.InvariantCulture),
            DiskSequence: ReadSysfs(Path.Combine(disk, "diskseq")),
            StatisticsEnabled: ReadSysfs(Path.Combine(disk, "queue", "iostats")) != "0");
    }

    /// <summary>
    /// Writes only, from the "inflight" file ("reads writes"): stat's field 9 also counts reads, and the
    /// engine's own reads, or anyone else's, would then make an idle device look busy.
    /// </summary>
    private static long? WritesInFlightOf(string directory)
    {
        string[]? parts = ReadSysfs(Path.Combine(directory, "inflight"))?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts is { Length: 2 } && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long writes) ? writes : null;
    }

    private static string? ReadSysfs(string path)
    {
        try { return File.ReadAllText(path).Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }
}
