using AsrModule.Engine.Compression;
using Xunit;

namespace AsrModule.Tests.Unit.Compression;

/// <summary>
/// libzstd (bound at run time) and ZstdSharp write and read the same frames: a vault written by either is read by the
/// other, and a damaged frame is InvalidDataException from both.
/// </summary>
public class ZstdTests
{
    private static readonly NativeZstd Native = NativeZstd.TryLoad()
        ?? throw new InvalidOperationException("libzstd.so.1 did not load: Debian's libzstd1 (a dependency of dpkg) is expected on every test machine.");

    public static TheoryData<string, int> Inputs() => new()
    {
        { "text", 1 }, { "text", 3 }, { "text", 19 }, { "random", 1 }, { "zeros", 1 }, { "mixed", 1 }, { "empty", 1 }, { "one", 3 },
    };

    private static byte[] Make(string kind)
    {
        var rng = new Random(kind.GetHashCode(StringComparison.Ordinal) & 0xffff);
        byte[] b = kind switch { "empty" => [], "one" => [42], _ => new byte[(1 << 20) + 123] };
        switch (kind)
        {
            case "text":
                string[] words = ["the", "vault", "point", "disk", "replication", "of", "and", "recovery", "a", "block"];
                for (int i = 0; i < b.Length; i++) b[i] = (byte)(words[rng.Next(words.Length)][0] + i % 7);
                break;
            case "random": rng.NextBytes(b); break;
            case "mixed": rng.NextBytes(b.AsSpan(0, b.Length / 2)); break;
        }
        return b;
    }

    private static byte[] Compress(IZstdCompressor c, byte[] plain)
    {
        var frame = new byte[Zstd.CompressBound(plain.Length)];
        return frame.AsSpan(0, c.Compress(plain, frame)).ToArray();
    }

    [Theory, MemberData(nameof(Inputs))]
    public void NativeFramesDecodeWithTheManagedPortAndBack(string kind, int level)
    {
        byte[] plain = Make(kind);
        byte[] fromNative, fromManaged;
        using (var c = Native.CreateCompressor(level)) fromNative = Compress(c, plain);
        using (var c = new ManagedZstdCompressor(level)) fromManaged = Compress(c, plain);

        var back = new byte[plain.Length];
        using (var d = new ManagedZstdDecompressor()) Assert.Equal(plain.Length, d.Decompress(fromNative, back));
        Assert.True(plain.AsSpan().SequenceEqual(back));
        Array.Clear(back);
        using (var d = Native.CreateDecompressor()) Assert.Equal(plain.Length, d.Decompress(fromManaged, back));
        Assert.True(plain.AsSpan().SequenceEqual(back));
        if (kind == "text") Assert.True(fromNative.Length < plain.Length * 3 / 4, $"text compressed to {fromNative.Length} of {plain.Length}");
    }

    /// <summary>Word-like text in 256 KiB extents, as the benchmark's text regions are stored: the case the extent parameters are for.</summary>
    private static byte[] ProseExtent(int seed)
    {
        var rng = new Random(seed);
        string[] words = ["the", "of", "and", "to", "vault", "point", "disk", "replication", "recovery", "block", "a", "in", "is", "it", "that",
            "was", "for", "on", "are", "with", "as", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "word"];
        var sb = new System.Text.StringBuilder();
        while (sb.Length < 256 << 10) sb.Append(words[(int)(words.Length * Math.Pow(rng.NextDouble(), 2))]).Append(rng.Next(12) == 0 ? ". " : " ");
        return System.Text.Encoding.ASCII.GetBytes(sb.ToString(0, 256 << 10));
    }

    public static TheoryData<bool, int> ExtentCases() => new() { { true, 1 }, { false, 1 }, { true, 3 }, { false, 3 } };

    [Theory, MemberData(nameof(ExtentCases))]
    public void ExtentCompressorsUseTheLevelsLargeInputParametersAndTheirFramesDecodeWithBoth(bool native, int level)
    {
        Assert.True(Native.HasParameterApi, "Debian's libzstd exports ZSTD_getCParams, ZSTD_CCtx_setParameter and ZSTD_compress2");
        using IZstdCompressor plainLevel = native ? Native.CreateCompressor(level) : new ManagedZstdCompressor(level);
        using IZstdCompressor extents = native ? Native.CreateCompressor(level, largeInputParameters: true) : new ManagedZstdCompressor(level, largeInputParameters: true);
        long plainBytes = 0, extentBytes = 0;
        var back = new byte[256 << 10];
        for (int seed = 1; seed <= 4; seed++)
        {
            byte[] extent = ProseExtent(seed);
            byte[] frame = Compress(extents, extent);
            plainBytes += Compress(plainLevel, extent).Length;
            extentBytes += frame.Length;
            foreach (IZstdDecompressor d in new IZstdDecompressor[] { Native.CreateDecompressor(), new ManagedZstdDecompressor() })
                using (d)
                {
                    Array.Clear(back);
                    Assert.Equal(extent.Length, d.Decompress(frame, back));
                    Assert.True(extent.AsSpan().SequenceEqual(back));
                }
        }
        // A whole 256 KiB extent falls in zstd's "<= 256 KB" table; the large-input row differs (level 1: minimum match
        // 7, not 6; level 3: fast double-hash tables of 2^17, not 2^16), so the frames differ and are still text-sized.
        Assert.NotEqual(plainBytes, extentBytes);
        Assert.True(extentBytes < 4 * (256 << 10) * 3 / 4, $"text compressed to {extentBytes} of {4 * (256 << 10)}");
    }

    [Fact]
    public void OneContextCompressesManyFramesInTurn()
    {
        using var c = Native.CreateCompressor(1);
        using var d = Native.CreateDecompressor();
        foreach (var kind in new[] { "text", "random", "zeros", "text" })
        {
            byte[] plain = Make(kind), back = new byte[plain.Length];
            Assert.Equal(plain.Length, d.Decompress(Compress(c, plain), back));
            Assert.True(plain.AsSpan().SequenceEqual(back));
        }
    }

    public static TheoryData<string> Damage() => ["flipped", "truncated", "too-large", "not-zstd"];

    [Theory, MemberData(nameof(Damage))]
    public void DamagedFramesAreInvalidDataFromBoth(string damage)
    {
        byte[] plain = Make("text");
        byte[] frame;
        using (var c = Native.CreateCompressor(1)) frame = Compress(c, plain);
        int destination = plain.Length;
        switch (damage)
        {
            case "flipped": frame[frame.Length / 2] ^= 0x5a; frame[frame.Length / 2 + 1] ^= 0xa5; break;
            case "truncated": frame = frame[..(frame.Length - 100)]; break;
            case "too-large": destination = plain.Length - 1; break;
            case "not-zstd": frame = "ASM1 this is not a zstd frame"u8.ToArray(); break;
        }
        foreach (var d in new IZstdDecompressor[] { Native.CreateDecompressor(), new ManagedZstdDecompressor() })
            using (d)
            {
                var back = new byte[destination];
                // A flipped byte in a literal run may still decode (zstd frames here carry no checksum): then the bytes differ,
                // which the extent's own checksum catches (ExtentCodec); what must never happen is a write past the buffer or a crash.
                try
                {
                    int n = d.Decompress(frame, back);
                    Assert.True(damage == "flipped" && !(n == plain.Length && plain.AsSpan().SequenceEqual(back)), $"{d.GetType().Name} decoded a {damage} frame as the original");
                }
                catch (InvalidDataException ex)
                {
                    Assert.StartsWith("zstd:", ex.Message);
                }
            }
    }

    [Fact]
    public void ManagedIsChosenOnlyWhenAskedFor()
    {
        Assert.Null(Zstd.Choose("managed"));
        Assert.Null(Zstd.Choose("MANAGED"));
        Assert.NotNull(Zstd.Choose(null));
        Assert.NotNull(Zstd.Choose("native"));
        Assert.Matches(@"^libzstd 1\.\d+\.\d+$", $"libzstd {Native.Version}");
        if (Environment.GetEnvironmentVariable(Zstd.ImplementationVariable) is null)
            Assert.Equal($"libzstd {Native.Version}", Zstd.Implementation);
    }

    [Fact]
    public void ADisposedContextRefusesWork()
    {
        var c = Native.CreateCompressor(1);
        c.Dispose();
        c.Dispose();
        Assert.Throws<ObjectDisposedException>(() => c.Compress([1, 2, 3], new byte[Zstd.CompressBound(3)]));
    }
}
