using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Changes how a protected item is replicated continuously (policy, agent, group, freeze script, QEMU guest). A running agent picks the change up at its next tick.</summary>
[Cmdlet(VerbsCommon.Set, "AsrProtectedItem", SupportsShouldProcess = true)]
[OutputType(typeof(AsrProtectedItem))]
public sealed class SetAsrProtectedItemCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("ItemName")]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>Agent host name; an empty string removes the item from every agent.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? AgentHost { get; set; }

    /// <summary>Replication group; an empty string takes the item out of its group.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? ReplicationGroup { get; set; }

    /// <summary>Freeze/thaw executable; an empty string removes it (no more app-consistent points).</summary>
    [Parameter]
    [AllowEmptyString]
    public string? AppConsistencyScript { get; set; }

    /// <summary>QMP socket of the QEMU guest; an empty string goes back to hash-scan tracking.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? QmpSocket { get; set; }

    /// <summary>Another replication policy (a name or a policy object); takes effect at the agent's next tick.</summary>
    [Parameter]
    [PolicyNameTransformation]
    [ArgumentCompleter(typeof(PolicyNameCompleter))]
    public string? Policy { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    public string? VaultLocation { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault(VaultLocation);
        ForItem(Name, () =>
        {
            var item = GetItem(vault, Name);
            string? Resolve(string? path) => string.IsNullOrEmpty(path) ? path : SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
            var settings = new ItemReplicationSettings
            {
                AgentHost = AgentHost,
                ReplicationGroup = ReplicationGroup,
                AppConsistencyScript = Resolve(AppConsistencyScript),
                QmpSocketPath = Resolve(QmpSocket),
                PolicyName = Policy,
            };
            var changes = new[] { ("AgentHost", AgentHost), ("ReplicationGroup", ReplicationGroup), ("AppConsistencyScript", AppConsistencyScript), ("QmpSocket", QmpSocket), ("Policy", Policy) }
                .Where(c => c.Item2 is not null).Select(c => c.Item2!.Length == 0 ? $"clear {c.Item1}" : $"{c.Item1} = '{c.Item2}'").ToList();
            if (changes.Count == 0 || !ShouldProcess(item.Name, "Set " + string.Join(", ", changes))) return;
            var updated = Await(ct => new ReplicationService(vault).UpdateSettingsAsync(item, settings, ct));
            if (PassThru) WriteObject(updated);
        });
    }
}
