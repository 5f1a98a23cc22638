using System.Management.Automation;
using AsrModule.Engine.Agent;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Asks a replication agent to stop (through the vault, so it works for agents on other hosts too) and waits until it has.</summary>
[Cmdlet(VerbsLifecycle.Stop, "AsrAgent", SupportsShouldProcess = true)]
[OutputType(typeof(AsrAgentRecord))]
public sealed class StopAsrAgentCommand : AsrCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public string HostName { get; set; } = Environment.MachineName;

    /// <summary>Seconds to wait for the agent to finish cleanly (default 90).</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSeconds { get; set; } = 90;

    /// <summary>Kill the agent's process (this machine only) when it has not stopped in time.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    public string? VaultLocation { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault(VaultLocation);
        if (!ShouldProcess(HostName, "Stop the replication agent")) return;
        ForItem(HostName, () =>
        {
            var record = Await(ct => AgentProcessLauncher.StopAsync(vault, HostName, TimeSpan.FromSeconds(TimeoutSeconds), Force, ct));
            if (PassThru) WriteObject(record);
        });
    }
}
