namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// What a disk's map at a point differs in from the map at an older point: the entries of its relative map (see
/// <see cref="RelativeMapIndex"/>). Overlaid on <c>basis</c> (and clipped to the point's disk size), they give back
/// <c>target</c> block for block.
/// </summary>
internal static class RelativeMapDifference
{
    /// <summary>
    /// Sorted, non-overlapping entries: the target's segments where the target reads another stored extent (or another
    /// part of it, or the same one under another pack attempt) than the basis, and zero runs where the target reads zero
    /// and the basis data. Neighbouring pieces of one source are merged, so an unchanged segment costs nothing and a
    /// changed one one entry. Nothing past <paramref name="targetBlocks"/> (the point's disk) is written: the overlay clips
    /// the basis there.
    /// </summary>
    public static List<FlattenedSegment> Between(ExtentMap basis, ExtentMap target, long targetBlocks)
    {
        var entries = new List<FlattenedSegment>();
        int t = 0, b = 0, lastRef = -1;
        long position = 0;
        while (true)
        {
            var (inTarget, targetUntil) = At(target, ref t, position);
            var (inBasis, basisUntil) = At(basis, ref b, position);
            long until = Math.Min(Math.Min(targetUntil, basisUntil), targetBlocks);
            if (position >= until) break;
            if (inTarget is { } ts)
            {
                if (inBasis is not { } bs || !SameSource(target, ts, basis, bs))
                    Add(entries, new FlattenedSegment(target.Extents[ts.ExtentRef], position, (int)(until - position), ts.Skip + (int)(position - ts.FirstBlock)), ts.ExtentRef, ref lastRef);
            }
            else if (inBasis is not null)
            {
                for (long from = position; from < until; from += int.MaxValue)
                    Add(entries, FlattenedSegment.ZeroRun(from, (int)Math.Min(int.MaxValue, until - from)), -1, ref lastRef);
            }
            position = until;
        }
        return entries;
    }

    /// <summary>The segment of <paramref name="map"/> covering <paramref name="position"/> and where it ends; or none and where the next starts.</summary>
    private static (MapSegment? Segment, long Until) At(ExtentMap map, ref int index, long position)
    {
        var segments = map.Segments;
        while (index < segments.Count && segments[index].EndBlock <= position) index++;
        if (index == segments.Count) return (null, long.MaxValue);
        return segments[index].FirstBlock <= position ? (segments[index], segments[index].EndBlock) : (null, segments[index].FirstBlock);
    }

    /// <summary>The same block of the same stored extent, read from the same pack.</summary>
    private static bool SameSource(ExtentMap target, MapSegment ts, ExtentMap basis, MapSegment bs) =>
        target.Extents[ts.ExtentRef] == basis.Extents[bs.ExtentRef]
        && target.AttemptOf(ts.ExtentRef) == basis.AttemptOf(bs.ExtentRef)
        && ts.Skip - ts.FirstBlock == bs.Skip - bs.FirstBlock;

    /// <summary>
    /// Appends <paramref name="entry"/> (read through the target's extent <paramref name="extentRef"/>, -1 for a zero run),
    /// or extends the last entry when it continues it: the next block of the same extent under the same pack attempt.
    /// </summary>
    private static void Add(List<FlattenedSegment> entries, FlattenedSegment entry, int extentRef, ref int lastRef)
    {
        bool continues = entries.Count > 0 && entries[^1] is var previous && previous.EndBlock == entry.FirstBlock && extentRef == lastRef
            && (long)previous.BlockCount + entry.BlockCount <= int.MaxValue && (previous.IsZeroRun || previous.Skip + previous.BlockCount == entry.Skip);
        lastRef = extentRef;
        if (continues)
        {
            var last = entries[^1];
            entries[^1] = last.IsZeroRun
                ? FlattenedSegment.ZeroRun(last.FirstBlock, last.BlockCount + entry.BlockCount)
                : last with { BlockCount = last.BlockCount + entry.BlockCount };
            return;
        }
        entries.Add(entry);
    }
}
