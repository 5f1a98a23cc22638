using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Large writes to a file that bypass the page cache (O_DIRECT), each through an aligned buffer of its own; several
/// writers may call <see cref="TryWrite"/> at once.
/// <para>
/// Why: a write through the page cache lands in a fresh cache page first, and on a VM whose free memory goes back to its
/// host (free page reporting) every such page is a host fault; the cache's writeback then comes at the final fsync. On
/// this project's machines writing 1 GiB in 2 MiB pieces into a sparse file and fsyncing it takes 2.6–2.7 s buffered
/// and 0.8–1.1 s direct (bench/README.md, "The floor of writing on this VM"). It also keeps a restore from evicting the recovery host's
/// page cache with data it will not read again.
/// </para>
/// <para>
/// How: as <see cref="DirectDiskReader"/>, the open file is reopened through <c>/proc/self/fd</c> with O_DIRECT. A write
/// goes direct when its offset and length are multiples of <see cref="Alignment"/> and it is at least
/// <see cref="MinimumBytes"/> long; anything else, and every write once the file system refused one (EINVAL), is the
/// caller's to write through its own (buffered) handle. A direct range and a buffered one never share a page (direct
/// ranges are whole pages), and the kernel keeps the two coherent anyway. Durability is the caller's fsync of the file,
/// as for buffered writes: it flushes the device's cache and the file's metadata (the extents direct writes allocated).
/// </para>
/// </summary>
internal sealed unsafe class DirectFileWriter : IDisposable
{
    /// <summary>Offsets and lengths of direct writes: a page, a multiple of every logical block size in common use.</summary>
    public const int Alignment = DirectDiskReader.Alignment;
    /// <summary>Writes smaller than this stay buffered: direct I/O pays off for bulk writes.</summary>
    public const int MinimumBytes = 64 * 1024;
    /// <summary>The aligned staging buffer of one writer (an extent is at most 256 KiB); a longer write goes out in pieces of this size.</summary>
    internal const int BufferBytes = 1 << 20;

    private readonly SafeFileHandle _handle;
    private readonly object _gate = new();
    private readonly Stack<nint> _free = new();
    private bool _failed, _disposed;
    private long _bytesWritten;

    private DirectFileWriter(SafeFileHandle handle) => _handle = handle;

    /// <summary>Set by tests (and <c>ASR_DIRECT_WRITES=0</c> in the environment) to write through the page cache only.</summary>
    internal static bool Disabled { get; set; } = Environment.GetEnvironmentVariable("ASR_DIRECT_WRITES") == "0";

    /// <summary>Bytes written past the page cache so far (tests, progress).</summary>
    internal long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>A direct writer of <paramref name="file"/>'s file (opened for writing), or null where there is none (not Linux, unknown O_DIRECT, refused).</summary>
    public static DirectFileWriter? TryOpen(SafeFileHandle file) =>
        Disabled ? null : PosixFile.ReopenDirect(file, PosixFile.WriteOnly) is { } direct ? new DirectFileWriter(direct) : null;

    /// <summary>Whether a write of <paramref name="length"/> bytes at <paramref name="offset"/> is one <see cref="TryWrite"/> would take.</summary>
    public static bool Fits(long offset, int length) => length >= MinimumBytes && offset % Alignment == 0 && length % Alignment == 0;

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offset"/> past the page cache: true when written, false when this
    /// write is not one to do directly (small, unaligned, or direct writes failed) and nothing of it may be assumed
    /// written — the caller then writes all of it through the page cache.
    /// </summary>
    public bool TryWrite(long offset, ReadOnlySpan<byte> data)
    {
        if (!Fits(offset, data.Length) || Volatile.Read(ref _failed)) return false;
        lock (_gate)
            if (_disposed) return false;
        nint buffer = RentBuffer();
        try
        {
            for (int at = 0; at < data.Length; at += BufferBytes)
            {
                int n = Math.Min(BufferBytes, data.Length - at);
                var staged = new Span<byte>((void*)buffer, n);
                data.Slice(at, n).CopyTo(staged);
                RandomAccess.Write(_handle, staged, offset + at);
            }
        }
        catch (IOException)
        {
            // EINVAL: the file system takes O_DIRECT at open but not for this file or range. Any other failure (ENOSPC,
            // EIO) comes back from the caller's buffered write of the same bytes, which also covers what went out here.
            Volatile.Write(ref _failed, true);
            return false;
        }
        finally
        {
            ReturnBuffer(buffer);
        }
        Interlocked.Add(ref _bytesWritten, data.Length);
        return true;
    }

    /// <summary>A free staging buffer of <see cref="BufferBytes"/>, allocated on first need: one per concurrent writer, reused (a fresh one costs a page fault per page).</summary>
    private nint RentBuffer()
    {
        lock (_gate)
            if (_free.TryPop(out var buffer)) return buffer;
        return (nint)NativeMemory.AlignedAlloc(BufferBytes, Alignment);
    }

    private void ReturnBuffer(nint buffer)
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                _free.Push(buffer);
                return;
            }
        }
        NativeMemory.AlignedFree((void*)buffer);
    }

    /// <summary>Frees the staging buffers (one in use is freed when its write ends) and closes the direct descriptor (reference-counted: a write under way ends first).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            while (_free.TryPop(out var buffer)) NativeMemory.AlignedFree((void*)buffer);
        }
        _handle.Dispose();
    }

    /// <summary>The flags of the descriptor writes go through, as /proc/self/fdinfo shows them (octal), for tests.</summary>
    internal string FdInfoFlags() => PosixFile.FdInfoFlags(_handle);
}
