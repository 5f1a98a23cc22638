using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Commands;

/// <summary>A failover/drill target on this machine: a directory for recovered disks and machine.json.</summary>
[Cmdlet(VerbsCommon.New, "AsrLocalTarget")]
[OutputType(typeof(AsrLocalTarget))]
public sealed class NewAsrLocalTargetCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    /// <summary>The format a failover writes the disks in: Raw (default), Qcow2, Vmdk, Vhdx, Vdi, or Source (each disk in its source's format).</summary>
    [Parameter]
    public DiskOutputFormat Format { get; set; } = DiskOutputFormat.Raw;

    protected override void ProcessRecord() =>
        WriteObject(new AsrLocalTarget(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path), Format));
}
