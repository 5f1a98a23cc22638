using System.Management.Automation;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Writes the disks of a recovery point to a directory, bit-exact and verified.</summary>
[Cmdlet(VerbsData.Export, "AsrRecoveryPoint", SupportsShouldProcess = true)]
[OutputType(typeof(AsrJob))]
public sealed class ExportAsrRecoveryPointCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    public AsrRecoveryPoint InputObject { get; set; } = null!;

    /// <summary>Directory the disk files are written to (one file per disk, named as the disk).</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [Alias("Path")]
    public string Destination { get; set; } = "";

    /// <summary>Only these disks (by name).</summary>
    [Parameter]
    public string[]? Disk { get; set; }

    /// <summary>Overwrite existing files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault(InputObject.VaultLocation);
        string destination = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Destination);
        if (!ShouldProcess(InputObject.ToString(), $"Export {InputObject.Disks.Count} disk(s) to '{destination}'")) return;
        var point = InputObject;
        ForItem(point, () =>
        {
            RecoveryPointExporter.Plan(point, destination, Force, Disk, vault.Store);
            var job = JobRunner.NewRecord("ExportRecoveryPoint", point.ItemName, point.ItemId);
            var running = StartJob(vault, job, async ctx =>
            {
                var files = await RecoveryPointExporter.ExportAsync(vault, point, destination, Force, Disk, ctx).ConfigureAwait(false);
                return new AsrJobResult { RecoveryPointSequence = point.Sequence, RecoveryPointId = point.PointId, Files = files };
            }, AsJob);
            CompleteJob(running, AsJob);
        });
    }
}
