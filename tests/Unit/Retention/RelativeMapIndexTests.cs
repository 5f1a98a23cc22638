using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>
/// A rebased point's map relative to a kept ancestor: overlaid on the ancestor's map it gives back the point's map block
/// for block, it costs what differs (not the whole disk), and a map that is malformed is refused, not read.
/// </summary>
public class RelativeMapIndexTests
{
    private const int BlockSize = 4096;
    private const int Blocks = 2000;

    /// <summary>The map after each of <paramref name="links"/> random deltas (trims and a disk shrunk at link 5 among them).</summary>
    private static List<(ExtentMap Map, long DiskSize)> RandomChainStates(int seed, int links = 10)
    {
        var deltas = RandomDeltas.Of(seed, Blocks, links);
        static long DiskSize(int seq) => (long)Blocks * BlockSize - seq * 100 - (seq == 5 ? 300 * BlockSize : 0);
        var states = new List<(ExtentMap, long)>();
        for (int n = 1; n <= links; n++)
        {
            var map = new ExtentMap();
            for (int seq = 1; seq <= n; seq++) map.Overlay(seq, deltas[seq - 1], DiskSize(seq), BlockSize);
            states.Add((map, DiskSize(n)));
        }
        return states;
    }

    /// <summary>What each block reads: the stored extent and the block inside it, or nothing (zero).</summary>
    private static (SourcedExtent Extent, long Offset)?[] BlockSources(ExtentMap map)
    {
        var sources = new (SourcedExtent, long)?[Blocks];
        foreach (var s in map.Flatten())
            for (int b = 0; b < s.BlockCount; b++) sources[s.FirstBlock + b] = (s.Extent, s.Skip + b);
        return sources;
    }

    [Theory]
    [InlineData(1, 2, 10)]
    [InlineData(2, 4, 5)]
    [InlineData(3, 1, 9)]
    [InlineData(4, 6, 7)]
    public void ARelativeMap_OverlaidOnItsAncestorsMap_ReadsEveryBlockAsThePointsOwnMap(int seed, int ancestorLink, int pointLink)
    {
        var states = RandomChainStates(seed);
        var (ancestor, _) = states[ancestorLink - 1];
        var (point, pointSize) = states[pointLink - 1];

        var entries = RelativeMapDifference.Between(ancestor, point, BlocksOf(pointSize));
        var decoded = RelativeMapIndex.Decode(RelativeMapIndex.Encode(pointSize, entries), "k", pointLink, pointSize, BlockSize);
        var rebuilt = RandomChainStates(seed)[ancestorLink - 1].Map;
        rebuilt.OverlayRelative(decoded, pointSize, BlockSize, _ => null);

        Assert.Equal(BlockSources(point), BlockSources(rebuilt));
    }

    private static long BlocksOf(long diskSize) => (diskSize + BlockSize - 1) / BlockSize;

    [Fact]
    public void BlocksTrimmedSinceTheAncestor_AreAZeroRun()
    {
        var ancestor = new ExtentMap();
        ancestor.Overlay(1, [new ExtentRecord(0, 16, ExtentFlags.Compressed, 0, 0, 100, 7)], 64 * BlockSize, BlockSize);
        var point = new ExtentMap();
        point.Overlay(1, [new ExtentRecord(0, 16, ExtentFlags.Compressed, 0, 0, 100, 7)], 64 * BlockSize, BlockSize);
        point.Overlay(2, [new ExtentRecord(4, 4, ExtentFlags.Zero, -1, 0, 0, 0)], 64 * BlockSize, BlockSize);

        var entries = RelativeMapDifference.Between(ancestor, point, 64);

        Assert.Equal([FlattenedSegment.ZeroRun(4, 4)], entries);
        ancestor.OverlayRelative(RelativeMapIndex.Decode(RelativeMapIndex.Encode(64 * BlockSize, entries), "k", 2, 64 * BlockSize, BlockSize), 64 * BlockSize, BlockSize, _ => null);
        Assert.Equal(point.Flatten(), ancestor.Flatten());
    }

    [Fact]
    public void ARelativeMap_CostsWhatChanged_NotTheWholeDisk()
    {
        var states = RandomChainStates(5);
        var (ancestor, size) = states[^1];
        var point = RandomChainStates(5)[^1].Map;
        point.Overlay(11, [new ExtentRecord(100, 16, ExtentFlags.Compressed, 0, 0, 500, 1), new ExtentRecord(900, 3, ExtentFlags.Zero, -1, 0, 0, 0)], size, BlockSize);

        var entries = RelativeMapDifference.Between(ancestor, point, BlocksOf(size));

        Assert.True(entries.Count <= 2, $"{entries.Count} entries for one changed extent and one trim");
        Assert.Equal(new FlattenedSegment(point.Extents[^1], 100, 16, 0), entries[0]);
        Assert.True(RelativeMapIndex.Encode(size, entries).Length * 20 < FullMapIndex.Encode(point).Length);
    }

    [Fact]
    public void AnUnchangedPoint_HasAnEmptyRelativeMap()
    {
        var (map, size) = RandomChainStates(6)[^1];
        Assert.Empty(RelativeMapDifference.Between(map, RandomChainStates(6)[^1].Map, BlocksOf(size)));
        Assert.Empty(RelativeMapIndex.Decode(RelativeMapIndex.Encode(size, []), "k", 10, size, BlockSize));
    }

    private static readonly SourcedExtent Stored = new(3, new ExtentRecord(0, 16, ExtentFlags.Compressed, 0, 0, 100, 7), 64 * BlockSize);

    public static TheoryData<string, long, FlattenedSegment[]> MalformedMaps => new()
    {
        { "overlapping entries", 64 * BlockSize, [new(Stored, 0, 8, 0), new(Stored, 4, 4, 4)] },
        { "an entry past the disk", 64 * BlockSize, [new(Stored with { Record = Stored.Record with { FirstBlock = 60 } }, 60, 8, 0)] },
        { "an entry outside its extent", 64 * BlockSize, [new(Stored, 0, 8, 12)] },
        { "a sequence newer than the point", 64 * BlockSize, [new(Stored with { Sequence = 11 }, 0, 8, 0)] },
        { "a zero run that names a sequence", 64 * BlockSize, [FlattenedSegment.ZeroRun(0, 8) with { Extent = Stored with { Record = Stored.Record with { Flags = ExtentFlags.Zero } } }] },
        { "another disk size than the point's", 63 * BlockSize, [new(Stored, 0, 8, 0)] },
    };

    [Theory]
    [MemberData(nameof(MalformedMaps))]
    public void AMalformedRelativeMap_IsRefusedAsCorrupt_NamingItsKey(string what, long statedDiskSize, FlattenedSegment[] entries)
    {
        var ex = Assert.Throws<AsrException>(() => RelativeMapIndex.Decode(RelativeMapIndex.Encode(statedDiskSize, entries), "the key", 10, 64 * BlockSize, BlockSize));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal("the key", ex.Target);
        Assert.Contains("'the key'", ex.Message);
        Assert.False(string.IsNullOrEmpty(what));
    }

    /// <summary>
    /// The format decision: a relative map lives under a full map's name, so a module that knows only full maps keeps it
    /// (its sweep) and refuses to read it (bad header), rather than reading it as a whole disk's map.
    /// </summary>
    [Fact]
    public void AFullMapReader_RefusesARelativeMap_AndARelativeMapReader_AFullMap()
    {
        var (map, size) = RandomChainStates(7)[^1];
        var asFull = Assert.Throws<AsrException>(() => FullMapIndex.Decode(RelativeMapIndex.Encode(size, map.Flatten().ToList()), "k"));
        Assert.Contains("bad header", asFull.Message);
        var asRelative = Assert.Throws<AsrException>(() => RelativeMapIndex.Decode(FullMapIndex.Encode(map), "k", 10, size, BlockSize));
        Assert.Contains("bad header", asRelative.Message);
    }
}
