using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Engine.Vault;

/// <summary>
/// An opened vault. All state lives in the store (policies, items, points, jobs), so any process that
/// opens the same vault sees the same catalog; nothing is cached across calls except the key.
/// </summary>
public sealed class AsrVault
{
    private AsrVault(IVaultStore store, VaultHeader header, VaultKey? key, ILogger logger)
    {
        Store = store;
        Header = header;
        Key = key;
        Logger = logger;
        // Records are sealed and authenticated from format version 2 on (an encrypted version-1 vault keeps plain records).
        Records = new VaultRecords(store, key is not null && header.FormatVersion >= VaultHeader.SealedFormatVersion ? key : null);
        Jobs = new JobStore(Records);
        Catalog = new VaultCatalog(this);
        // The next use of this vault: job ends this process could not write (the storage did not answer) are retried now.
        JobRunner.KickPendingEnds(store.Location);
        HashSeed = key is null ? header.BlockHashSeed : BitConverter.ToUInt64(key.DeriveSubkey("block-hash-seed"), 0);
    }

    /// <summary>Key of the block hashes that detect changes (see BlockHashTable).</summary>
    internal ulong HashSeed { get; }

    public IVaultStore Store { get; }
    /// <summary>The clock points, retention and health are judged by; tests replace it to simulate days.</summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;
    public VaultHeader Header { get; }
    internal VaultKey? Key { get; }
    public ILogger Logger { get; }
    public JobStore Jobs { get; }
    /// <summary>Listings that go on past a damaged record (the cmdlets' Get-* views).</summary>
    public VaultCatalog Catalog { get; }
    public Events.EventLog Events => new(Records, Clock, Logger);
    /// <summary>How records are read and written (sealed and authenticated in an encrypted vault): see <see cref="VaultRecords"/>.</summary>
    public VaultRecords Records { get; }
    public string Location => Store.Location;
    /// <summary>Where the vault lives: LocalDirectory or AzureBlob.</summary>
    public string Backend => Store.Backend;
    /// <summary>How a blob vault authenticates (ConnectionString, ManagedIdentity, ...); null for a local directory.</summary>
    public string? Authentication => (Store as IVaultStoreCredentials)?.Authentication;
    public string VaultId => Header.VaultId;
    public int FormatVersion => Header.FormatVersion;
    public bool IsEncrypted => Header.Encryption is not null;
    public DateTimeOffset CreatedUtc => Header.CreatedUtc;
    public override string ToString() => Location;

    public static async Task<AsrVault> CreateAsync(IVaultStore store, string? passphrase, ILogger? logger, CancellationToken ct)
    {
        // A file where the vault directory should be: something already exists there (not an I/O error half-way).
        if (store is LocalDirectoryStore local && File.Exists(local.Location))
            throw new AsrException(AsrErrorIds.VaultAlreadyExists, AsrErrorKind.ResourceExists,
                $"'{local.Location}' is an existing file; a local vault is a directory. Give a new or empty directory.", local.Location);
        var header = new VaultHeader
        {
            VaultId = Guid.NewGuid().ToString("D"),
            CreatedUtc = DateTimeOffset.UtcNow,
            CreatedBy = $"{Environment.UserName}@{Environment.MachineName}",
            BlockHashSeed = BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)),
        };
        VaultKey? key = null;
        header.FormatVersion = VaultHeader.FormatVersionFor(encrypted: !string.IsNullOrEmpty(passphrase));
        if (!string.IsNullOrEmpty(passphrase))
        {
            header.Encryption = VaultKey.CreateSettings(passphrase, header.VaultId, header.FormatVersion, out key);
            header.BlockHashSeed = 0; // derived from the key instead, so it is not readable from the vault
        }
        if (!await store.TryCreateAsync(VaultHeader.Key, VaultJson.Serialize(header), ct).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.VaultAlreadyExists, AsrErrorKind.ResourceExists,
                $"A vault already exists at '{store.Location}'. Use Connect-AsrVault to open it.", store.Location);
        return new AsrVault(store, header, key, logger ?? NullLogger.Instance);
    }

    public static async Task<AsrVault> OpenAsync(IVaultStore store, string? passphrase, ILogger? logger, CancellationToken ct)
    {
        var data = await store.ReadAllAsync(VaultHeader.Key, ct).ConfigureAwait(false)
            ?? throw new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.ObjectNotFound,
                $"'{store.Location}' is not a vault (it has no {VaultHeader.Key}). Create one with New-AsrVault.", store.Location);
        VaultHeader header;
        try
        {
            header = VaultJson.Deserialize<VaultHeader>(data, VaultHeader.Key);
        }
        catch (AsrException ex)
        {
            throw new AsrException(AsrErrorIds.VaultFormatUnsupported, AsrErrorKind.InvalidData, $"The vault header at '{store.Location}' is unreadable: {ex.Message}", store.Location, ex);
        }
        if (header.Format != VaultHeader.FormatName || header.FormatVersion is < VaultHeader.PlainFormatVersion or > VaultHeader.CurrentFormatVersion)
            throw new AsrException(AsrErrorIds.VaultFormatUnsupported, AsrErrorKind.InvalidData,
                $"The vault at '{store.Location}' has format '{header.Format}' version {header.FormatVersion}; this module reads '{VaultHeader.FormatName}' versions {VaultHeader.PlainFormatVersion} to {VaultHeader.CurrentFormatVersion}.",
                store.Location);
        // Version 2 is the format of an encrypted vault (its records sealed); an unencrypted one is never written so.
        if (header.FormatVersion >= VaultHeader.SealedFormatVersion && header.Encryption is null)
            throw new AsrException(AsrErrorIds.VaultFormatUnsupported, AsrErrorKind.InvalidData,
                $"The vault header at '{store.Location}' says format version {header.FormatVersion} without encryption settings; this module writes version {header.FormatVersion} for encrypted vaults only, so it was not written by this module.",
                store.Location);
        // A hostile header must not make Connect-AsrVault derive for hours: bounds first, before any derivation.
        if (header.Encryption is not null)
            VaultKey.CheckSettings(header.Encryption, store.Location);
        VaultKey? key = null;
        if (header.Encryption is not null)
        {
            if (string.IsNullOrEmpty(passphrase))
                throw new AsrException(AsrErrorIds.VaultKeyRequired, AsrErrorKind.SecurityError,
                    $"The vault at '{store.Location}' is encrypted. Supply its key with -EncryptionKey.", store.Location);
            // Keyed by everything the key check covers, so a header edited in place is checked again, never served from the cache.
            key = KeyCache.GetOrAdd((header.VaultId, passphrase, header.FormatVersion, header.Encryption.Salt, header.Encryption.Iterations, header.Encryption.KeyCheck),
                k => VaultKey.Open(k.Passphrase, header.Encryption, header.VaultId, header.FormatVersion, store.Location));
        }
        else if (!string.IsNullOrEmpty(passphrase))
        {
            throw new AsrException(AsrErrorIds.VaultKeyNotExpected, AsrErrorKind.InvalidArgument,
                $"The vault at '{store.Location}' is not encrypted; omit -EncryptionKey.", store.Location);
        }
        var vault = new AsrVault(store, header, key, logger ?? NullLogger.Instance);
        await vault.SweepStaleTemporariesAsync(ct).ConfigureAwait(false);
        return vault;
    }

    /// <summary>
    /// How old a temporary file of an interrupted write must be before a vault open deletes it (see
    /// <see cref="IVaultStore.SweepStaleTemporariesAsync"/>): far longer than any live write keeps one.
    /// </summary>
    public static TimeSpan StaleTemporaryAge { get; set; } = TimeSpan.FromMinutes(15);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTime> LastSweepUtc = new(StringComparer.Ordinal);

    /// <summary>
    /// Removes the temporaries that writes killed mid-way left (names, jobs, item records, points...), at most once
    /// an hour per vault and process; a failure is only logged (a read-only vault, a listing error).
    /// </summary>
    internal async Task<int> SweepStaleTemporariesAsync(CancellationToken ct, bool force = false)
    {
        var now = DateTime.UtcNow;
        if (!force && LastSweepUtc.TryGetValue(Location, out var last) && now - last < TimeSpan.FromHours(1)) return 0;
        LastSweepUtc[Location] = now;
        try
        {
            int swept = await Store.SweepStaleTemporariesAsync(StaleTemporaryAge, ct).ConfigureAwait(false);
            if (swept > 0) Logger.LogInformation("Removed {Count} temporary file(s) older than {Age} left by interrupted writes in the vault at {Location}", swept, StaleTemporaryAge, Location);
            return swept;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or AsrException)
        {
            Logger.LogWarning("Could not sweep leftover temporary files in the vault at {Location}: {Message}", Location, ex.Message);
            return 0;
        }
    }

    // PBKDF2 at 600k iterations costs ~0.3 s; a session opens the same vault many times.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string VaultId, string Passphrase, int FormatVersion, string Salt, int Iterations, string KeyCheck), VaultKey> KeyCache = new();

    public static Task<AsrVault> CreateLocalAsync(string path, string? passphrase, ILogger? logger = null, CancellationToken ct = default)
    {
        if (File.Exists(path))
            throw new AsrException(AsrErrorIds.VaultAlreadyExists, AsrErrorKind.InvalidArgument, $"'{path}' is a file; a local vault is a directory.", path);
        if (Directory.Exists(path) && !File.Exists(Path.Combine(path, VaultHeader.Key)) && Directory.EnumerateFileSystemEntries(path).Any())
            throw new AsrException(AsrErrorIds.VaultAlreadyExists, AsrErrorKind.InvalidArgument,
                $"'{path}' is a directory that is not empty and not a vault. Give a new or empty directory.", path);
        return CreateAsync(new LocalDirectoryStore(path), passphrase, logger, ct);
    }

    public static Task<AsrVault> OpenLocalAsync(string path, string? passphrase, ILogger? logger = null, CancellationToken ct = default)
    {
        if (!Directory.Exists(path))
            throw new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.ObjectNotFound, $"'{path}' is not a vault: the directory does not exist.", path);
        return OpenAsync(new LocalDirectoryStore(path), passphrase, logger, ct);
    }

    // ---- policies ----

    public async Task<AsrPolicy> CreatePolicyAsync(AsrPolicy policy, CancellationToken ct)
    {
        policy.Validate();
        policy.Id = Guid.NewGuid();
        policy.CreatedUtc = DateTimeOffset.UtcNow;
        if (!await Records.TryCreateAsync(VaultLayout.Policy(policy.Name), policy, ct).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.PolicyAlreadyExists, AsrErrorKind.ResourceExists,
                $"A policy named '{policy.Name}' already exists in the vault. Choose another name or use the existing policy.", policy.Name);
        return policy;
    }

    /// <summary>The readable policies; a damaged one is logged and left out (Get-AsrPolicy shows it: <see cref="VaultCatalog"/>).</summary>
    public async Task<List<AsrPolicy>> GetPoliciesAsync(CancellationToken ct) =>
        Healthy(await Catalog.ListPoliciesAsync(ct).ConfigureAwait(false));

    public async Task<AsrPolicy> GetPolicyAsync(string name, CancellationToken ct) =>
        (VaultLayout.IsValidName(name) ? await Catalog.ReadPolicyRecordAsync(VaultLayout.Policy(name), ct).ConfigureAwait(false) : null)
        ?? throw new AsrException(AsrErrorIds.PolicyNotFound, AsrErrorKind.ObjectNotFound,
            $"No policy named '{name}' in the vault. Existing policies: {string.Join(", ", (await GetPoliciesAsync(ct).ConfigureAwait(false)).Select(p => p.Name).DefaultIfEmpty("(none)"))}.", name);

    /// <summary>The objects of a listing that read whole; each damaged one is logged as a warning (naming it) and skipped.</summary>
    private List<T> Healthy<T>(List<VaultListEntry<T>> entries) where T : class
    {
        var list = new List<T>(entries.Count);
        foreach (var e in entries)
        {
            if (e.Value is { } v) list.Add(v);
            else Logger.LogWarning("Skipping damaged vault record '{Key}': {Message}", e.Key, e.Error!.Message);
        }
        return list;
    }

    public async Task RemovePolicyAsync(string name, CancellationToken ct)
    {
        var policy = await GetPolicyAsync(name, ct).ConfigureAwait(false);
        var users = (await GetItemsAsync(ct).ConfigureAwait(false)).Where(i => string.Equals(i.PolicyName, policy.Name, StringComparison.OrdinalIgnoreCase)).ToList();
        if (users.Count > 0)
            throw new AsrException(AsrErrorIds.PolicyInUse, AsrErrorKind.InvalidOperation,
                $"Policy '{policy.Name}' is used by {string.Join(", ", users.Select(u => u.Name))}; disable their replication first.", policy.Name);
        await Store.DeleteAsync(VaultLayout.Policy(policy.Name), ct).ConfigureAwait(false);
    }

    // ---- protected items ----

    /// <summary>
    /// The readable items, as shown (see <see cref="VaultCatalog.DecorateAsync"/>); a damaged item record is logged and
    /// left out, so one bad record stops neither the agent nor another item's operation (Get-AsrProtectedItem shows it).
    /// </summary>
    public async Task<List<AsrProtectedItem>> GetItemsAsync(CancellationToken ct) =>
        Healthy(await Catalog.ListItemsAsync(ct).ConfigureAwait(false));

    public Task<AsrProtectedItem> GetItemAsync(string name, CancellationToken ct) => Catalog.GetItemAsync(name, ct);

    private Task<AsrProtectedItem?> ReadItemRecordAsync(string key, CancellationToken ct) => Catalog.ReadItemRecordAsync(key, ct);

    /// <summary>Saves a new item's record, then its host's change marker (<see cref="HostAssignments"/>).</summary>
    internal async Task SaveItemAsync(AsrProtectedItem item, CancellationToken ct)
    {
        await Records.WriteAsync(VaultLayout.Item(item.Id), item, ct).ConfigureAwait(false);
        await Assignments.RecordChangedAsync(null, item).ConfigureAwait(false);
    }

    internal HostAssignments Assignments => new(this);

    /// <summary>
    /// Atomic read-modify-write of an item record: several actors (a cycle, a drill, another
    /// session) change different fields of the same record, so none may save a stale copy.
    /// </summary>
    public async Task<AsrProtectedItem> UpdateItemAsync(string itemId, Action<AsrProtectedItem> mutate, CancellationToken ct) =>
        await Catalog.DecorateAsync(await UpdateItemRecordAsync(itemId, mutate, ct).ConfigureAwait(false), CancellationToken.None).ConfigureAwait(false);

    /// <summary>
    /// <see cref="UpdateItemAsync"/> returning the record as saved, not as shown: for a caller that goes on with the record's
    /// own fields (a cycle updates its item three times; showing it each time read the policy and listed the points).
    /// </summary>
    internal async Task<AsrProtectedItem> UpdateItemRecordAsync(string itemId, Action<AsrProtectedItem> mutate, CancellationToken ct)
    {
        using (await LockItemRecordAsync(itemId, ct).ConfigureAwait(false))
        {
            var item = await ReadItemRecordAsync(VaultLayout.Item(itemId), ct).ConfigureAwait(false)
                ?? throw new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound, $"Protected item {itemId} no longer exists.", itemId);
            string? previousHost = item.AgentHost;
            mutate(item);
            await Records.WriteAsync(VaultLayout.Item(item.Id), item, ct).ConfigureAwait(false);
            // Saved: from here nothing may throw a cancellation that would suggest it was not.
            await Assignments.RecordChangedAsync(previousHost, item).ConfigureAwait(false);
            item.VaultLocation = Location;
            return item;
        }
    }

    /// <summary>
    /// The short lock around an item's record. Also taken by retention while it decides and deletes, and
    /// by a reader pinning a point, so the two never cross (see <see cref="RecoveryPoints.PointPin"/>).
    /// </summary>
    internal async Task<IDisposable> LockItemRecordAsync(string itemId, CancellationToken ct)
    {
        // Held for moments by a live process; a process killed while holding it holds it until its lock lapses (at once
        // for a local vault, within a blob lease's 60 s at most). The wait outlasts that, so a dead holder never fails
        // the operation; the retry interval grows so that a blob vault is not polled hard while a lease runs out.
        var deadline = DateTime.UtcNow + RecordLockWait;
        var delay = TimeSpan.FromMilliseconds(10);
        IDisposable? recordLock;
        while ((recordLock = Store.TryAcquireLock(VaultLayout.ItemRecordLock(itemId))) is null)
        {
            if (DateTime.UtcNow > deadline)
                throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                    $"The record of item {itemId} stayed locked for {RecordLockWait.TotalSeconds:F0} s, longer than a dead process's lock lasts: another process is holding it. Retry when it is done.", itemId);
            await Task.Delay(delay, ct).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(500, delay.TotalMilliseconds * 1.5));
        }
        return recordLock;
    }

    /// <summary>How long an update waits for an item's record lock: longer than the longest blob lease (60 s).</summary>
    internal static TimeSpan RecordLockWait { get; } = TimeSpan.FromSeconds(75);

    /// <summary>
    /// How long a name claim must stay without its item record before another session takes it over. The
    /// session that claimed a name saves the record right after (one write, with its retries), so a claim
    /// without a record is usually a claim in progress, or a Disable between its deletes; only a crash between
    /// claim and save leaves one for good, and re-enabling that name waits this long once.
    /// </summary>
    internal TimeSpan NameClaimTakeoverDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Claims a name atomically, so two sessions enabling the same name cannot both succeed; a stale claim (no record
    /// after <see cref="NameClaimTakeoverDelay"/>) is taken over only at the version read, so two takeovers cannot both win. The claim holds the item id
    /// (sealed in an encrypted vault: a claim that does not authenticate is VaultDataCorrupt naming it, never taken over).
    /// </summary>
    internal async Task ClaimItemNameAsync(AsrProtectedItem item, CancellationToken ct)
    {
        string key = VaultLayout.ItemNameClaim(item.Name);
        var id = Records.SealBytes(key, System.Text.Encoding.UTF8.GetBytes(item.Id));
        string? orphan = null;
        var orphanSince = DateTime.UtcNow;
        for (int released = 0; ; )
        {
            if (await Store.TryCreateAsync(key, id, ct).ConfigureAwait(false)) return;
            var existing = await Store.ReadVersionedAsync(key, ct).ConfigureAwait(false);
            if (existing is null && ++released <= 3) continue; // released meanwhile: claim it again
            string? owner = existing is null ? null : System.Text.Encoding.UTF8.GetString(Records.OpenBytes(key, existing.Content));
            if (owner is null || await Store.ExistsAsync(VaultLayout.Item(owner), ct).ConfigureAwait(false)) break;
            // A claim without an item record: another session between its claim and its save, or what a crash
            // there left. Taking it over at once would let both sessions create the item: wait for its record.
            if (owner != orphan) (orphan, orphanSince) = (owner, DateTime.UtcNow);
            if (DateTime.UtcNow - orphanSince >= NameClaimTakeoverDelay)
            {
                // Only the claim as read is replaced (the blob's ETag; a compare-and-swap locally): of two sessions
                // taking over one stale claim, one wins and the other finds the winner's claim, a claim in progress.
                if (await Store.TryReplaceAsync(key, id, existing!.Version, ct).ConfigureAwait(false)) return;
                continue;
            }
            await Task.Delay(200, ct).ConfigureAwait(false);
        }
        throw new AsrException(AsrErrorIds.ProtectedItemAlreadyExists, AsrErrorKind.ResourceExists,
                $"A protected item named '{item.Name}' already exists in the vault. Choose another name, or Disable-AsrReplication it first.", item.Name);
    }

    internal async Task RemoveItemAsync(AsrProtectedItem item, CancellationToken ct)
    {
        // Release the name last: until then a half-removed item still blocks a new one of the same name.
        // The record as it is now names the host whose marker goes (a Set-AsrProtectedItem may have moved it since the caller read it).
        string? currentHost = null;
        try { currentHost = (await ReadItemRecordAsync(VaultLayout.Item(item.Id), ct).ConfigureAwait(false))?.AgentHost; }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt) { } // a damaged record is removed all the same
        await Store.DeleteAsync(VaultLayout.Item(item.Id), ct).ConfigureAwait(false);
        await Assignments.RemovedAsync(item).ConfigureAwait(false);
        if (currentHost is not null && !string.Equals(currentHost, item.AgentHost, StringComparison.OrdinalIgnoreCase))
            await Assignments.RemovedAsync(new AsrProtectedItem { Id = item.Id, Name = item.Name, AgentHost = currentHost }).ConfigureAwait(false);
        await Store.DeletePrefixAsync(VaultLayout.ItemPrefix(item.Id), ct).ConfigureAwait(false);
        // Only our own claim: during a long removal (a blob vault deletes object by object) an Enable of the same
        // name may have taken the claim over (ClaimItemNameAsync, after NameClaimTakeoverDelay).
        string claimKey = VaultLayout.ItemNameClaim(item.Name);
        if (await Store.ReadAllAsync(claimKey, ct).ConfigureAwait(false) is { } claim && ClaimedId(claimKey, claim) == item.Id)
            await Store.DeleteAsync(claimKey, ct).ConfigureAwait(false);
    }

    /// <summary>The item id a name claim holds; null when it does not authenticate (not ours, so not deleted).</summary>
    private string? ClaimedId(string claimKey, byte[] claim)
    {
        try { return System.Text.Encoding.UTF8.GetString(Records.OpenBytes(claimKey, claim)); }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt)
        {
            Logger.LogWarning("Leaving name claim '{Key}' alone: {Message}", claimKey, ex.Message);
            return null;
        }
    }

    // ---- recovery points ----

    /// <summary>
    /// Every point of the item, oldest first; strict: a damaged manifest throws VaultDataCorrupt naming it (retention
    /// and cycles must not act on a partial list). Get-AsrRecoveryPoint lists past it (<see cref="VaultCatalog.ListPointsAsync"/>).
    /// </summary>
    public async Task<List<AsrRecoveryPoint>> GetPointsAsync(AsrProtectedItem item, CancellationToken ct)
    {
        var list = new List<AsrRecoveryPoint>();
        foreach (var e in await Catalog.ListPointsAsync(item.Id, ct).ConfigureAwait(false))
            list.Add(e.Value ?? throw e.Error!);
        return list;
    }

    public Task<AsrRecoveryPoint?> GetLatestPointAsync(string itemId, CancellationToken ct) => Catalog.GetLatestPointAsync(itemId, ct);

    public async Task<AsrRecoveryPoint> GetPointAsync(string itemId, long sequence, CancellationToken ct)
    {
        return await ReadPointAsync(itemId, sequence, ct).ConfigureAwait(false)
            ?? throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound, $"Recovery point {sequence} does not exist.", sequence);
    }

    /// <summary>The manifest of a point as stored (null when absent), checked: see <see cref="VaultCatalog.ReadPointAsync"/>.</summary>
    internal Task<AsrRecoveryPoint?> ReadPointAsync(string itemId, long sequence, CancellationToken ct) => Catalog.ReadPointAsync(itemId, sequence, ct);

    /// <summary>
    /// The points whose deltas make up <paramref name="point"/>, base first. A parent is always an older point,
    /// so each step goes to a smaller sequence: a manifest naming itself, a newer point or one already walked
    /// as its parent (a cycle in a planted or damaged vault) stops the walk with VaultDataCorrupt, and the walk
    /// never takes more steps than there are manifests.
    /// </summary>
    public async Task<List<AsrRecoveryPoint>> GetPointChainAsync(AsrRecoveryPoint point, CancellationToken ct)
    {
        var chain = new List<AsrRecoveryPoint> { point };
        var current = point;
        while (current.ParentSequence is { } parent)
        {
            if (parent >= current.Sequence || parent <= 0)
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"The parent chain of recovery point {point} is corrupt: point {current.Sequence} names point {parent} as its parent " +
                    $"(a parent is always an older point; a chain that loops cannot be read). Vault record: '{VaultLayout.PointManifest(point.ItemId, current.Sequence)}'.",
                    VaultLayout.PointManifest(point.ItemId, current.Sequence));
            current = await GetPointAsync(point.ItemId, parent, ct).ConfigureAwait(false);
            chain.Add(current);
        }
        chain.Reverse();
        return chain;
    }
}
