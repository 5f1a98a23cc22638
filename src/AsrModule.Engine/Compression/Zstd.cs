using ZstdSharp;

namespace AsrModule.Engine.Compression;

/// <summary>
/// zstd one-shot frames for extents and metadata. The system's libzstd (the reference implementation) is used where it
/// loads (<see cref="NativeZstd"/>: every mainstream Linux ships it, systemd and apt depend on it); elsewhere, or when the
/// environment variable <c>ASR_ZSTD=managed</c> asks for it, ZstdSharp (a C# port of the same library) does the work.
/// Both write and read the same format, so a vault written by one is read by the other.
/// <para>
/// Why not ZstdSharp everywhere: inside a pwsh process, whose runtime settings a module cannot choose, the port's hot loops
/// run through tiered compilation's instrumented and PGO tiers; on the PRODUCT.md text that compressed at ~225 MB/s per
/// core against ~290 MB/s for the same port with PGO off and for libzstd, and its JIT work was ~a quarter of an initial
/// replication's CPU (bench/README.md "Native zstd").
/// </para>
/// </summary>
internal static class Zstd
{
    /// <summary>The environment variable that chooses the implementation: "managed" forces ZstdSharp, anything else (or unset) prefers libzstd.</summary>
    public const string ImplementationVariable = "ASR_ZSTD";

    private static readonly Lazy<NativeZstd?> Native = new(() => Choose(Environment.GetEnvironmentVariable(ImplementationVariable)));

    /// <summary>libzstd unless <paramref name="setting"/> (<see cref="ImplementationVariable"/>'s value) is "managed" or none loads.</summary>
    internal static NativeZstd? Choose(string? setting) =>
        string.Equals(setting, "managed", StringComparison.OrdinalIgnoreCase) ? null : NativeZstd.TryLoad();

    /// <summary>What compresses in this process, for logs and the benchmark notes: "libzstd 1.5.4" or "ZstdSharp".</summary>
    public static string Implementation => Native.Value is { } n ? $"libzstd {n.Version}" : "ZstdSharp";

    /// <summary>The largest frame a source of <paramref name="length"/> bytes compresses to (zstd's ZSTD_COMPRESSBOUND, the same in both).</summary>
    public static int CompressBound(int length) => Compressor.GetCompressBound(length);

    public static IZstdCompressor CreateCompressor(int level) =>
        Native.Value is { } n ? n.CreateCompressor(level) : new ManagedZstdCompressor(level);

    /// <summary>
    /// A compressor for extents (at most 256 KiB each) with <paramref name="level"/>'s parameters for inputs over 256 KiB.
    /// <para>
    /// Why: zstd picks a level's parameters by input size, and a whole 256 KiB extent falls in its "≤ 256 KB" table,
    /// whose level 1 has a minimum match of 6 instead of 7: on the PRODUCT.md text that compresses 13–15% slower
    /// (`zstd -b1`: 226 vs 259–266 MB/s per core) for a 3.8% smaller result (ratio 2.53 vs 2.44). Text compression is
    /// half an initial replication's CPU, so the extent path takes the large-input row, as zstd itself does for a file
    /// (bench/README.md, "Extents with zstd's large-input parameters"). Frames are ordinary zstd frames either way; libzstd
    /// builds without the parameter API compress with the plain level.
    /// </para>
    /// </summary>
    public static IZstdCompressor CreateExtentCompressor(int level) =>
        Native.Value is { } n ? n.CreateCompressor(level, largeInputParameters: true) : new ManagedZstdCompressor(level, largeInputParameters: true);

    public static IZstdDecompressor CreateDecompressor() =>
        Native.Value is { } n ? n.CreateDecompressor() : new ManagedZstdDecompressor();

    /// <summary>
    /// The upper bound a frame's header sets on what it decompresses to (its declared content size when it has one), read
    /// without decompressing: an object whose header claims more than the caller expects is refused before a buffer is sized from it.
    /// </summary>
    public static ulong DecompressedBound(ReadOnlySpan<byte> frame) => Decompressor.GetDecompressedSize(frame);
}

/// <summary>One compression context: not thread-safe, one per worker.</summary>
internal interface IZstdCompressor : IDisposable
{
    /// <summary>Compresses <paramref name="source"/> into one frame; <paramref name="destination"/> holds at least <see cref="Zstd.CompressBound"/> bytes.</summary>
    int Compress(ReadOnlySpan<byte> source, Span<byte> destination);
}

/// <summary>One decompression context: not thread-safe, one per worker.</summary>
internal interface IZstdDecompressor : IDisposable
{
    /// <summary>
    /// Decompresses one frame into <paramref name="destination"/> and returns the bytes written. A frame that does not
    /// decode or would not fit throws <see cref="InvalidDataException"/> (vault objects are untrusted input).
    /// </summary>
    int Decompress(ReadOnlySpan<byte> source, Span<byte> destination);
}

internal sealed class ManagedZstdCompressor : IZstdCompressor
{
    private readonly Compressor _compressor;

    public ManagedZstdCompressor(int level, bool largeInputParameters = false)
    {
        _compressor = new Compressor(level);
        if (!largeInputParameters) return;
        // As NativeZstd: the level's row for inputs of unknown (large) size, set on the context.
        var p = ZstdSharp.Unsafe.Methods.ZSTD_getCParams(level, 0, 0);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_windowLog, (int)p.windowLog);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_chainLog, (int)p.chainLog);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_hashLog, (int)p.hashLog);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_searchLog, (int)p.searchLog);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_minMatch, (int)p.minMatch);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_targetLength, (int)p.targetLength);
        _compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_strategy, (int)p.strategy);
    }

    public int Compress(ReadOnlySpan<byte> source, Span<byte> destination) => _compressor.Wrap(source, destination);

    public void Dispose() => _compressor.Dispose();
}

internal sealed class ManagedZstdDecompressor : IZstdDecompressor
{
    private readonly Decompressor _decompressor = new();

    public int Decompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        try { return _decompressor.Unwrap(source, destination); }
        catch (ZstdException ex) { throw new InvalidDataException($"zstd: {ex.Message}", ex); }
    }

    public void Dispose() => _decompressor.Dispose();
}
