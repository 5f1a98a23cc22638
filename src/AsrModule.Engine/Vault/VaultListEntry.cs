using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Vault;

/// <summary>
/// One object of a vault listing: either the object (<see cref="Value"/>) or, for a record that is damaged
/// (does not parse, validate or authenticate), the <see cref="Error"/> that says why, naming its key. A listing
/// goes on past a damaged record, so one bad object affects only what it describes (issue #12, item 6).
/// </summary>
/// <param name="Key">The vault key of the record.</param>
/// <param name="Name">What the record is called, where that is known without reading it (a policy's or job's key,
/// an item's name claim); null when not.</param>
public sealed record VaultListEntry<T>(string Key, string? Name, T? Value, AsrException? Error) where T : class
{
    public bool IsDamaged => Error is not null;

    internal static VaultListEntry<T> Ok(string key, string? name, T value) => new(key, name, value, null);

    internal static VaultListEntry<T> Damaged(string key, string? name, AsrException error) => new(key, name, null, error);
}
