using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// When a read of a point (an export, a failover's export) finds the vault's copy damaged, the item is marked
/// ResyncRequired with the reason, so the next cycle (the agent's, or Resume-AsrResync) compares checksums with the
/// source and publishes a whole point instead of another delta over the damage (issue #12, item 5).
/// Test-AsrRecoveryPoint does not mark: it writes nothing to the vault.
/// </summary>
internal static class DamagedPointMarker
{
    public static bool IsDamage(Exception ex) =>
        ex is AsrException { ErrorId: AsrErrorIds.VaultDataCorrupt or AsrErrorIds.RecoveryPointVerificationFailed };

    /// <summary>Best effort: a vault that cannot be written (full, read-only) or an item gone only logs.</summary>
    public static async Task MarkAsync(AsrVault vault, AsrRecoveryPoint point, Exception damage, string operation, ILogger logger)
    {
        try
        {
            // A point pruned or rebased under a reader held only in this process (a full or read-only vault) reads
            // as damaged too: that is not damage to repair.
            var now = await vault.ReadPointAsync(point.ItemId, point.Sequence, CancellationToken.None).ConfigureAwait(false);
            if (now is null || now.IndexGeneration != point.IndexGeneration) return;
            string reason = $"{operation} of point {point} found the vault's copy damaged: {damage.Message} " +
                "The next cycle (or Resume-AsrResync) compares checksums with the source and sends the damaged blocks anew.";
            await vault.UpdateItemAsync(point.ItemId, i => i.MarkResyncRequired(reason), CancellationToken.None).ConfigureAwait(false);
            await vault.Events.WriteAsync(Events.AsrEventSeverity.Warning, Events.AsrEventTypes.ReplicaDamaged, reason, point.ItemName).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Could not mark {Item} for resync after damage to point {Point} was found", point.ItemName, point);
        }
    }
}
