using System.Runtime.InteropServices;

namespace AsrModule.Engine.Compression;

/// <summary>
/// The system's libzstd, bound at run time (<see cref="NativeLibrary"/>: no build-time dependency, no native file shipped).
/// Only the stable one-shot API is used (ZSTD_compressCCtx / ZSTD_decompressDCtx, present since 1.0); a library older than
/// <see cref="MinimumVersion"/> or missing a function is not used, and <see cref="Zstd"/> falls back to ZstdSharp. An extent
/// compressor (<see cref="Zstd.CreateExtentCompressor"/>) also uses ZSTD_getCParams, ZSTD_CCtx_setParameter and
/// ZSTD_compress2 where the library exports them (Debian's does), else it compresses with the plain level.
/// </summary>
internal sealed unsafe class NativeZstd
{
    /// <summary>1.4.0 (2019): the oldest release the one-shot calls were checked against; Debian 12 ships 1.5.4.</summary>
    public const uint MinimumVersion = 10400;

    private static readonly string[] Names = OperatingSystem.IsWindows() ? ["libzstd.dll", "zstd.dll"]
        : OperatingSystem.IsMacOS() ? ["libzstd.1.dylib", "libzstd.dylib"]
        : ["libzstd.so.1", "libzstd.so"];

    private readonly delegate* unmanaged<nint> _createCCtx;
    private readonly delegate* unmanaged<nint, nuint> _freeCCtx;
    private readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint> _compressCCtx;
    private readonly delegate* unmanaged<nint> _createDCtx;
    private readonly delegate* unmanaged<nint, nuint> _freeDCtx;
    private readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> _decompressDCtx;
    private readonly delegate* unmanaged<nuint, uint> _isError;
    private readonly delegate* unmanaged<nuint, byte*> _getErrorName;
    // Optional: the level's parameters for large inputs (Zstd.CreateExtentCompressor); null where the library lacks one.
    private readonly delegate* unmanaged<int, ulong, nuint, CompressionParameters> _getCParams;
    private readonly delegate* unmanaged<nint, int, int, nuint> _setParameter;
    private readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> _compress2;

    /// <summary>ZSTD_compressionParameters (zstd.h): six unsigned fields and the strategy enum.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CompressionParameters
    {
        public uint WindowLog, ChainLog, HashLog, SearchLog, MinMatch, TargetLength;
        public int Strategy;
    }

    /// <summary>ZSTD_cParameter values (zstd.h, stable since 1.4.0): the level, then the seven compression parameters.</summary>
    private const int CompressionLevelParameter = 100, WindowLogParameter = 101, HashLogParameter = 102, ChainLogParameter = 103,
        SearchLogParameter = 104, MinMatchParameter = 105, TargetLengthParameter = 106, StrategyParameter = 107;

    /// <summary>The loaded library's version, as "1.5.4".</summary>
    public string Version { get; }

    private NativeZstd(nint library, uint version)
    {
        _createCCtx = (delegate* unmanaged<nint>)NativeLibrary.GetExport(library, "ZSTD_createCCtx");
        _freeCCtx = (delegate* unmanaged<nint, nuint>)NativeLibrary.GetExport(library, "ZSTD_freeCCtx");
        _compressCCtx = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint>)NativeLibrary.GetExport(library, "ZSTD_compressCCtx");
        _createDCtx = (delegate* unmanaged<nint>)NativeLibrary.GetExport(library, "ZSTD_createDCtx");
        _freeDCtx = (delegate* unmanaged<nint, nuint>)NativeLibrary.GetExport(library, "ZSTD_freeDCtx");
        _decompressDCtx = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)NativeLibrary.GetExport(library, "ZSTD_decompressDCtx");
        _isError = (delegate* unmanaged<nuint, uint>)NativeLibrary.GetExport(library, "ZSTD_isError");
        _getErrorName = (delegate* unmanaged<nuint, byte*>)NativeLibrary.GetExport(library, "ZSTD_getErrorName");
        if (NativeLibrary.TryGetExport(library, "ZSTD_getCParams", out var getCParams)
            && NativeLibrary.TryGetExport(library, "ZSTD_CCtx_setParameter", out var setParameter)
            && NativeLibrary.TryGetExport(library, "ZSTD_compress2", out var compress2))
        {
            _getCParams = (delegate* unmanaged<int, ulong, nuint, CompressionParameters>)getCParams;
            _setParameter = (delegate* unmanaged<nint, int, int, nuint>)setParameter;
            _compress2 = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)compress2;
        }
        Version = $"{version / 10000}.{version / 100 % 100}.{version % 100}";
    }

    /// <summary>The system's libzstd, or null when none loads, it is too old, or it lacks a function used here.</summary>
    public static NativeZstd? TryLoad()
    {
        foreach (var name in Names)
        {
            if (!NativeLibrary.TryLoad(name, out var library)) continue;
            try
            {
                if (!NativeLibrary.TryGetExport(library, "ZSTD_versionNumber", out var versionNumber)) continue;
                uint version = ((delegate* unmanaged<uint>)versionNumber)();
                if (version < MinimumVersion) continue;
                return new NativeZstd(library, version);
            }
            catch (EntryPointNotFoundException)
            {
                // A library of that name without the one-shot API: not zstd as this module knows it.
            }
        }
        return null;
    }

    public IZstdCompressor CreateCompressor(int level, bool largeInputParameters = false) => new Compressor(this, level, largeInputParameters);

    /// <summary>Whether <see cref="Zstd.CreateExtentCompressor"/> can set the large-input parameters with this library.</summary>
    internal bool HasParameterApi => _getCParams != null;

    public IZstdDecompressor CreateDecompressor() => new Decompressor(this);

    private string ErrorName(nuint code) => Marshal.PtrToStringUTF8((nint)_getErrorName(code)) ?? $"error {code}";

    /// <summary>One libzstd context (compression or decompression): created once, freed once, refused after.</summary>
    private abstract class Context : IDisposable
    {
        private readonly delegate* unmanaged<nint, nuint> _free;
        private nint _context;

        protected Context(NativeZstd zstd, delegate* unmanaged<nint> create, delegate* unmanaged<nint, nuint> free, string kind)
        {
            Zstd = zstd;
            _free = free;
            _context = create();
            if (_context == 0) throw new OutOfMemoryException($"libzstd could not create a {kind} context.");
        }

        protected NativeZstd Zstd { get; }

        /// <summary>The live context; ObjectDisposedException after <see cref="Dispose"/>.</summary>
        protected nint Handle
        {
            get
            {
                ObjectDisposedException.ThrowIf(_context == 0, this);
                return _context;
            }
        }

        public void Dispose()
        {
            if (_context == 0) return;
            _free(_context);
            _context = 0;
        }
    }

    private sealed class Compressor : Context, IZstdCompressor
    {
        private readonly int _level;
        private readonly bool _parameters;

        public Compressor(NativeZstd zstd, int level, bool largeInputParameters) : base(zstd, zstd._createCCtx, zstd._freeCCtx, "compression")
        {
            _level = level;
            if (!largeInputParameters || !zstd.HasParameterApi) return;
            // srcSize 0 = unknown: the level's row for inputs over 256 KiB. Set on the context, these stay for every
            // ZSTD_compress2 on it (zstd still shrinks the window to each input).
            var p = zstd._getCParams(level, 0, 0);
            Set(CompressionLevelParameter, level);
            Set(WindowLogParameter, (int)p.WindowLog);
            Set(ChainLogParameter, (int)p.ChainLog);
            Set(HashLogParameter, (int)p.HashLog);
            Set(SearchLogParameter, (int)p.SearchLog);
            Set(MinMatchParameter, (int)p.MinMatch);
            Set(TargetLengthParameter, (int)p.TargetLength);
            Set(StrategyParameter, p.Strategy);
            _parameters = true;
        }

        private void Set(int parameter, int value)
        {
            nuint n = Zstd._setParameter(Handle, parameter, value);
            if (Zstd._isError(n) != 0) throw new InvalidOperationException($"libzstd refused compression parameter {parameter} = {value}: {Zstd.ErrorName(n)}.");
        }

        public int Compress(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            nint context = Handle;
            nuint n;
            fixed (byte* src = source)
            fixed (byte* dst = destination)
                n = _parameters
                    ? Zstd._compress2(context, dst, (nuint)destination.Length, src, (nuint)source.Length)
                    : Zstd._compressCCtx(context, dst, (nuint)destination.Length, src, (nuint)source.Length, _level);
            // Only a destination smaller than the bound (a caller's mistake) or an out-of-range level can fail here.
            if (Zstd._isError(n) != 0) throw new InvalidOperationException($"libzstd could not compress {source.Length:N0} bytes: {Zstd.ErrorName(n)}.");
            return checked((int)n);
        }
    }

    private sealed class Decompressor(NativeZstd zstd) : Context(zstd, zstd._createDCtx, zstd._freeDCtx, "decompression"), IZstdDecompressor
    {
        public int Decompress(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            nint context = Handle;
            nuint n;
            // libzstd never writes past dstCapacity, whatever the frame says (it is fuzzed for exactly this).
            fixed (byte* src = source)
            fixed (byte* dst = destination)
                n = Zstd._decompressDCtx(context, dst, (nuint)destination.Length, src, (nuint)source.Length);
            if (Zstd._isError(n) != 0) throw new InvalidDataException($"zstd: {Zstd.ErrorName(n)}");
            return checked((int)n);
        }
    }
}
