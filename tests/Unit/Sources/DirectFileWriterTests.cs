using System.Runtime.InteropServices;
using System.Security.Cryptography;
using AsrModule.Engine.Replication.Sources.Linux;
using Xunit;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// Bulk writes of a restored disk go past the page cache (O_DIRECT on a descriptor of their own), from several writers at
/// once, and the file holds exactly what was written: whole-page pieces direct, small or unaligned ones through the
/// caller's buffered handle; with direct writes off nothing goes direct. An export writes its disk this way, bit-exact.
/// </summary>
public class DirectFileWriterTests
{
    private const long FileBytes = 16L * (1 << 20) + 1234;   // an odd size: the last piece is not whole pages

    /// <summary>Pieces of a disk as an export writes them: 256 KiB extents, some short, some unaligned, a partial last one, holes between.</summary>
    private static List<(long Offset, int Length)> Pieces()
    {
        var pieces = new List<(long, int)>();
        for (long at = 0; at < FileBytes - (1 << 20); at += 1 << 20)
        {
            pieces.Add((at, 256 << 10));                   // whole pages: direct
            pieces.Add((at + (256 << 10), 8 << 10));       // short: buffered
            pieces.Add((at + (512 << 10) + 512, 100_000)); // unaligned: buffered
            pieces.Add((at + (768 << 10), 128 << 10));     // whole pages: direct
        }
        long last = FileBytes - 70_000;
        pieces.Add((last, 70_000));                        // the disk's partial end: buffered
        return pieces;
    }

    private static (byte[] Expected, long DirectBytes) WriteAll(string path, bool parallel, out string flags)
    {
        var expected = new byte[FileBytes];
        new Random(11).NextBytes(expected);
        var pieces = Pieces();
        var image = new byte[FileBytes];
        foreach (var (offset, length) in pieces) expected.AsSpan((int)offset, length).CopyTo(image.AsSpan((int)offset));
        using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        RandomAccess.SetLength(handle, FileBytes);
        using var direct = DirectFileWriter.TryOpen(handle);
        flags = direct?.FdInfoFlags() ?? "";
        void Write((long Offset, int Length) p)
        {
            // From a buffer of its own, as the export's decoded extents are: the writer must not keep it.
            var data = expected.AsSpan((int)p.Offset, p.Length).ToArray();
            if (direct is null || !direct.TryWrite(p.Offset, data))
                RandomAccess.Write(handle, data, p.Offset);
            Array.Clear(data);
        }
        if (parallel) Parallel.ForEach(pieces, new ParallelOptions { MaxDegreeOfParallelism = 4 }, Write);
        else pieces.ForEach(Write);
        RandomAccess.FlushToDisk(handle);
        return (image, direct?.BytesWritten ?? 0);
    }

    [Fact]
    public void Whole_page_pieces_go_direct_from_parallel_writers_and_the_file_holds_exactly_what_was_written()
    {
        Assert.True(OperatingSystem.IsLinux(), "direct writes are Linux's");
        using var dir = new TempDir();
        string path = dir["restored.img"];
        var (image, directBytes) = WriteAll(path, parallel: true, out string flags);
        Assert.NotEqual(0, Convert.ToInt32(flags, 8) & PosixFile.ODirectOf(RuntimeInformation.ProcessArchitecture));
        long wholePages = Pieces().Where(p => DirectFileWriter.Fits(p.Offset, p.Length)).Sum(p => (long)p.Length);
        Assert.Equal(16L * (256 + 128) << 10, wholePages);
        Assert.Equal(wholePages, directBytes);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(image)), Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))));
    }

    [Theory]
    [InlineData(0L, 64 << 10, true)]
    [InlineData(4096L, 1 << 20, true)]
    [InlineData(4096L, (64 << 10) - 4096, false)]  // too small
    [InlineData(512L, 1 << 20, false)]             // unaligned offset
    [InlineData(0L, (1 << 20) + 512, false)]       // not whole pages
    public void Only_bulk_whole_page_writes_go_direct(long offset, int length, bool fits) =>
        Assert.Equal(fits, DirectFileWriter.Fits(offset, length));

    [Fact]
    public void With_direct_writes_off_every_write_goes_through_the_page_cache_with_the_same_bytes()
    {
        using var dir = new TempDir();
        DirectFileWriter.Disabled = true;
        try
        {
            string path = dir["restored.img"];
            var (image, directBytes) = WriteAll(path, parallel: false, out string flags);
            Assert.Equal("", flags);
            Assert.Equal(0, directBytes);
            Assert.True(image.AsSpan().SequenceEqual(File.ReadAllBytes(path)));
        }
        finally
        {
            DirectFileWriter.Disabled = Environment.GetEnvironmentVariable("ASR_DIRECT_WRITES") == "0";
        }
    }

    [Fact]
    public async Task An_export_written_direct_and_one_written_through_the_cache_are_both_the_disk_bit_exact()
    {
        using var h = await EngineHarness.CreateAsync("direct-writes-key");
        var (disk, item) = await h.NewMachineAsync("web", 12L << 20, seed: 5);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string expected = TestDisks.Sha256(disk);
        var direct = await h.ExportHashesAsync(point);
        DirectFileWriter.Disabled = true;
        Dictionary<string, string> buffered;
        try { buffered = await h.ExportHashesAsync(point); }
        finally { DirectFileWriter.Disabled = Environment.GetEnvironmentVariable("ASR_DIRECT_WRITES") == "0"; }
        Assert.Equal(expected, Assert.Single(direct).Value);
        Assert.Equal(expected, Assert.Single(buffered).Value);
    }
}
