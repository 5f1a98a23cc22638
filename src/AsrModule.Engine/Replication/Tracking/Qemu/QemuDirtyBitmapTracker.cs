using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>
/// The tracker for running QEMU/KVM guests, driven over QMP: pull-mode incremental backup with image
/// fleecing, as QEMU documents it (docs/interop/bitmaps.rst).
/// </summary>
/// <remarks>
/// <para>Per disk, a dirty bitmap named for the latest published point P records "changes since P".
/// A capture for point N runs one QMP transaction for all the item's disks, so they share one
/// instant: it freezes P's bitmap, starts N's, and starts a backup job with sync=none into a qcow2
/// overlay whose backing is the disk (image fleecing: QEMU copies old data into the overlay before
/// the guest overwrites it). The overlays are exported over QEMU's NBD server on a unix socket,
/// together with P's frozen bitmap; the changed ranges come from NBD block status of the
/// "qemu:dirty-bitmap:" metadata context and the data from reads of the export.</para>
/// <para>Commit drops P's bitmap (N's now records "changes since N"); abort merges N's bitmap back into
/// P's and lets P's record again, so no write is lost. Whatever a killed agent left behind (exports,
/// jobs, overlays, a frozen bitmap beside a newer one) is cleaned up at open and at each capture, and
/// the bitmaps are reconciled with the point the vault really published.</para>
/// <para>The bitmaps are not persistent (raw images cannot store them), so a QEMU restart loses them:
/// the next capture then reports the history as lost and the cycle reads every block.</para>
/// </remarks>
public sealed class QemuDirtyBitmapTracker : IChangeTracker
{
    // The vault compares 4 KiB blocks: finer costs bitmap memory without saving reads, coarser rereads unchanged blocks.
    private const long BitmapGranularity = 4096;
    // NBD_STATE_DIRTY, the one flag of QEMU's "qemu:dirty-bitmap:" contexts (QEMU docs/interop/nbd.txt).
    private const uint DirtyFlag = 1;
    private const string DirtyBitmapContextPrefix = "qemu:dirty-bitmap:";
    // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    private const int MaximumUnixSocketPath = 107;
    private static readonly TimeSpan GreetingTimeout = TimeSpan.FromSeconds(10);
    // Exports and jobs go away asynchronously after QEMU acknowledges their deletion; this bounds the wait.
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan SettlePoll = TimeSpan.FromMilliseconds(5);

    private readonly string _itemId;
    private readonly string _itemName;
    private readonly string _qmpSocketPath;
    private readonly ILogger _logger;
    private readonly QemuBlockNames _names;
    private readonly string _workDirectory;
    private readonly string _nbdSocketPath;
    private QmpClient? _qmp;
    private ActiveCapture? _capture;
    private bool _pausedByThis;
    private bool _disposed;

    private QemuDirtyBitmapTracker(AsrProtectedItem item, string qmpSocketPath, ILogger logger)
    {
        _itemId = item.Id;
        _itemName = item.Name;
        _qmpSocketPath = Path.GetFullPath(qmpSocketPath);
        _logger = logger;
        _names = new QemuBlockNames(item.Id);
        // QEMU created its QMP socket there, so it can create its scratch files and NBD socket there too
        // (for libvirt guests: the per-domain directory, already labelled for QEMU).
        _workDirectory = Path.GetDirectoryName(_qmpSocketPath)!;
        string nbdSocket = Path.Combine(_workDirectory, QemuBlockNames.NbdSocketFileName(_qmpSocketPath));
        _nbdSocketPath = nbdSocket.Length <= MaximumUnixSocketPath ? nbdSocket : Path.Combine(Path.GetTempPath(), QemuBlockNames.NbdSocketFileName(_qmpSocketPath));
    }

    public string Kind => "QemuDirtyBitmap";
    public bool CapturesPointInTime => true;
    public string CaptureEvidence => "point-in-time capture by QEMU (one transaction: a backup job's snapshot of every disk and a new dirty bitmap)";

    /// <summary>QEMU's version, from the QMP greeting.</summary>
    public string QemuVersion => _qmp?.QemuVersion ?? "unknown";

    /// <summary>
    /// Connects to the item's QEMU (<see cref="AsrProtectedItem.QmpSocketPath"/>) and removes what a
    /// killed agent left behind. The tracker holds the QMP socket until disposed.
    /// </summary>
    public static async Task<QemuDirtyBitmapTracker> OpenAsync(AsrProtectedItem item, ILogger logger, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(item.QmpSocketPath))
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.InvalidArgument,
                $"Item '{item.Name}' has no QMP socket: QEMU dirty-bitmap tracking needs the path of the guest's QMP socket.", item.Name);
        // The path comes from the vault: connect only to a unix socket that root or this user made.
        if (Consistency.HostFileTrust.Problem(item.QmpSocketPath, DiskFileKind.Socket) is { } problem)
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.SecurityError,
                $"The QMP socket of '{item.Name}' is not used: {problem}. A QMP socket must be a unix socket owned by root or by the user the agent runs as " +
                "(QEMU started by that user), in a directory only they can write to.", item.Name);
        var tracker = new QemuDirtyBitmapTracker(item, item.QmpSocketPath, logger);
        try
        {
            await tracker.GuardAsync("prepare change tracking", async () =>
            {
                await tracker.QmpAsync(ct).ConfigureAwait(false);
                await tracker.ResumeGuestLeftPausedAsync(ct).ConfigureAwait(false);
                await tracker.RemoveFleecingAsync(ct).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
            return tracker;
        }
        catch
        {
            await tracker.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // ------------------------------------------------------------------ pause / resume

    public Task PauseSourceAsync(CancellationToken cancellationToken) => GuardAsync("pause the guest", async () =>
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var qmp = await QmpAsync(cancellationToken).ConfigureAwait(false);
        var status = await qmp.ExecuteAsync("query-status", null, cancellationToken).ConfigureAwait(false);
        // A guest someone else paused stays theirs to resume.
        if (!status.GetProperty("running").GetBoolean()) return false;
        WritePauseMarker();
        await qmp.ExecuteAsync("stop", null, cancellationToken).ConfigureAwait(false);
        _pausedByThis = true;
        return true;
    });

    public async Task ResumeSourceAsync()
    {
        if (!_pausedByThis) return;
        await GuardAsync("resume the guest", async () =>
        {
            var qmp = await QmpAsync(CancellationToken.None).ConfigureAwait(false);
            await qmp.ExecuteAsync("cont", null, CancellationToken.None).ConfigureAwait(false);
            _pausedByThis = false;
            DeletePauseMarker();
            return true;
        }).ConfigureAwait(false);
    }

    private string PauseMarkerPath => Path.Combine(_workDirectory, _names.PauseMarkerFileName);

    private void WritePauseMarker()
    {
        try { File.WriteAllText(PauseMarkerPath, $"{Environment.ProcessId} {DateTimeOffset.UtcNow:O}\n"); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _logger.LogDebug(ex, "Could not mark the pause of {Item}'s guest; a killed agent would leave it paused", _itemName);
        }
    }

    private void DeletePauseMarker()
    {
        try { File.Delete(PauseMarkerPath); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { _logger.LogDebug(ex, "Could not delete {Marker}", PauseMarkerPath); }
    }

    /// <summary>An agent killed between pause and resume leaves the guest stopped; its marker says so.</summary>
    private async Task ResumeGuestLeftPausedAsync(CancellationToken ct)
    {
        if (!File.Exists(PauseMarkerPath)) return;
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        var status = await qmp.ExecuteAsync("query-status", null, ct).ConfigureAwait(false);
        if (status.GetProperty("status").GetString() == "paused")
        {
            _logger.LogWarning("The guest of {Item} was left paused by an interrupted replication cycle; resuming it", _itemName);
            await qmp.ExecuteAsync("cont", null, ct).ConfigureAwait(false);
        }
        DeletePauseMarker();
    }

    // ------------------------------------------------------------------ capture

    public Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (item.Id != _itemId) throw new ArgumentException($"This tracker belongs to item '{_itemName}', not '{item.Name}'.", nameof(item));
        if (nextSequence <= lastSequence) throw new ArgumentOutOfRangeException(nameof(nextSequence), $"Point {nextSequence} does not follow point {lastSequence}.");
        if (_capture is not null)
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.InvalidOperation,
                $"The capture of '{_itemName}' for point {_capture.NextSequence} is still open: commit or abort it first.", _itemName);
        return GuardAsync("capture the disks", () => CaptureCoreAsync(item, lastSequence, nextSequence, cancellationToken));
    }

    private async Task<IReadOnlyList<IDiskCapture>> CaptureCoreAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken ct)
    {
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        // A teardown that failed last time must not block this capture.
        await RemoveFleecingAsync(ct).ConfigureAwait(false);
        var lostReasons = await ReconcileBitmapsAsync(item, lastSequence, ct).ConfigureAwait(false);

        var nodes = await QueryNodesAsync(ct).ConfigureAwait(false);
        var disks = new List<FleecedDisk>();
        foreach (var disk in item.Disks)
        {
            var node = FindDiskNode(nodes, disk);
            string? oldBitmap = lastSequence > 0 && node.Bitmaps.Any(b => b.Name == _names.Bitmap(disk.DiskId, lastSequence))
                ? _names.Bitmap(disk.DiskId, lastSequence) : null;
            string? lost = oldBitmap is not null ? null
                : lastSequence == 0 ? "No earlier point to compare with: every block is read."
                : lostReasons.GetValueOrDefault(disk.DiskId) ?? $"QEMU's dirty bitmap for point {lastSequence} is gone (QEMU restarted?): every block is read.";
            disks.Add(new FleecedDisk(disk, node.NodeName, node.VirtualSize, oldBitmap, _names.Bitmap(disk.DiskId, nextSequence), lost));
        }

        var capture = new ActiveCapture(nextSequence, disks);
        _capture = capture;
        try
        {
            foreach (var disk in disks) await CreateOverlayAsync(disk, ct).ConfigureAwait(false);

            var actions = new JsonArray();
            foreach (var disk in disks)
            {
                if (disk.OldBitmap is not null)
                    actions.Add(Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = disk.Node, ["name"] = disk.OldBitmap }));
                actions.Add(Action("block-dirty-bitmap-add", new JsonObject
                {
                    ["node"] = disk.Node, ["name"] = disk.NewBitmap, ["granularity"] = BitmapGranularity, ["persistent"] = false,
                }));
                actions.Add(Action("blockdev-backup", new JsonObject
                {
                    ["job-id"] = _names.FleeceJob(disk.Disk.DiskId), ["device"] = disk.Node,
                    ["target"] = _names.FleeceNode(disk.Disk.DiskId), ["sync"] = "none",
                }));
            }
            await qmp.ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, ct).ConfigureAwait(false);
            capture.Switched = true;

            await StartNbdServerAsync(ct).ConfigureAwait(false);
            foreach (var disk in disks)
                capture.Views.Add(await ExportAsync(disk, ct).ConfigureAwait(false));
            _logger.LogDebug("Captured {Count} disk(s) of {Item} for point {Sequence} in QEMU {Version}", disks.Count, _itemName, nextSequence, QemuVersion);
            return capture.Views.ToList();
        }
        catch (Exception ex)
        {
            try { await AbortAsync().ConfigureAwait(false); }
            catch (Exception rollback) { _logger.LogWarning(rollback, "Could not undo the failed capture of {Item} (the next capture repairs it): {Cause}", _itemName, ex.Message); }
            throw;
        }
    }

    private QemuBlockNode FindDiskNode(IReadOnlyList<QemuBlockNode> nodes, ProtectedDisk disk) =>
        QemuBlockNode.FindImage(nodes, disk.SourcePath)
        ?? throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.ObjectNotFound,
            $"QEMU ({_qmpSocketPath}) does not have disk '{disk.Name}' ({disk.SourcePath}) of '{_itemName}' open; its images are: "
            + string.Join(", ", nodes.Where(n => n.FileName is not null && !n.NodeName.StartsWith("asr-", StringComparison.Ordinal)).Select(n => n.FileName).Distinct())
            + ". Check that the item's QMP socket belongs to the machine these disks are attached to.", disk.Name);

    /// <summary>
    /// Brings each disk's bitmaps in line with the point the vault published, repairing what a killed
    /// agent or a failed commit/abort left: a newer bitmap (unpublished capture) is merged back into the
    /// published point's one, older ones are dropped. Returns why history is lost for disks where it is.
    /// </summary>
    private async Task<Dictionary<string, string>> ReconcileBitmapsAsync(AsrProtectedItem item, long lastSequence, CancellationToken ct)
    {
        var lost = new Dictionary<string, string>(StringComparer.Ordinal);
        var nodes = await QueryNodesAsync(ct).ConfigureAwait(false);
        var actions = new JsonArray();
        foreach (var disk in item.Disks)
        {
            var node = FindDiskNode(nodes, disk);
            var ours = node.Bitmaps
                .Select(b => (Bitmap: b, Ok: _names.TryParseBitmap(disk.DiskId, b.Name, out long seq), Sequence: seq))
                .Where(b => b.Ok).ToList();
            if (ours.Count == 0) continue;
            var keep = lastSequence > 0 ? ours.FirstOrDefault(b => b.Sequence == lastSequence).Bitmap : null;
            var newer = ours.Where(b => b.Sequence > lastSequence).Select(b => b.Bitmap).ToList();
            var stale = ours.Where(b => b.Sequence < lastSequence).Select(b => b.Bitmap).ToList();
            // The chain "changes since the point" is whole only if its newest link still records.
            bool whole = keep is not null && (keep.Recording || newer.Any(b => b.Recording));
            if (whole)
            {
                if (newer.Count > 0)
                {
                    _logger.LogWarning("Disk {Disk} of {Item}: merging the changes of unpublished capture(s) {Bitmaps} back into {Kept}",
                        disk.Name, _itemName, string.Join(", ", newer.Select(b => b.Name)), keep!.Name);
                    actions.Add(Action("block-dirty-bitmap-merge", new JsonObject
                    {
                        ["node"] = node.NodeName, ["target"] = keep.Name, ["bitmaps"] = new JsonArray(newer.Select(b => (JsonNode)JsonValue.Create(b.Name)!).ToArray()),
                    }));
                }
                if (!keep!.Recording) actions.Add(Action("block-dirty-bitmap-enable", new JsonObject { ["node"] = node.NodeName, ["name"] = keep.Name }));
                foreach (var b in newer.Concat(stale)) actions.Add(Action("block-dirty-bitmap-remove", new JsonObject { ["node"] = node.NodeName, ["name"] = b.Name }));
            }
            else
            {
                if (keep is not null)
                    lost[disk.DiskId] = $"QEMU's dirty bitmap for point {lastSequence} stopped recording outside ASR: every block is read.";
                _logger.LogInformation("Disk {Disk} of {Item}: dropping dirty bitmaps {Bitmaps}, which do not continue point {Sequence}",
                    disk.Name, _itemName, string.Join(", ", ours.Select(b => b.Bitmap.Name)), lastSequence);
                foreach (var b in ours) actions.Add(Action("block-dirty-bitmap-remove", new JsonObject { ["node"] = node.NodeName, ["name"] = b.Bitmap.Name }));
            }
        }
        // One transaction: between a merge and the removal of its source, a write must not land in a bitmap about to go.
        if (actions.Count > 0)
            await (await QmpAsync(ct).ConfigureAwait(false)).ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, ct).ConfigureAwait(false);
        return lost;
    }

    /// <summary>Creates the disk's fleecing overlay: an empty qcow2 scratch file whose backing is the disk's node.</summary>
    private async Task CreateOverlayAsync(FleecedDisk disk, CancellationToken ct)
    {
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        string diskId = disk.Disk.DiskId;
        string scratch = Path.Combine(_workDirectory, _names.ScratchFileName(diskId));
        // QEMU creates the file itself, so it gets the owner and label QEMU can open (the agent may run as another user).
        await RunCreateJobAsync(_names.CreateJob(diskId, "file"), new JsonObject { ["driver"] = "file", ["filename"] = scratch, ["size"] = 0 }, ct).ConfigureAwait(false);
        await qmp.ExecuteAsync("blockdev-add", new JsonObject
        {
            ["driver"] = "file", ["node-name"] = _names.FleeceFileNode(diskId), ["filename"] = scratch,
        }, ct).ConfigureAwait(false);
        await RunCreateJobAsync(_names.CreateJob(diskId, "qcow2"), new JsonObject
        {
            ["driver"] = "qcow2", ["file"] = _names.FleeceFileNode(diskId), ["size"] = disk.Size,
        }, ct).ConfigureAwait(false);
        await qmp.ExecuteAsync("blockdev-add", new JsonObject
        {
            ["driver"] = "qcow2", ["node-name"] = _names.FleeceNode(diskId), ["file"] = _names.FleeceFileNode(diskId), ["backing"] = disk.Node,
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Runs blockdev-create and waits for the job (which QEMU never dismisses by itself).</summary>
    private async Task RunCreateJobAsync(string jobId, JsonObject options, CancellationToken ct)
    {
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        await qmp.ExecuteAsync("blockdev-create", new JsonObject { ["job-id"] = jobId, ["options"] = options }, ct).ConfigureAwait(false);
        string? error = null;
        await SettleAsync($"creating {options["driver"]} scratch ({jobId})", async () =>
        {
            var job = (await qmp.ExecuteAsync("query-jobs", null, ct).ConfigureAwait(false)).EnumerateArray()
                .FirstOrDefault(j => j.GetProperty("id").GetString() == jobId);
            if (job.ValueKind == JsonValueKind.Undefined) return true;
            if (job.GetProperty("status").GetString() != "concluded") return false;
            error = job.TryGetProperty("error", out var e) ? e.GetString() : null;
            return true;
        }, ct).ConfigureAwait(false);
        try { await qmp.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = jobId }, ct).ConfigureAwait(false); }
        catch (QmpException) { /* already gone */ }
        if (error is not null) throw new QmpException("blockdev-create", "JobFailed", error);
    }

    private async Task StartNbdServerAsync(CancellationToken ct)
    {
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        try
        {
            await qmp.ExecuteAsync("nbd-server-start", new JsonObject
            {
                ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = _nbdSocketPath } },
            }, ct).ConfigureAwait(false);
        }
        catch (QmpException ex) when (ex.Description.Contains("already running", StringComparison.OrdinalIgnoreCase))
        {
            // QEMU runs one NBD server; one listening on our socket is ours (e.g. kept by another item of this guest).
            if (await NbdSocketAnswersAsync().ConfigureAwait(false)) return;
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.ResourceBusy,
                $"QEMU of '{_itemName}' already runs an NBD server that ASR did not start (a backup tool or a migration?). QEMU runs one NBD server at a time; retry once that operation ends.", _itemName, ex);
        }
    }

    private async Task<QemuDiskCapture> ExportAsync(FleecedDisk disk, CancellationToken ct)
    {
        var qmp = await QmpAsync(ct).ConfigureAwait(false);
        string diskId = disk.Disk.DiskId;
        var export = new JsonObject
        {
            ["type"] = "nbd", ["id"] = _names.ExportId(diskId), ["node-name"] = _names.FleeceNode(diskId),
            ["name"] = _names.ExportName(diskId), ["writable"] = false,
        };
        // QEMU finds the bitmap along the overlay's backing chain, on the disk's node.
        if (disk.OldBitmap is not null) export["bitmaps"] = new JsonArray(disk.OldBitmap);
        await qmp.ExecuteAsync("block-export-add", export, ct).ConfigureAwait(false);

        string? context = disk.OldBitmap is null ? null : DirtyBitmapContextPrefix + disk.OldBitmap;
        var client = await NbdClient.ConnectUnixAsync(_nbdSocketPath, _names.ExportName(diskId),
            new NbdClientOptions { StructuredReplies = true, MetaContexts = context is null ? [] : [context] }, ct).ConfigureAwait(false);
        try
        {
            IReadOnlyList<ByteRange>? changed = null;
            if (context is not null)
            {
                if (!client.MetaContexts.Contains(context))
                    throw new IOException($"QEMU's NBD server does not offer {context} for disk '{disk.Disk.Name}'.");
                changed = (await client.BlockStatusAsync(context, 0, client.Size, ct).ConfigureAwait(false))
                    .Where(e => (e.Flags & DirtyFlag) != 0)
                    .Select(e => new ByteRange(e.Offset, e.Length))
                    .ToList();
            }
            return new QemuDiskCapture(diskId, client.Size, changed, disk.HistoryLostReason, client);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    // ------------------------------------------------------------------ commit / abort

    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        var capture = _capture;
        if (capture is null) return;
        try
        {
            await GuardAsync("forget the published point's changes", async () =>
            {
                await RemoveFleecingAsync(cancellationToken).ConfigureAwait(false);
                if (!capture.Switched) return true;
                var actions = new JsonArray();
                foreach (var disk in capture.Disks.Where(d => d.OldBitmap is not null))
                    actions.Add(Action("block-dirty-bitmap-remove", new JsonObject { ["node"] = disk.Node, ["name"] = disk.OldBitmap }));
                if (actions.Count > 0)
                    await (await QmpAsync(cancellationToken).ConfigureAwait(false)).ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        finally
        {
            // Whatever is left is repaired by the next capture, which knows the published point.
            _capture = null;
        }
    }

    public async Task AbortAsync()
    {
        var capture = _capture;
        if (capture is null) return;
        try
        {
            await GuardAsync("keep the unpublished capture's changes", async () =>
            {
                // The frozen bitmap is busy while exported: the export goes first.
                await RemoveFleecingAsync(CancellationToken.None).ConfigureAwait(false);
                if (!capture.Switched) return true;
                var actions = new JsonArray();
                foreach (var disk in capture.Disks)
                {
                    if (disk.OldBitmap is not null)
                    {
                        actions.Add(Action("block-dirty-bitmap-merge", new JsonObject
                        {
                            ["node"] = disk.Node, ["target"] = disk.OldBitmap, ["bitmaps"] = new JsonArray(disk.NewBitmap),
                        }));
                        actions.Add(Action("block-dirty-bitmap-enable", new JsonObject { ["node"] = disk.Node, ["name"] = disk.OldBitmap }));
                    }
                    // Without an old bitmap the next capture reads every block anyway; the new one alone would miss the writes before it.
                    actions.Add(Action("block-dirty-bitmap-remove", new JsonObject { ["node"] = disk.Node, ["name"] = disk.NewBitmap }));
                }
                // Atomic, so that no write lands in the new bitmap between the merge and its removal.
                await (await QmpAsync(CancellationToken.None).ConfigureAwait(false)).ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, CancellationToken.None).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        finally
        {
            _capture = null;
        }
    }

    // ------------------------------------------------------------------ teardown

    /// <summary>
    /// Removes this item's exports, fleecing jobs, overlays and scratch files (the open capture's, or a
    /// killed agent's), and stops the NBD server on the tracker's socket once it exports nothing.
    /// Bitmaps are left alone: only a capture knows the published point that decides their fate.
    /// </summary>
    private async Task RemoveFleecingAsync(CancellationToken ct)
    {
        if (_capture is not null)
            foreach (var view in _capture.Views) view.Dispose();
        var qmp = await QmpAsync(ct).ConfigureAwait(false);

        async Task<List<string>> ExportIdsAsync() => (await qmp.ExecuteAsync("query-block-exports", null, ct).ConfigureAwait(false)).EnumerateArray()
            .Select(e => e.GetProperty("id").GetString()!).ToList();
        var exports = (await ExportIdsAsync().ConfigureAwait(false)).Where(id => id.StartsWith(_names.ExportIdPrefix, StringComparison.Ordinal)).ToList();
        foreach (var id in exports)
            await IgnoreMissingAsync(qmp.ExecuteAsync("block-export-del", new JsonObject { ["id"] = id, ["mode"] = "hard" }, ct)).ConfigureAwait(false);
        if (exports.Count > 0)
            await SettleAsync("removing the NBD exports", async () => !(await ExportIdsAsync().ConfigureAwait(false)).Intersect(exports).Any(), ct).ConfigureAwait(false);

        async Task<List<(string Id, string Status)>> JobsAsync() => (await qmp.ExecuteAsync("query-jobs", null, ct).ConfigureAwait(false)).EnumerateArray()
            .Select(j => (j.GetProperty("id").GetString()!, j.GetProperty("status").GetString()!))
            .Where(j => j.Item1.StartsWith(_names.FleeceJobPrefix, StringComparison.Ordinal) || j.Item1.StartsWith(_names.CreateJobPrefix, StringComparison.Ordinal))
            .ToList();
        foreach (var (id, status) in await JobsAsync().ConfigureAwait(false))
        {
            if (status is "concluded" or "null") continue;
            _logger.LogDebug("Cancelling QEMU job {Job} of {Item}", id, _itemName);
            await IgnoreMissingAsync(qmp.ExecuteAsync("job-cancel", new JsonObject { ["id"] = id }, ct)).ConfigureAwait(false);
        }
        await SettleAsync("ending the fleecing jobs", async () =>
        {
            bool done = true;
            foreach (var (id, status) in await JobsAsync().ConfigureAwait(false))
            {
                // Backup jobs dismiss themselves; blockdev-create jobs wait for a dismiss.
                if (status == "concluded") await IgnoreMissingAsync(qmp.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = id }, ct)).ConfigureAwait(false);
                else done = false;
            }
            return done;
        }, ct).ConfigureAwait(false);

        var nodes = (await QueryNodesAsync(ct).ConfigureAwait(false))
            .Select(n => n.NodeName).Where(n => n.StartsWith(_names.FleeceNodePrefix, StringComparison.Ordinal))
            // Overlays before the scratch file nodes under them.
            .OrderBy(n => n.EndsWith(QemuBlockNames.FileNodeSuffix, StringComparison.Ordinal)).ToList();
        foreach (var node in nodes)
            await IgnoreMissingAsync(qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = node }, ct)).ConfigureAwait(false);

        try
        {
            foreach (var file in Directory.EnumerateFiles(_workDirectory, _names.ScratchFilePattern)) File.Delete(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // QEMU no longer uses them; a file left behind only takes space until the next cycle retries.
            _logger.LogWarning(ex, "Could not delete the fleecing scratch files of {Item} in {Directory}", _itemName, _workDirectory);
        }

        // The server is QEMU's only one: stop it only when it is ours and nobody else exports through it.
        if ((await ExportIdsAsync().ConfigureAwait(false)).Count == 0 && await NbdSocketAnswersAsync().ConfigureAwait(false))
            await IgnoreMissingAsync(qmp.ExecuteAsync("nbd-server-stop", null, ct)).ConfigureAwait(false);
    }

    /// <summary>Whether an NBD server listens on the tracker's socket (named after this guest, so it is ours).</summary>
    private async Task<bool> NbdSocketAnswersAsync()
    {
        if (!File.Exists(_nbdSocketPath)) return false;
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(_nbdSocketPath), timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            // Bitmaps stay as they are: the next capture reconciles them with the point the vault published.
            if (_capture is not null && _qmp is not null) await RemoveFleecingAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) { _logger.LogWarning(ex, "Could not remove the fleecing of {Item} (the next cycle does)", _itemName); }
        finally { _capture = null; }
        try { await ResumeSourceAsync().ConfigureAwait(false); }
        catch (Exception ex) { _logger.LogError(ex, "Could not resume the guest of {Item} after pausing it", _itemName); }
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        _qmp = null;
    }

    /// <summary>
    /// Closes the connections to QEMU the way a killed process would, leaving exports, jobs, overlays and
    /// bitmaps behind (tests of the leftover cleanup).
    /// </summary>
    internal async ValueTask AbandonAsync()
    {
        _disposed = true;
        if (_capture is not null)
            foreach (var view in _capture.Views) view.Dispose();
        _capture = null;
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        _qmp = null;
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>The QMP connection, reopened when a cancelled or timed-out command left the previous one unusable.</summary>
    private async Task<QmpClient> QmpAsync(CancellationToken ct)
    {
        if (_qmp is { IsUsable: true }) return _qmp;
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        _qmp = null;
        try
        {
            _qmp = await QmpClient.ConnectAsync(_qmpSocketPath, GreetingTimeout, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException or JsonException)
        {
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.ConnectionError,
                $"Cannot reach QEMU of '{_itemName}' over its QMP socket {_qmpSocketPath}: {ex.Message}", _itemName, ex);
        }
        return _qmp;
    }

    private async Task<IReadOnlyList<QemuBlockNode>> QueryNodesAsync(CancellationToken ct) =>
        QemuBlockNode.Parse(await (await QmpAsync(ct).ConfigureAwait(false)).ExecuteAsync("query-named-block-nodes", new JsonObject { ["flat"] = true }, ct).ConfigureAwait(false));

    private static JsonObject Action(string type, JsonObject data) => new() { ["type"] = type, ["data"] = data };

    /// <summary>Teardown is idempotent: what is already gone is fine.</summary>
    private static async Task IgnoreMissingAsync(Task command)
    {
        try { await command.ConfigureAwait(false); }
        catch (QmpException ex) when (ex.ErrorClass == "DeviceNotActive" || ex.ErrorClass == "DeviceNotFound"
            || ex.Description.Contains("not found", StringComparison.OrdinalIgnoreCase)
            || ex.Description.Contains("not running", StringComparison.OrdinalIgnoreCase)
            || ex.Description.Contains("Failed to find node", StringComparison.OrdinalIgnoreCase)) { }
    }

    private static async Task SettleAsync(string what, Func<Task<bool>> done, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + SettleTimeout;
        while (!await done().ConfigureAwait(false))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"QEMU did not finish {what} within {SettleTimeout.TotalSeconds:0} s.");
            await Task.Delay(SettlePoll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Turns QEMU's and the transport's failures into the engine's errors, naming the item and what was being done.</summary>
    private async Task<T> GuardAsync<T>(string action, Func<Task<T>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            throw new AsrException(AsrErrorIds.QemuCommandFailed, AsrErrorKind.InvalidOperation,
                $"QEMU of '{_itemName}' could not {action}: {ex.Command} failed: {ex.Description} ({ex.ErrorClass}).", _itemName, ex);
        }
        catch (TimeoutException ex)
        {
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.OperationTimeout,
                $"QEMU of '{_itemName}' could not {action}: {ex.Message}", _itemName, ex);
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            throw new AsrException(AsrErrorIds.QemuSourceUnavailable, AsrErrorKind.ConnectionError,
                $"Lost QEMU of '{_itemName}' ({_qmpSocketPath}) while trying to {action}: {ex.Message}", _itemName, ex);
        }
    }

    private sealed record FleecedDisk(ProtectedDisk Disk, string Node, long Size, string? OldBitmap, string NewBitmap, string? HistoryLostReason);

    private sealed class ActiveCapture(long nextSequence, IReadOnlyList<FleecedDisk> disks)
    {
        public long NextSequence { get; } = nextSequence;
        public IReadOnlyList<FleecedDisk> Disks { get; } = disks;
        /// <summary>The transaction ran: the old bitmaps are frozen and the new ones record.</summary>
        public bool Switched { get; set; }
        public List<QemuDiskCapture> Views { get; } = new();
    }
}
