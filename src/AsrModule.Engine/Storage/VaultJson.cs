using System.Text.Json;
using System.Text.Json.Serialization;

namespace AsrModule.Engine.Storage;

/// <summary>The JSON conventions of every human-readable vault object (catalog, manifests, jobs).</summary>
public static class VaultJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T Deserialize<T>(byte[] data, string key)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(data, Options) ?? throw new JsonException("null document");
        }
        catch (JsonException ex)
        {
            throw new Errors.AsrException(Errors.AsrErrorIds.VaultDataCorrupt, Errors.AsrErrorKind.InvalidData,
                $"Vault object '{key}' is not valid: {ex.Message}", key, ex);
        }
    }

    /// <summary>
    /// Reads a plain JSON object. Not for vault records: those go through <see cref="Vault.VaultRecords"/> (AsrVault.Records),
    /// which authenticates them in an encrypted vault; this reads what is stored as it is (tests, tools).
    /// </summary>
    public static async Task<T?> ReadAsync<T>(this IVaultStore store, string key, CancellationToken ct) where T : class
    {
        var data = await store.ReadAllAsync(key, ct).ConfigureAwait(false);
        return data is null ? null : Deserialize<T>(data, key);
    }

    /// <summary>Writes a plain JSON object. Not for vault records: see <see cref="Vault.VaultRecords"/>.</summary>
    public static Task WriteJsonAsync<T>(this IVaultStore store, string key, T value, CancellationToken ct) =>
        store.WriteAsync(key, Serialize(value), ct);
}
