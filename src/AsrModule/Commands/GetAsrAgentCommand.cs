using System.Management.Automation;
using AsrModule.Engine.Agent;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists the replication agents that have run on the vault, with their state and what they protect.</summary>
[Cmdlet(VerbsCommon.Get, "AsrAgent")]
[OutputType(typeof(AsrAgentRecord))]
public sealed class GetAsrAgentCommand : AsrCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string? HostName { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        var pattern = Wildcard(HostName);
        var agents = Await(ct => AgentDirectory.ListAsync(vault, ct)).Where(a => pattern is null || pattern.IsMatch(a.HostName)).ToList();
        if (agents.Count == 0 && HostName is not null && !WildcardPattern.ContainsWildcardCharacters(HostName))
            ForItem(HostName, () => Await(ct => AgentDirectory.GetAsync(vault, HostName, ct))); // AgentNotFound, naming the known agents
        WriteObject(agents, enumerateCollection: true);
    }
}
