using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Groups;

/// <summary>
/// One coordinated point for every machine of a replication group. All members are quiesced
/// together (freeze scripts, then QEMU guests paused), captured at one instant, released, and only
/// when every member's point is published is the group point written; a failure before that
/// publishes no member, a failure during it leaves no group point.
/// Sources that cannot capture a point in time (files, devices) keep their writers frozen until
/// every member has been read: that is what makes the instant one instant for them.
/// </summary>
public static class GroupReplicationCycle
{
    /// <summary>Caller holds every member's lease.</summary>
    public static async Task<AsrJobResult> RunAsync(AsrVault vault, string group, IReadOnlyList<AsrProtectedItem> members, bool appConsistent, JobContext context)
    {
        if (members.Count == 0)
            throw new AsrException(AsrErrorIds.ReplicationGroupNotFound, AsrErrorKind.ObjectNotFound, $"Replication group '{group}' has no members.", group);
        // Progress: every member's scan runs before any member publishes, so each member has a slice of the
        // scans (0..90) and a slice of the publications (90..99); 100 when the group point is written.
        int n = members.Count;
        var cycles = members.OrderBy(m => m.Name, StringComparer.OrdinalIgnoreCase)
            .Select((m, k) => ReplicationCycle.ForGroup(vault, m, context, context.Phase(90 * k / n, 90 * (k + 1) / n), context.Phase(90 + 9 * k / n, 90 + 9 * (k + 1) / n)))
            .ToList();
        var published = new List<ReplicationCycle>();
        try
        {
            foreach (var c in cycles) await c.BeginAsync(false, freeze: true).ConfigureAwait(false);
            bool pointInTime = cycles.All(c => c.Tracker!.CapturesPointInTime);
            // A live (file) source is only consistent across machines while its writers are frozen.
            bool freeze = appConsistent || !pointInTime;
            foreach (var c in cycles)
                if (freeze) await c.FreezeAsync().ConfigureAwait(false); else await c.SkipFreezeAsync().ConfigureAwait(false);
            // A live member whose writers are not held would be read over time, not at the instant.
            var unheld = cycles.Where(c => !c.Tracker!.CapturesPointInTime && c.Hook is not { IsFrozen: true }).ToList();
            if (unheld.Count > 0)
                throw new AsrException(AsrErrorIds.GroupPointNotConsistent, AsrErrorKind.InvalidOperation,
                    $"No group point of '{group}': {string.Join(", ", unheld.Select(c => $"'{c.Item.Name}'"))} " +
                    "reads files or devices live and its writers could not be frozen (" +
                    string.Join("; ", unheld.Select(c => c.Item.AppConsistencyScript is null ? $"'{c.Item.Name}' has no app-consistency script" : c.ConsistencyNote ?? $"the freeze of '{c.Item.Name}' failed")) +
                    "). Give every such member a freeze script (Set-AsrProtectedItem -AppConsistencyScript), or protect it through QEMU (-QmpSocket).", group);
            DateTimeOffset instant;
            // Members captured one after another without a pause (reflink clones) share one instant only if none of
            // their disks was written between the first capture and the last: their write fingerprints show it.
            var unpaused = cycles.Where(c => c.Tracker!.CapturesPointInTime && c.Tracker.Kind != "QemuDirtyBitmap" && c.Hook is not { IsFrozen: true })
                .SelectMany(c => c.Item.Disks.Select(d => (Cycle: c, Disk: d, Before: Sources.Linux.SourceWriteFingerprint.Take(d.SourcePath)))).ToList();
            try
            {
                foreach (var c in cycles) await c.Tracker!.PauseSourceAsync(context.CancellationToken).ConfigureAwait(false);
                instant = vault.Clock.GetUtcNow();
                foreach (var c in cycles) await c.CaptureAsync(instant).ConfigureAwait(false);
            }
            finally
            {
                foreach (var c in cycles) await c.Tracker!.ResumeSourceAsync().ConfigureAwait(false);
            }
            var writtenBetween = unpaused.Count < 2 ? [] : unpaused
                .Select(u => u.Before.SameAs(Sources.Linux.SourceWriteFingerprint.Take(u.Disk.SourcePath), out string? diff) ? null : $"disk '{u.Disk.Name}' of '{u.Cycle.Item.Name}': {diff}")
                .OfType<string>().ToList();
            if (pointInTime) foreach (var c in cycles) await c.ThawAsync().ConfigureAwait(false);
            foreach (var c in cycles) await c.ScanAsync().ConfigureAwait(false);
            foreach (var c in cycles) await c.ThawAsync().ConfigureAwait(false);

            var groupPointId = Guid.NewGuid();
            // One consistency for the group: app-consistent only if every member's freeze worked.
            var consistency = writtenBetween.Count > 0 || cycles.Any(c => c.Consistency == RecoveryPointConsistency.Inconsistent) ? RecoveryPointConsistency.Inconsistent
                : cycles.All(c => c.Consistency == RecoveryPointConsistency.AppConsistent) ? RecoveryPointConsistency.AppConsistent
                : RecoveryPointConsistency.CrashConsistent;
            if (writtenBetween.Count > 0)
                context.Logger.LogWarning("Group point of {Group} is Inconsistent: members were written between their clones ({Writes}); give them freeze scripts to hold the writers for the clones",
                    group, string.Join("; ", writtenBetween));
            var results = new List<AsrJobResult>();
            foreach (var c in cycles)
            {
                // Each member's own point keeps what it is (a single clone is point-in-time for its machine); the group
                // point says whether the members share an instant.
                if (consistency != RecoveryPointConsistency.AppConsistent) c.MarkCrashConsistent();
                results.Add(await c.PublishAsync(groupPointId, group, instant).ConfigureAwait(false));
                published.Add(c);
            }
            var groupPoint = new AsrGroupRecoveryPoint
            {
                GroupPointId = groupPointId,
                ReplicationGroup = group,
                RecoveryPointTimeUtc = instant,
                Consistency = consistency,
                Members = cycles.Select((c, i) => new GroupMemberPoint { ItemId = c.Item.Id, ItemName = c.Item.Name, PointSequence = results[i].RecoveryPointSequence!.Value }).ToList(),
            };
            groupPoint.Sequence = await PublishGroupPointAsync(vault, groupPoint).ConfigureAwait(false);
            context.Report(100, $"Group point {groupPoint.Sequence} of '{group}' published: {string.Join(", ", groupPoint.Members.Select(m => $"{m.ItemName}@{m.PointSequence}"))}");
            return new AsrJobResult
            {
                Mode = string.Join(",", results.Select(r => r.Mode).Distinct()),
                RecoveryPointSequence = groupPoint.Sequence,
                RecoveryPointId = groupPointId,
                BytesScanned = results.Sum(r => r.BytesScanned),
                BlocksCompared = results.Sum(r => r.BlocksCompared),
                BytesSent = results.Sum(r => r.BytesSent),
                ChangedBlocks = results.Sum(r => r.ChangedBlocks),
                ChangedBytes = results.Sum(r => r.ChangedBytes),
                BytesStored = results.Sum(r => r.BytesStored),
                Note = $"Group point {groupPoint.Sequence} ({consistency}): "
                    + (writtenBetween.Count > 0 ? $"members written between their clones ({string.Join("; ", writtenBetween)}); " : "") + string.Join(", ", groupPoint.Members.Select(m => $"{m.ItemName}@{m.PointSequence}"))
                    + string.Concat(results.Where(r => r.Note is not null).Select(r => " " + r.Note)),
            };
        }
        catch (Exception ex)
        {
            foreach (var c in cycles.Except(published)) await c.FailAsync(ex).ConfigureAwait(false);
            throw;
        }
        finally
        {
            foreach (var c in cycles) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task<long> PublishGroupPointAsync(AsrVault vault, AsrGroupRecoveryPoint point)
    {
        for (int attempt = 0; ; attempt++)
        {
            var latest = await LatestSequenceAsync(vault, point.ReplicationGroup, CancellationToken.None).ConfigureAwait(false);
            point.Sequence = latest + 1;
            if (await vault.Records.TryCreateAsync(VaultLayout.GroupPoint(point.ReplicationGroup, point.Sequence), point, CancellationToken.None).ConfigureAwait(false))
                return point.Sequence;
            if (attempt > 10)
                throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy, $"Could not publish a point of group '{point.ReplicationGroup}': others kept publishing first.", point.ReplicationGroup);
        }
    }

    private static async Task<long> LatestSequenceAsync(AsrVault vault, string group, CancellationToken ct)
    {
        var keys = await vault.Store.ListAsync(VaultLayout.GroupPointsPrefix(group), ct).ConfigureAwait(false);
        long latest = 0;
        foreach (var k in keys)
            if (VaultLayout.TryParsePointSequence(k.Key, out var s)) latest = Math.Max(latest, s);
        return latest;
    }

    /// <summary>Deletes group point records a member's retention has made incomplete (they can no longer restore every machine).</summary>
    public static async Task PruneIncompleteAsync(AsrVault vault, string group, CancellationToken ct)
    {
        var complete = (await ListAsync(vault, group, ct).ConfigureAwait(false)).Select(p => p.Sequence).ToHashSet();
        var keys = await vault.Store.ListAsync(VaultLayout.GroupPointsPrefix(group), ct).ConfigureAwait(false);
        long newest = keys.Select(k => VaultLayout.TryParsePointSequence(k.Key, out var s) ? s : 0).DefaultIfEmpty(0).Max();
        foreach (var k in keys)
            // The newest record stays even when incomplete: it numbers the next group point.
            if (VaultLayout.TryParsePointSequence(k.Key, out var s) && s != newest && !complete.Contains(s))
                await vault.Store.DeleteAsync(k.Key, ct).ConfigureAwait(false);
    }

    /// <summary>The group's published points, oldest first, each with every member point still in the vault.</summary>
    public static async Task<List<AsrGroupRecoveryPoint>> ListAsync(AsrVault vault, string group, CancellationToken ct)
    {
        var list = new List<AsrGroupRecoveryPoint>();
        foreach (var k in await vault.Store.ListAsync(VaultLayout.GroupPointsPrefix(group), ct).ConfigureAwait(false))
        {
            if (!VaultLayout.TryParsePointSequence(k.Key, out _)) continue;
            if (await vault.Records.ReadAsync<AsrGroupRecoveryPoint>(k.Key, ct).ConfigureAwait(false) is not { } p) continue;
            bool complete = true;
            foreach (var m in p.Members)
                complete &= await vault.Store.ExistsAsync(VaultLayout.PointManifest(m.ItemId, m.PointSequence), ct).ConfigureAwait(false);
            if (!complete) continue; // a member's point was pruned: the group point no longer restores all machines
            p.VaultLocation = vault.Location;
            list.Add(p);
        }
        return list;
    }
}
