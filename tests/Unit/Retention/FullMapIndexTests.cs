using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.Retention;

public class FullMapIndexTests
{
    private static ExtentMap RandomChain(int seed, int blocks = 2000, int links = 10)
    {
        var map = new ExtentMap();
        var deltas = RandomDeltas.Of(seed, blocks, links);
        for (int seq = 1; seq <= links; seq++)
            map.Overlay(seq, deltas[seq - 1], (long)blocks * 4096 - seq * 100, 4096);
        return map;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void AFlattenedChain_LoadsBackAsTheSameMap(int seed)
    {
        var chain = RandomChain(seed);
        var loaded = new ExtentMap();
        loaded.LoadFlattened(FullMapIndex.Decode(FullMapIndex.Encode(chain), "test"));

        Assert.Equal(chain.Flatten(), loaded.Flatten());
        // Segments cut from one stored extent share one extent again: exports decode it once.
        Assert.Equal(chain.Segments.Select(s => s.ExtentRef).Distinct().Count(), loaded.Extents.Count);
    }

    [Fact]
    public void ALoadedFullMap_TakesLaterDeltasLikeTheChainItReplaces()
    {
        var chain = RandomChain(4);
        var rebased = new ExtentMap();
        rebased.LoadFlattened(FullMapIndex.Decode(FullMapIndex.Encode(chain), "test"));
        var next = new List<ExtentRecord> { new(5, 10, ExtentFlags.None, 0, 1, 1, 0), new(100, 3, ExtentFlags.Zero, 0, 0, 0, 0) };
        chain.Overlay(11, next, 1000 * 4096, 4096);
        rebased.Overlay(11, next, 1000 * 4096, 4096);
        Assert.Equal(chain.Flatten(), rebased.Flatten());
    }

    [Fact]
    public void OverlappingRecords_AreRejectedAsCorrupt()
    {
        var map = new ExtentMap();
        map.Overlay(1, [new ExtentRecord(0, 8, ExtentFlags.None, 0, 0, 10, 0), new ExtentRecord(8, 8, ExtentFlags.None, 0, 10, 10, 0)], 64 * 4096, 4096);
        byte[] encoded = FullMapIndex.Encode(map);
        // Move the second segment's first block back into the first segment.
        int firstBlockOfSecond = 8 + FullMapIndex.RecordSize + 16 + ExtentRecord.EncodedSize;
        encoded[firstBlockOfSecond] = 4;
        var ex = Assert.Throws<AsrException>(() => FullMapIndex.Decode(encoded, "k"));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
    }
}
