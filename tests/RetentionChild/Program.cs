using System.Diagnostics;
using System.Globalization;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

// Usage: RetentionChild <vault dir> <key or -> <item name> <now, ISO 8601 UTC> <kill at mutation N, 0: never> <before|during>
// Opens the local vault, takes the item's lease as a cycle would and runs one retention pass. At the Nth store mutation
// (write or delete) the process kills itself with SIGKILL: "before" it starts, or "during" it (the mutation started and
// not awaited). No finally block, flush or dispose runs: what the vault holds then is what a kill -9 leaves.
if (args.Length != 6)
{
    Console.Error.WriteLine("usage: RetentionChild <vault dir> <key or -> <item name> <now> <kill at mutation N> <before|during>");
    return 2;
}
var store = new KillingStore(new LocalDirectoryStore(args[0]), int.Parse(args[4], CultureInfo.InvariantCulture), args[5] == "during");
var vault = await AsrVault.OpenAsync(store, args[1] == "-" ? null : args[1], null, default);
vault.Clock = new FixedClock(DateTimeOffset.Parse(args[3], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal));
var item = await vault.GetItemAsync(args[2], default);
using (new ReplicationService(vault).AcquireLease(item))
{
    var result = await RetentionService.ApplyAsync(vault, item, default);
    Console.WriteLine($"finished after {store.Mutations} mutations: pruned {string.Join(",", result.PrunedSequences)}; repacked {string.Join(",", result.RepackedSequences)}");
}
return 0;

internal sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>A store whose process dies (SIGKILL, by itself) at its Nth write or delete; reads go straight through.</summary>
internal sealed class KillingStore(IVaultStore inner, int killAt, bool during) : IVaultStore
{
    private int _mutations;
    public int Mutations => _mutations;
    public string Location => inner.Location;

    private async Task<T> MutateAsync<T>(Func<Task<T>> mutation)
    {
        if (Interlocked.Increment(ref _mutations) != killAt) return await mutation();
        if (during)
        {
            _ = Task.Run(mutation);
            Thread.Sleep(1);
        }
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
        throw new InvalidOperationException("unreachable");
    }

    private Task MutateAsync(Func<Task> mutation) => MutateAsync(async () => { await mutation(); return true; });

    public Task<bool> ExistsAsync(string key, CancellationToken ct) => inner.ExistsAsync(key, ct);
    public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) => inner.ReadAllAsync(key, ct);
    public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken ct) => inner.ReadRangeAsync(key, offset, destination, ct);
    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);
    public IDisposable? TryAcquireLock(string key) => inner.TryAcquireLock(key);
    public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) => inner.ReadVersionedAsync(key, ct);

    public Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) => MutateAsync(() => inner.WriteAsync(key, content, ct));
    public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct) => MutateAsync(() => inner.TryCreateAsync(key, content, ct));
    public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken ct) => MutateAsync(() => inner.TryReplaceAsync(key, content, version, ct));
    public Task DeleteAsync(string key, CancellationToken ct) => MutateAsync(() => inner.DeleteAsync(key, ct));
    public Task DeleteIncompleteAsync(string prefix, CancellationToken ct) => MutateAsync(() => inner.DeleteIncompleteAsync(prefix, ct));
    public Task DeletePrefixAsync(string prefix, CancellationToken ct) => MutateAsync(() => inner.DeletePrefixAsync(prefix, ct));
}
