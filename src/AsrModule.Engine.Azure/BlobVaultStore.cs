using System.Collections.Concurrent;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using Azure;
using Azure.Core;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The vault in an Azure Blob Storage container: one block blob per vault object, named by its key.
/// <list type="bullet">
/// <item>Atomic objects: a block blob becomes visible only when it is committed (a single Put Blob, or
/// Put Block List after its blocks are staged), replacing any previous version whole. Blocks of an upload
/// that never committed are invisible to reads and listings and are garbage-collected by the service, so
/// there is nothing for <see cref="DeleteIncompleteAsync"/> to remove.</item>
/// <item>Create-if-absent: the commit carries If-None-Match: *.</item>
/// <item>Locks: a 60 s lease on a small lock blob, renewed by the holder; a dead process stops renewing and
/// its lock frees itself within the lease duration.</item>
/// <item>Transient faults are retried with exponential backoff by the SDK's retry policy; what still fails
/// becomes an <see cref="AsrException"/> (<see cref="AsrErrorIds.VaultUnavailable"/>,
/// <see cref="AsrErrorIds.VaultAccessDenied"/>, <see cref="AsrErrorIds.VaultNotFound"/>).</item>
/// </list>
/// <see cref="Location"/> and every message name the container without its query (no SAS, no key).
/// </summary>
public sealed class BlobVaultStore : IVaultStore, IVaultStoreCredentials
{
    private const string CreateTokenMetadata = "asrcreatetoken";
    private readonly BlobContainerClient _container;
    private readonly BlobVaultStoreOptions _options;
    private readonly StorageTransferOptions _transfer;
    private readonly ILogger _logger;
    private readonly int _maxRetries;
    /// <summary>Leases whose release failed when their lock was disposed (an outage): released in the background.</summary>
    private readonly ConcurrentDictionary<string, BlobLeaseClient> _unreleased = new(StringComparer.Ordinal);

    /// <summary>A store on a container client the caller built (its own credential and retry policy).</summary>
    public BlobVaultStore(BlobContainerClient container, BlobVaultStoreOptions? options = null)
        : this(container, options ?? new BlobVaultStoreOptions(), maxRetries: null)
    {
    }

    private BlobVaultStore(BlobContainerClient container, BlobVaultStoreOptions options, int? maxRetries)
    {
        ArgumentNullException.ThrowIfNull(container);
        options.Validate();
        _container = container;
        _options = options;
        _maxRetries = maxRetries ?? -1;
        _logger = options.Logger ?? NullLogger.Instance;
        _transfer = new StorageTransferOptions
        {
            // Up to one block in a single Put Blob; larger objects (packs) as parallel staged blocks.
            InitialTransferSize = options.UploadBlockSize,
            MaximumTransferSize = options.UploadBlockSize,
            MaximumConcurrency = options.UploadConcurrency,
        };
        Location = LocationOf(container.Uri);
    }

    // ---- factories ----

    /// <summary>
    /// A container addressed by URI, authenticated by an Azure.Identity credential (DefaultAzureCredential,
    /// ManagedIdentityCredential, ...). The identity needs the Storage Blob Data Contributor role (or equivalent).
    /// </summary>
    public static BlobVaultStore FromTokenCredential(Uri containerUri, TokenCredential credential, BlobVaultStoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(credential);
        options ??= new BlobVaultStoreOptions();
        var uri = CheckContainerUri(containerUri);
        if (!string.IsNullOrEmpty(uri.Query))
            throw InvalidTarget(uri, "a container URI used with a credential must not carry a query (a SAS goes without a credential)");
        if (uri.Scheme != Uri.UriSchemeHttps)
            throw InvalidTarget(uri, "a token credential is only sent over https");
        return new BlobVaultStore(new BlobContainerClient(uri, credential, options.CreateClientOptions()), options, options.MaxRetries);
    }

    /// <summary>A container authenticated by DefaultAzureCredential (environment, workload or managed identity, Azure CLI/PowerShell sign-in, ...).</summary>
    public static BlobVaultStore FromDefaultCredential(Uri containerUri, BlobVaultStoreOptions? options = null) =>
        FromTokenCredential(containerUri, new global::Azure.Identity.DefaultAzureCredential(), options);

    /// <summary>A container authenticated by a managed identity (system-assigned, or user-assigned by client id): Azure Automation runbooks, VMs.</summary>
    public static BlobVaultStore FromManagedIdentity(Uri containerUri, string? clientId = null, BlobVaultStoreOptions? options = null) =>
        FromTokenCredential(containerUri,
            string.IsNullOrEmpty(clientId)
                ? new global::Azure.Identity.ManagedIdentityCredential(global::Azure.Identity.ManagedIdentityId.SystemAssigned)
                : new global::Azure.Identity.ManagedIdentityCredential(global::Azure.Identity.ManagedIdentityId.FromUserAssignedClientId(clientId)),
            options);

    /// <summary>A container in the account of a storage connection string (account key, SAS or UseDevelopmentStorage=true).</summary>
    public static BlobVaultStore FromConnectionString(string connectionString, string containerName, BlobVaultStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        ArgumentException.ThrowIfNullOrEmpty(containerName);
        options ??= new BlobVaultStoreOptions();
        BlobContainerClient client;
        try
        {
            client = new BlobContainerClient(connectionString, containerName, options.CreateClientOptions());
        }
        catch (Exception ex) when (IsConnectionStringError(ex))
        {
            throw InvalidConnectionString(ex, containerName);
        }
        return new BlobVaultStore(client, options, options.MaxRetries);
    }

    internal static bool IsConnectionStringError(Exception ex) => ex is FormatException or ArgumentException or InvalidOperationException;

    /// <summary>The parser's own message may quote the string, and the string holds the key: only its type is shown.</summary>
    internal static AsrException InvalidConnectionString(Exception ex, string containerName) =>
        new(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument,
            $"The storage connection string is not valid ({ex.GetType().Name}); expected 'DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...' or 'BlobEndpoint=...;SharedAccessSignature=...'.", containerName);

    /// <summary>A container addressed by a SAS URI (https://account.blob.core.windows.net/container?sv=...&amp;sig=...). The SAS needs racwdl permissions.</summary>
    public static BlobVaultStore FromSasUri(Uri containerSasUri, BlobVaultStoreOptions? options = null)
    {
        options ??= new BlobVaultStoreOptions();
        var uri = CheckContainerUri(containerSasUri);
        if (!uri.Query.Contains("sig=", StringComparison.OrdinalIgnoreCase))
            throw InvalidTarget(uri, "the URI carries no SAS token (no 'sig' parameter)");
        return new BlobVaultStore(new BlobContainerClient(uri, options.CreateClientOptions()), options, options.MaxRetries);
    }

    /// <summary>A container authenticated with the account name and key.</summary>
    public static BlobVaultStore FromSharedKey(Uri containerUri, StorageSharedKeyCredential credential, BlobVaultStoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(credential);
        options ??= new BlobVaultStoreOptions();
        var uri = CheckContainerUri(containerUri);
        return new BlobVaultStore(new BlobContainerClient(uri, credential, options.CreateClientOptions()), options, options.MaxRetries);
    }

    internal static Uri CheckContainerUri(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (!uri.IsAbsoluteUri || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            throw new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument,
                "The vault URI must be an absolute http(s) URI of a blob container.", LocationOfString(uri));
        return uri;
    }

    private static AsrException InvalidTarget(Uri uri, string why) =>
        new(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument, $"'{LocationOf(uri)}' cannot be used: {why}.", LocationOf(uri));

    /// <summary>The container URI without query, fragment or user info: what may be shown and stored.</summary>
    internal static string LocationOf(Uri uri) =>
        new UriBuilder(uri) { Query = "", Fragment = "", UserName = "", Password = "" }.Uri.GetLeftPart(UriPartial.Path).TrimEnd('/');

    private static string LocationOfString(Uri uri) => uri.IsAbsoluteUri ? LocationOf(uri) : "(relative URI)";

    // ---- the container ----

    /// <inheritdoc/>
    public string Location { get; }

    public string Backend => "AzureBlob";

    /// <inheritdoc/>
    public int PreferredReadConcurrency => _options.ReadConcurrency;

    /// <summary>The connection this store was opened from (null when built from a client or a factory directly).</summary>
    public BlobVaultConnection? Connection { get; internal set; }

    /// <inheritdoc/>
    public string Authentication => Connection?.Authentication.ToString() ?? "Client";

    /// <inheritdoc/>
    public void ForwardTo(IDictionary<string, string?> environment)
    {
        if (Connection is null)
            throw new AsrException(AsrErrorIds.VaultCredentialNotForwardable, AsrErrorKind.InvalidOperation,
                $"The vault at '{Location}' was opened from a client object whose credential cannot be handed to another process.", Location);
        Connection.ForwardTo(environment);
    }

    internal BlobContainerClient Container => _container;
    internal BlobVaultStoreOptions Options => _options;

    /// <summary>
    /// Creates the container when it does not exist (New-AsrVault); true when it was created. A SAS scoped to
    /// the container cannot create one: then an existing container is accepted as it is.
    /// </summary>
    public async Task<bool> CreateContainerIfNotExistsAsync(CancellationToken cancellationToken)
    {
        try
        {
            var created = await _container.CreateIfNotExistsAsync(PublicAccessType.None, null, null, cancellationToken).ConfigureAwait(false);
            return created is not null;
        }
        catch (RequestFailedException ex) when (ex.Status == 403)
        {
            if (await ContainerExistsAsync(cancellationToken).ConfigureAwait(false)) return false;
            throw Translate(ex, null, "create the container", cancellationToken)!;
        }
        catch (Exception ex) when (Translate(ex, null, "create the container", cancellationToken) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>Whether the container exists.</summary>
    public Task<bool> ContainerExistsAsync(CancellationToken cancellationToken) =>
        CallAsync(null, "check the container", async ct =>
        {
            try
            {
                return (bool)await _container.ExistsAsync(ct).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 403)
            {
                // A container SAS may not read the container's properties, but may list it.
                try
                {
                    await foreach (var _ in _container.GetBlobsAsync(new GetBlobsOptions(), ct).AsPages(pageSizeHint: 1).ConfigureAwait(false)) break;
                    return true;
                }
                catch (RequestFailedException missing) when (missing.Status == 404 && missing.ErrorCode == BlobErrorCode.ContainerNotFound)
                {
                    return false;
                }
            }
        }, cancellationToken);

    // ---- IVaultStore ----

    private static void CheckKey(string key)
    {
        if (string.IsNullOrEmpty(key) || key.StartsWith('/') || key.Contains("..", StringComparison.Ordinal) || key.Contains('\\'))
            throw new ArgumentException($"Invalid vault key '{key}'.", nameof(key));
    }

    private BlobClient Blob(string key)
    {
        CheckKey(key);
        // BlobClient (not BlockBlobClient): its uploads are partitioned into parallel staged blocks.
        return _container.GetBlobClient(key);
    }

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync(key, "check", async ct => (bool)await blob.ExistsAsync(ct).ConfigureAwait(false), cancellationToken);
    }

    public Task<byte[]?> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync(key, "read", async ct =>
        {
            try
            {
                var content = await blob.DownloadContentAsync(ct).ConfigureAwait(false);
                return content.Value.Content.ToArray();
            }
            catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.BlobNotFound)
            {
                return null;
            }
        }, cancellationToken);
    }

    /// <summary>One ranged GET; exactly <paramref name="destination"/>.Length bytes or an error (FileNotFound/EndOfStream, like the local store).</summary>
    public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (destination.Length == 0) return Task.CompletedTask;
        return CallAsync<object?>(key, "read", async ct =>
        {
            try
            {
                var response = await blob.DownloadStreamingAsync(new BlobDownloadOptions { Range = new HttpRange(offset, destination.Length) }, ct).ConfigureAwait(false);
                await using var stream = response.Value.Content;
                int done = 0;
                while (done < destination.Length)
                {
                    int n = await stream.ReadAsync(destination[done..], ct).ConfigureAwait(false);
                    if (n == 0) throw new EndOfStreamException($"Vault object '{key}' is shorter than expected.");
                    done += n;
                }
                return null;
            }
            catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.BlobNotFound)
            {
                throw new FileNotFoundException($"Vault object '{key}' does not exist.", key);
            }
            catch (RequestFailedException ex) when (ex.Status == 416)
            {
                throw new EndOfStreamException($"Vault object '{key}' is shorter than expected.");
            }
        }, cancellationToken);
    }

    public Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync<object?>(key, "write", async ct =>
        {
            // Without conditions an upload replaces the blob; the new version is visible only once committed.
            await blob.UploadAsync(new BinaryData(content), new BlobUploadOptions { TransferOptions = _transfer }, ct).ConfigureAwait(false);
            return null;
        }, cancellationToken);
    }

    public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync(key, "create", async ct =>
        {
            for (int attempt = 0; ; attempt++)
            {
                // The token tells our own blob from another writer's when a retried request meets the blob
                // its first, apparently failed, attempt created.
                string token = Guid.NewGuid().ToString("N");
                try
                {
                    await blob.UploadAsync(new BinaryData(content), new BlobUploadOptions
                    {
                        Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                        Metadata = new Dictionary<string, string> { [CreateTokenMetadata] = token },
                        TransferOptions = _transfer,
                    }, ct).ConfigureAwait(false);
                    return true;
                }
                catch (RequestFailedException ex) when (ex.Status is 409 or 412)
                {
                    // BlobAlreadyExists (Put Blob) or ConditionNotMet (Put Block List), or a lease on it.
                    try
                    {
                        var properties = await blob.GetPropertiesAsync(null, ct).ConfigureAwait(false);
                        return properties.Value.Metadata.TryGetValue(CreateTokenMetadata, out var found) && found == token;
                    }
                    catch (RequestFailedException gone) when (gone.Status == 404 && gone.ErrorCode == BlobErrorCode.BlobNotFound && attempt < 3)
                    {
                        // Deleted between the two requests: try the create again.
                    }
                }
            }
        }, cancellationToken);
    }

    /// <summary>The version is the blob's ETag.</summary>
    public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync(key, "read", async ct =>
        {
            try
            {
                var content = await blob.DownloadContentAsync(ct).ConfigureAwait(false);
                return new VersionedObject(content.Value.Content.ToArray(), content.Value.Details.ETag.ToString());
            }
            catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.BlobNotFound)
            {
                return (VersionedObject?)null;
            }
        }, cancellationToken);
    }

    /// <summary>
    /// Commits with <c>If-Match: &lt;ETag read&gt;</c>. A retried request can meet the blob its own first attempt replaced
    /// (the ETag no longer matches): as with creates, a random token in the metadata tells "mine" from "another writer's".
    /// </summary>
    public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(version);
        var blob = Blob(key);
        return CallAsync(key, "replace", async ct =>
        {
            string token = Guid.NewGuid().ToString("N");
            try
            {
                await blob.UploadAsync(new BinaryData(content), new BlobUploadOptions
                {
                    Conditions = new BlobRequestConditions { IfMatch = new ETag(version) },
                    Metadata = new Dictionary<string, string> { [CreateTokenMetadata] = token },
                    TransferOptions = _transfer,
                }, ct).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412 || (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.BlobNotFound))
            {
                try
                {
                    var properties = await blob.GetPropertiesAsync(null, ct).ConfigureAwait(false);
                    return properties.Value.Metadata.TryGetValue(CreateTokenMetadata, out var found) && found == token;
                }
                catch (RequestFailedException gone) when (gone.Status == 404 && gone.ErrorCode == BlobErrorCode.BlobNotFound)
                {
                    return false;
                }
            }
        }, cancellationToken);
    }

    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return CallAsync<IReadOnlyList<VaultObjectInfo>>(prefix, "list", async ct =>
        {
            var result = new List<VaultObjectInfo>();
            // A flat listing is recursive; only committed blobs are listed.
            await foreach (var blob in _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix.Length == 0 ? null : prefix }, ct).ConfigureAwait(false))
            {
                if (blob.Deleted) continue;
                result.Add(new VaultObjectInfo(blob.Name, blob.Properties.ContentLength ?? 0, blob.Properties.ETag?.ToString()));
            }
            result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
            return result;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<string>> ListFoldersAsync(string prefix, CancellationToken cancellationToken)
    {
        if (!prefix.EndsWith('/')) throw new ArgumentException("A folder prefix ends with '/'.", nameof(prefix));
        return CallAsync<IReadOnlyList<string>>(prefix, "list", async ct =>
        {
            var result = new List<string>();
            // By hierarchy: one entry per "folder" below the prefix, not one per blob under it.
            await foreach (var item in _container.GetBlobsByHierarchyAsync(new GetBlobsByHierarchyOptions { Prefix = prefix, Delimiter = "/" }, ct).ConfigureAwait(false))
                if (item.IsPrefix) result.Add(item.Prefix[prefix.Length..].TrimEnd('/'));
            result.Sort(StringComparer.Ordinal);
            return result;
        }, cancellationToken);
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var blob = Blob(key);
        return CallAsync<object?>(key, "delete", async ct =>
        {
            await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, null, ct).ConfigureAwait(false);
            return null;
        }, cancellationToken);
    }

    /// <summary>
    /// Nothing to do: an upload that never committed left only uncommitted blocks, which no read or listing
    /// sees and which the service discards (after a week, or when the blob is next committed).
    /// </summary>
    public Task DeleteIncompleteAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Task.CompletedTask;
    }

    public async Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        // Like the local store: the prefix names something (never the whole vault).
        CheckKey(prefix.TrimEnd('/'));
        var objects = await ListAsync(prefix, cancellationToken).ConfigureAwait(false);
        await Parallel.ForEachAsync(objects, new ParallelOptions { MaxDegreeOfParallelism = _options.DeleteConcurrency, CancellationToken = cancellationToken },
            async (o, ct) => await DeleteAsync(o.Key, ct).ConfigureAwait(false)).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes a lease on the lock blob <paramref name="key"/> (created empty when missing). Null when another
    /// holder's lease is active. The returned lock renews the lease every <see cref="BlobVaultStoreOptions.LockRenewInterval"/>
    /// until disposed, which releases it; a holder that dies stops renewing, and the lock frees itself
    /// within <see cref="BlobVaultStoreOptions.LockLeaseDuration"/> (60 s by default).
    /// </summary>
    public IDisposable? TryAcquireLock(string key)
    {
        var blob = Blob(key);
        // Held in this process: the service would refuse too. Answering here spares the blocking request
        // that tasks polling for a busy lock (the record lock) would otherwise each make on a pool thread.
        // The service stays the authority: this only short-cuts a refusal it would give.
        string heldKey = Location + "\n" + key;
        bool registered = HeldInProcess.TryAdd(heldKey, 0);
        if (!registered && !_options.SkipInProcessLockCheck) return null;
        bool acquired = false;
        try
        {
            ReleaseLeftLease(key);
            var result = AcquireLease(blob, key, registered ? heldKey : null);
            acquired = result is not null;
            return result;
        }
        finally
        {
            if (!acquired && registered) HeldInProcess.TryRemove(heldKey, out _);
        }
    }

    /// <summary>Locks held by this process, by container location and key.</summary>
    private static readonly ConcurrentDictionary<string, byte> HeldInProcess = new(StringComparer.Ordinal);

    /// <summary>Locks of this store whose lease lapsed while held, until taken again.</summary>
    private readonly ConcurrentDictionary<string, byte> _lapsed = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public bool LockLapsed(string key) => _lapsed.ContainsKey(key);

    private BlobLock? AcquireLease(BlobClient blob, string key, string? heldKey)
    {
        var lease = blob.GetBlobLeaseClient(Guid.NewGuid().ToString());
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    lease.Acquire(_options.LockLeaseDuration);
                    _lapsed.TryRemove(key, out _);
                    return new BlobLock(this, key, heldKey, lease);
                }
                catch (RequestFailedException ex) when (ex.Status == 409)
                {
                    // LeaseAlreadyPresent, or a lease being broken: someone else holds it.
                    return null;
                }
                catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.BlobNotFound && attempt < 3)
                {
                    try
                    {
                        blob.Upload(BinaryData.Empty, new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } });
                    }
                    catch (RequestFailedException created) when (created.Status is 409 or 412)
                    {
                        // Another process created it first.
                    }
                }
            }
        }
        catch (Exception ex) when (Translate(ex, key, "lock", CancellationToken.None) is { } mapped)
        {
            throw mapped;
        }
    }

    // ---- locks ----

    /// <summary>A held lease: renewed by a background loop, released on dispose.</summary>
    internal sealed class BlobLock : ILeasedLock
    {
        private readonly BlobVaultStore _store;
        private readonly string _key;
        private readonly string? _heldKey;
        private readonly BlobLeaseClient _lease;
        private readonly CancellationTokenSource _stop = new();
        private readonly CancellationTokenSource _lost = new();
        private int _disposed;

        public BlobLock(BlobVaultStore store, string key, string? heldKey, BlobLeaseClient lease)
        {
            _store = store;
            _key = key;
            _heldKey = heldKey;
            _lease = lease;
            _ = Task.Run(RenewAsync);
        }

        public string LeaseId => _lease.LeaseId;

        /// <summary>Cancelled when the lease could not be renewed before another holder took it (the lock is no longer held).</summary>
        public CancellationToken Lost => _lost.Token;

        private async Task RenewAsync()
        {
            var interval = _store._options.RenewInterval;
            var delay = interval;
            while (true)
            {
                try
                {
                    await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
                    // Bounded by the interval: a hanging endpoint must not eat the lease's remaining time
                    // in one attempt (the SDK's network timeout is far longer than a lease).
                    using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    attempt.CancelAfter(interval);
                    await _lease.RenewAsync(null, attempt.Token).ConfigureAwait(false);
                    delay = interval;
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (RequestFailedException) when (_stop.IsCancellationRequested)
                {
                    return; // released meanwhile
                }
                catch (RequestFailedException ex) when (ex.Status is 409 or 412)
                {
                    // The lease expired and another holder acquired it (or the lock blob was replaced).
                    _store._logger.LogError("The lock {Key} on {Vault} was lost: its lease could not be renewed in time ({Status} {Code}).",
                        _key, _store.Location, ex.Status, ex.ErrorCode);
                    _store._lapsed[_key] = 0;
                    _lost.Cancel();
                    return;
                }
                catch (Exception ex)
                {
                    // Transient (the SDK already retried): try again sooner, while the lease still runs.
                    _store._logger.LogWarning("Renewing the lock {Key} on {Vault} failed ({Error}); retrying.", _key, _store.Location, ex.GetType().Name);
                    delay = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, interval.Ticks / 4));
                }
            }
        }

        /// <summary>Test hook: stops renewing without releasing, as if the process had died.</summary>
        internal void Abandon()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _stop.Cancel();
            // The process "died": its lease is left to expire, and the in-process view forgets it (a test
            // in this same process then waits for the lease, as another process would).
            if (_heldKey is not null) HeldInProcess.TryRemove(_heldKey, out _);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            // Not waiting for the renewal loop: blocking here would hold a pool thread (the lock is taken and
            // released on hot paths); a renewal racing the release fails harmlessly (stopped, not reported).
            _stop.Cancel();
            try
            {
                if (!_lost.IsCancellationRequested) Release();
            }
            finally
            {
                if (_heldKey is not null) HeldInProcess.TryRemove(_heldKey, out _);
            }
        }

        private void Release()
        {
            try
            {
                using var timeout = new CancellationTokenSource(_store._options.LockReleaseTimeout);
                _lease.Release(null, timeout.Token);
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412)
            {
                // Not ours any more (expired and taken, or broken): nothing to release.
            }
            catch (Exception ex)
            {
                _store._logger.LogWarning("Releasing the lock {Key} on {Vault} failed ({Error}); it is released in the background or expires within {Lease}.",
                    _key, _store.Location, ex.GetType().Name, _store._options.LockLeaseDuration);
                _store.ReleaseInBackground(_key, _lease);
            }
        }
    }

    /// <summary>Keeps trying to release a disposed lock's lease (an outage) until it succeeds or the lease must have expired.</summary>
    private void ReleaseInBackground(string key, BlobLeaseClient lease)
    {
        _unreleased[key] = lease;
        var giveUp = DateTime.UtcNow + _options.LockLeaseDuration;
        _ = Task.Run(async () =>
        {
            while (DateTime.UtcNow < giveUp && _unreleased.TryGetValue(key, out var current) && ReferenceEquals(current, lease))
            {
                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                if (TryRelease(key, lease)) return;
            }
            _unreleased.TryRemove(KeyValuePair.Create(key, lease));
        });
    }

    /// <summary>Before taking a lock again, releases this store's own lease on it that a dispose could not release.</summary>
    private void ReleaseLeftLease(string key)
    {
        if (_unreleased.TryGetValue(key, out var lease)) TryRelease(key, lease);
    }

    private bool TryRelease(string key, BlobLeaseClient lease)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            lease.Release(null, timeout.Token);
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412 or 404)
        {
            // Expired and taken by another holder, or gone: nothing of ours is left.
        }
        catch (Exception)
        {
            return false;
        }
        _unreleased.TryRemove(KeyValuePair.Create(key, lease));
        return true;
    }

    // ---- errors ----

    private async Task<T> CallAsync<T>(string? key, string operation, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, key, operation, cancellationToken) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>
    /// The <see cref="AsrException"/> a storage failure becomes, or null to let it through (our own
    /// exceptions, a cancellation the caller asked for). Messages are built here from the status and error
    /// code only: a credential's secret, a SAS or a key never reaches them.
    /// </summary>
    internal AsrException? Translate(Exception ex, string? key, string operation, CancellationToken cancellationToken)
    {
        if (ex is AsrException or ArgumentException or FileNotFoundException or EndOfStreamException) return null;
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested) return null;
        string what = key is null ? operation : $"{operation} '{key}'";
        if (BlobRetryPolicy.IsTlsFailure(ex))
            return new AsrException(AsrErrorIds.VaultAccessDenied, AsrErrorKind.SecurityError,
                $"Could not {what} in the vault at '{Location}': the endpoint's TLS certificate is not trusted by this machine ({Cause(ex)}). " +
                "Check the URL, or add the issuing CA to the machine's trusted roots.", Location);
        switch (ex)
        {
            case global::Azure.Identity.AuthenticationFailedException auth:
                return new AsrException(AsrErrorIds.VaultAccessDenied, AsrErrorKind.SecurityError,
                    $"Could not {what} in the vault at '{Location}': the credential could not get a token ({FirstLine(auth.Message)}). " +
                    "Sign in (Connect-AzAccount, az login), or check the managed identity or the credential given.", Location);
            case RequestFailedException rfe:
                return FromStatus(rfe, what, attempts: null);
            case AggregateException agg when agg.InnerExceptions.Count > 0:
            {
                // The retry policy gave up: every attempt failed without a response (connection refused or reset, timeout).
                var last = agg.InnerExceptions[^1];
                if (last is RequestFailedException { Status: > 0 } withStatus) return FromStatus(withStatus, what, agg.InnerExceptions.Count);
                return Unavailable(what, Cause(last), agg.InnerExceptions.Count, ex);
            }
            case HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException:
                return Unavailable(what, Cause(ex), null, ex);
            default:
                return null;
        }
    }

    private AsrException FromStatus(RequestFailedException ex, string what, int? attempts)
    {
        string code = string.IsNullOrEmpty(ex.ErrorCode) ? "" : " " + ex.ErrorCode;
        if (ex.Status == 0)
            return Unavailable(what, Cause(ex), attempts, ex);
        if (ex.Status is 401 or 403)
            // No inner exception: the service's reply may echo the request's signature.
            return new AsrException(AsrErrorIds.VaultAccessDenied, AsrErrorKind.SecurityError,
                $"Access to the vault at '{Location}' was denied (HTTP {ex.Status}{code}) when trying to {what}. " +
                "Check the credential, account key or SAS: it must be valid, not expired, and allow read, add, create, write, delete and list on the container.", Location);
        if (ex.Status == 404 && ex.ErrorCode == BlobErrorCode.ContainerNotFound)
            return new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.ObjectNotFound,
                $"The container '{Location}' does not exist. Create the vault with New-AsrVault.", Location, ex);
        if (ex.Status is 408 or 429 or >= 500)
            return Unavailable(what, $"HTTP {ex.Status}{code}", attempts, ex);
        return new AsrException(AsrErrorIds.VaultRequestFailed, AsrErrorKind.InvalidOperation,
            $"The vault at '{Location}' refused to {what}: HTTP {ex.Status}{code}.", Location, ex);
    }

    private AsrException Unavailable(string what, string cause, int? attempts, Exception inner)
    {
        string tries = attempts is { } n ? $"{n} attempts" : _maxRetries >= 0 ? $"{_maxRetries + 1} attempts" : "the client's retries";
        return new AsrException(AsrErrorIds.VaultUnavailable, AsrErrorKind.ConnectionError,
            $"The vault at '{Location}' is unavailable: could not {what} after {tries} with backoff ({cause}). " +
            "Vault objects are written whole, so none is half-written; run the operation again when the storage is reachable.",
            Location, inner);
    }

    private static string Cause(Exception ex)
    {
        var innermost = ex;
        while (innermost.InnerException is not null) innermost = innermost.InnerException;
        return FirstLine(innermost.Message);
    }

    private static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return (newline < 0 ? message : message[..newline]).Trim();
    }
}
