using System.Net.Sockets;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// A disk image of any format QEMU reads (qcow2, VMDK, VHDX, VDI, VHD, raw) opened as a replication source: a
/// read-only qemu-nbd child serves the image on a private unix socket, and reads, allocation and a persistent
/// dirty bitmap's changes come over NBD. Offsets and sizes are the guest's, whatever the image's layout.
/// </summary>
/// <remarks>
/// <para>The image is opened with <c>force-share=on</c>, i.e. without taking QEMU's image lock, so that the disk
/// of a running VM can be read. QEMU then guarantees nothing about consistency: the VM may write while the
/// engine reads, so which instant the copy represents is the caller's business (pause or shut down the VM,
/// snapshot it, or use the QMP tracker, which captures one instant). For a stopped image it is exact. Worse
/// than torn data, qemu-nbd caches the image's metadata (qcow2 L2 tables, VMDK grain tables) while the VM's QEMU
/// changes it, so clusters the VM allocates meanwhile may read as zeros or stale: copy a running VM's image only
/// to get a crash-inconsistent starting point that a later copy of the stopped image (or the QMP tracker) fixes.</para>
/// <para>The format is the one pinned when the disk was protected (see <see cref="DiskImageFormats.Detect"/>);
/// it is given to qemu-nbd explicitly and never probed.</para>
/// <para>One NBD connection answers one request at a time, so calls are serialised.</para>
/// </remarks>
public sealed class QemuImageSource : ISourceDisk, IAsyncDisposable
{
    private const string AllocationContext = "base:allocation";
    private const string DirtyBitmapContextPrefix = "qemu:dirty-bitmap:";
    // base:allocation flags (NBD proto.md): HOLE = not allocated, ZERO = reads as zeros.
    private const uint ZeroFlag = 2;
    // NBD_STATE_DIRTY, the one flag of QEMU's "qemu:dirty-bitmap:" contexts (QEMU docs/interop/nbd.txt).
    private const uint DirtyFlag = 1;

    private readonly QemuNbdProcess _server;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;

    private QemuImageSource(string path, DiskImageFormat format, string? dirtyBitmap, QemuNbdProcess server)
    {
        Path = path;
        Format = format;
        DirtyBitmap = dirtyBitmap;
        _server = server;
        Size = server.Client.Size;
    }

    public string Path { get; }
    public long Size { get; }
    public DiskImageFormat Format { get; }

    /// <summary>The persistent dirty bitmap exposed with the image, or null.</summary>
    public string? DirtyBitmap { get; }

    /// <summary>
    /// Opens <paramref name="path"/> as <paramref name="format"/>, exposing the qcow2 persistent dirty bitmap
    /// <paramref name="dirtyBitmap"/> too when given (for <see cref="DirtyRangesAsync"/>).
    /// </summary>
    public static async Task<QemuImageSource> OpenAsync(string path, DiskImageFormat format, string? dirtyBitmap, CancellationToken cancellationToken)
    {
        if (!Enum.IsDefined(format))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk image format {(int)format} of '{path}' is not supported. Use one of: {DiskImageFormats.AcceptedNames}.", path);
        if (dirtyBitmap is not null)
        {
            QemuImageBitmaps.ValidateName(dirtyBitmap);
            if (format != DiskImageFormat.Qcow2)
                throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                    $"'{path}' is a {DiskImageFormats.DisplayName(format)} image, and only qcow2 images store dirty bitmaps. Open it without a bitmap (every copy then compares the whole disk).", path);
        }
        var file = DiskImageFile.Existing(path, forWriting: false);
        var arguments = new List<string>
        {
            "--read-only",
            "--image-opts", QemuImageOptions.For(file.FullPath, file.IsBlockDevice, format, forceShare: true),
            "--aio=threads",
            "--cache=writeback",
        };
        if (dirtyBitmap is not null) arguments.Add($"--bitmap={dirtyBitmap}");
        var options = new NbdClientOptions
        {
            StructuredReplies = true,
            MetaContexts = dirtyBitmap is null ? [AllocationContext] : [AllocationContext, DirtyBitmapContextPrefix + dirtyBitmap],
        };
        var failure = new QemuToolFailure(path, $"open disk image '{path}' as {DiskImageFormats.DisplayName(format)}{(dirtyBitmap is null ? "" : $" with dirty bitmap '{dirtyBitmap}'")}",
            AsrErrorKind.ReadError,
            $"Check that '{path}' is a {DiskImageFormats.DisplayName(format)} image (qemu-img check -f {DiskImageFormats.QemuName(format)} '{path}') and that every file it refers to (backing file, extents) is there.");
        var server = await QemuNbdProcess.StartAsync(arguments, options, failure, cancellationToken).ConfigureAwait(false);
        return new QemuImageSource(path, format, dirtyBitmap, server);
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (offset < 0 || buffer.Length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{buffer.Length} lies outside disk image '{Path}' ({Size} bytes).");
        // NbdClient splits reads into requests the server accepts (at most 32 MiB each).
        await GuardAsync($"read at offset {offset}", () => _server.Client.ReadAsync(offset, buffer, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The ranges that may hold data, from QEMU's allocation status: everything but the ranges that read as zeros.
    /// A range QEMU reports as a hole without the zero flag (e.g. unallocated in an image whose backing may hold
    /// data) is kept as data, since only the zero flag promises zeros. Merged and sorted.
    /// </summary>
    /// <remarks>Precision depends on the format: qcow2, VMDK, VDI and VHD report their clusters or blocks; QEMU 7.2's
    /// VHDX driver reports no allocation, so a VHDX reads as all data.</remarks>
    public async ValueTask<IReadOnlyList<ByteRange>?> GetDataRangesAsync(CancellationToken cancellationToken) =>
        await RangesAsync(AllocationContext, flags => (flags & ZeroFlag) == 0, "allocation", cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// The ranges the dirty bitmap given at open marks as written (at the bitmap's granularity), merged and sorted.
    /// </summary>
    public async Task<IReadOnlyList<ByteRange>> DirtyRangesAsync(CancellationToken cancellationToken)
    {
        if (DirtyBitmap is null)
            throw new InvalidOperationException($"Disk image '{Path}' was opened without a dirty bitmap: pass one to OpenAsync to ask for its dirty ranges.");
        return await RangesAsync(DirtyBitmapContextPrefix + DirtyBitmap, flags => (flags & DirtyFlag) != 0, $"dirty bitmap '{DirtyBitmap}'", cancellationToken).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<ByteRange>> RangesAsync(string context, Func<uint, bool> wanted, string what, CancellationToken cancellationToken)
    {
        IReadOnlyList<NbdExtent> extents = [];
        if (Size > 0)
            await GuardAsync($"read the {what}", async () => extents = await _server.Client.BlockStatusAsync(context, 0, Size, cancellationToken).ConfigureAwait(false),
                cancellationToken).ConfigureAwait(false);
        var ranges = new List<ByteRange>();
        foreach (var extent in extents)
        {
            if (!wanted(extent.Flags)) continue;
            if (ranges.Count > 0 && ranges[^1].End == extent.Offset)
                ranges[^1] = ranges[^1] with { Length = ranges[^1].Length + extent.Length };
            else
                ranges.Add(new ByteRange(extent.Offset, extent.Length));
        }
        return ranges;
    }

    /// <summary>One request at a time; a failed one becomes <see cref="AsrErrorIds.DiskUnreadable"/> with qemu-nbd's words.</summary>
    private async Task GuardAsync(string what, Func<Task> request, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            await request().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            string said = _server.Stderr;
            string state = _server.HasExited ? "qemu-nbd exited" : "qemu-nbd reported an error";
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                $"Disk image '{Path}' could not be read ({what}): {ex.Message}{(said.Length > 0 ? $" ({state}: {said})" : "")}. " +
                $"Check the image with 'qemu-img check -f {DiskImageFormats.QemuName(Format)} {Path}' and the health of the storage it is on.", Path, ex);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Closes the connection and stops qemu-nbd. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _server.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _server.Dispose();
    }
}
