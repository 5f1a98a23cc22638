using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Finds which bytes of a file may have changed between two reflink clones of it (the previous point
/// and the current one) from their FIEMAP extent maps alone, without reading or hashing any data.
/// </summary>
/// <remarks>
/// <para>
/// Why it is sound: while the previous clone exists, every physical block it maps is referenced by it.
/// A file system that shares blocks between files (XFS reflink, btrfs) never overwrites a block in
/// place while another file still references it: a write to a shared block goes to a newly allocated
/// block (copy-on-write), otherwise the write would corrupt the other file. The previous clone is never
/// written. So a physical byte that the previous clone maps still holds the previous clone's data, and
/// if the current clone maps the same file offset to the same physical byte, the two clones hold the same
/// byte there. For plain extents the mapping is linear, so "same physical byte at offset x" for every x
/// both extents cover is "same physical-minus-logical delta". Two holes both read as zeros.
/// </para>
/// <para>
/// Everything else is reported as changed: hole against data, a different physical address, data
/// against preallocated (unwritten) space, and any btrfs compressed (encoded) extent, whose physical
/// address names the whole compressed extent and so does not identify the byte. Over-reporting only costs
/// a re-read (the cycle compares block hashes); missing a change would lose a write, so when an extent
/// map cannot be trusted at all (no physical address yet, data inline in metadata or packed with other
/// data, or a list that is not sorted and disjoint) the answer is null with the reason, and the caller
/// reads everything.
/// </para>
/// <para>
/// What the caller must guarantee: the previous clone still exists, unmodified, when the current clone's
/// map is read, and its map is read while it exists (best: read both maps right after making the current
/// clone). A map remembered from an earlier cycle can be stale: btrfs balance relocates extents (both
/// clones' references move together, but the old address is freed and may later hold new data at the
/// same offset). Both maps come from the same file system (clones of one source). Bytes past the previous
/// clone's end that are holes in the current clone are reported unchanged: they read as zeros, as a grown
/// disk does; the caller handles a size change itself.
/// </para>
/// </remarks>
internal static class ExtentMapDiff
{
    /// <summary>Flags under which the physical address does not identify the data's bytes.</summary>
    private const FileExtentFlags Untrusted = FileExtentFlags.Unknown | FileExtentFlags.DelayedAllocation
        | FileExtentFlags.DataInline | FileExtentFlags.NotAligned | FileExtentFlags.DataTail;

    /// <summary>
    /// The ranges of [0, <paramref name="size"/>) where the clone mapped by <paramref name="current"/> may differ
    /// from the one mapped by <paramref name="previous"/>: sorted, disjoint, adjacent ones merged. Null, with
    /// <paramref name="untrustedReason"/>, when either map cannot be trusted to show every change.
    /// </summary>
    public static IReadOnlyList<ByteRange>? ChangedRanges(
        IReadOnlyList<FileExtent> previous, IReadOnlyList<FileExtent> current, long size, out string? untrustedReason)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        untrustedReason = WhyUntrusted(previous, "previous") ?? WhyUntrusted(current, "current");
        if (untrustedReason is not null) return null;

        var changed = new List<ByteRange>();
        int p = 0, c = 0;
        long position = 0;
        while (position < size)
        {
            while (p < previous.Count && previous[p].LogicalEnd <= position) p++;
            while (c < current.Count && current[c].LogicalEnd <= position) c++;
            FileExtent? before = p < previous.Count && previous[p].Logical <= position ? previous[p] : null;
            FileExtent? after = c < current.Count && current[c].Logical <= position ? current[c] : null;

            // The span up to the next boundary of either map is uniform on both sides.
            long end = Math.Min(size, Math.Min(NextBoundary(previous, p, before), NextBoundary(current, c, after)));
            bool same = (before, after) switch
            {
                (null, null) => true,
                ({ } b, { } a) => SameBytes(b, a),
                _ => false,
            };
            if (!same) AddMerged(changed, position, end);
            position = end;
        }
        return changed;
    }

    /// <summary>Where the current span of one map ends: the extent's end, or the next extent's start after a hole.</summary>
    private static long NextBoundary(IReadOnlyList<FileExtent> extents, int index, FileExtent? covering) =>
        covering?.LogicalEnd ?? (index < extents.Count ? extents[index].Logical : long.MaxValue);

    private static bool SameBytes(FileExtent before, FileExtent after) =>
        before.Delta == after.Delta
        && (before.Flags & FileExtentFlags.Unwritten) == (after.Flags & FileExtentFlags.Unwritten)
        && ((before.Flags | after.Flags) & FileExtentFlags.Encoded) == 0;

    private static void AddMerged(List<ByteRange> ranges, long start, long end)
    {
        if (ranges.Count > 0 && ranges[^1].End == start)
            ranges[^1] = ranges[^1] with { Length = end - ranges[^1].Offset };
        else
            ranges.Add(new ByteRange(start, end - start));
    }

    private static string? WhyUntrusted(IReadOnlyList<FileExtent> extents, string which)
    {
        long previousEnd = 0;
        for (int i = 0; i < extents.Count; i++)
        {
            var extent = extents[i];
            if ((extent.Flags & Untrusted) != 0)
                return $"the {which} clone's extent at offset {extent.Logical} is flagged {extent.Flags & Untrusted}, so its physical address does not identify its data";
            if (extent.Length <= 0 || extent.Logical < 0 || extent.Physical < 0)
                return $"the {which} clone's extent map has an invalid extent (offset {extent.Logical}, length {extent.Length}, physical {extent.Physical})";
            if (extent.Logical < previousEnd)
                return $"the {which} clone's extent map is not sorted and disjoint (an extent at offset {extent.Logical} starts before the previous one ends at {previousEnd})";
            previousEnd = extent.LogicalEnd;
        }
        return null;
    }
}
