using System.Collections.Concurrent;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Failover;

/// <summary>
/// The targets this process knows (those created in the session: New-AsrAzureTarget registers its target), so that an
/// operation on a failover or drill in Azure (cancel, change of point, reprotect, cleanup, a resumed plan) finds its
/// target and credential again without the vault storing either. A local target needs no registration: its record
/// names its directory.
/// </summary>
public static class RecoveryTargets
{
    private static readonly ConcurrentDictionary<(string Kind, string Location), IRecoveryTarget> Known = new();

    private static (string, string) Key(string kind, string location) => (kind, location.TrimEnd('/').ToLowerInvariant());

    public static void Register(IRecoveryTarget target)
    {
        if (target is AsrLocalTarget) return;
        Known[Key(target.Kind, target.Location)] = target;
    }

    /// <summary>A registered target of that kind and location, or null.</summary>
    public static IRecoveryTarget? Find(string kind, string location) =>
        Known.TryGetValue(Key(kind, location), out var t) ? t : null;

    /// <summary>
    /// The target to operate on what <paramref name="machine"/> describes: <paramref name="given"/> (checked to be the one
    /// that made it), else the local directory it names, else one registered in this process; else RecoveryTargetRequired.
    /// </summary>
    public static IRecoveryTarget Resolve(RecoveredMachineRecord machine, IRecoveryTarget? given, string itemName)
    {
        if (given is not null)
        {
            given.EnsureOwns(machine, itemName);
            return given;
        }
        if (machine.TargetKind == AsrLocalTarget.LocalKind) return AsrLocalTarget.Of(machine);
        return Find(machine.TargetKind, machine.TargetLocation)
               ?? throw new AsrException(AsrErrorIds.RecoveryTargetRequired, AsrErrorKind.InvalidOperation,
                   $"'{itemName}' was recovered into {machine.TargetKind} target '{machine.TargetLocation}', which this session does not know (its credential is not kept in the vault). " +
                   $"Pass -Target (New-AsrAzureTarget for that subscription and resource group), or create that target in this session first.", itemName);
    }
}
