using System.Collections.Concurrent;
using System.Management.Automation.Runspaces;
using AsrModule.Engine.Vault;

namespace AsrModule.Infrastructure;

/// <summary>
/// The session's default vault (per runspace, set by Connect-AsrVault) and the vaults this process has
/// opened, by location, so an object piped from any vault is resolved in the vault it came from
/// (with the key it was opened with).
/// </summary>
internal static class VaultSession
{
    private static readonly ConcurrentDictionary<Guid, AsrVault> DefaultByRunspace = new();
    private static readonly ConcurrentDictionary<string, AsrVault> OpenedByLocation = new(StringComparer.Ordinal);

    private static Guid RunspaceId => Runspace.DefaultRunspace?.InstanceId ?? Guid.Empty;

    public static AsrVault? Default => DefaultByRunspace.TryGetValue(RunspaceId, out var v) ? v : null;

    public static void SetDefault(AsrVault vault)
    {
        Remember(vault);
        DefaultByRunspace[RunspaceId] = vault;
    }

    public static bool ClearDefault() => DefaultByRunspace.TryRemove(RunspaceId, out _);

    public static void Remember(AsrVault vault) => OpenedByLocation[vault.Location] = vault;

    public static AsrVault? Find(string? location) =>
        location is not null && OpenedByLocation.TryGetValue(location, out var v) ? v : null;
}
