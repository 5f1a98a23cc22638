using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Vault;

/// <summary>
/// The per-host change markers an agent lists instead of the whole vault (issue #15; docs/design.md "Scale"): after
/// every write of an item record, the marker <c>hosts/&lt;host&gt;/items/&lt;item id&gt;</c> of the host the item is
/// assigned to is rewritten, and a marker of a host it left is deleted. A listing of the host's folder then shows,
/// by each marker's version (a blob's ETag), which items changed since the agent's last look.
/// </summary>
/// <remarks>
/// A marker is written after the record, so an agent that sees a new version reads a record at least that new. It is
/// a hint, never an authority: the agent reads the record and acts only when the record names its host. A write that
/// dies between record and marker leaves a change the marker does not show; the agent's full read (at start and every
/// <c>AgentOptions.FullCatalogInterval</c>) finds it and writes the missing marker. Marker writes never fail the
/// operation that saved the record (it is saved): a failure is logged and left to that full read.
/// </remarks>
internal sealed class HostAssignments(AsrVault vault)
{
    /// <summary>
    /// After <paramref name="item"/>'s record was saved: its host's marker rewritten, then the one of a host it left
    /// removed; each on its own, so a failure of one does not skip the other.
    /// </summary>
    public async Task RecordChangedAsync(string? previousHost, AsrProtectedItem item)
    {
        if (item.AgentHost is { } host && VaultLayout.IsValidName(host))
            await QuietlyAsync(item, () => TouchAsync(host, item.Id, CancellationToken.None)).ConfigureAwait(false);
        if (previousHost is not null && VaultLayout.IsValidName(previousHost) && !string.Equals(previousHost, item.AgentHost, StringComparison.OrdinalIgnoreCase))
            await QuietlyAsync(item, () => vault.Store.DeleteAsync(VaultLayout.HostItem(previousHost, item.Id), CancellationToken.None)).ConfigureAwait(false);
    }

    private async Task QuietlyAsync(AsrProtectedItem item, Func<Task> write)
    {
        try { await write().ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            vault.Logger.LogWarning(ex, "A host change marker of item {Item} was not written or removed; agents find the change at their next full read", item.Name);
        }
    }

    /// <summary>The item is gone: its host's marker too (a marker without a record is dropped by the agent anyway).</summary>
    public Task RemovedAsync(AsrProtectedItem item) => RecordChangedAsync(item.AgentHost, new AsrProtectedItem { Id = item.Id, Name = item.Name });

    /// <summary>
    /// The item markers of a listing of <paramref name="host"/>'s folder (<see cref="VaultLayout.HostPrefix"/>): each item id
    /// (a valid name) with its marker's version. The stop request and the catalog snapshot in that folder are not markers.
    /// </summary>
    public static Dictionary<string, string?> MarkerVersions(IEnumerable<Storage.VaultObjectInfo> listing, string host)
    {
        string itemsPrefix = VaultLayout.HostItemsPrefix(host);
        var versions = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var o in listing)
        {
            string id = o.Key.StartsWith(itemsPrefix, StringComparison.Ordinal) ? o.Key[itemsPrefix.Length..] : "";
            if (VaultLayout.IsValidName(id)) versions[id] = o.Version;
        }
        return versions;
    }

    /// <summary>Rewrites the marker: a new version (its content is the item id, sealed in an encrypted vault).</summary>
    public Task TouchAsync(string host, string itemId, CancellationToken ct)
    {
        string key = VaultLayout.HostItem(host, itemId);
        return vault.Store.WriteAsync(key, vault.Records.SealBytes(key, System.Text.Encoding.UTF8.GetBytes(itemId)), ct);
    }
}
