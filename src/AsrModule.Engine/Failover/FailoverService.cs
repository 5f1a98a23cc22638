using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Failover;

/// <summary>
/// Failover, change of recovery point, cancel, commit, reprotect (reverse replication by checksum
/// comparison) and failback. Each operation is checked against the state machine before anything
/// changes, and re-checked under the item's record lock when the state changes.
/// </summary>
public sealed class FailoverService
{
    private readonly AsrVault _vault;
    private readonly ReplicationService _replication;

    public FailoverService(AsrVault vault)
    {
        _vault = vault;
        _replication = new ReplicationService(vault);
    }

    // ---------------------------------------------------------------- failover

    /// <summary>
    /// Fails over to <paramref name="target"/>. Planned: the caller has stopped the source; a final
    /// cycle then captures every last write and that point is used. Unplanned: the chosen point
    /// (Latest syncs first). The target makes the machine from the point (disk files, or managed disks and a VM),
    /// verified against the point.
    /// </summary>
    public async Task<AsrJobResult> FailoverAsync(AsrProtectedItem item, FailoverType type, RecoveryPointChoice choice, IRecoveryTarget target, JobContext context)
    {
        var ct = context.CancellationToken;
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Failover);
        await ValidateTargetAsync(item, target, ct).ConfigureAwait(false);
        var jobId = context.Job.Id;
        // Claim the item under its record lock: a drill cannot start while this job runs, and this job
        // cannot start while a drill runs.
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.Failover);
            i.ExclusiveOperation = new ExclusiveOperationRecord
            {
                Operation = $"{type}Failover", JobId = jobId, OwnerProcessId = Environment.ProcessId, OwnerHost = Environment.MachineName,
            };
        }, ct).ConfigureAwait(false);
        // The job's progress, phase by phase in the order they run: the sync (planned, or Latest), the planned
        // failover's check that the source is quiet, the recovery; 100 once the item records the failover.
        bool syncFirst = type == FailoverType.Planned || choice.Kind == RecoveryPointKind.Latest;
        int syncEnd = type == FailoverType.Planned ? 35 : syncFirst ? 45 : 0;
        int checkEnd = type == FailoverType.Planned ? 55 : syncEnd;
        RecoveredMachineRecord? machine = null;
        try
        {
            AsrJobResult? sync = null;
            if (syncFirst)
            {
                var syncPhase = context.Phase(0, syncEnd);
                syncPhase.Report(0, type == FailoverType.Planned ? $"Planned failover: final sync of '{item.Name}'" : $"Latest: replicating '{item.Name}' first");
                sync = await _replication.RunCycleAsync(item, false, syncPhase).ConfigureAwait(false);
                item = await _vault.GetItemAsync(item.Name, ct).ConfigureAwait(false);
                if (type == FailoverType.Planned)
                {
                    await VerifySourceQuietAsync(item, sync.RecoveryPointSequence!.Value, context.Phase(syncEnd, checkEnd)).ConfigureAwait(false);
                    choice = new RecoveryPointChoice(RecoveryPointKind.Specific, sync.RecoveryPointSequence);
                }
            }
            var point = await choice.ResolveAsync(_vault, item, ct).ConfigureAwait(false);
            machine = await target.RecoverAsync(_vault, item, point, RecoveryPurpose.Failover, Guid.NewGuid(), context.Phase(checkEnd, 99)).ConfigureAwait(false);
            var made = machine;
            await _vault.UpdateItemAsync(item.Id, i =>
            {
                ItemStateMachine.EnsureAllowed(i, ItemOperation.Failover);
                i.State = ProtectedItemState.FailedOver;
                i.ExclusiveOperation = null;
                i.Failover = new FailoverRecord
                {
                    Type = type,
                    RecoveryPointSequence = point.Sequence,
                    RecoveryPointTimeUtc = point.RecoveryPointTimeUtc,
                    TargetPath = made.MachineId,
                    RecoveredDisks = new Dictionary<string, string>(made.Disks),
                    Machine = made,
                    FailedOverUtc = DateTimeOffset.UtcNow,
                };
            }, CancellationToken.None).ConfigureAwait(false);
            context.Report(100, $"'{item.Name}' failed over ({type}) to point {point.Sequence}: {made.MachineId}");
            return new AsrJobResult
            {
                Mode = type.ToString(),
                RecoveryPointSequence = point.Sequence,
                RecoveryPointId = point.PointId,
                ChangedBytes = sync?.ChangedBytes,
                Files = made.Disks.Values.Append(made.MachineId).ToList(),
            };
        }
        catch
        {
            // A failover that did not complete leaves nothing anyone could boot by mistake (the target removes what a
            // failed recovery made itself; this removes a machine whose failover could not be recorded).
            if (machine is not null)
            {
                try { await target.RemoveAsync(item, machine, JobContext.Detached()).ConfigureAwait(false); }
                catch (Exception ex) when (ex is AsrException or IOException) { context.Logger.LogWarning(ex, "Could not remove the machine of the failed failover of {Item}: {Machine}", item.Name, machine.MachineId); }
            }
            try { await _vault.UpdateItemAsync(item.Id, i => { if (i.ExclusiveOperation?.JobId == jobId) i.ExclusiveOperation = null; }, CancellationToken.None).ConfigureAwait(false); }
            catch (AsrException ex) { context.Logger.LogWarning(ex, "Could not release the failover claim on {Item}", item.Name); }
            throw;
        }
    }

    /// <summary>Checks before any job that <paramref name="item"/> can fail over to <paramref name="target"/> (see <see cref="IRecoveryTarget.ValidateAsync"/>).</summary>
    public Task ValidateTargetAsync(AsrProtectedItem item, IRecoveryTarget target, CancellationToken ct) =>
        target.ValidateAsync(_vault, item, RecoveryPurpose.Failover, ct);

    /// <summary>
    /// Proves a planned failover loses nothing: after the final sync, every block of the source must
    /// still hash as it did in that sync. A source still being written fails the failover before anything changes.
    /// </summary>
    private async Task VerifySourceQuietAsync(AsrProtectedItem item, long sequence, JobContext context)
    {
        var ct = context.CancellationToken;
        long total = Math.Max(1, item.Disks.Sum(d => d.SizeBytes)), hashed = 0;
        var point = await _vault.GetPointAsync(item.Id, sequence, ct).ConfigureAwait(false);
        foreach (var disk in item.Disks)
        {
            string status = $"Planned failover: checking that '{disk.Name}' no longer changes";
            context.Report((int)(100 * hashed / total), status);
            BlockHashTable? final;
            try
            {
                final = await Replication.TrackerTables.StoredTrackers.ReadWholeAsync(_vault, item.Id, disk, point, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidDataException || ex is AsrException { ErrorId: AsrErrorIds.VaultDataCorrupt })
            {
                final = null;
                context.Logger.LogWarning(ex, "Item {Item}: the change tracker of disk {Disk} at point {Sequence} does not read", item.Name, disk.Name, sequence);
            }
            if (final is null)
            {
                // The next cycle must not trust it either: it compares checksums with the vault's replica.
                string reason = $"The change tracker of disk '{disk.Name}' at point {sequence} of '{item.Name}' is missing or damaged, so the final sync cannot be checked.";
                await _vault.UpdateItemAsync(item.Id, i => { if (i.LastPointSequence == sequence) i.MarkResyncRequired(reason); }, CancellationToken.None).ConfigureAwait(false);
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    reason + " The item is marked ResyncRequired: run Invoke-AsrReplication (a checksum resync), then the failover again; nothing was failed over.", disk.Name);
            }
            // One disk is hashed by one reader, so its reports arrive in order.
            var now = await DiskChecksums.HashAsync(disk.SourcePath, disk.SizeBytes, disk.BlockSize, _vault.HashSeed,
                new Progress(bytes => context.Report((int)(100 * Math.Min(total, hashed += bytes) / total), status)), ct, disk.SourceFormat).ConfigureAwait(false);
            long changed = final.Hashes.Where((h, b) => h != now.Hashes[b]).LongCount();
            if (changed > 0)
                throw new AsrException(AsrErrorIds.SourceStillWriting, AsrErrorKind.InvalidOperation,
                    $"'{item.Name}' is still being written: {changed:N0} block(s) of disk '{disk.Name}' changed after the final sync. " +
                    "Stop the source (a -StopSource hook must wait until it has stopped) and retry; nothing was failed over.", disk.Name);
        }
    }

    /// <summary>The target of the item's failover: <paramref name="given"/> (checked), its local directory, or the one registered in this process.</summary>
    public static IRecoveryTarget TargetOf(AsrProtectedItem item, IRecoveryTarget? given) =>
        RecoveryTargets.Resolve(AsrLocalTarget.MachineOf(item.Failover!), given, item.Name);

    /// <summary>Before commit: recover from another point instead (the recovered machine's disks are replaced).</summary>
    public async Task<AsrJobResult> ChangeRecoveryPointAsync(AsrProtectedItem item, RecoveryPointChoice choice, IRecoveryTarget? given, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.ChangeRecoveryPoint);
        var target = TargetOf(item, given);
        if (choice.Kind == RecoveryPointKind.Latest) choice = RecoveryPointChoice.LatestProcessed; // the source is down: nothing to sync
        var point = await choice.ResolveAsync(_vault, item, context.CancellationToken).ConfigureAwait(false);
        var machine = await target.ReplaceDisksAsync(_vault, item, AsrLocalTarget.MachineOf(item.Failover!), point, Guid.NewGuid(), context.Phase(0, 99)).ConfigureAwait(false);
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.ChangeRecoveryPoint);
            i.Failover!.RecoveryPointSequence = point.Sequence;
            i.Failover.RecoveryPointTimeUtc = point.RecoveryPointTimeUtc;
            i.Failover.TargetPath = machine.MachineId;
            i.Failover.RecoveredDisks = new Dictionary<string, string>(machine.Disks);
            i.Failover.Machine = machine;
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"'{item.Name}' now recovered from point {point.Sequence}");
        return new AsrJobResult { Mode = "ChangeRecoveryPoint", RecoveryPointSequence = point.Sequence, RecoveryPointId = point.PointId, Files = machine.Disks.Values.ToList() };
    }

    /// <summary>Before commit: undo the failover (what the target made is deleted; protection resumes from the original disks).</summary>
    public async Task<AsrJobResult> CancelAsync(AsrProtectedItem item, IRecoveryTarget? given, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.CancelFailover);
        var failover = item.Failover!;
        var target = TargetOf(item, given);
        var removed = await target.RemoveAsync(item, AsrLocalTarget.MachineOf(failover), context.Phase(0, 90)).ConfigureAwait(false);
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.CancelFailover);
            i.State = i.ResyncReason is not null ? ProtectedItemState.ResyncRequired : ProtectedItemState.Protected;
            i.Failover = null;
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"Failover of '{item.Name}' cancelled; {removed.Count} recovered object(s) removed");
        return new AsrJobResult { Mode = "CancelFailover", RecoveryPointSequence = failover.RecoveryPointSequence, Files = removed.ToList() };
    }

    /// <summary>Commits the failover: the recovery point can no longer change.</summary>
    public async Task<AsrJobResult> CommitAsync(AsrProtectedItem item, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.CommitFailover);
        var updated = await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.CommitFailover);
            i.State = ProtectedItemState.Committed;
            i.Failover!.CommittedUtc = DateTimeOffset.UtcNow;
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"Failover of '{item.Name}' committed at point {updated.Failover!.RecoveryPointSequence}");
        return new AsrJobResult { Mode = "Commit", RecoveryPointSequence = updated.Failover.RecoveryPointSequence };
    }

    // ---------------------------------------------------------------- reprotect, reverse cycles, failback

    /// <summary>
    /// Starts replication from the recovered disks back to the original disks (or to
    /// <paramref name="alternateDisks"/>, new disks that get a full copy). Both sides are hashed and
    /// only differing blocks are sent.
    /// </summary>
    public async Task<AsrJobResult> ReprotectAsync(AsrProtectedItem item, IReadOnlyList<string>? alternateDisks, IRecoveryTarget? given, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Reprotect);
        var (targets, formats) = ReverseTargets(item, alternateDisks);
        var stats = await SyncReverseAsync(item, TargetOf(item, given), targets, formats, allowCreate: alternateDisks is { Count: > 0 }, context.Phase(0, 99)).ConfigureAwait(false);
        // What was written, so later reverse cycles and the failback write to these same files or devices only.
        var identities = targets.Where(t => Replication.DiskFileType.Of(t.Value)?.Identity is not null)
            .ToDictionary(t => t.Key, t => Replication.DiskFileType.Of(t.Value)!.Value.Identity!);
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.Reprotect);
            i.State = ProtectedItemState.Reprotected;
            i.Reverse = new ReverseReplicationRecord
            {
                TargetDisks = targets,
                TargetIdentities = identities,
                TargetFormats = formats.Where(f => f.Value is not null).ToDictionary(f => f.Key, f => f.Value!),
                AlternateLocation = alternateDisks is { Count: > 0 },
                StartedUtc = DateTimeOffset.UtcNow,
                LastSyncUtc = DateTimeOffset.UtcNow,
                BytesSent = stats.BytesSent,
            };
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"'{item.Name}' reprotected: {stats.BlocksSent:N0} of {stats.BlocksCompared:N0} blocks differed, {stats.BytesSent:N0} bytes sent");
        return Result("Reprotect", stats);
    }

    /// <summary>One reverse cycle: blocks of the recovered disks changed since the last one are sent to the original site.</summary>
    public async Task<AsrJobResult> ReverseCycleAsync(AsrProtectedItem item, IRecoveryTarget? given, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Replicate);
        var stats = await SyncReverseAsync(item, TargetOf(item, given), item.Reverse!.TargetDisks, RecordedFormats(item), allowCreate: false, context.Phase(0, 99)).ConfigureAwait(false);
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            i.Reverse!.LastSyncUtc = DateTimeOffset.UtcNow;
            i.Reverse.BytesSent += stats.BytesSent;
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"Reverse cycle of '{item.Name}': {stats.BytesSent:N0} bytes sent to the original site");
        return Result("ReverseDelta", stats);
    }

    /// <summary>
    /// Planned failover back to the original site (the caller has stopped the recovered machine): a
    /// final reverse cycle, then the original disks are the machine again and protection to the vault
    /// resumes with a checksum resync against the vault's latest point. A machine in a target that runs machines
    /// (Azure) is deleted once the original disks hold it: it would run up costs and could be started by mistake.
    /// A recovered machine on a local target stays (its files are the caller's to keep or delete).
    /// </summary>
    public async Task<AsrJobResult> FailbackAsync(AsrProtectedItem item, IRecoveryTarget? given, JobContext context)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Failback);
        var reverse = item.Reverse!;
        var target = TargetOf(item, given);
        var machine = AsrLocalTarget.MachineOf(item.Failover!);
        // Progress: the final reverse sync, then the resync to the vault (which reads every disk and the replica).
        var reversePhase = context.Phase(0, 40);
        var resyncPhase = context.Phase(40, 99);
        var formats = RecordedFormats(item);
        var stats = await SyncReverseAsync(item, target, reverse.TargetDisks, formats, allowCreate: false, reversePhase).ConfigureAwait(false);
        item = await _vault.UpdateItemAsync(item.Id, i =>
        {
            ItemStateMachine.EnsureAllowed(i, ItemOperation.Failback);
            foreach (var disk in i.Disks)
            {
                disk.SourcePath = reverse.TargetDisks[disk.DiskId];
                disk.SourceIdentity = Replication.DiskFileType.Of(disk.SourcePath)?.Identity;
                // The disks written are the source now, in the format they were written in (an alternate disk may differ from the original).
                disk.SourceFormat = formats.GetValueOrDefault(disk.DiskId);
            }
            i.State = ProtectedItemState.Protected;
            i.MarkResyncRequired($"Failed back from '{i.Failover!.TargetPath}': the original disks now hold the recovered machine.");
            i.Failover = null;
            i.Reverse = null;
        }, CancellationToken.None).ConfigureAwait(false);
        string removedNote = "";
        if (target is not AsrLocalTarget)
        {
            try
            {
                var removed = await target.RemoveAsync(item, machine, JobContext.Detached(context.CancellationToken)).ConfigureAwait(false);
                removedNote = $" The recovered machine was deleted ({removed.Count} resource(s)).";
            }
            catch (AsrException ex)
            {
                // The data is safe on the original disks; what is left is listed so that it can be deleted.
                context.Logger.LogWarning(ex, "Failback of {Item}: the recovered machine {Machine} could not be deleted", item.Name, machine.MachineId);
                removedNote = $" The recovered machine '{machine.MachineId}' could not be deleted ({ex.Message}); delete it in {target.Location}.";
            }
        }
        resyncPhase.Report(0, $"'{item.Name}' is back on its original disks; re-enabling protection to the vault (checksum resync)");
        // The caller's item lease covers this cycle too.
        var resync = await _replication.RunCycleAsync(item, forceResync: true, resyncPhase).ConfigureAwait(false);
        context.Report(100, $"'{item.Name}' failed back; protection re-enabled at point {resync.RecoveryPointSequence}");
        return new AsrJobResult
        {
            Mode = "Failback",
            BlocksCompared = stats.BlocksCompared,
            ChangedBlocks = stats.BlocksSent,
            BytesSent = stats.BytesSent,
            RecoveryPointSequence = resync.RecoveryPointSequence,
            RecoveryPointId = resync.RecoveryPointId,
            Note = $"Final reverse sync sent {stats.BytesSent:N0} bytes; the resync to the vault stored {resync.BytesStored:N0} bytes." + removedNote,
        };
    }

    private static AsrJobResult Result(string mode, DiskSyncStats s) => new()
    {
        Mode = mode,
        BlocksCompared = s.BlocksCompared,
        ChangedBlocks = s.BlocksSent,
        ChangedBytes = s.BytesSent,
        BytesSent = s.BytesSent,
    };

    /// <summary>Checks a reprotect request (state and target disks) without changing anything.</summary>
    public void ValidateReprotect(AsrProtectedItem item, IReadOnlyList<string>? alternateDisks)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Reprotect);
        ReverseTargets(item, alternateDisks);
    }

    /// <summary>
    /// The image format of each reverse target the item records (null: raw). Vault data: each is parsed (DiskFormatUnsupported
    /// when unknown), and records from before formats give the originals their pinned <see cref="ProtectedDisk.SourceFormat"/>.
    /// </summary>
    private static Dictionary<string, string?> RecordedFormats(AsrProtectedItem item)
    {
        var reverse = item.Reverse!;
        return item.Disks.ToDictionary(d => d.DiskId, d =>
        {
            string? format = reverse.TargetFormats is { } recorded ? recorded.GetValueOrDefault(d.DiskId)
                : string.Equals(reverse.TargetDisks.GetValueOrDefault(d.DiskId), d.SourcePath, StringComparison.Ordinal) ? d.SourceFormat : null;
            return PinnedName(format);
        });
    }

    /// <summary>A stored format in the spelling disks pin it with: null for raw, else QEMU's name (parsed, so garbage is refused).</summary>
    private static string? PinnedName(string? format)
    {
        if (format is null) return null;
        var parsed = Replication.Sources.Images.DiskImageFormats.Parse(format);
        return parsed == Replication.Sources.Images.DiskImageFormat.Raw ? null : Replication.Sources.Images.DiskImageFormats.QemuName(parsed);
    }

    /// <summary>Checks the disks a reverse cycle or a failback would write (<see cref="EnsureReverseTarget"/>) without changing anything.</summary>
    public void ValidateReverseTargets(AsrProtectedItem item)
    {
        if (item.Reverse is not { } reverse) return;
        var formats = RecordedFormats(item);
        foreach (var disk in item.Disks) EnsureReverseTarget(item, disk, reverse.TargetDisks, formats, allowCreate: false);
    }

    /// <summary>
    /// The disks reprotect writes. The original disks come from the item record, that is from the vault: each
    /// must still be the disk that was protected on this host (same file or device as recorded at enable
    /// time, of the recorded size), and none may be a system file or inside the vault (<see cref="EnsureReverseTarget"/>).
    /// Alternate disks are the caller's: they pass the same location rules, and may be new.
    /// Also returns each target's image format (null: raw): an original disk's pinned <see cref="ProtectedDisk.SourceFormat"/>; an
    /// existing alternate file's, told by its magic bytes as when a disk is protected (a new one, or a block device, is raw).
    /// </summary>
    private (Dictionary<string, string> Targets, Dictionary<string, string?> Formats) ReverseTargets(AsrProtectedItem item, IReadOnlyList<string>? alternateDisks)
    {
        if (alternateDisks is not { Count: > 0 })
        {
            foreach (var d in item.Disks)
                if (!File.Exists(d.SourcePath))
                    throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                        $"The original disk '{d.SourcePath}' of '{item.Name}' is gone. Reprotect to an alternate location with -AlternateDisk.", d.SourcePath);
            var originals = item.Disks.ToDictionary(d => d.DiskId, d => d.SourcePath);
            var originalFormats = item.Disks.ToDictionary(d => d.DiskId, d => PinnedName(d.SourceFormat));
            foreach (var d in item.Disks) EnsureReverseTarget(item, d, originals, originalFormats, allowCreate: false);
            return (originals, originalFormats);
        }
        if (alternateDisks.Count != item.Disks.Count)
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.InvalidArgument,
                $"'{item.Name}' has {item.Disks.Count} disk(s) ({string.Join(", ", item.Disks.Select(d => d.Name))}); give one alternate disk for each, in that order.", item.Name);
        var full = alternateDisks.Select(Path.GetFullPath).ToList();
        if (full.Distinct().Count() != full.Count)
            throw new AsrException(AsrErrorIds.DiskDuplicate, AsrErrorKind.InvalidArgument, "The alternate disks must be distinct.", item.Name);
        var alternates = item.Disks.Zip(full).ToDictionary(p => p.First.DiskId, p => p.Second);
        // Where they are is checked before anything is read from them (a header is read to tell an existing file's format).
        foreach (var d in item.Disks)
            Storage.OutputLocation.EnsureDiskTarget(alternates[d.DiskId], null, null, mayCreate: true, _vault.Store, AsrErrorIds.FailoverTargetInvalid, $"Disk '{d.Name}' of '{item.Name}' at");
        var alternateFormats = alternates.ToDictionary(a => a.Key, a => AlternateFormat(a.Value));
        foreach (var d in item.Disks) EnsureReverseTarget(item, d, alternates, alternateFormats, allowCreate: true);
        return (alternates, alternateFormats);
    }

    /// <summary>An alternate disk's format: raw when it is new or a block device, else told by its magic bytes (as Enable-AsrReplication does).</summary>
    private static string? AlternateFormat(string path)
    {
        var type = Replication.DiskFileType.Of(path);
        bool regularFile = type is { Kind: Replication.DiskFileKind.RegularFile } || (type is null && File.Exists(path));
        return regularFile ? Replication.Sources.SourceDisks.FormatToPin(path, null, isBlockDevice: false) : null;
    }

    /// <summary>
    /// Refuses (FailoverTargetInvalid) to write <paramref name="disk"/>'s reverse target unless it is a regular
    /// file or a block device outside the system directories and the vault (<see cref="Storage.OutputLocation.EnsureDiskTarget"/>),
    /// and, for a target the item record names (not one the caller just gave), of the disk's recorded size and
    /// still the file or device recorded when it was protected or reprotected. A target the record names that
    /// is not the original disk must be recorded as an alternate location.
    /// </summary>
    private void EnsureReverseTarget(AsrProtectedItem item, ProtectedDisk disk, IReadOnlyDictionary<string, string> targets,
        IReadOnlyDictionary<string, string?> formats, bool allowCreate)
    {
        string path = targets.TryGetValue(disk.DiskId, out var t) ? t
            : throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument,
                $"The reverse replication of '{item.Name}' names no target for disk '{disk.Name}'; reprotect again.", item.Name);
        string what = $"Disk '{disk.Name}' of '{item.Name}' at";
        string? format = formats.GetValueOrDefault(disk.DiskId);
        if (format is not null && !Replication.Sources.Images.DiskImageFormats.IsWritable(Replication.Sources.Images.DiskImageFormats.Parse(format)))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"{what} '{path}' is a legacy VHD image, which is supported for reading only: reprotect and failback cannot write into it. " +
                "Reprotect with -AlternateDisk to a new or raw file, or to an image of another format (qcow2, VMDK, VHDX, VDI) of the disk's size; " +
                "the failback then makes that disk the source.", path);
        if (allowCreate)
        {
            // A raw alternate is created or resized to the disk's size; an image cannot be resized here, so it must hold that size already.
            Storage.OutputLocation.EnsureDiskTarget(path, format is null ? null : disk.SizeBytes, null, mayCreate: true, _vault.Store, AsrErrorIds.FailoverTargetInvalid, what, format);
            return;
        }
        bool original = string.Equals(path, disk.SourcePath, StringComparison.Ordinal);
        if (!original && item.Reverse is { AlternateLocation: false })
            throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument,
                $"{what} '{path}': the item record says reverse replication writes the original disks, but this is not the original disk '{disk.SourcePath}'. Reprotect again (with -AlternateDisk to write elsewhere).", path);
        string? identity = item.Reverse?.TargetIdentities?.GetValueOrDefault(disk.DiskId) ?? (original ? disk.SourceIdentity : null);
        Storage.OutputLocation.EnsureDiskTarget(path, disk.SizeBytes, identity, mayCreate: false, _vault.Store, AsrErrorIds.FailoverTargetInvalid, what, format);
    }

    /// <summary>
    /// Recovered disk → target disk, by checksum comparison of both sides every time (each side hashes
    /// its own disk, in parallel; only differing blocks are sent). Nothing is trusted from an earlier
    /// sync, so a target that was replaced or rewritten meanwhile is still made exact. A missing target
    /// is an error unless <paramref name="allowCreate"/> (a new alternate disk: full copy).
    /// Progress: each disk has a slice by its size, 90% of it hashing both sides and the rest sending.
    /// </summary>
    private async Task<DiskSyncStats> SyncReverseAsync(AsrProtectedItem item, IRecoveryTarget target, IReadOnlyDictionary<string, string> targets,
        IReadOnlyDictionary<string, string?> formats, bool allowCreate, JobContext context)
    {
        var ct = context.CancellationToken;
        foreach (var disk in item.Disks)
            if (!allowCreate && !File.Exists(targets[disk.DiskId]))
                throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                    $"Disk '{targets[disk.DiskId]}' at the original site is gone. Reprotect again with -AlternateDisk to a new location.", targets[disk.DiskId]);
        // Checked again here, right before writing, whoever called: the targets come from the item record.
        foreach (var disk in item.Disks) EnsureReverseTarget(item, disk, targets, formats, allowCreate);
        // Point-in-time readers of the recovered disks (files, or snapshots of the Azure VM's disks).
        await using var recovered = await target.OpenRecoveredDisksAsync(item, AsrLocalTarget.MachineOf(item.Failover!), ct).ConfigureAwait(false);
        long total = Math.Max(1, item.Disks.Sum(d => recovered.Disks[d.DiskId].Size)), before = 0;
        long compared = 0, sent = 0, bytesSent = 0;
        foreach (var disk in item.Disks)
        {
            var from = recovered.Disks[disk.DiskId];
            string to = targets[disk.DiskId];
            long size = from.Size;
            var diskPhase = context.Phase((int)(100 * before / total), (int)(100 * (before + size) / total));
            before += size;
            string status = $"Comparing checksums of disk '{disk.Name}' of '{item.Name}' on both sides";
            diskPhase.Report(0, status);
            // Both sides are hashed at once: the count and the report go together under a lock, so reports stay in order.
            long hashed = 0;
            var gate = new object();
            var progress = new Progress(bytes =>
            {
                lock (gate) diskPhase.Report((int)(90 * (hashed += bytes) / Math.Max(1, 2 * size)), status);
            });
            var fromTask = DiskChecksums.HashAsync(from, size, disk.BlockSize, _vault.HashSeed, progress, ct);
            string? toFormat = formats.GetValueOrDefault(disk.DiskId);
            var toTask = DiskChecksums.HashAsync(to, size, disk.BlockSize, _vault.HashSeed, progress, ct, toFormat);
            await Task.WhenAll(fromTask, toTask).ConfigureAwait(false);
            diskPhase.Report(90, $"Sending the blocks of disk '{disk.Name}' of '{item.Name}' that differ");
            var s = await DiskChecksums.CopyDifferencesAsync(from, fromTask.Result, to, toTask.Result, null, ct, toFormat).ConfigureAwait(false);
            diskPhase.Report(100, $"Disk '{disk.Name}' of '{item.Name}': {s.BlocksSent:N0} of {s.BlocksCompared:N0} blocks differed and were sent");
            compared += s.BlocksCompared; sent += s.BlocksSent; bytesSent += s.BytesSent;
            context.Logger.LogInformation("Disk {Disk}: {Sent} of {Compared} blocks differed; {Bytes} bytes sent from {Source} to {Target}", disk.Name, s.BlocksSent, s.BlocksCompared, s.BytesSent, from.Location, to);
        }
        return new DiskSyncStats(compared, sent, bytesSent);
    }

    private sealed class Progress(Action<long> onReport) : IProgress<long>
    {
        public void Report(long value) => onReport(value);
    }
}
