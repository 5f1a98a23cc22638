using AsrModule.Engine.Replication.Sources.Linux;
using static AsrModule.Tests.Unit.Sources.SourceTestFiles;

namespace AsrModule.Tests.Unit.Sources;

public sealed class FileExtentMapTests
{
    /// <summary>More extents than one FIEMAP call returns (512), so the map is read in pages.</summary>
    private const int ExtentCount = 1300;

    [RequiresLoopMount("mkfs.xfs")]
    public void ManyExtents_OnXfs_AreAllRead() => ManyExtentsAreAllRead("xfs");

    [RequiresLoopMount("mkfs.btrfs")]
    public void ManyExtents_OnBtrfs_AreAllRead() => ManyExtentsAreAllRead("btrfs");

    private static void ManyExtentsAreAllRead(string type)
    {
        using var fileSystem = LoopFileSystem.Create(type);
        string path = fileSystem.PathOf("fragmented.img");
        // One 4 KiB block every 64 KiB: each is its own extent, the holes between keep them apart. The file
        // gets its size first: XFS turns the speculative preallocation of appending writes into unwritten
        // extents in the gaps, which would be extents too.
        var block = new byte[4 * KiB];
        new Random(1).NextBytes(block);
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.SetLength(handle, ExtentCount * 64L * KiB);
            for (int i = 0; i < ExtentCount; i++) RandomAccess.Write(handle, block, i * 64L * KiB);
            RandomAccess.FlushToDisk(handle);
        }

        IReadOnlyList<FileExtent> map;
        using (var handle = File.OpenHandle(path)) map = FileExtentMap.Read(handle);

        Assert.Equal(Enumerable.Range(0, ExtentCount).Select(i => i * 64L * KiB), map.Select(e => e.Logical));
        Assert.All(map, e => Assert.Equal(4 * KiB, e.Length));
        Assert.All(map, e => Assert.True(e.Physical > 0));
        Assert.Equal(ExtentCount, map.Select(e => e.Physical).Distinct().Count());
        Assert.True((map[^1].Flags & FileExtentFlags.Last) != 0);
        Assert.Equal(1, map.Count(e => (e.Flags & FileExtentFlags.Last) != 0));
    }

    [Fact]
    public void EmptyFile_HasNoExtents()
    {
        if (!OperatingSystem.IsLinux()) return;
        string path = Path.GetTempFileName();
        try
        {
            using var handle = File.OpenHandle(path);
            try { Assert.Empty(FileExtentMap.Read(handle)); }
            catch (IOException ex) when (ex.Message.Contains("EOPNOTSUPP")) { /* a temp directory on tmpfs has no FIEMAP */ }
        }
        finally { File.Delete(path); }
    }
}
