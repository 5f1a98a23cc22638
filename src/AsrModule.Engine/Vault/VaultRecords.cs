using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;

namespace AsrModule.Engine.Vault;

/// <summary>
/// The one way the engine reads and writes the records of a vault (policies, items, manifests, jobs with their plan
/// runs, events, agent heartbeats, group points, pins, name claims): everything but the header, the packs and the
/// binary metadata (indexes, full maps, trackers: <see cref="MetadataSealer"/> directly).
/// <para>
/// In an encrypted vault of format version 2 (<see cref="VaultHeader.SealedFormatVersion"/>) every record is sealed by
/// <see cref="MetadataSealer"/> (zstd, then AES-256-GCM under a subkey of its own key, with the key as associated
/// data): it is confidential, and it authenticates itself and where it belongs. A record that is not sealed, whose tag
/// fails, or that was sealed for another key (copied or moved) is <see cref="Errors.AsrErrorIds.VaultDataCorrupt"/>
/// naming its key, never obeyed: whoever can write to the container but has no key can delete, withhold or roll
/// records back, but cannot plant or alter one (docs/design.md, "Threat model").
/// </para>
/// <para>
/// An unencrypted vault (and an encrypted one of format version 1, written before records were authenticated) keeps
/// plain JSON records, as before: readable by people and by earlier versions of this module.
/// </para>
/// </summary>
public sealed class VaultRecords
{
    private readonly VaultKey? _key;

    internal VaultRecords(IVaultStore store, VaultKey? key)
    {
        Store = store;
        _key = key;
    }

    public IVaultStore Store { get; }

    /// <summary>Whether records are sealed (and unsealed ones refused).</summary>
    public bool Sealed => _key is not null;

    /// <summary>The stored form of <paramref name="value"/> as the record <paramref name="key"/>.</summary>
    public byte[] Serialize<T>(string key, T value) => SealBytes(key, VaultJson.Serialize(value));

    /// <summary>The record <paramref name="key"/> from its stored form; VaultDataCorrupt naming it when it does not parse or authenticate.</summary>
    public T Deserialize<T>(string key, byte[] stored) => VaultJson.Deserialize<T>(OpenBytes(key, stored), key);

    /// <summary>Raw record content (a name claim's item id) in its stored form.</summary>
    public byte[] SealBytes(string key, ReadOnlySpan<byte> content) =>
        _key is null ? content.ToArray() : MetadataSealer.Seal(content, _key, key);

    /// <summary>Raw record content from its stored form: checked against the vault key when records are sealed.</summary>
    public byte[] OpenBytes(string key, byte[] stored) =>
        _key is null ? stored : MetadataSealer.Open(stored, _key, key);

    /// <summary>The record, or null when there is none.</summary>
    public async Task<T?> ReadAsync<T>(string key, CancellationToken ct) where T : class
    {
        var data = await Store.ReadAllAsync(key, ct).ConfigureAwait(false);
        return data is null ? null : Deserialize<T>(key, data);
    }

    public Task WriteAsync<T>(string key, T value, CancellationToken ct) => Store.WriteAsync(key, Serialize(key, value), ct);

    /// <summary>Writes the record only when none of that key exists; false when one does.</summary>
    public Task<bool> TryCreateAsync<T>(string key, T value, CancellationToken ct) => Store.TryCreateAsync(key, Serialize(key, value), ct);
}
