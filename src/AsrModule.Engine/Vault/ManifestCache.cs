namespace AsrModule.Engine.Vault;

/// <summary>
/// Point manifests as stored (sealed in an encrypted vault), by the version a listing of the item's points gave them,
/// so a listing reads only the manifests that are new or were replaced since this process last read them (issue #15:
/// retention plans from every kept point after each cycle, then sweeps and repacks from them again; without this, a
/// cycle's requests grew with the points an item keeps: ~3 GETs per kept point per cycle).
/// <para>
/// What comes out is the stored bytes, opened, parsed and checked again by the caller like bytes just read: the cache
/// saves requests, not validation. A manifest is only taken from here when the listing done just before shows it at
/// the version it was read at: a manifest replaced (a rebase, a repack, another process) has a new version (a blob's
/// ETag; a local file's write time, stamped later than the one it replaces, and length) and is read again. Stores that
/// list no versions are never cached. Bounded: past <see cref="MaxBytes"/> the items listed longest ago are forgotten.
/// </para>
/// </summary>
internal sealed class ManifestCache
{
    /// <summary>Sealed manifests are ~0.5–2 KiB: tens of thousands of points.</summary>
    public const long MaxBytes = 32L << 20;

    private sealed class ItemManifests
    {
        public readonly Dictionary<string, (string Version, byte[] Stored)> ByKey = new(StringComparer.Ordinal);
        public long Bytes;
        public long LastUse;
    }

    private readonly Dictionary<string, ItemManifests> _items = new(StringComparer.Ordinal);
    private readonly long _maxBytes;
    private long _bytes;
    private long _clock;

    public ManifestCache(long maxBytes = MaxBytes) => _maxBytes = maxBytes;

    /// <summary>Bytes held now (tests).</summary>
    public long Bytes { get { lock (_items) return _bytes; } }

    /// <summary>The stored manifest <paramref name="key"/> when it was read at <paramref name="version"/>; null otherwise.</summary>
    public byte[]? TryGet(string itemId, string key, string? version)
    {
        if (version is null) return null;
        lock (_items)
        {
            if (!_items.TryGetValue(itemId, out var item) || !item.ByKey.TryGetValue(key, out var entry) || entry.Version != version) return null;
            item.LastUse = ++_clock;
            return entry.Stored;
        }
    }

    /// <summary>Keeps a manifest read (and checked) at the version its listing showed.</summary>
    public void Put(string itemId, string key, string? version, byte[] stored)
    {
        if (version is null || stored.Length > _maxBytes / 4) return;
        lock (_items)
        {
            if (!_items.TryGetValue(itemId, out var item)) _items[itemId] = item = new ItemManifests();
            if (item.ByKey.Remove(key, out var old)) Account(item, -old.Stored.Length);
            item.ByKey[key] = (version, stored);
            item.LastUse = ++_clock;
            Account(item, stored.Length);
            if (_bytes > _maxBytes) Shrink(keep: item);
        }
    }

    /// <summary>Forgets the item's manifests a listing no longer shows (pruned, removed).</summary>
    public void KeepOnly(string itemId, IReadOnlyCollection<string> listedKeys)
    {
        lock (_items)
        {
            if (!_items.TryGetValue(itemId, out var item)) return;
            var listed = listedKeys as ISet<string> ?? new HashSet<string>(listedKeys, StringComparer.Ordinal);
            foreach (var key in item.ByKey.Keys.Where(k => !listed.Contains(k)).ToList())
                if (item.ByKey.Remove(key, out var old)) Account(item, -old.Stored.Length);
            if (item.ByKey.Count == 0) _items.Remove(itemId);
        }
    }

    private void Account(ItemManifests item, long delta)
    {
        item.Bytes += delta;
        _bytes += delta;
    }

    /// <summary>Forgets whole items, listed longest ago first, down to three quarters of the bound.</summary>
    private void Shrink(ItemManifests keep)
    {
        foreach (var (id, item) in _items.Where(e => e.Value != keep).OrderBy(e => e.Value.LastUse).ToList())
        {
            if (_bytes <= _maxBytes * 3 / 4) return;
            _items.Remove(id);
            _bytes -= item.Bytes;
        }
    }
}
