using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Large reads of a source disk that bypass the page cache (O_DIRECT), through an aligned buffer of its own.
/// <para>
/// Why: a scan reads every byte of the disk once. Through the page cache each byte lands in a fresh cache page first:
/// the protected server's cached working set is evicted for data read once, and on a VM whose free memory goes back to
/// its host (free page reporting) every such page is a host fault — on the 2 GiB benchmark image `dd bs=4M` takes
/// 2.3–3.9 s that way and 0.6–1.2 s with `iflag=direct` (bench/README.md, "Settle"). Direct reads go from the device
/// into this reader's buffer, which is reused; one copy then puts the bytes where the scan wants them.
/// </para>
/// <para>
/// How: .NET has no O_DIRECT on Unix, so the open file is reopened through <c>/proc/self/fd</c> (the same inode whatever
/// its path became) with O_DIRECT. Reads must start at a multiple of <see cref="Alignment"/>; the length is rounded up
/// (the end of a file reads short, as any read). A read that cannot go direct (unaligned, small) is the caller's to do
/// through the page cache; so is every read once O_DIRECT failed (a file system that refuses it: EINVAL). Reads are
/// coherent with writers: the kernel writes a range's dirty pages back before it reads the range directly.
/// </para>
/// </summary>
internal sealed unsafe class DirectDiskReader : IDisposable
{
    /// <summary>Offsets and lengths of direct reads: a page, a multiple of every logical block size in common use.</summary>
    public const int Alignment = 4096;
    /// <summary>Reads smaller than this stay in the page cache (a probe, a header): direct I/O pays off for bulk reads.</summary>
    public const int MinimumBytes = 256 * 1024;
    private const int BufferBytes = 4 << 20;

    private readonly SafeFileHandle _handle;
    private readonly object _gate = new();
    private byte* _buffer;
    private bool _failed;

    private DirectDiskReader(SafeFileHandle handle)
    {
        _handle = handle;
        _buffer = (byte*)NativeMemory.AlignedAlloc(BufferBytes, Alignment);
    }

    /// <summary>Set by tests (and <c>ASR_DIRECT_READS=0</c> in the environment) to read through the page cache only.</summary>
    internal static bool Disabled { get; set; } = Environment.GetEnvironmentVariable("ASR_DIRECT_READS") == "0";

    /// <summary>Bytes read past the page cache so far (tests).</summary>
    internal long BytesRead { get; private set; }

    /// <summary>Whether reads still go direct (false once the file system refused one).</summary>
    public bool IsActive => !_failed && _buffer != null;

    /// <summary>A direct reader of <paramref name="source"/>'s file, or null where there is none (not Linux, unknown O_DIRECT, refused).</summary>
    public static DirectDiskReader? TryOpen(SafeFileHandle source) =>
        Disabled ? null : PosixFile.ReopenDirect(source, PosixFile.ReadOnly) is { } direct ? new DirectDiskReader(direct) : null;

    /// <summary>
    /// Reads up to <paramref name="destination"/>.Length bytes at <paramref name="offset"/> past the page cache: the bytes
    /// read (0 at the end of the file), or -1 when this read is not one to do directly (small, unaligned, or direct reads
    /// failed): the caller then reads through the page cache.
    /// </summary>
    public int Read(long offset, Span<byte> destination)
    {
        if (destination.Length < MinimumBytes || offset % Alignment != 0) return -1;
        lock (_gate)
        {
            if (!IsActive) return -1;
            int want = Math.Min(destination.Length, BufferBytes);
            int aligned = (want + Alignment - 1) / Alignment * Alignment;
            int n;
            try
            {
                n = RandomAccess.Read(_handle, new Span<byte>(_buffer, aligned), offset);
            }
            catch (IOException)
            {
                // EINVAL: the file system takes O_DIRECT at open but not for this file or range; read as before from now on.
                _failed = true;
                return -1;
            }
            n = Math.Min(n, want);
            new ReadOnlySpan<byte>(_buffer, n).CopyTo(destination);
            BytesRead += n;
            return n;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_buffer == null) return;
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
        }
        _handle.Dispose();
    }

    /// <summary>The flags of the descriptor reads go through, as /proc/self/fdinfo shows them (octal), for tests.</summary>
    internal string FdInfoFlags() => PosixFile.FdInfoFlags(_handle);
}
