using AsrModule.Engine.Storage;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure;

/// <summary>
/// A vault location as users write it — a local directory or a blob container URL — to a store. A URL gets the
/// credential the environment provides (<see cref="BlobVaultConnection.FromEnvironment"/>): this is how the agent
/// and <c>-Vault &lt;url&gt;</c> open a blob vault.
/// </summary>
public static class VaultStores
{
    /// <summary>The location as vault objects report it: a full path, or the container URL without its query.</summary>
    public static string NormalizeLocation(string location) =>
        BlobVaultConnection.IsContainerUrl(location) ? BlobVaultStore.LocationOf(new Uri(location)) : Path.GetFullPath(location);

    public static IVaultStore Open(string location, ILogger? logger = null) =>
        BlobVaultConnection.IsContainerUrl(location)
            ? BlobVaultConnection.FromEnvironment(new Uri(location)).OpenStore(new BlobVaultStoreOptions { Logger = logger })
            : new LocalDirectoryStore(location);
}
