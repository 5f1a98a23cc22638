using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Groups;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists the recovery points of a protected item, oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "AsrRecoveryPoint", DefaultParameterSetName = "All")]
[OutputType(typeof(AsrRecoveryPoint))]
[OutputType(typeof(AsrGroupRecoveryPoint), ParameterSetName = ["Group"])]
public sealed class GetAsrRecoveryPointCommand : AsrCmdlet
{
    /// <summary>The protected item (its name; a piped item binds by its Name).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = "All")]
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = "Latest")]
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = "Sequence")]
    [Alias("Name", "ItemName")]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    public string Item { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Latest")]
    [Parameter(ParameterSetName = "Group")]
    public SwitchParameter Latest { get; set; }

    /// <summary>Lists the coordinated points of a replication group instead of one machine's points.</summary>
    [Parameter(Mandatory = true, ParameterSetName = "Group")]
    public string ReplicationGroup { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Sequence")]
    [ArgumentCompleter(typeof(RecoveryPointCompleter))]
    public long Sequence { get; set; }

    /// <summary>Bound from piped objects so they resolve in the vault they came from.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    public string? VaultLocation { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault(VaultLocation);
        if (ParameterSetName == "Group")
        {
            ForItem(ReplicationGroup, () =>
            {
                var points = Await(ct => GroupReplicationCycle.ListAsync(vault, ReplicationGroup, ct));
                if (points.Count == 0)
                    throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                        $"Replication group '{ReplicationGroup}' has no complete group point in the vault at '{vault.Location}'. Its members get one when their agent takes the next coordinated point.", ReplicationGroup);
                if (Latest) WriteObject(points[^1]); else WriteObject(points, enumerateCollection: true);
            });
            return;
        }
        ForItem(Item, () =>
        {
            var item = GetItem(vault, Item);
            // A damaged manifest is a non-terminating VaultDataCorrupt error in its place; its neighbours still list.
            var entries = Await(ct => vault.Catalog.ListPointsAsync(item.Id, ct));
            var points = entries.Where(e => e.Value is not null).Select(e => e.Value!).ToList();
            switch (ParameterSetName)
            {
                case "Latest":
                    // The newest point that reads; a damaged manifest newer than it is reported, not skipped in silence.
                    long newest = points.Count == 0 ? 0 : points[^1].Sequence;
                    WriteEntries(entries.Where(e => e.IsDamaged && e.Value is null && SequenceOf(e) > newest));
                    if (points.Count == 0)
                    {
                        if (entries.Count == 0)
                            throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                                $"'{item.Name}' has no recovery point yet (state {item.State}). Run Invoke-AsrReplication first.", item.Name);
                        break;
                    }
                    WriteObject(points[^1]);
                    break;
                case "Sequence":
                    var entry = entries.FirstOrDefault(e => SequenceOf(e) == Sequence)
                        ?? throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                            $"'{item.Name}' has no recovery point {Sequence}. Its points: {string.Join(", ", points.Select(p => p.Sequence).DefaultIfEmpty(0))}.", Sequence);
                    WriteEntries([entry]);
                    break;
                default:
                    WriteEntries(entries);
                    break;
            }
        });
    }

    private static long SequenceOf(VaultListEntry<AsrRecoveryPoint> e) =>
        e.Value?.Sequence ?? long.Parse(e.Name!, System.Globalization.CultureInfo.InvariantCulture);
}
