namespace AsrModule.Engine.Failover;

/// <summary>A point-in-time reader of one recovered disk (a file, or a snapshot of a managed disk read through a SAS).</summary>
public interface IRecoveredDiskReader
{
    /// <summary>The disk's size in bytes (the guest-visible size, without any VHD footer).</summary>
    long Size { get; }

    /// <summary>What is read, for messages (never a secret).</summary>
    string Location { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/> (which must lie within <see cref="Size"/>).</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);
}

/// <summary>The recovered disks of a machine, by disk id; disposing releases them (Azure: revokes read access and deletes the snapshots).</summary>
public sealed class RecoveredDiskSet(IReadOnlyDictionary<string, IRecoveredDiskReader> disks, Func<ValueTask>? release = null) : IAsyncDisposable
{
    public IReadOnlyDictionary<string, IRecoveredDiskReader> Disks { get; } = disks;

    public async ValueTask DisposeAsync()
    {
        foreach (var d in Disks.Values)
            if (d is IDisposable disposable) disposable.Dispose();
        if (release is not null) await release().ConfigureAwait(false);
    }
}

/// <summary>A recovered disk that is a file (or block device) on this machine.</summary>
public sealed class RecoveredDiskFile : IRecoveredDiskReader, IDisposable
{
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;

    public RecoveredDiskFile(string path)
    {
        Location = path;
        try
        {
            _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            Size = RandomAccess.GetLength(_handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new Errors.AsrException(Errors.AsrErrorIds.DiskUnreadable, Errors.AsrErrorKind.ReadError, $"The recovered disk '{path}' cannot be read: {ex.Message}", path, ex);
        }
    }

    public long Size { get; }
    public string Location { get; }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = await RandomAccess.ReadAsync(_handle, buffer[done..], offset + done, cancellationToken).ConfigureAwait(false);
            if (n == 0) { buffer.Span[done..].Clear(); return; }
            done += n;
        }
    }

    public void Dispose() => _handle.Dispose();
}
