using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Agent;

/// <summary>The agents a vault knows (their heartbeats) and the stop requests sent to them.</summary>
public static class AgentDirectory
{
    public static async Task<List<AsrAgentRecord>> ListAsync(AsrVault vault, CancellationToken ct)
    {
        var list = new List<AsrAgentRecord>();
        foreach (var o in await vault.Store.ListAsync(VaultLayout.AgentsPrefix, ct).ConfigureAwait(false))
            if (o.Key.EndsWith(".json", StringComparison.Ordinal) && await vault.Records.ReadAsync<AsrAgentRecord>(o.Key, ct).ConfigureAwait(false) is { } a)
            {
                a.VaultLocation = vault.Location;
                list.Add(a);
            }
        return list.OrderBy(a => a.HostName, StringComparer.OrdinalIgnoreCase).ToList();
    }

    public static async Task<AsrAgentRecord?> FindAsync(AsrVault vault, string hostName, CancellationToken ct)
    {
        if (!VaultLayout.IsValidName(hostName)) return null;
        var a = await vault.Records.ReadAsync<AsrAgentRecord>(VaultLayout.Agent(hostName), ct).ConfigureAwait(false);
        if (a is not null) a.VaultLocation = vault.Location;
        return a;
    }

    public static async Task<AsrAgentRecord> GetAsync(AsrVault vault, string hostName, CancellationToken ct) =>
        await FindAsync(vault, hostName, ct).ConfigureAwait(false)
        ?? throw new AsrException(AsrErrorIds.AgentNotFound, AsrErrorKind.ObjectNotFound,
            $"No agent for host '{hostName}' has run on the vault at '{vault.Location}'. Known agents: " +
            string.Join(", ", (await ListAsync(vault, ct).ConfigureAwait(false)).Select(a => a.HostName).DefaultIfEmpty("(none)")) + ". Start one with Start-AsrAgent.", hostName);

    /// <summary>Asks the agent to stop: it sees the request within a tick, cancels its cycles cleanly and exits.</summary>
    public static Task RequestStopAsync(AsrVault vault, string hostName, CancellationToken ct) =>
        vault.Store.WriteAsync(VaultLayout.AgentStopRequest(hostName), System.Text.Encoding.UTF8.GetBytes(DateTimeOffset.UtcNow.ToString("O")), ct);
}
