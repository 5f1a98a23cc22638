using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Vault;

/// <summary>
/// An agent's snapshot of the items assigned to its host, as it last read them (<see cref="VaultLayout.HostCatalog"/>):
/// each item as shown (record, latest point, what its health depends on) with the version of its change marker when it
/// was read. Written by the agent when what it keeps changed (at most every <c>AgentOptions.CatalogSnapshotInterval</c>);
/// read by a listing of every item (issue #15: 1,000 items cost ~22 requests instead of ~4,000).
/// </summary>
/// <remarks>
/// A snapshot entry is used only while the item's marker still has the version the entry names: every write of the item's
/// record rewrites its marker (<see cref="HostAssignments"/>), so an item changed since is read as before. Items whose
/// state moves without a record write (a cycle or another job in progress: its progress; a drill: its serving process)
/// are left out of the snapshot. Read from the vault, a snapshot is untrusted like an item record: sealed in an encrypted
/// vault, each entry's record checked as a record read from its key is, and used only for an item of the listing whose
/// record names the snapshot's host.
/// </remarks>
public sealed class HostCatalogSnapshot
{
    public string Host { get; set; } = "";
    public DateTimeOffset WrittenUtc { get; set; }
    public List<HostCatalogEntry> Items { get; set; } = new();
}

/// <summary>One item of a <see cref="HostCatalogSnapshot"/>.</summary>
public sealed class HostCatalogEntry
{
    /// <summary>The version of the item's change marker when the agent read the item.</summary>
    public string MarkerVersion { get; set; } = "";
    /// <summary>The item as shown then (its record, with the latest point of the manifests).</summary>
    public AsrProtectedItem Item { get; set; } = new();
    public bool RecordDamaged { get; set; }
    public double RpoThresholdMinutes { get; set; }
    public bool HasLatestPoint { get; set; }

    /// <summary>Whether an item's shown state may move without a write of its record (so it is not snapshotted).</summary>
    internal static bool IsVolatile(AsrProtectedItem item) => IsVolatileRecord(item) || item.ActiveJobOperation is not null || item.HealthInputs is null;

    /// <summary>What of <see cref="IsVolatile"/> the record itself shows: a cycle in progress, a drill.</summary>
    internal static bool IsVolatileRecord(AsrProtectedItem item) => item.CycleInProgressJobId is not null || item.TestFailover is not null;

    internal static HostCatalogEntry Of(AsrProtectedItem item, string markerVersion) => new()
    {
        MarkerVersion = markerVersion,
        Item = item,
        RecordDamaged = item.HealthInputs!.RecordDamaged,
        RpoThresholdMinutes = item.HealthInputs.RpoThresholdMinutes,
        HasLatestPoint = item.HealthInputs.HasLatestPoint,
    };
}

/// <summary>Reads the agents' snapshots for a listing: the entries still current, by item id.</summary>
internal static class HostCatalogSnapshots
{
    public static async Task<Dictionary<string, HostCatalogEntry>> ReadCurrentAsync(AsrVault vault, CancellationToken ct)
    {
        var current = new System.Collections.Concurrent.ConcurrentDictionary<string, HostCatalogEntry?>(StringComparer.Ordinal);
        var hosts = (await vault.Store.ListFoldersAsync(VaultLayout.HostsPrefix, ct).ConfigureAwait(false)).Where(VaultLayout.IsValidName).ToList();
        await Parallel.ForEachAsync(hosts, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (host, token) =>
        {
            var listing = await vault.Store.ListAsync(VaultLayout.HostPrefix(host), token).ConfigureAwait(false);
            string key = VaultLayout.HostCatalog(host);
            if (!listing.Any(o => o.Key == key)) return;
            var markers = HostAssignments.MarkerVersions(listing, host);
            HostCatalogSnapshot? snapshot;
            try
            {
                snapshot = await vault.Records.ReadAsync<HostCatalogSnapshot>(key, token).ConfigureAwait(false);
            }
            catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.VaultDataCorrupt or AsrErrorIds.VaultFormatUnsupported)
            {
                vault.Logger.LogWarning("Ignoring the catalog snapshot '{Key}': {Message}", key, ex.Message);
                return;
            }
            if (snapshot?.Items is null || !string.Equals(snapshot.Host, host, StringComparison.OrdinalIgnoreCase)) return;
            foreach (var entry in snapshot.Items)
            {
                if (entry?.Item is not { } item || item.Id is null || !VaultLayout.IsValidName(item.Id)) continue;
                // Current only while the marker is the version the agent read, and only for an item of this host.
                if (!markers.TryGetValue(item.Id, out var version) || version is null || version != entry.MarkerVersion) continue;
                if (!string.Equals(item.AgentHost, host, StringComparison.OrdinalIgnoreCase) || HostCatalogEntry.IsVolatileRecord(item)) continue;
                try { VaultRecordChecks.CheckItem(item, VaultLayout.Item(item.Id)); }
                catch (AsrException) { continue; }
                // Named by two hosts' current snapshots (a reassignment in flight): read it instead.
                current.AddOrUpdate(item.Id, entry, (_, _) => null);
            }
        }).ConfigureAwait(false);
        return current.Where(e => e.Value is not null).ToDictionary(e => e.Key, e => e.Value!, StringComparer.Ordinal);
    }
}
