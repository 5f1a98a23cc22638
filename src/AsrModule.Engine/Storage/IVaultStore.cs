namespace AsrModule.Engine.Storage;

/// <summary>
/// The vault's storage backend: a flat namespace of objects named by '/'-separated keys.
/// Objects are written whole and appear atomically (readers never see half an object), which is
/// what makes point publication crash-safe. The local directory is the embedded default; an Azure
/// Blob backend implements the same contract.
/// </summary>
public interface IVaultStore
{
    /// <summary>Human-readable location (a path or a URI without secrets).</summary>
    string Location { get; }

    /// <summary>The kind of storage ("LocalDirectory", "AzureBlob"), shown on the vault object.</summary>
    string Backend => GetType().Name;

    /// <summary>How many ranged reads a bulk reader (export, resync) keeps in flight: remote stores hide latency with more.</summary>
    int PreferredReadConcurrency => Environment.ProcessorCount;

    Task<bool> ExistsAsync(string key, CancellationToken cancellationToken);

    /// <summary>Reads a whole object, or null when it does not exist.</summary>
    Task<byte[]?> ReadAllAsync(string key, CancellationToken cancellationToken);

    /// <summary>Reads <paramref name="destination"/>.Length bytes starting at <paramref name="offset"/>.</summary>
    Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken);

    /// <summary>Writes an object atomically (durable before it becomes visible), replacing any existing one.</summary>
    Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>Writes an object atomically only when no object of that key exists; false when one does.</summary>
    Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>
    /// Starts a create-only write of <paramref name="key"/> in parts (<see cref="IObjectUpload"/>); the object appears,
    /// whole, when the upload commits, and not at all if another object of that name exists by then.
    /// <paramref name="expectedLength"/> is a hint. By default the parts are gathered in memory and committed with
    /// <see cref="TryCreateAsync"/>; a store that can append to an invisible object (a local temporary file) streams them.
    /// </summary>
    IObjectUpload BeginCreate(string key, int expectedLength) => new BufferedObjectUpload(this, key, expectedLength);

    /// <summary>
    /// Reads a whole object with its version, or null when it does not exist. The version is opaque (a blob's ETag, a
    /// digest of a local file's content) and changes with every write; pass it to <see cref="TryReplaceAsync"/>.
    /// </summary>
    Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces an object atomically only while it is still the version <paramref name="version"/> read by
    /// <see cref="ReadVersionedAsync"/> (compare-and-swap: a blob's If-Match, a lock around compare and rename in a
    /// directory); false when it changed or is gone meanwhile. Of two writers replacing the same version, one wins.
    /// </summary>
    Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken cancellationToken);

    /// <summary>Keys under a prefix (recursively), in ordinal order, each with its version where the store has one.</summary>
    Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// The names of the "folders" directly under <paramref name="prefix"/> (which ends with '/'): for keys
    /// <c>items/a/item.json</c> and <c>items/b/points/1.json</c> and prefix <c>items/</c>, <c>a</c> and <c>b</c>, in ordinal order.
    /// One request on a blob store (a listing by hierarchy) and one directory read locally, however much lies below:
    /// what a catalog of a large vault lists instead of every object (issue #15).
    /// </summary>
    async Task<IReadOnlyList<string>> ListFoldersAsync(string prefix, CancellationToken cancellationToken) =>
        (await ListAsync(prefix, cancellationToken).ConfigureAwait(false))
            .Select(o => o.Key[prefix.Length..]).Where(rest => rest.Contains('/')).Select(rest => rest[..rest.IndexOf('/')])
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    Task DeleteAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes what writes that never completed left under a prefix (a process killed mid-write).
    /// Call only while holding the lock that guards writers of that prefix.
    /// </summary>
    Task DeleteIncompleteAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes what writes left behind anywhere in the vault whose last change is older than <paramref name="olderThan"/>
    /// (so never a write in progress); returns how many. Stores whose writes leave nothing behind (blobs) do nothing.
    /// </summary>
    Task<int> SweepStaleTemporariesAsync(TimeSpan olderThan, CancellationToken cancellationToken) => Task.FromResult(0);

    /// <summary>Deletes every object under a prefix.</summary>
    Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Takes an exclusive, process-crash-safe lock named by <paramref name="key"/>; null when another
    /// holder has it. Disposing releases it.
    /// </summary>
    IDisposable? TryAcquireLock(string key);

    /// <summary>
    /// Whether a lock this process took has lapsed while held (a blob lease that could not be renewed through an
    /// outage), so another process may hold it now. A local file lock never lapses.
    /// </summary>
    bool LockLapsed(string key) => false;
}

/// <summary>
/// A listed object. <paramref name="Version"/> changes whenever the object is written (a blob's ETag; a local file's
/// write time and size, each write being a new file renamed into place); null when the store cannot say. The agent
/// compares it between listings to re-read only what changed (issue #15).
/// </summary>
public sealed record VaultObjectInfo(string Key, long Length, string? Version = null);

/// <summary>An object's content and the version it was read at (see <see cref="IVaultStore.ReadVersionedAsync"/>).</summary>
public sealed record VersionedObject(byte[] Content, string Version);
