using System.Management.Automation;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists the recovery points of a protected item, oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "AsrRecoveryPoint", DefaultParameterSetName = "All")]
[OutputType(typeof(AsrRecoveryPoint))]
public sealed class GetAsrRecoveryPointCommand : AsrCmdlet
{
    /// <summary>The protected item (its name; a piped item binds by its Name).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Name", "ItemName")]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    public string Item { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Latest")]
    public SwitchParameter Latest { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Sequence")]
    public long Sequence { get; set; }

    /// <summary>Bound from piped objects so they resolve in the vault they came from.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    public string? VaultLocation { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault(VaultLocation);
        ForItem(Item, () =>
        {
            var item = GetItem(vault, Item);
            var points = Await(ct => vault.GetPointsAsync(item, ct));
            switch (ParameterSetName)
            {
                case "Latest":
                    if (points.Count == 0)
                        throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                            $"'{item.Name}' has no recovery point yet (state {item.State}). Run Invoke-AsrReplication first.", item.Name);
                    WriteObject(points[^1]);
                    break;
                case "Sequence":
                    WriteObject(points.FirstOrDefault(p => p.Sequence == Sequence)
                        ?? throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                            $"'{item.Name}' has no recovery point {Sequence}. Its points: {string.Join(", ", points.Select(p => p.Sequence).DefaultIfEmpty(0))}.", Sequence));
                    break;
                default:
                    WriteObject(points, enumerateCollection: true);
                    break;
            }
        });
    }
}
