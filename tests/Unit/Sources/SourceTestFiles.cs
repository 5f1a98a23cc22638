using System.Security.Cryptography;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>File helpers for the live-source tests: random content, durable positional writes, hashes, range checks.</summary>
internal static class SourceTestFiles
{
    public const int KiB = 1024, MiB = 1024 * 1024;

    /// <summary>Creates <paramref name="path"/> with <paramref name="size"/> random bytes, synced to disk.</summary>
    public static void CreateRandom(string path, long size, int seed)
    {
        var random = new Random(seed);
        var buffer = new byte[MiB];
        using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write);
        for (long done = 0; done < size; done += buffer.Length)
        {
            random.NextBytes(buffer);
            RandomAccess.Write(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, size - done)), done);
        }
        RandomAccess.FlushToDisk(handle);
    }

    /// <summary>pwrite of <paramref name="length"/> random bytes at <paramref name="offset"/>, then fsync.</summary>
    public static void WriteRandomAt(string path, long offset, int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write);
        RandomAccess.Write(handle, bytes, offset);
        RandomAccess.FlushToDisk(handle);
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    public static bool Covers(IReadOnlyList<ByteRange> ranges, long offset, long length) =>
        ranges.Any(r => r.Offset <= offset && offset + length <= r.End);

    public static long TotalLength(IReadOnlyList<ByteRange> ranges) => ranges.Sum(r => r.Length);

    public static string Format(IReadOnlyList<ByteRange> ranges) =>
        string.Join(", ", ranges.Select(r => $"[{r.Offset}, {r.End})"));

    /// <summary>
    /// Asserts the two files hold the same bytes everywhere outside <paramref name="changed"/>: what a
    /// change tracker may skip must really be unchanged.
    /// </summary>
    public static void AssertEqualOutside(string first, string second, IReadOnlyList<ByteRange> changed)
    {
        using var a = File.OpenHandle(first);
        using var b = File.OpenHandle(second);
        long length = Math.Min(RandomAccess.GetLength(a), RandomAccess.GetLength(b));
        var bufferA = new byte[MiB];
        var bufferB = new byte[MiB];
        for (long offset = 0; offset < length; offset += MiB)
        {
            int count = (int)Math.Min(MiB, length - offset);
            RandomAccess.Read(a, bufferA.AsSpan(0, count), offset);
            RandomAccess.Read(b, bufferB.AsSpan(0, count), offset);
            for (int i = 0; i < count; i++)
            {
                if (bufferA[i] == bufferB[i]) continue;
                long at = offset + i;
                Assert.True(changed.Any(r => r.Offset <= at && at < r.End),
                    $"Byte {at} differs between '{first}' and '{second}' but is outside every changed range: {Format(changed)}");
            }
        }
    }
}
