using AsrModule.Engine.Storage;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>Thrown where the process "dies": the mutation it interrupts never happens.</summary>
internal sealed class SimulatedCrashException(int mutation) : IOException($"Simulated crash before vault mutation #{mutation}.");

/// <summary>
/// A store that fails the Nth write or delete and every one after it, like a process killed at that
/// point: everything before it is durable, nothing after it happens.
/// </summary>
internal sealed class FaultyStore(IVaultStore inner, int failAtMutation) : IVaultStore
{
    private int _mutations;
    public int Mutations => _mutations;
    public string Location => inner.Location;

    private void BeforeMutation()
    {
        int n = Interlocked.Increment(ref _mutations);
        if (n >= failAtMutation) throw new SimulatedCrashException(n);
    }

    public Task<bool> ExistsAsync(string key, CancellationToken ct) => inner.ExistsAsync(key, ct);
    public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) => inner.ReadAllAsync(key, ct);
    public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken ct) => inner.ReadRangeAsync(key, offset, destination, ct);
    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);
    public IDisposable? TryAcquireLock(string key) => inner.TryAcquireLock(key);

    public Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { BeforeMutation(); return inner.WriteAsync(key, content, ct); }
    public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) { BeforeMutation(); return inner.TryCreateAsync(key, content, ct); }
    public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) => inner.ReadVersionedAsync(key, ct);
    public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken ct) { BeforeMutation(); return inner.TryReplaceAsync(key, content, version, ct); }
    public Task DeleteAsync(string key, CancellationToken ct) { BeforeMutation(); return inner.DeleteAsync(key, ct); }
    public Task DeleteIncompleteAsync(string prefix, CancellationToken ct) { BeforeMutation(); return inner.DeleteIncompleteAsync(prefix, ct); }
    public Task DeletePrefixAsync(string prefix, CancellationToken ct) { BeforeMutation(); return inner.DeletePrefixAsync(prefix, ct); }
}
