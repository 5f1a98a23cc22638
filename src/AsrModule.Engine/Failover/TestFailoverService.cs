using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Failover;

/// <summary>
/// Drills (test failover): the disks of a recovery point served as NBD exports straight out of the
/// vault, each under a copy-on-write overlay in the drill's own directory. Nothing is copied before the
/// first read, so a disk of any size is readable as soon as its extent map is loaded; writes go to the
/// overlay only, so the vault and the source never see them; replication continues meanwhile (points
/// are immutable). The NBD server lives in the process that started the drill.
/// </summary>
public sealed class TestFailoverService
{
    private readonly AsrVault _vault;

    public TestFailoverService(AsrVault vault) => _vault = vault;

    public void Validate(AsrProtectedItem item)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.TestFailover);
        if (item.ExclusiveOperation is { } op && !OwnerGone(op))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"'{item.Name}' is busy with {op.Operation} (job {op.JobId}); start the drill after it ends.", item.Name);
    }

    internal static bool OwnerGone(ExclusiveOperationRecord op) =>
        op.OwnerHost == Environment.MachineName && !ProcessIsAlive(op.OwnerProcessId);

    public async Task<AsrJobResult> StartAsync(AsrProtectedItem item, RecoveryPointChoice choice, IRecoveryTarget target, Func<JobContext, Task>? syncFirst, JobContext context)
    {
        var ct = context.CancellationToken;
        var started = Stopwatch.StartNew();
        if (choice.Kind == RecoveryPointKind.Latest && syncFirst is not null)
        {
            // The sync is most of the job; serving the disks afterwards takes moments.
            var syncPhase = context.Phase(0, 90);
            syncPhase.Report(0, $"Latest: replicating '{item.Name}' before the drill");
            await syncFirst(syncPhase).ConfigureAwait(false);
            item = await _vault.GetItemAsync(item.Name, ct).ConfigureAwait(false);
        }
        Validate(item);
        var point = await choice.ResolveAsync(_vault, item, ct).ConfigureAwait(false);
        // Pinned until the drill's record names the point (from then on the record keeps it from retention).
        await using var pin = await PointPin.AcquireAsync(_vault, point, "TestFailover", ct).ConfigureAwait(false);
        point = pin.Point;
        var drillId = Guid.NewGuid();
        if (target is not AsrLocalTarget local)
            return await StartInTargetAsync(item, point, target, drillId, started, context).ConfigureAwait(false);
        string dir = local.DrillDirectory(item.Name, drillId);
        Directory.CreateDirectory(dir);
        var devices = new List<OverlayBlockDevice>();
        NbdServer? server = null;
        try
        {
            var exports = new Dictionary<string, IBlockDevice>(StringComparer.Ordinal);
            foreach (var disk in point.Disks)
            {
                // The disk name comes from the vault: a plain file name, and the overlay stays inside the drill's directory.
                string overlayPath = VaultRecordChecks.JoinInside(dir, disk.Name, ".overlay", VaultLayout.PointManifest(point.ItemId, point.Sequence));
                var baseDevice = await RecoveryPointBlockDevice.OpenAsync(_vault, point, disk.DiskId, ct).ConfigureAwait(false);
                var overlay = new OverlayBlockDevice(baseDevice, overlayPath);
                devices.Add(overlay);
                exports[disk.Name] = overlay;
            }
            server = new NbdServer(exports, logger: context.Logger);
            await server.StartAsync(ct).ConfigureAwait(false);
            var uris = point.Disks.ToDictionary(d => d.Name, d => server.ExportUri(d.Name).ToString());
            long readyMs = started.ElapsedMilliseconds;

            MachineDescription.For(item.Name, "TestFailover", _vault.VaultId, point,
                point.Disks.Select((d, i) => new MachineDisk { Name = d.Name, SizeBytes = d.SizeBytes, Location = uris[d.Name], BootOrder = i })).Write(dir);

            var record = new TestFailoverRecord
            {
                Id = drillId,
                RecoveryPointSequence = point.Sequence,
                RecoveryPointTimeUtc = point.RecoveryPointTimeUtc,
                Directory = dir,
                StartedUtc = DateTimeOffset.UtcNow,
                OwnerProcessId = Environment.ProcessId,
                OwnerHost = Environment.MachineName,
                Exports = uris,
                JobId = context.Job.Id,
            };
            await _vault.UpdateItemAsync(item.Id, i =>
            {
                Validate(i); // re-checked under the record lock: a failover may have claimed the item meanwhile
                i.State = ProtectedItemState.TestFailedOver;
                i.TestFailover = record;
            }, ct).ConfigureAwait(false);
            ActiveDrills.Add(item.Id, new ActiveDrill(server, devices));
            context.Report(100, $"Drill of '{item.Name}' from point {point.Sequence}: {uris.Count} disk(s) served over NBD, ready after {readyMs} ms");
            context.Logger.LogInformation("Drill {Drill} of {Item}: {Exports}", drillId, item.Name, string.Join(", ", uris.Values));
            return new AsrJobResult
            {
                Mode = "TestFailover",
                RecoveryPointSequence = point.Sequence,
                RecoveryPointId = point.PointId,
                Exports = uris,
                Files = [Path.Combine(dir, MachineDescription.FileName)],
                ReadyAfterMilliseconds = readyMs,
            };
        }
        catch
        {
            if (server is not null) await server.DisposeAsync().ConfigureAwait(false);
            foreach (var d in devices) await d.DisposeAsync().ConfigureAwait(false);
            TryDeleteDirectory(dir);
            throw;
        }
    }

    /// <summary>
    /// A drill in a target that runs machines (Azure): the target makes the drill's machine from the point in its drill
    /// network, marked with the drill's id, and cleanup deletes exactly that.
    /// </summary>
    private async Task<AsrJobResult> StartInTargetAsync(AsrProtectedItem item, AsrRecoveryPoint point, IRecoveryTarget target, Guid drillId, Stopwatch started, JobContext context)
    {
        var ct = context.CancellationToken;
        await target.ValidateAsync(_vault, item, RecoveryPurpose.TestFailover, ct).ConfigureAwait(false);
        var machine = await target.RecoverAsync(_vault, item, point, RecoveryPurpose.TestFailover, drillId, context.Phase(0, 99)).ConfigureAwait(false);
        long readyMs = started.ElapsedMilliseconds;
        try
        {
            await _vault.UpdateItemAsync(item.Id, i =>
            {
                Validate(i); // re-checked under the record lock: a failover may have claimed the item meanwhile
                i.State = ProtectedItemState.TestFailedOver;
                i.TestFailover = new TestFailoverRecord
                {
                    Id = drillId,
                    RecoveryPointSequence = point.Sequence,
                    RecoveryPointTimeUtc = point.RecoveryPointTimeUtc,
                    StartedUtc = DateTimeOffset.UtcNow,
                    OwnerProcessId = Environment.ProcessId,
                    OwnerHost = Environment.MachineName,
                    JobId = context.Job.Id,
                    Machine = machine,
                };
            }, ct).ConfigureAwait(false);
        }
        catch
        {
            try { await target.RemoveAsync(item, machine, JobContext.Detached()).ConfigureAwait(false); }
            catch (AsrException ex) { context.Logger.LogWarning(ex, "Could not remove the machine of the failed drill of {Item}: {Machine}", item.Name, machine.MachineId); }
            throw;
        }
        context.Report(100, $"Drill of '{item.Name}' from point {point.Sequence}: {machine.MachineId} ({target.Kind}), ready after {readyMs} ms");
        return new AsrJobResult
        {
            Mode = "TestFailover",
            RecoveryPointSequence = point.Sequence,
            RecoveryPointId = point.PointId,
            Files = machine.Disks.Values.Append(machine.MachineId).ToList(),
            ReadyAfterMilliseconds = readyMs,
        };
    }

    /// <summary>
    /// Reads every disk the drill serves over NBD, as a hypervisor would, and compares it with the
    /// recovery point's content digest. A disk the drill has written to differs (reported by block count).
    /// </summary>
    /// <summary>Checks before any job that <paramref name="item"/> has a drill to verify (and, for a drill in Azure, that its target is known).</summary>
    public static void ValidateVerify(AsrProtectedItem item, IRecoveryTarget? given)
    {
        if (item.State != ProtectedItemState.TestFailedOver || item.TestFailover is null)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                $"'{item.Name}' has no drill to verify (state {item.State}). Start one with Start-AsrTestFailover.", item.Name);
        if (item.TestFailover.Machine is { } machine) RecoveryTargets.Resolve(machine, given, item.Name);
    }

    public async Task<AsrJobResult> VerifyAsync(AsrProtectedItem item, IRecoveryTarget? given, JobContext context)
    {
        var ct = context.CancellationToken;
        ValidateVerify(item, given);
        var drill = item.TestFailover!;
        var point = await _vault.GetPointAsync(item.Id, drill.RecoveryPointSequence, ct).ConfigureAwait(false);
        if (drill.Machine is { } machine)
            return await VerifyInTargetAsync(item, point, RecoveryTargets.Resolve(machine, given, item.Name), machine, context).ConfigureAwait(false);
        var verdicts = new List<string>();
        bool allMatch = true;
        long totalBytes = Math.Max(1, point.Disks.Sum(d => d.SizeBytes)), done = 0;
        foreach (var disk in point.Disks)
        {
            var watch = Stopwatch.StartNew();
            var table = new BlockHashTable(disk.SizeBytes, disk.BlockSize, _vault.HashSeed);
            await using (var client = await NbdClient.ConnectAsync(new Uri(drill.Exports[disk.Name]), ct).ConfigureAwait(false))
            {
                if (client.Size != disk.SizeBytes)
                    throw new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                        $"The drill serves '{disk.Name}' with {client.Size:N0} bytes; point {point.Sequence} has {disk.SizeBytes:N0}.", disk.Name);
                var buffer = new byte[4 << 20];
                for (long offset = 0; offset < disk.SizeBytes; offset += buffer.Length)
                {
                    int length = (int)Math.Min(buffer.Length, disk.SizeBytes - offset);
                    await client.ReadAsync(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                    for (int b = 0; b * disk.BlockSize < length; b++)
                        table.Hashes[offset / disk.BlockSize + b] = table.Hash(buffer.AsSpan(b * disk.BlockSize, Math.Min(disk.BlockSize, length - b * disk.BlockSize)));
                    done += length;
                    context.Report((int)(100 * done / totalBytes), $"Verifying drill disk '{disk.Name}' over NBD");
                }
            }
            if (Replication.TrackerTables.HashSegments.DigestOf(table, disk) == disk.ContentDigest)
            {
                verdicts.Add($"{disk.Name}: {disk.SizeBytes:N0} bytes read over NBD in {watch.Elapsed.TotalSeconds:F1} s, identical to point {point.Sequence}");
                continue;
            }
            allMatch = false;
            using var reader = await RecoveryPointDiskReader.OpenAsync(_vault, point, disk.DiskId, ct).ConfigureAwait(false);
            var expected = await reader.ComputeBlockHashesAsync(ct).ConfigureAwait(false);
            long differing = table.Hashes.Where((h, i) => h != expected.Hashes[i]).LongCount();
            verdicts.Add($"{disk.Name}: {differing:N0} block(s) differ from point {point.Sequence} (written during the drill?)");
        }
        context.Report(100, allMatch ? $"Drill of '{item.Name}' verified: every disk equals point {point.Sequence}" : $"Drill of '{item.Name}' differs from point {point.Sequence}");
        return new AsrJobResult { Mode = "VerifyTestFailover", RecoveryPointSequence = point.Sequence, Verified = allMatch, Note = string.Join("; ", verdicts) };
    }

    /// <summary>Reads the drill machine's disks back from the target (Azure: through snapshots) and compares each with the point's content digest.</summary>
    private async Task<AsrJobResult> VerifyInTargetAsync(AsrProtectedItem item, AsrRecoveryPoint point, IRecoveryTarget target, RecoveredMachineRecord machine, JobContext context)
    {
        var ct = context.CancellationToken;
        await using var disks = await target.OpenRecoveredDisksAsync(item, machine, ct).ConfigureAwait(false);
        var verdicts = new List<string>();
        bool allMatch = true;
        long totalBytes = Math.Max(1, point.Disks.Sum(d => d.SizeBytes)), done = 0;
        foreach (var disk in point.Disks)
        {
            var watch = Stopwatch.StartNew();
            if (!disks.Disks.TryGetValue(disk.DiskId, out var reader))
                throw new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                    $"The drill machine of '{item.Name}' has no disk for '{disk.Name}'.", disk.Name);
            var table = await DiskChecksums.HashAsync(reader, disk.SizeBytes, disk.BlockSize, _vault.HashSeed,
                new ByteProgress(n => context.Report((int)(100 * (done += n) / totalBytes), $"Verifying drill disk '{disk.Name}' in {target.Kind}")), ct).ConfigureAwait(false);
            if (reader.Size >= disk.SizeBytes && Replication.TrackerTables.HashSegments.DigestOf(table, disk) == disk.ContentDigest)
            {
                verdicts.Add($"{disk.Name}: {disk.SizeBytes:N0} bytes read back from {reader.Location} in {watch.Elapsed.TotalSeconds:F1} s, identical to point {point.Sequence}");
                continue;
            }
            allMatch = false;
            using var pointReader = await RecoveryPointDiskReader.OpenAsync(_vault, point, disk.DiskId, ct).ConfigureAwait(false);
            var expected = await pointReader.ComputeBlockHashesAsync(ct).ConfigureAwait(false);
            long differing = table.Hashes.Where((h, i) => h != expected.Hashes[i]).LongCount();
            verdicts.Add($"{disk.Name}: {differing:N0} block(s) differ from point {point.Sequence} (written by the drill machine?)");
        }
        context.Report(100, allMatch ? $"Drill of '{item.Name}' verified: every disk equals point {point.Sequence}" : $"Drill of '{item.Name}' differs from point {point.Sequence}");
        return new AsrJobResult { Mode = "VerifyTestFailover", RecoveryPointSequence = point.Sequence, Verified = allMatch, Note = string.Join("; ", verdicts) };
    }

    private sealed class ByteProgress(Action<long> onReport) : IProgress<long>
    {
        public void Report(long value) => onReport(value);
    }

    public void ValidateCleanup(AsrProtectedItem item)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.TestFailoverCleanup);
        var drill = item.TestFailover!;
        if (drill.Machine is not null) return; // a machine in a target: no process serves it
        if (!ActiveDrills.IsServedHere(item.Id) && drill.OwnerHost == Environment.MachineName && drill.OwnerProcessId != Environment.ProcessId && ProcessIsAlive(drill.OwnerProcessId))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"The drill of '{item.Name}' is served by process {drill.OwnerProcessId}; clean it up from that session, or end that process first.", item.Name);
    }

    /// <summary>Stops serving the drill, deletes everything it made and returns the item to its protection state.</summary>
    public async Task<AsrJobResult> CleanupAsync(AsrProtectedItem item, string? comment, IRecoveryTarget? given, JobContext context)
    {
        ValidateCleanup(item);
        var drill = item.TestFailover!;
        if (drill.Machine is { } machine)
        {
            // Found again from the target (its resource group and the drill's tag), not from the record's ids.
            var removed = await RecoveryTargets.Resolve(machine, given, item.Name).RemoveAsync(item, machine, context.Phase(0, 90)).ConfigureAwait(false);
            context.Logger.LogInformation("Drill {Drill} of {Item}: removed {Resources}", drill.Id, item.Name, string.Join(", ", removed));
        }
        else if (ActiveDrills.Remove(item.Id) is { } active)
        {
            long written = active.Devices.Sum(d => d.WrittenBytes);
            context.Logger.LogInformation("Drill {Drill}: discarding {Bytes} bytes the drill wrote", drill.Id, written);
            await active.DisposeAsync().ConfigureAwait(false);
        }
        if (drill.Machine is null)
        {
            TryDeleteDirectory(DrillDirectory(item, drill, "nothing was deleted. Delete the drill's files yourself, then clean up again"));
        }
        if (drill.Machine is null && Directory.Exists(drill.Directory))
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.WriteError, $"Could not remove the drill directory '{drill.Directory}'.", drill.Directory);
        await _vault.UpdateItemAsync(item.Id, i =>
        {
            i.State = i.ResyncReason is not null ? ProtectedItemState.ResyncRequired : ProtectedItemState.Protected;
            i.TestFailover = null;
            i.LastTestFailover = new TestFailoverSummary
            {
                Id = drill.Id,
                RecoveryPointSequence = drill.RecoveryPointSequence,
                StartedUtc = drill.StartedUtc,
                CleanedUpUtc = DateTimeOffset.UtcNow,
                Comment = comment,
                Boot = drill.Boot,
            };
        }, CancellationToken.None).ConfigureAwait(false);
        context.Report(100, $"Drill of '{item.Name}' cleaned up{(string.IsNullOrEmpty(comment) ? "" : ": " + comment)}");
        return new AsrJobResult { Mode = "TestFailoverCleanup", RecoveryPointSequence = drill.RecoveryPointSequence, Note = comment };
    }

    /// <summary>
    /// The drill's directory, which comes from the vault: accepted only when it is a drill directory of this item and drill
    /// (fully qualified, named after both, no "..").
    /// </summary>
    internal static string DrillDirectory(AsrProtectedItem item, TestFailoverRecord drill, string consequence)
    {
        string expected = $"{item.Name}-drill-{drill.Id.ToString("N")[..8]}";
        if (!Path.IsPathFullyQualified(drill.Directory) || Path.GetFileName(drill.Directory.TrimEnd('/')) != expected || drill.Directory.Contains("/../", StringComparison.Ordinal))
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"The drill record of '{item.Name}' names '{drill.Directory}' as its directory, which is not a drill directory of this drill ('{expected}'); {consequence}.", VaultLayout.Item(item.Id));
        return drill.Directory;
    }

    internal static bool ProcessIsAliveOrHere(int pid) => pid == Environment.ProcessId || ProcessIsAlive(pid);

    private static bool ProcessIsAlive(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    private static void TryDeleteDirectory(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
