using System.Management.Automation;
using AsrModule.Engine.Failover;

namespace AsrModule.Commands;

/// <summary>A failover/drill target on this machine: a directory for recovered disks and machine.json.</summary>
[Cmdlet(VerbsCommon.New, "AsrLocalTarget")]
[OutputType(typeof(AsrLocalTarget))]
public sealed class NewAsrLocalTargetCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    protected override void ProcessRecord() =>
        WriteObject(new AsrLocalTarget(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path)));
}
