using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Retention;

/// <summary>
/// Applies an item's retention policy to its points and reclaims the space they held. The steps run
/// in the one order that keeps every listed point readable and verifying if the process dies (or
/// the store fails) between any two of them, and a re-run finishes the job:
/// <list type="number">
/// <item>rebase every kept point whose parent goes (maps relative to its nearest kept ancestor, or full maps without
/// one, written; then its manifest replaced);</item>
/// <item>delete the pruned manifests, newest first (a point goes only after everything chaining through it);</item>
/// <item>delete the index objects and packs no listed point references (see <see cref="UnreferencedObjectSweeper"/>);</item>
/// <item>repack what stays mostly dead: the live extents of pruned points' packs are copied into new packs, the kept
/// points reading them get new maps and manifests, then a second sweep deletes the old packs (see <see cref="PackRepacker"/>).</item>
/// </list>
/// </summary>
public static class RetentionService
{
    /// <summary>The caller holds the item's lease (the cycles' lock), so no cycle publishes meanwhile.</summary>
    public static async Task<RetentionResult> ApplyAsync(AsrVault vault, AsrProtectedItem item, CancellationToken ct)
    {
        // Under the record lock: a reader pinning a point (export, verify, drill start) either pins it
        // before this plan is made, or finds it already pruned.
        using var recordLock = await vault.LockItemRecordAsync(item.Id, ct).ConfigureAwait(false);
        var plan = await PlanAsync(vault, item, ct).ConfigureAwait(false);
        var notRebased = new List<AsrRecoveryPoint>();
        foreach (var point in plan.ToRebase)
        {
            try
            {
                await ChainRebaser.RebaseAsync(vault, point, plan.KeptAncestorOf(point), ct).ConfigureAwait(false);
            }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt)
            {
                // A damaged object in the point's chain: it cannot get maps of its own, so the points it chains
                // through stay (nothing it still reads is deleted), and retention goes on with everything else.
                vault.Logger.LogWarning(ex, "Retention of {Item}: point {Point} could not be rebased (its chain is damaged); the points it reads through are kept. Resume-AsrResync makes a whole new point.", item.Name, point.Sequence);
                notRebased.Add(point);
            }
        }
        if (notRebased.Count > 0) plan = plan.KeepingChainsOf(notRebased);
        long manifestBytes = await DeletePrunedManifestsAsync(vault, plan, ct).ConfigureAwait(false);
        var sweep = await UnreferencedObjectSweeper.SweepAsync(vault, item, ct).ConfigureAwait(false);
        var repack = await PackRepacker.RepackAsync(vault, item, plan.InUse, ct).ConfigureAwait(false);
        if (repack.RewrittenPoints.Count > 0)
        {
            var second = await UnreferencedObjectSweeper.SweepAsync(vault, item, ct).ConfigureAwait(false);
            sweep = new UnreferencedObjectSweeper.SweepResult([.. sweep.DeletedPacks, .. second.DeletedPacks], sweep.PackBytes + second.PackBytes, sweep.IndexBytes + second.IndexBytes);
        }

        var result = new RetentionResult
        {
            KeptSequences = plan.Kept.Order().ToList(),
            PrunedSequences = plan.ToPrune.Select(p => p.Sequence).Order().ToList(),
            RebasedSequences = plan.ToRebase.Except(notRebased).Select(p => p.Sequence).Order().ToList(),
            RepackedSequences = repack.RepackedSequences,
            RepackRewrittenSequences = repack.RewrittenPoints,
            RepackCopiedBytes = repack.CopiedBytes,
            DeletedPacks = sweep.DeletedPacks,
            PackBytesReclaimed = sweep.PackBytes,
            BytesReclaimed = manifestBytes + sweep.IndexBytes + sweep.PackBytes,
        };
        if (result.PrunedSequences.Count > 0 || result.DeletedPacks.Count > 0)
            vault.Logger.LogInformation("Retention of {Item}: pruned points {Pruned}, rebased {Rebased}, repacked {Repacked} ({Copied} bytes copied), deleted {Packs} pack(s), reclaimed {Bytes} bytes",
                item.Name, string.Join(",", result.PrunedSequences), string.Join(",", result.RebasedSequences), string.Join(",", result.RepackedSequences),
                result.RepackCopiedBytes, result.DeletedPacks.Count, result.BytesReclaimed);
        return result;
    }

    /// <summary>
    /// Decides from the manifests listed now and the item record as stored now: a drill may have
    /// started on a point since the caller read the item, and its point must stay.
    /// </summary>
    internal static async Task<RetentionPlan> PlanAsync(AsrVault vault, AsrProtectedItem item, CancellationToken ct)
    {
        var policy = await vault.GetPolicyAsync(item.PolicyName, ct).ConfigureAwait(false);
        var inUse = PointsInUse.Of(item);
        inUse.UnionWith(await RecoveryPoints.PointPin.ActiveSequencesAsync(vault, item.Id, ct).ConfigureAwait(false));
        if (await vault.Records.ReadAsync<AsrProtectedItem>(VaultLayout.Item(item.Id), ct).ConfigureAwait(false) is { } stored)
            inUse.UnionWith(PointsInUse.Of(stored));
        var points = (await vault.GetPointsAsync(item, ct).ConfigureAwait(false)).OrderBy(p => p.Sequence).ToList();
        var kept = RetentionPlanner.SelectKept(points.Select(RetentionCandidate.Of).ToList(), vault.Clock.GetUtcNow(), policy.RecoveryPointRetentionHours, inUse);
        return RetentionPlan.For(points, kept) with { InUse = inUse };
    }

    internal static async Task<long> DeletePrunedManifestsAsync(AsrVault vault, RetentionPlan plan, CancellationToken ct)
    {
        if (plan.ToPrune.Count == 0) return 0;
        var lengths = (await vault.Store.ListAsync(VaultLayout.PointsPrefix(plan.ToPrune[0].ItemId), ct).ConfigureAwait(false))
            .ToDictionary(o => o.Key, o => o.Length, StringComparer.Ordinal);
        long bytes = 0;
        foreach (var point in plan.ToPrune)
        {
            string key = VaultLayout.PointManifest(point.ItemId, point.Sequence);
            await vault.Store.DeleteAsync(key, ct).ConfigureAwait(false);
            bytes += lengths.GetValueOrDefault(key);
        }
        return bytes;
    }
}
