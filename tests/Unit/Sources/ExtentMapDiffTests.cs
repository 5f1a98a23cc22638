using AsrModule.Engine.Replication.Sources.Linux;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>The extent-map comparison on hand-made maps: every rule, without a file system.</summary>
public sealed class ExtentMapDiffTests
{
    private const long M = 1 << 20, K = 1 << 10;

    private static FileExtent Data(long logical, long physical, long length, FileExtentFlags flags = FileExtentFlags.None) =>
        new(logical, physical, length, flags);

    private static IReadOnlyList<ByteRange> Diff(FileExtent[] previous, FileExtent[] current, long size)
    {
        var changed = ExtentMapDiff.ChangedRanges(previous, current, size, out string? reason);
        Assert.Null(reason);
        Assert.NotNull(changed);
        return changed;
    }

    [Fact]
    public void SameMaps_NothingChanged()
    {
        FileExtent[] map = [Data(0, 100 * M, 4 * M), Data(8 * M, 300 * M, 2 * M, FileExtentFlags.Last)];
        Assert.Empty(Diff(map, map, 10 * M));
    }

    [Fact]
    public void SameBytesSplitDifferently_NothingChanged()
    {
        // One extent in the previous map, the same physical run reported in pieces in the current one.
        FileExtent[] previous = [Data(0, 100 * M, 4 * M)];
        FileExtent[] current = [Data(0, 100 * M, M), Data(M, 101 * M, M), Data(2 * M, 102 * M, 2 * M)];
        Assert.Empty(Diff(previous, current, 4 * M));
    }

    [Fact]
    public void RewrittenBlock_OnlyThatBlockChanged()
    {
        FileExtent[] previous = [Data(0, 100 * M, 4 * M)];
        FileExtent[] current = [Data(0, 100 * M, M), Data(M, 500 * M, 4 * K), Data(M + 4 * K, 100 * M + M + 4 * K, 3 * M - 4 * K)];
        Assert.Equal([new ByteRange(M, 4 * K)], Diff(previous, current, 4 * M));
    }

    [Fact]
    public void SamePhysicalAtAnotherOffset_IsChanged()
    {
        // Same physical start, but the current clone maps it one block later: different bytes at every offset.
        FileExtent[] previous = [Data(0, 100 * M, M)];
        FileExtent[] current = [Data(4 * K, 100 * M, M - 4 * K)];
        Assert.Equal([new ByteRange(0, M)], Diff(previous, current, M));
    }

    [Fact]
    public void HoleAgainstHole_IsUnchanged_HoleAgainstData_IsChanged()
    {
        FileExtent[] previous = [Data(0, 100 * M, M), Data(3 * M, 103 * M, M)];
        FileExtent[] current = [Data(0, 100 * M, M), Data(2 * M, 600 * M, 4 * K), Data(3 * M, 103 * M, 4 * K)];
        // [1M, 2M) hole/hole; [2M, 2M+4K) new data; [3M+4K, 4M) data became a hole.
        Assert.Equal([new ByteRange(2 * M, 4 * K), new ByteRange(3 * M + 4 * K, M - 4 * K)], Diff(previous, current, 4 * M));
    }

    [Fact]
    public void UnwrittenFlagDiffers_IsChanged()
    {
        // Preallocated space written in place keeps its address but stops reading as zeros.
        FileExtent[] previous = [Data(0, 100 * M, M, FileExtentFlags.Unwritten)];
        FileExtent[] current = [Data(0, 100 * M, M)];
        Assert.Equal([new ByteRange(0, M)], Diff(previous, current, M));
        Assert.Empty(Diff(previous, previous, M));
    }

    [Fact]
    public void EncodedExtent_IsAlwaysChanged()
    {
        // A compressed extent's address names the whole compressed run, not the byte: never proof of sameness.
        FileExtent[] map = [Data(0, 100 * M, 128 * K, FileExtentFlags.Encoded), Data(128 * K, 200 * M, 128 * K)];
        Assert.Equal([new ByteRange(0, 128 * K)], Diff(map, map, 256 * K));
    }

    [Fact]
    public void AdjacentChanges_AreMerged_AndClippedToSize()
    {
        FileExtent[] previous = [Data(0, 100 * M, 4 * M)];
        FileExtent[] current = [Data(0, 200 * M, M), Data(M, 300 * M, M), Data(2 * M, 102 * M, 2 * M)];
        Assert.Equal([new ByteRange(0, 2 * M)], Diff(previous, current, 4 * M));
        Assert.Equal([new ByteRange(0, M + 512 * K)], Diff(previous, current, M + 512 * K));
    }

    [Fact]
    public void GrownFile_NewDataIsChanged()
    {
        FileExtent[] previous = [Data(0, 100 * M, M)];
        FileExtent[] current = [Data(0, 100 * M, M), Data(M, 700 * M, 256 * K)];
        Assert.Equal([new ByteRange(M, 256 * K)], Diff(previous, current, M + 256 * K));
    }

    [Fact]
    public void EmptyMaps_NothingChanged()
    {
        Assert.Empty(Diff([], [], 10 * M));
        Assert.Empty(Diff([], [], 0));
    }

    [Theory]
    [InlineData((uint)FileExtentFlags.Unknown)]
    [InlineData((uint)(FileExtentFlags.DelayedAllocation | FileExtentFlags.Unknown))]
    [InlineData((uint)FileExtentFlags.DataInline)]
    [InlineData((uint)FileExtentFlags.NotAligned)]
    [InlineData((uint)FileExtentFlags.DataTail)]
    public void ExtentWithoutATrustworthyAddress_MakesTheWholeAnswerUntrusted(uint rawFlags)
    {
        var flags = (FileExtentFlags)rawFlags;
        FileExtent[] good = [Data(0, 100 * M, M)];
        FileExtent[] bad = [Data(0, 100 * M, 512 * K), Data(512 * K, 0, 512 * K, flags)];

        Assert.Null(ExtentMapDiff.ChangedRanges(good, bad, M, out string? reason));
        Assert.Contains("current", reason);
        Assert.Null(ExtentMapDiff.ChangedRanges(bad, good, M, out reason));
        Assert.Contains("previous", reason);
    }

    [Fact]
    public void UnsortedOrOverlappingMap_IsUntrusted()
    {
        FileExtent[] good = [Data(0, 100 * M, 2 * M)];
        FileExtent[] unsorted = [Data(M, 101 * M, M), Data(0, 100 * M, M)];
        FileExtent[] overlapping = [Data(0, 100 * M, M + 4 * K), Data(M, 101 * M, M)];

        Assert.Null(ExtentMapDiff.ChangedRanges(good, unsorted, 2 * M, out string? reason));
        Assert.Contains("not sorted", reason);
        Assert.Null(ExtentMapDiff.ChangedRanges(overlapping, good, 2 * M, out reason));
        Assert.Contains("not sorted", reason);
    }
}
