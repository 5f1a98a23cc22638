using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication;

/// <summary>
/// How an item is replicated continuously: which agent, which group, which freeze script, which
/// QEMU guest. A null property leaves the setting as it is; an empty string clears it.
/// </summary>
public sealed record ItemReplicationSettings
{
    public string? AgentHost { get; init; }
    public string? ReplicationGroup { get; init; }
    public string? AppConsistencyScript { get; init; }
    public string? QmpSocketPath { get; init; }
    /// <summary>Another policy (must exist; checked by the caller against the vault).</summary>
    public string? PolicyName { get; init; }

    /// <summary>Applies the settings to <paramref name="item"/> after checking them against the rest of the catalog.</summary>
    internal void ApplyTo(AsrProtectedItem item, IReadOnlyList<AsrProtectedItem> others)
    {
        static string? Clear(string? value, string? current) => value is null ? current : value.Length == 0 ? null : value;
        string? host = Clear(AgentHost, item.AgentHost), group = Clear(ReplicationGroup, item.ReplicationGroup);
        string? script = Clear(AppConsistencyScript, item.AppConsistencyScript), qmp = Clear(QmpSocketPath, item.QmpSocketPath);
        string policy = string.IsNullOrEmpty(PolicyName) ? item.PolicyName : PolicyName;
        if (host is not null && !VaultLayout.IsValidName(host))
            throw new AsrException(AsrErrorIds.AgentHostNameInvalid, AsrErrorKind.InvalidArgument,
                $"'{host}' is not a valid agent host name for '{item.Name}': use 1–64 letters, digits, '.', '_' or '-'.", host);
        if (group is not null)
        {
            if (!VaultLayout.IsValidName(group))
                throw Invalid(item, $"'{group}' is not a valid replication group name: use 1–64 letters, digits, '.', '_' or '-'.", group);
            // One agent takes one group's points at one instant under one cadence.
            foreach (var member in others.Where(o => o.Id != item.Id && string.Equals(o.ReplicationGroup, group, StringComparison.OrdinalIgnoreCase)))
            {
                if (!string.Equals(member.PolicyName, policy, StringComparison.OrdinalIgnoreCase))
                    throw Invalid(item, $"Replication group '{group}' uses policy '{member.PolicyName}' (member '{member.Name}'); '{item.Name}' would use '{policy}'. Members of a group share one policy.", group);
                if (!string.Equals(member.AgentHost, host, StringComparison.OrdinalIgnoreCase))
                    throw Invalid(item, $"Replication group '{group}' is replicated by agent host '{member.AgentHost}' (member '{member.Name}'); '{item.Name}' would be on '{host}'. Members of a group share one agent host.", group);
            }
        }
        if (group is not null && script is null && qmp is null)
            throw Invalid(item, $"'{item.Name}' cannot join replication group '{group}' without an app-consistency script or a QEMU source: " +
                "its disks are read live, and only a freeze of its writers makes one instant across the group. Add -AppConsistencyScript or -QmpSocket.", group);
        if (script is not null && !File.Exists(script))
            throw new AsrException(AsrErrorIds.AppConsistencyScriptInvalid, AsrErrorKind.ObjectNotFound,
                $"App-consistency script '{script}' for '{item.Name}' does not exist. Give an executable that accepts 'freeze' and 'thaw' (see samples/hooks/fsfreeze.sh).", script);
        if (script is not null && OperatingSystem.IsLinux() && (File.GetUnixFileMode(script) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
            throw new AsrException(AsrErrorIds.AppConsistencyScriptInvalid, AsrErrorKind.InvalidArgument,
                $"App-consistency script '{script}' for '{item.Name}' is not executable (chmod +x it).", script);
        // Only a script given now is pinned (hashed, and allowed in this process): a change of another setting
        // must not turn the script path the vault holds into one this host runs.
        string? scriptHash = script is not null && !string.IsNullOrEmpty(AppConsistencyScript)
            ? Consistency.FreezeScriptTrust.Pin(script, item.Name)
            : script is null ? null : item.AppConsistencyScriptSha256;
        if (qmp is not null && !File.Exists(qmp))
            throw new AsrException(AsrErrorIds.QmpSocketNotFound, AsrErrorKind.ObjectNotFound,
                $"QMP socket '{qmp}' for '{item.Name}' does not exist. Start QEMU with -qmp unix:{qmp},server=on,wait=off.", qmp);
        item.PolicyName = policy;
        item.AgentHost = host;
        item.ReplicationGroup = group;
        item.AppConsistencyScript = script;
        item.AppConsistencyScriptSha256 = scriptHash;
        item.QmpSocketPath = qmp;
    }

    private static AsrException Invalid(AsrProtectedItem item, string message, string target) =>
        new(AsrErrorIds.ReplicationGroupInvalid, AsrErrorKind.InvalidArgument, message, target);
}
