using System.Management.Automation;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Writes the disks of a recovery point to a directory, bit-exact and verified, as raw files or hypervisor disk images.</summary>
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

    /// <summary>The format of the files: Raw (default), Qcow2, Vmdk, Vhdx, Vdi, or Source (each disk in the format its source was protected in).</summary>
    [Parameter]
    public DiskOutputFormat Format { get; set; } = DiskOutputFormat.Raw;

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
        var format = Format;
        ForItem(point, () =>
        {
            var sourceFormats = format == DiskOutputFormat.Source ? SourceFormatsOf(vault, point) : null;
            RecoveryPointExporter.Plan(point, destination, Force, Disk, vault.Store, format, sourceFormats);
            var job = JobRunner.NewRecord("ExportRecoveryPoint", point.ItemName, point.ItemId);
            var running = StartJob(vault, job, async ctx =>
            {
                var files = await RecoveryPointExporter.ExportAsync(vault, point, destination, Force, Disk, ctx, format, sourceFormats).ConfigureAwait(false);
                return new AsrJobResult { RecoveryPointSequence = point.Sequence, RecoveryPointId = point.PointId, Files = files };
            }, AsJob);
            CompleteJob(running, AsJob);
        });
    }

    /// <summary>The pinned formats of the point's item's disks (-Format Source): the item must still be the one the point belongs to.</summary>
    private IReadOnlyDictionary<string, string?> SourceFormatsOf(Engine.Vault.AsrVault vault, AsrRecoveryPoint point)
    {
        Engine.Items.AsrProtectedItem? item;
        try { item = GetItem(vault, point.ItemName); }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.ProtectedItemNotFound) { item = null; }
        if (item is null || item.Id != point.ItemId)
            throw new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound,
                $"-Format Source writes each disk in its source's format, which the protected item '{point.ItemName}' records, and the vault has no such item any more. " +
                "Choose the format with -Format Raw, Qcow2, Vmdk, Vhdx or Vdi.", point.ItemName);
        return RecoveryPointExporter.SourceFormatsOf(item);
    }
}
