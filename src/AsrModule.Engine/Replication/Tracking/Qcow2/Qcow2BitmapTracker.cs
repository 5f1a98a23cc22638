using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Sources;
using AsrModule.Engine.Replication.Sources.Images;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Tracking.Qcow2;

/// <summary>
/// Change tracking of stopped qcow2 images through their persistent dirty bitmaps, which every QEMU program that opens
/// the image (a VM started later, qemu-img, qemu-nbd) keeps up to date. At the capture of point N the tracker adds an
/// enabled bitmap <c>asr-&lt;item&gt;-N-&lt;attempt&gt;</c> (so every write from then on is recorded for the next cycle) and
/// reads the ranges the previous point's bitmap marked; publication removes the older bitmaps. The read itself is
/// live (the image is read through qemu-nbd), so the cycle's write-fingerprint check decides the point's consistency.
/// </summary>
/// <remarks>
/// Adding a bitmap takes QEMU's write lock on the image: an image a running VM holds cannot be tracked so (its bitmaps
/// are in QEMU's memory, marked in-use on disk). Such an image is read whole, and its points say Inconsistent when the
/// VM writes during the read; protect a running guest through QMP (-QmpSocket) instead. A bitmap left in use by a
/// crashed QEMU, or one missing, makes the cycle read the whole image (the note says why); nothing is lost either way.
/// </remarks>
internal sealed class Qcow2BitmapTracker(ILogger logger) : IChangeTracker
{
    /// <summary>Bytes per bitmap bit: small enough for scattered 4 KiB writes, a bitmap of 2 MiB for 1 TiB.</summary>
    private const long Granularity = 64 * 1024;
    private readonly List<(ProtectedDisk Disk, string Bitmap)> _added = new();
    private readonly List<IDiskCapture> _open = new();
    private string? _lastAttemptId;
    private string _attemptId = "00000000";
    private string _itemId = "";

    public string Kind => "Qcow2Bitmap";
    public bool CapturesPointInTime => false;
    public string CaptureEvidence => "live read";

    /// <summary>Whether every disk of <paramref name="item"/> is a qcow2 image file (the tracker's precondition).</summary>
    /// <remarks>An image with a backing or data file is not: writes to those, or a rebase, change the guest's view unmarked.</remarks>
    public static bool Applies(AsrProtectedItem item) =>
        item.Disks.All(d => d.SourceFormat == "qcow2" && !d.IsBlockDevice && ImageFiles.NotSelfContained(d) is null);

    public void UseAttempts(string? lastAttemptId, string attemptId)
    {
        _lastAttemptId = lastAttemptId;
        _attemptId = attemptId;
    }

    internal static string BitmapPrefix(string itemId) => $"asr-{itemId}-";
    internal static string BitmapName(string itemId, long sequence, string attemptId) => $"{BitmapPrefix(itemId)}{sequence}-{attemptId}";

    /// <summary>Removes the item's bitmaps from its qcow2 disks (Disable-AsrReplication); an image in use keeps them (they only take space).</summary>
    public static async Task RemoveAllAsync(AsrProtectedItem item, ILogger logger, CancellationToken ct)
    {
        foreach (var disk in item.Disks.Where(d => d.SourceFormat == "qcow2" && File.Exists(d.SourcePath)))
        {
            try
            {
                foreach (var b in await QemuImageBitmaps.ListAsync(disk.SourcePath, ct).ConfigureAwait(false))
                    if (b.Name.StartsWith(BitmapPrefix(item.Id), StringComparison.Ordinal))
                        await QemuImageBitmaps.RemoveAsync(disk.SourcePath, b.Name, ct).ConfigureAwait(false);
            }
            catch (AsrException ex)
            {
                logger.LogWarning("The dirty bitmaps of '{Item}' stay on {Path}: {Message}", item.Name, disk.SourcePath, ex.Message);
            }
        }
    }

    public Task PauseSourceAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task ResumeSourceAsync() => Task.CompletedTask;

    public async Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken)
    {
        _itemId = item.Id;
        try
        {
            foreach (var disk in item.Disks)
                _open.Add(await CaptureDiskAsync(disk, lastSequence, nextSequence, cancellationToken).ConfigureAwait(false));
            return _open.ToList();
        }
        catch
        {
            Close();
            await RemoveAddedAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<IDiskCapture> CaptureDiskAsync(ProtectedDisk disk, long lastSequence, long nextSequence, CancellationToken ct)
    {
        IReadOnlyList<QemuImageBitmap> bitmaps;
        try
        {
            bitmaps = await QemuImageBitmaps.ListAsync(disk.SourcePath, ct).ConfigureAwait(false);
            // A killed cycle's bitmap of this sequence or later would only mark more; it goes, so names stay unique.
            foreach (var stale in bitmaps.Where(b => IsOurs(b.Name, out long s) && s >= nextSequence))
                await QemuImageBitmaps.RemoveAsync(disk.SourcePath, stale.Name, ct).ConfigureAwait(false);
            string added = BitmapName(_itemId, nextSequence, _attemptId);
            await QemuImageBitmaps.AddAsync(disk.SourcePath, added, Granularity, ct).ConfigureAwait(false);
            _added.Add((disk, added));
        }
        catch (AsrException ex) when (ex.Kind == AsrErrorKind.ResourceBusy)
        {
            logger.LogInformation("Disk {Disk} ({Path}) is in use by a running QEMU: read whole ({Message})", disk.Name, disk.SourcePath, ex.Message);
            return await OpenWholeAsync(disk, lastSequence == 0 ? null : $"the image is in use by a running VM, so its dirty bitmaps are QEMU's (protect a running guest with -QmpSocket)", ct).ConfigureAwait(false);
        }
        if (lastSequence == 0) return await OpenWholeAsync(disk, null, ct).ConfigureAwait(false);
        string? previous = _lastAttemptId is null ? null : BitmapName(_itemId, lastSequence, _lastAttemptId);
        var found = previous is null ? null : bitmaps.FirstOrDefault(b => b.Name == previous);
        if (found is null)
            return await OpenWholeAsync(disk, $"the image has no dirty bitmap of point {lastSequence}", ct).ConfigureAwait(false);
        if (!found.Enabled)
            return await OpenWholeAsync(disk, $"the dirty bitmap of point {lastSequence} was disabled (it stopped recording writes)", ct).ConfigureAwait(false);
        if (found.InUse)
            return await OpenWholeAsync(disk, $"the dirty bitmap of point {lastSequence} was left in use by a QEMU that did not close the image", ct).ConfigureAwait(false);
        var source = await QemuImageSource.OpenAsync(disk.SourcePath, DiskImageFormat.Qcow2, previous, ct).ConfigureAwait(false);
        try
        {
            var dirty = await source.DirtyRangesAsync(ct).ConfigureAwait(false);
            return new FileDiskCapture(disk.DiskId, source, dirty, null, await source.GetDataRangesAsync(ct).ConfigureAwait(false));
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private static async Task<IDiskCapture> OpenWholeAsync(ProtectedDisk disk, string? lostReason, CancellationToken ct)
    {
        var source = await SourceDisks.OpenAsync(disk, ct).ConfigureAwait(false);
        return new FileDiskCapture(disk.DiskId, source, null, lostReason, await source.GetDataRangesAsync(ct).ConfigureAwait(false));
    }

    private bool IsOurs(string name, out long sequence)
    {
        sequence = 0;
        string prefix = BitmapPrefix(_itemId);
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var parts = name[prefix.Length..].Split('-');
        return parts.Length == 2 && long.TryParse(parts[0], out sequence);
    }

    /// <summary>The point is published: its bitmaps now record everything since its capture; the older ones go.</summary>
    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        Close();
        foreach (var (disk, keep) in _added)
        {
            try
            {
                foreach (var old in (await QemuImageBitmaps.ListAsync(disk.SourcePath, CancellationToken.None).ConfigureAwait(false)).Where(b => IsOurs(b.Name, out _) && b.Name != keep))
                    await QemuImageBitmaps.RemoveAsync(disk.SourcePath, old.Name, CancellationToken.None).ConfigureAwait(false);
            }
            catch (AsrException ex)
            {
                // A VM started meanwhile holds the image: the older bitmaps stay until a later cycle; they only take space.
                logger.LogInformation("Older dirty bitmaps of {Disk} not removed yet: {Message}", disk.Name, ex.Message);
            }
        }
        _added.Clear();
    }

    /// <summary>Not published: this cycle's bitmaps go; the previous point's bitmap kept recording, so nothing is lost.</summary>
    public async Task AbortAsync()
    {
        Close();
        await RemoveAddedAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }

    private async Task RemoveAddedAsync()
    {
        foreach (var (disk, bitmap) in _added)
        {
            try { await QemuImageBitmaps.RemoveAsync(disk.SourcePath, bitmap, CancellationToken.None).ConfigureAwait(false); }
            catch (AsrException ex) { logger.LogInformation("Dirty bitmap {Bitmap} of {Disk} not removed: {Message}", bitmap, disk.Name, ex.Message); }
        }
        _added.Clear();
    }

    private void Close()
    {
        foreach (var c in _open) c.Dispose();
        _open.Clear();
    }
}
