using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Agent;

/// <summary>
/// What an agent knows of the vault between ticks: the items assigned to its host (as shown: latest point, health) and
/// the policies. A tick costs two listings when nothing changed, whatever the vault holds (issue #15): the host's folder
/// (<see cref="VaultLayout.HostPrefix"/>: a change marker per assigned item, and the stop request) and policies/. Only
/// items whose marker's version changed, and policies whose version changed, are read again. A full read of the catalog
/// runs at start and every <see cref="AgentOptions.FullCatalogInterval"/>: every item record (one request each, concurrently),
/// of which only the host's items are decorated as Get-AsrProtectedItem shows them. It finds what a marker missed (a write
/// that died between record and marker, a vault written by an older module) and writes the missing markers.
/// </summary>
internal sealed class AgentCatalog(AsrVault vault, string host, TimeSpan fullReadInterval, ILogger logger)
{
    /// <summary>An item by the version of its marker; Item null when the record does not name this host (a stale or planted marker, read once per version).</summary>
    private sealed record CachedItem(string? Version, AsrProtectedItem? Item);
    private sealed record CachedPolicy(string? Version, AsrPolicy? Policy);

    private readonly Dictionary<string, CachedItem> _items = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CachedPolicy> _policies = new(StringComparer.Ordinal);
    private DateTimeOffset? _lastFullRead;
    /// <summary>What the agent keeps changed since its snapshot was written; when that was.</summary>
    private bool _snapshotStale = true;
    private DateTimeOffset? _lastSnapshot;

    /// <summary>Stop-AsrAgent asked this host's agent to stop (seen by the last refresh).</summary>
    public bool StopRequested { get; private set; }

    /// <summary>Items read again by the last refresh (0 on a quiet tick).</summary>
    public int ItemsReread { get; private set; }

    /// <summary>The items assigned to this host, health evaluated for now.</summary>
    public List<AsrProtectedItem> Items
    {
        get
        {
            var now = vault.Clock.GetUtcNow();
            var list = _items.Values.Where(c => c.Item is not null).Select(c => c.Item!)
                .OrderBy(i => i.Name, StringComparer.OrdinalIgnoreCase).ThenBy(i => i.Id, StringComparer.Ordinal).ToList();
            foreach (var i in list) VaultCatalog.EvaluateHealth(i, now);
            return list;
        }
    }

    /// <summary>The readable policies by name (a damaged one is left out, as the full catalog leaves it out).</summary>
    public Dictionary<string, AsrPolicy> Policies =>
        _policies.Values.Where(p => p.Policy is not null).Select(p => p.Policy!).ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    public async Task RefreshAsync(CancellationToken ct)
    {
        var now = vault.Clock.GetUtcNow();
        // The markers are listed before anything is read: a record read after is at least as new as the version seen.
        var markers = await vault.Store.ListAsync(VaultLayout.HostPrefix(host), ct).ConfigureAwait(false);
        StopRequested = markers.Any(o => o.Key == VaultLayout.AgentStopRequest(host));
        var versions = HostAssignments.MarkerVersions(markers, host);
        var changedPolicies = await RefreshPoliciesAsync(ct).ConfigureAwait(false);
        if (_lastFullRead is not { } last || now - last >= fullReadInterval)
        {
            await FullReadAsync(versions, ct).ConfigureAwait(false);
            _lastFullRead = now;
            return;
        }
        ItemsReread = 0;
        foreach (var (id, cached) in _items.Where(e => !versions.ContainsKey(e.Key)).ToList())
        {
            // An item whose marker the full read could not write is kept (and the write tried again); one whose marker went is gone.
            if (cached.Version is null && cached.Item is not null) await RepairMarkerAsync(cached.Item, ct).ConfigureAwait(false);
            else _items.Remove(id);
            _snapshotStale = true;
        }
        foreach (var (id, version) in versions)
        {
            if (_items.TryGetValue(id, out var cached) && cached.Version is not null && cached.Version == version && !ReadEveryTick(cached.Item, changedPolicies)) continue;
            ItemsReread++;
            _snapshotStale = true;
            _items[id] = new CachedItem(version, await ReadMineAsync(id, ct).ConfigureAwait(false));
        }
    }

    /// <summary>
    /// Writes the host's catalog snapshot (<see cref="HostCatalogSnapshot"/>) when what the agent keeps changed since the
    /// last one and <paramref name="interval"/> has passed: the items it keeps, each with the marker version it read it at,
    /// but those whose shown state moves without a record write. A failed write is logged and tried again later: a listing
    /// then reads the items themselves.
    /// </summary>
    public async Task WriteSnapshotIfDueAsync(TimeSpan interval, CancellationToken ct)
    {
        var now = vault.Clock.GetUtcNow();
        if (!_snapshotStale || (_lastSnapshot is { } last && now - last < interval)) return;
        _ = Items; // health evaluated for now
        var snapshot = new HostCatalogSnapshot
        {
            Host = host.ToLowerInvariant(),
            WrittenUtc = now,
            Items = _items.Values.Where(c => c.Item is { } i && c.Version is not null && !HostCatalogEntry.IsVolatile(i))
                .Select(c => HostCatalogEntry.Of(c.Item!, c.Version!)).ToList(),
        };
        _lastSnapshot = now;
        try
        {
            await vault.Records.WriteAsync(VaultLayout.HostCatalog(host), snapshot, ct).ConfigureAwait(false);
            _snapshotStale = false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "The catalog snapshot of host {Host} was not written; listings read its items one by one until it is", host);
        }
    }

    /// <summary>
    /// Whether an item is read again although its marker did not change: what its health and state as shown depend on
    /// beyond its record changed, or may change without a write: its policy (RPO threshold, damage), a cycle of another
    /// process in progress (a dead one shows the item ResyncRequired, and makes its next cycle due at once), a drill this
    /// machine serves (its process may end). Few items at a time; the others cost nothing.
    /// </summary>
    private static bool ReadEveryTick(AsrProtectedItem? item, HashSet<string> changedPolicies) =>
        item is not null && (changedPolicies.Contains(item.PolicyName)
            || item.CycleInProgressJobId is { } job && !Jobs.JobRunner.TryGetRunning(job, out _)
            || item.TestFailover is { } drill && drill.OwnerHost == Environment.MachineName);

    /// <summary>The item of that id as shown, when its record names this host; null otherwise (the marker is only a hint).</summary>
    private async Task<AsrProtectedItem?> ReadMineAsync(string id, CancellationToken ct)
    {
        try
        {
            var item = await vault.Catalog.ReadItemRecordAsync(VaultLayout.Item(id), ct).ConfigureAwait(false);
            if (item is null || !IsMine(item)) return null;
            return await vault.Catalog.DecorateAsync(item, ct).ConfigureAwait(false);
        }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt)
        {
            WarnDamaged(VaultLayout.Item(id), ex);
            return null;
        }
    }

    /// <summary>A damaged record stops neither the agent nor the other items (Get-AsrProtectedItem shows it): it is logged and skipped.</summary>
    private void WarnDamaged(string key, AsrException ex) => logger.LogWarning("Skipping damaged vault record '{Key}': {Message}", key, ex.Message);

    private bool IsMine(AsrProtectedItem item) => string.Equals(item.AgentHost, host, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Every item record of the vault read, the host's kept and only those decorated (one request an item of another host,
    /// not four: 10 agents starting on a 1,000-item blob vault made ~40,000 requests before); a damaged record is skipped
    /// with a warning; a marker missing for one of the host's items is written.
    /// </summary>
    private async Task FullReadAsync(Dictionary<string, string?> versions, CancellationToken ct)
    {
        var mine = new List<AsrProtectedItem>();
        foreach (var entry in await vault.Catalog.ListItemsWhereAsync(IsMine, ct).ConfigureAwait(false))
        {
            if (entry.Value is { } item) mine.Add(item);
            else WarnDamaged(entry.Key, entry.Error!);
        }
        _items.Clear();
        _snapshotStale = true;
        ItemsReread = mine.Count;
        foreach (var item in mine)
        {
            if (!versions.TryGetValue(item.Id, out var version))
            {
                logger.LogInformation("Item {Item} is assigned to host {Host} but had no change marker; writing it", item.Name, host);
                await RepairMarkerAsync(item, ct).ConfigureAwait(false);
                version = null; // read again at the next refresh, by the marker's version then
            }
            _items[item.Id] = new CachedItem(version, item);
        }
    }

    private async Task RepairMarkerAsync(AsrProtectedItem item, CancellationToken ct)
    {
        try { await vault.Assignments.TouchAsync(host, item.Id, ct).ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OperationCanceledException) { logger.LogWarning(ex, "Writing the change marker of {Item} failed", item.Name); }
    }

    /// <summary>Reads the policies whose version changed; returns the names of those that changed, appeared or went.</summary>
    private async Task<HashSet<string>> RefreshPoliciesAsync(CancellationToken ct)
    {
        var listed = await vault.Store.ListAsync(VaultLayout.PoliciesPrefix, ct).ConfigureAwait(false);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var changed = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var o in listed)
        {
            if (!o.Key.EndsWith(".json", StringComparison.Ordinal) || o.Key.Count(c => c == '/') != 1) continue;
            keys.Add(o.Key);
            if (_policies.TryGetValue(o.Key, out var cached) && cached.Version is not null && cached.Version == o.Version) continue;
            AsrPolicy? policy = null;
            try { policy = await vault.Catalog.ReadPolicyRecordAsync(o.Key, ct).ConfigureAwait(false); }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt) { logger.LogWarning("Skipping damaged vault record '{Key}': {Message}", o.Key, ex.Message); }
            _policies[o.Key] = new CachedPolicy(o.Version, policy);
            changed.Add(PolicyName(o.Key));
        }
        foreach (var gone in _policies.Keys.Where(k => !keys.Contains(k)).ToList())
        {
            _policies.Remove(gone);
            changed.Add(PolicyName(gone));
        }
        return changed;
    }

    /// <summary>The name a policy key is for (policies/&lt;name&gt;.json, lowercase: items name it in any case).</summary>
    private static string PolicyName(string key) => System.IO.Path.GetFileNameWithoutExtension(key);
}
