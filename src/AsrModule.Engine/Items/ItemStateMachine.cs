using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Items;

/// <summary>
/// The protected-item lifecycle in one table:
/// <code>
/// InitialReplicationPending ─cycle or resync (again after a failed/killed one)→ Protected ⇄ ResyncRequired
/// Protected ─TestFailover→ TestFailedOver ─TestFailoverCleanup→ Protected
/// Protected ─Failover→ FailedOver ─CommitFailover→ Committed ─Reprotect→ Reprotected ─Failback→ Protected
///             Reprotected ─Reprotect→ Reprotected (again, e.g. to an alternate disk)
///             FailedOver ─CancelFailover→ Protected;  FailedOver ─ChangeRecoveryPoint→ FailedOver
/// </code>
/// Any other request fails with InvalidStateTransition, naming the state and what is allowed now.
/// </summary>
public static class ItemStateMachine
{
    private static readonly Dictionary<ProtectedItemState, ItemOperation[]> Allowed = new()
    {
        // A failed, cancelled or killed initial replication can always go on: a cycle (or a resync, which with no
        // point to compare is the same) runs it again; nothing else has a point to work from yet.
        [ProtectedItemState.InitialReplicationPending] = [ItemOperation.Replicate, ItemOperation.Resync, ItemOperation.Disable],
        [ProtectedItemState.Protected] = [ItemOperation.Replicate, ItemOperation.Resync, ItemOperation.ExportRecoveryPoint,
            ItemOperation.TestFailover, ItemOperation.Failover, ItemOperation.Disable],
        // Points are immutable, so a drill or a failover from a stored point is safe before the resync.
        [ProtectedItemState.ResyncRequired] = [ItemOperation.Replicate, ItemOperation.Resync, ItemOperation.ExportRecoveryPoint,
            ItemOperation.TestFailover, ItemOperation.Failover, ItemOperation.Disable],
        [ProtectedItemState.TestFailedOver] = [ItemOperation.Replicate, ItemOperation.Resync, ItemOperation.ExportRecoveryPoint,
            ItemOperation.TestFailoverCleanup],
        [ProtectedItemState.FailedOver] = [ItemOperation.ChangeRecoveryPoint, ItemOperation.CancelFailover, ItemOperation.CommitFailover,
            ItemOperation.ExportRecoveryPoint],
        [ProtectedItemState.Committed] = [ItemOperation.Reprotect, ItemOperation.ExportRecoveryPoint, ItemOperation.Disable],
        // Reprotect again (e.g. to an alternate disk after the original one was lost) or give up: never a dead end.
        [ProtectedItemState.Reprotected] = [ItemOperation.Replicate, ItemOperation.Failback, ItemOperation.Reprotect,
            ItemOperation.ExportRecoveryPoint, ItemOperation.Disable],
    };

    /// <summary>The cmdlet a user runs for each operation (used in messages).</summary>
    public static string CommandOf(ItemOperation op) => op switch
    {
        ItemOperation.Replicate => "Invoke-AsrReplication",
        ItemOperation.Resync => "Resume-AsrResync",
        ItemOperation.ExportRecoveryPoint => "Export-AsrRecoveryPoint",
        ItemOperation.TestFailover => "Start-AsrTestFailover",
        ItemOperation.TestFailoverCleanup => "Start-AsrTestFailoverCleanup",
        ItemOperation.Failover => "Start-AsrFailover",
        ItemOperation.ChangeRecoveryPoint => "Switch-AsrRecoveryPoint",
        ItemOperation.CancelFailover => "Undo-AsrFailover",
        ItemOperation.CommitFailover => "Complete-AsrFailover",
        ItemOperation.Reprotect => "Update-AsrProtectionDirection",
        ItemOperation.Failback => "Invoke-AsrFailback",
        ItemOperation.Disable => "Disable-AsrReplication",
        _ => op.ToString(),
    };

    public static IReadOnlyList<ItemOperation> AllowedOperations(ProtectedItemState state) =>
        Allowed.TryGetValue(state, out var ops) ? ops : [];

    public static bool IsAllowed(ProtectedItemState state, ItemOperation op) => AllowedOperations(state).Contains(op);

    /// <summary>Throws InvalidStateTransition unless <paramref name="op"/> is allowed in the item's state.</summary>
    public static void EnsureAllowed(AsrProtectedItem item, ItemOperation op)
    {
        if (IsAllowed(item.State, op)) return;
        var allowed = AllowedOperations(item.State).Select(CommandOf).ToList();
        string why = item.State == ProtectedItemState.InitialReplicationPending
            ? " It has no recovery point yet: Invoke-AsrReplication runs its initial replication (again, after one that failed, was cancelled or whose process was killed)."
            : "";
        throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
            $"{CommandOf(op)} is not allowed for '{item.Name}' in state {item.State}. Allowed now: {(allowed.Count == 0 ? "nothing" : string.Join(", ", allowed))}.{why}",
            item.Name);
    }

    public static ActiveLocation LocationOf(ProtectedItemState state) => state switch
    {
        ProtectedItemState.FailedOver or ProtectedItemState.Committed or ProtectedItemState.Reprotected => ActiveLocation.Recovery,
        _ => ActiveLocation.Primary,
    };
}
