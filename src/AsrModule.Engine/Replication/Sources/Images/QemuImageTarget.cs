using System.Net.Sockets;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// A disk image opened for writing back into (failback to the original VM's disk): a read-write qemu-nbd child
/// serves the image on a private unix socket and the engine writes guest-visible ranges over NBD, whatever the
/// image's layout.
/// </summary>
/// <remarks>
/// <para>Unlike <see cref="QemuImageSource"/>, the image is opened WITH QEMU's image lock: writing under a running
/// VM would corrupt the disk, so opening an image a VM has open fails with <see cref="AsrErrorKind.ResourceBusy"/>.</para>
/// <para>Zero writes are turned into discards (<c>--detect-zeroes=unmap --discard=unmap</c>) where the format
/// can (qcow2 zero clusters, holes), so the image stays sparse. Enabled persistent bitmaps of a qcow2 record the
/// writes, like any other writer's. Dispose flushes and lets qemu-nbd close the image cleanly.</para>
/// </remarks>
public sealed class QemuImageTarget : IAsyncDisposable
{
    private readonly QemuNbdProcess _server;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;

    private QemuImageTarget(string path, DiskImageFormat format, QemuNbdProcess server)
    {
        Path = path;
        Format = format;
        _server = server;
        Size = server.Client.Size;
    }

    public string Path { get; }
    public DiskImageFormat Format { get; }

    /// <summary>The guest-visible size in bytes.</summary>
    public long Size { get; }

    /// <summary>Opens the existing image <paramref name="path"/> of the (pinned) <paramref name="format"/> for writing.</summary>
    public static async Task<QemuImageTarget> OpenAsync(string path, DiskImageFormat format, CancellationToken cancellationToken)
    {
        DiskImageFormats.EnsureWritable(format, path);
        var file = DiskImageFile.Existing(path, forWriting: true);
        var arguments = new List<string>
        {
            "--image-opts", QemuImageOptions.For(file.FullPath, file.IsBlockDevice, format, forceShare: false),
            "--aio=threads",
            "--cache=writeback",
            "--discard=unmap",
            "--detect-zeroes=unmap",
        };
        var failure = new QemuToolFailure(path, $"open disk image '{path}' as {DiskImageFormats.DisplayName(format)} for writing", AsrErrorKind.WriteError,
            $"Check that '{path}' is a {DiskImageFormats.DisplayName(format)} image (qemu-img check -f {DiskImageFormats.QemuName(format)} '{path}') and that it and every file it refers to is writable.");
        var server = await QemuNbdProcess.StartAsync(arguments, new NbdClientOptions(), failure, cancellationToken).ConfigureAwait(false);
        if (server.Client.IsReadOnly)
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.WriteError,
                $"qemu-nbd serves '{path}' read-only. Check that the image and the files it refers to (backing file, extents) are writable.", path);
        }
        return new QemuImageTarget(path, format, server);
    }

    /// <summary>Writes <paramref name="data"/> at guest offset <paramref name="offset"/>.</summary>
    public async Task WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (offset < 0 || data.Length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{data.Length} lies outside disk image '{Path}' ({Size} bytes).");
        await GuardAsync($"write at offset {offset}", () => _server.Client.WriteAsync(offset, data, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Makes every completed write durable in the image file.</summary>
    public Task FlushAsync(CancellationToken cancellationToken) =>
        GuardAsync("flush", () => _server.Client.FlushAsync(cancellationToken), cancellationToken);

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
            bool full = ex.Message.Contains("error 28", StringComparison.Ordinal) || said.Contains("No space left", StringComparison.Ordinal);
            throw new AsrException(AsrErrorIds.DiskImageFailed, full ? AsrErrorKind.ResourceUnavailable : AsrErrorKind.WriteError,
                $"Disk image '{Path}' could not be written ({what}): {ex.Message}{(said.Length > 0 ? $" (qemu-nbd: {said})" : "")}. " +
                (full ? "Free space on the image's file system and try again." : "Check the image's file system (space, health) and the image (qemu-img check)."), Path, ex);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Flushes, disconnects and lets qemu-nbd close the image. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (!_server.HasExited) await _server.Client.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException) { /* qemu-nbd flushes on close too */ }
        await _server.DisposeAsync().ConfigureAwait(false);
    }
}
