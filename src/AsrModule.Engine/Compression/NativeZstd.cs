using System.Runtime.InteropServices;

namespace AsrModule.Engine.Compression;

/// <summary>
/// The system's libzstd, bound at run time (<see cref="NativeLibrary"/>: no build-time dependency, no native file shipped).
/// Only the stable one-shot API is used (ZSTD_compressCCtx / ZSTD_decompressDCtx, present since 1.0); a library older than
/// <see cref="MinimumVersion"/> or missing a function is not used, and <see cref="Zstd"/> falls back to ZstdSharp.
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

    public IZstdCompressor CreateCompressor(int level) => new Compressor(this, level);

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

    private sealed class Compressor(NativeZstd zstd, int level) : Context(zstd, zstd._createCCtx, zstd._freeCCtx, "compression"), IZstdCompressor
    {
        public int Compress(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            nint context = Handle;
            nuint n;
            fixed (byte* src = source)
            fixed (byte* dst = destination)
                n = Zstd._compressCCtx(context, dst, (nuint)destination.Length, src, (nuint)source.Length, level);
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
