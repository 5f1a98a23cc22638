using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Removal of what one operation made, found by its asr-operation tag in the resource group: from Azure, never from
/// the record (vault data). List by tag does not return tags, so the check stops at the operation's GUID (122 random
/// bits: not guessable, and only what this module tagged carries it). Used to remove a recovered machine, to start a
/// retried operation from nothing, and to clean up after a failed recovery.
/// </summary>
internal sealed class AzureOperationCleanup(AzureTargetResourceGroup group)
{
    /// <summary>Deletes what the operation of <paramref name="machine"/> made; throws, naming what is left, unless all of it went.</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(AsrProtectedItem item, RecoveredMachineRecord machine, JobContext context)
    {
        if (machine.OperationId == Guid.Empty)
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"The recovered machine of '{item.Name}' has no operation id: what it made cannot be found by its tag.", item.Name);
        string op = AzureTargetTags.OperationValue(machine.OperationId);
        var ct = context.CancellationToken;
        context.Report(0, $"Removing what operation {op} of '{item.Name}' made in '{group.Name}'");
        IReadOnlyList<string> deleted, left;
        try
        {
            (deleted, left) = await RemoveOperationAsync(op, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            IReadOnlyList<AzureResource> remaining;
            try
            {
                remaining = await group.ControlPlane.ListByTagAsync(AzureTargetTags.Operation, op, ct).ConfigureAwait(false);
            }
            catch (Exception) when (!ct.IsCancellationRequested)
            {
                throw ex is AsrException ? ex : new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
                    $"Could not remove what operation {op} of '{item.Name}' made in {group.Id}: {ex.Message}", item.Name, ex);
            }
            throw Incomplete(item.Name, op, remaining.Select(r => r.Id).ToList(), ex);
        }
        if (left.Count > 0) throw Incomplete(item.Name, op, left, null);
        context.Report(100, $"Removed {deleted.Count} resource(s) of '{item.Name}' from '{group.Name}'");
        return deleted;
    }

    private AsrException Incomplete(string itemName, string op, IReadOnlyList<string> left, Exception? inner) =>
        new(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
            $"Not everything operation {op} of '{itemName}' made in {group.Id} could be removed" +
            (inner is null ? "" : $" ({inner.Message})") + $"; left: {string.Join(", ", left)}. The item is unchanged: run the removal again.",
            itemName, inner);

    /// <summary>A retried operation (a resumed job) starts again from nothing: what an earlier attempt left is removed.</summary>
    public async Task RemoveEarlierAttemptAsync(string op, JobContext context)
    {
        if ((await group.ControlPlane.ListByTagAsync(AzureTargetTags.Operation, op, context.CancellationToken).ConfigureAwait(false)).Count == 0) return;
        context.Logger.LogInformation("Removing what an earlier attempt of operation {Operation} left in {Location}.", op, group.Id);
        var (_, left) = await RemoveOperationAsync(op, context.CancellationToken).ConfigureAwait(false);
        if (left.Count > 0)
            throw new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
                $"An earlier attempt of operation {op} left resources that could not be removed: {string.Join(", ", left)}.", op);
    }

    /// <summary>
    /// Deletes what operation <paramref name="op"/> made after a failure (with no token: the caller's is likely the one
    /// cancelled). Returns null when nothing is left, else the exception to throw, naming what is left, with
    /// <paramref name="failure"/> inside.
    /// </summary>
    public async Task<AsrException?> CleanUpAfterFailureAsync(string op, string vmName, Exception failure, ILogger logger)
    {
        IReadOnlyList<string> left;
        Exception? cleanupError = null;
        try
        {
            var (deleted, notDeleted) = await RemoveOperationAsync(op, CancellationToken.None).ConfigureAwait(false);
            logger.LogInformation("Removed {Count} resource(s) of operation {Operation}.", deleted.Count, op);
            left = notDeleted;
        }
        catch (Exception ex)
        {
            cleanupError = ex;
            try
            {
                left = (await group.ControlPlane.ListByTagAsync(AzureTargetTags.Operation, op, CancellationToken.None).ConfigureAwait(false)).Select(r => r.Id).ToList();
            }
            catch (Exception listError)
            {
                logger.LogError(listError, "Could not list what operation {Operation} left.", op);
                left = [$"the resources tagged {AzureTargetTags.Operation}={op} in {group.Id}"];
            }
        }
        if (left.Count == 0) return null;
        logger.LogError(cleanupError, "Operation {Operation} left {Resources} after its failure.", op, string.Join(", ", left));
        return new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
            $"Recovering '{vmName}' into {group.Id} failed ({failure.Message}), and what it made could not all be removed " +
            $"({cleanupError?.Message ?? "Azure did not delete them"}); left: {string.Join(", ", left)}. " +
            $"Delete them (they carry the tag {AzureTargetTags.Operation}={op}) before trying again.",
            vmName, failure);
    }

    /// <summary>
    /// Deletes everything tagged with operation <paramref name="op"/> in the resource group: disks still open for
    /// upload or read are revoked first (Azure deletes no disk with an active SAS), then the VMs, snapshots and disks.
    /// Returns the ids deleted and those still tagged afterwards.
    /// </summary>
    public async Task<(IReadOnlyList<string> Deleted, IReadOnlyList<string> Left)> RemoveOperationAsync(string op, CancellationToken cancellationToken)
    {
        var cp = group.ControlPlane;
        var tagged = await cp.ListByTagAsync(AzureTargetTags.Operation, op, cancellationToken).ConfigureAwait(false);
        foreach (var disk in tagged.Where(r => r.IsDisk))
        {
            var info = await cp.GetDiskAsync(disk.Id, cancellationToken).ConfigureAwait(false);
            if (info?.DiskState is { } state && state.StartsWith("Active", StringComparison.OrdinalIgnoreCase))
                await cp.RevokeAccessAsync(disk.Id, cancellationToken).ConfigureAwait(false);
        }
        var result = await cp.DeleteByTagAsync(AzureTargetTags.Operation, op, cancellationToken).ConfigureAwait(false);
        var left = await cp.ListByTagAsync(AzureTargetTags.Operation, op, cancellationToken).ConfigureAwait(false);
        return (result.Deleted.Select(r => r.Id).ToList(), left.Select(r => r.Id).ToList());
    }
}
