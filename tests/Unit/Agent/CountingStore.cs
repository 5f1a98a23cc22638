using AsrModule.Engine.Storage;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>A store that counts the requests made through it, by kind (what an agent's tick costs).</summary>
internal sealed class CountingStore(IVaultStore inner) : IVaultStore
{
    private int _lists, _reads, _writes, _deletes, _other;
    public int Lists => _lists;
    public int Reads => _reads;
    public int Writes => _writes;
    public int Deletes => _deletes;
    public int Total => _lists + _reads + _writes + _deletes + _other;
    public List<string> Listed { get; } = new();
    /// <summary>The keys read, in order (ReadAll, ranges, versioned reads, existence checks).</summary>
    public List<string> ReadKeys { get; } = new();

    public void Reset()
    {
        _lists = _reads = _writes = _deletes = _other = 0;
        lock (Listed) Listed.Clear();
        lock (ReadKeys) ReadKeys.Clear();
    }

    public string Location => inner.Location;
    private void Read(string key)
    {
        Interlocked.Increment(ref _reads);
        lock (ReadKeys) ReadKeys.Add(key);
    }
    public Task<bool> ExistsAsync(string key, CancellationToken ct) { Read(key); return inner.ExistsAsync(key, ct); }
    public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) { Read(key); return inner.ReadAllAsync(key, ct); }
    public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken ct) { Read(key); return inner.ReadRangeAsync(key, offset, destination, ct); }
    /// <summary>Awaited before each listing, with its prefix (a test stalls a listing with it).</summary>
    public Func<string, Task>? BeforeList { get; set; }

    public async Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken ct)
    {
        Interlocked.Increment(ref _lists);
        lock (Listed) Listed.Add(prefix);
        if (BeforeList is { } hook) await hook(prefix).ConfigureAwait(false);
        return await inner.ListAsync(prefix, ct).ConfigureAwait(false);
    }
    public Task<IReadOnlyList<string>> ListFoldersAsync(string prefix, CancellationToken ct)
    {
        Interlocked.Increment(ref _lists);
        lock (Listed) Listed.Add(prefix + " (folders)");
        return inner.ListFoldersAsync(prefix, ct);
    }
    public IDisposable? TryAcquireLock(string key) { Interlocked.Increment(ref _other); return inner.TryAcquireLock(key); }
    public Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { Interlocked.Increment(ref _writes); return inner.WriteAsync(key, content, ct); }
    public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { Interlocked.Increment(ref _writes); return inner.TryCreateAsync(key, content, ct); }
    public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) { Read(key); return inner.ReadVersionedAsync(key, ct); }
    public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken ct) { Interlocked.Increment(ref _writes); return inner.TryReplaceAsync(key, content, version, ct); }
    public Task DeleteAsync(string key, CancellationToken ct) { Interlocked.Increment(ref _deletes); return inner.DeleteAsync(key, ct); }
    public Task DeleteIncompleteAsync(string prefix, CancellationToken ct) { Interlocked.Increment(ref _other); return inner.DeleteIncompleteAsync(prefix, ct); }
    /// <summary>Makes the uploads of <see cref="BeginCreate"/> when set (a test stalls or observes them); else the interface's buffered one.</summary>
    public Func<string, IObjectUpload>? Uploads { get; set; }
    public IObjectUpload BeginCreate(string key, int expectedLength) => Uploads?.Invoke(key) ?? new BufferedObjectUpload(this, key, expectedLength);
    public Task DeletePrefixAsync(string prefix, CancellationToken ct) { Interlocked.Increment(ref _deletes); return inner.DeletePrefixAsync(prefix, ct); }
}
