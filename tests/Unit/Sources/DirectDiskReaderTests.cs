using System.Runtime.InteropServices;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Sources.Linux;
using Xunit;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// A source disk's bulk reads go past the page cache (O_DIRECT on a descriptor of their own) and return exactly the file's
/// bytes, whatever the offset, length and file size; small or unaligned reads, a scan that prefetches, and a process that
/// turns direct reads off read through the page cache, with the same bytes.
/// </summary>
public class DirectDiskReaderTests
{
    private const int Odd = 9 * (1 << 20) + 1234;   // not a multiple of a page: the last direct read is short

    private static byte[] MakeFile(TempDir dir, out string path)
    {
        path = dir["disk.img"];
        var bytes = new byte[Odd];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        return bytes;
    }

    private static byte[] Read(DiskSource source, long offset, int length)
    {
        var buffer = new byte[length];
        source.ReadExactly(offset, buffer);
        return buffer;
    }

    [Fact]
    public void Bulk_reads_go_past_the_page_cache_and_read_the_file_exactly()
    {
        Assert.True(OperatingSystem.IsLinux(), "direct reads are Linux's");
        using var dir = new TempDir();
        byte[] expected = MakeFile(dir, out string path);
        using var source = DiskSource.Open(path);
        var direct = Assert.IsType<DirectDiskReader>(source.DirectReader);
        int flags = Convert.ToInt32(direct.FdInfoFlags(), 8);
        Assert.NotEqual(0, flags & PosixFile.ODirectOf(RuntimeInformation.ProcessArchitecture));

        // A whole-disk scan: 4 MiB reads from 0, the last one short.
        for (long offset = 0; offset < Odd; offset += 4 << 20)
        {
            int length = (int)Math.Min(4 << 20, Odd - offset);
            Assert.True(expected.AsSpan((int)offset, length).SequenceEqual(Read(source, offset, length)), $"bytes at {offset}");
        }
        Assert.Equal(Odd, direct.BytesRead);

        // Small and unaligned reads go through the page cache, with the same bytes.
        Assert.True(expected.AsSpan(100, 512).SequenceEqual(Read(source, 100, 512)));
        Assert.True(expected.AsSpan(1000, 1 << 20).SequenceEqual(Read(source, 1000, 1 << 20)));
        Assert.Equal(Odd, direct.BytesRead);
    }

    [Fact]
    public void A_scan_that_prefetches_reads_through_the_page_cache_from_then_on()
    {
        using var dir = new TempDir();
        byte[] expected = MakeFile(dir, out string path);
        using var source = DiskSource.Open(path);
        Assert.NotNull(source.DirectReader);
        source.WillNeed(4 << 20, 1 << 20);
        Assert.Null(source.DirectReader);
        Assert.True(expected.AsSpan(4 << 20, 4 << 20).SequenceEqual(Read(source, 4 << 20, 4 << 20)));
    }

    [Fact]
    public void With_direct_reads_off_every_read_goes_through_the_page_cache()
    {
        using var dir = new TempDir();
        byte[] expected = MakeFile(dir, out string path);
        DirectDiskReader.Disabled = true;
        try
        {
            using var source = DiskSource.Open(path);
            Assert.Null(source.DirectReader);
            Assert.True(expected.AsSpan(0, 4 << 20).SequenceEqual(Read(source, 0, 4 << 20)));
        }
        finally
        {
            DirectDiskReader.Disabled = Environment.GetEnvironmentVariable("ASR_DIRECT_READS") == "0";
        }
    }
}
