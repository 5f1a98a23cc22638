using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;

namespace AsrModule.Tests.Unit.Reliability;

/// <summary>
/// A store whose storage can go away: while <see cref="Down"/>, every request fails as an unreachable blob store's
/// does (VaultUnavailable); <see cref="FailWrite"/> fails chosen writes only (a disk that fills up).
/// </summary>
internal sealed class OutageStore(IVaultStore inner) : IVaultStore
{
    public volatile bool Down;
    public Func<string, bool>? FailWrite { get; set; }
    public int FailedRequests;
    public string Location => inner.Location;

    private void Check()
    {
        if (!Down) return;
        Interlocked.Increment(ref FailedRequests);
        throw new AsrException(AsrErrorIds.VaultUnavailable, AsrErrorKind.ConnectionError, $"The vault at '{Location}' is unavailable (test outage).", Location);
    }

    private void CheckWrite(string key)
    {
        Check();
        if (FailWrite?.Invoke(key) == true) throw new IOException("No space left on device (test)");
    }

    public Task<bool> ExistsAsync(string key, CancellationToken ct) { Check(); return inner.ExistsAsync(key, ct); }
    public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) { Check(); return inner.ReadAllAsync(key, ct); }
    public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken ct) { Check(); return inner.ReadRangeAsync(key, offset, destination, ct); }
    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken ct) { Check(); return inner.ListAsync(prefix, ct); }
    public IDisposable? TryAcquireLock(string key) { Check(); return inner.TryAcquireLock(key); }
    public Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { CheckWrite(key); return inner.WriteAsync(key, content, ct); }
    public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { CheckWrite(key); return inner.TryCreateAsync(key, content, ct); }
    public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) { Check(); return inner.ReadVersionedAsync(key, ct); }
    public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken ct) { CheckWrite(key); return inner.TryReplaceAsync(key, content, version, ct); }
    public Task DeleteAsync(string key, CancellationToken ct) { Check(); return inner.DeleteAsync(key, ct); }
    public Task DeleteIncompleteAsync(string prefix, CancellationToken ct) { Check(); return inner.DeleteIncompleteAsync(prefix, ct); }
    public Task DeletePrefixAsync(string prefix, CancellationToken ct) { Check(); return inner.DeletePrefixAsync(prefix, ct); }
}
