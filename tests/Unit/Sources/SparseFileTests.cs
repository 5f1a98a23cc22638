using Xunit.Abstractions;
using AsrModule.Engine.Replication.Sources.Linux;
using AsrModule.Engine.Replication.Tracking;
using static AsrModule.Tests.Unit.Sources.SourceTestFiles;

namespace AsrModule.Tests.Unit.Sources;

public sealed class SparseFileTests(ITestOutputHelper output)
{
    private const long GiB = 1L << 30, Block = 4096;

    /// <summary>Three written ranges of a 1 GiB sparse file: aligned, unaligned, and ending at the end of the file.</summary>
    private static readonly ByteRange[] Written =
    [
        new(100L * MiB, 64 * KiB),
        new(500L * MiB + 1000, 10 * KiB),
        new(GiB - 8 * KiB, 8 * KiB),
    ];

    [Fact]
    public void DataRanges_InTheTempDirectory_AreTheWrittenOnes()
    {
        if (!OperatingSystem.IsLinux()) return;
        string directory = Directory.CreateTempSubdirectory("asr-sparse-").FullName;
        try { DataRangesAreTheWrittenOnes(Path.Combine(directory, "sparse.img")); }
        finally { Directory.Delete(directory, recursive: true); }
    }

    [RequiresLoopMount("mkfs.xfs")]
    public void DataRanges_OnXfs_AreTheWrittenOnes()
    {
        using var fileSystem = LoopFileSystem.Create("xfs");
        DataRangesAreTheWrittenOnes(fileSystem.PathOf("sparse.img"));
    }

    [Fact]
    public void DataRanges_OfAnEmptyOrAllHoleFile_AreNone()
    {
        if (!OperatingSystem.IsLinux()) return;
        string path = Path.GetTempFileName();
        try
        {
            using (var handle = File.OpenHandle(path)) Assert.Empty(SparseFile.DataRanges(handle, 0));
            using (var file = File.OpenWrite(path)) file.SetLength(64 * MiB);
            using (var handle = File.OpenHandle(path)) Assert.Empty(SparseFile.DataRanges(handle, 64 * MiB));
        }
        finally { File.Delete(path); }
    }

    private void DataRangesAreTheWrittenOnes(string path)
    {
        using (var file = File.Create(path)) file.SetLength(GiB);
        for (int i = 0; i < Written.Length; i++) WriteRandomAt(path, Written[i].Offset, (int)Written[i].Length, seed: i);

        IReadOnlyList<ByteRange> ranges;
        using (var handle = File.OpenHandle(path)) ranges = SparseFile.DataRanges(handle, GiB);

        output.WriteLine($"{FileClone.FileSystemName(path)}: {Format(ranges)}");
        // Exactly the written ranges, widened at most to whole file system blocks.
        Assert.Equal(Written.Length, ranges.Count);
        for (int i = 0; i < Written.Length; i++)
        {
            long alignedStart = Written[i].Offset / Block * Block;
            long alignedEnd = (Written[i].End + Block - 1) / Block * Block;
            Assert.InRange(ranges[i].Offset, alignedStart, Written[i].Offset);
            Assert.InRange(ranges[i].End, Written[i].End, alignedEnd);
        }
    }
}
