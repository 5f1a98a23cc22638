using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// A reader's claim on a point (an export, a verification, a drill until its record is written):
/// retention keeps pinned points, and with them every pack they read, until the pin is released.
/// Pinning and retention's decisions both happen under the item's record lock, so either retention
/// sees the pin, or the point was already pruned and the reader is told so before it reads anything.
/// A pin of a process that died is ignored (and removed) by the next retention on this host.
/// </summary>
public sealed class PointPin : IAsyncDisposable
{
    private readonly AsrVault _vault;
    private readonly string? _key;
    private IDisposable? _hold;

    private PointPin(AsrVault vault, string? key, AsrRecoveryPoint point)
    {
        _vault = vault;
        _key = key;
        Point = point;
    }

    /// <summary>The point as the vault holds it now (re-read: a rebase may have changed its chain).</summary>
    public AsrRecoveryPoint Point { get; }

    public static async Task<PointPin> AcquireAsync(AsrVault vault, AsrRecoveryPoint point, string purpose, CancellationToken ct)
    {
        var record = new PinRecord
        {
            Sequence = point.Sequence,
            PointId = point.PointId,
            Purpose = purpose,
            OwnerHost = Environment.MachineName,
            OwnerProcessId = Environment.ProcessId,
            OwnerProcessStartUtc = Process.GetCurrentProcess().StartTime.ToUniversalTime(),
            CreatedUtc = DateTimeOffset.UtcNow,
        };
        string key = VaultLayout.Pin(point.ItemId, Guid.NewGuid());
        try
        {
            using (await vault.LockItemRecordAsync(point.ItemId, ct).ConfigureAwait(false))
            {
                // Re-read and checked (VaultRecordChecks): a manifest replaced since the caller read it is refused before anything reads or writes.
                var current = await CurrentAsync(vault, point, ct).ConfigureAwait(false);
                await vault.Records.WriteAsync(key, record, ct).ConfigureAwait(false);
                return new PointPin(vault, key, current);
            }
        }
        catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.VaultStorageFull or AsrErrorIds.VaultAccessDenied)
        {
            // A full or read-only vault can still be read from, which is when getting the data out matters most: the
            // point is then held in this process only, and a reader that another process's retention overtakes fails
            // its reads or its end-to-end digest check rather than return wrong data.
            vault.Logger.LogWarning("Reading recovery point {Point} without a pin in the vault ({Message}); it is kept from retention in this process only", point, ex.Message);
            var current = await CurrentAsync(vault, point, ct).ConfigureAwait(false);
            return new PointPin(vault, null, current) { _hold = HoldInProcess(vault, current) };
        }
    }

    /// <summary>The point as the vault holds it now; RecoveryPointNotFound when retention pruned it meanwhile.</summary>
    internal static async Task<AsrRecoveryPoint> CurrentAsync(AsrVault vault, AsrRecoveryPoint point, CancellationToken ct)
    {
        var current = await vault.ReadPointAsync(point.ItemId, point.Sequence, ct).ConfigureAwait(false);
        if (current is null || current.PointId != point.PointId)
            throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
                $"Recovery point {point} is no longer in the vault: retention pruned it. List the current points with Get-AsrRecoveryPoint.", point.ToString());
        return current;
    }

    /// <summary>Points this process reads without a pin record (Test-AsrRecoveryPoint writes nothing): vault id + item id → sequence → readers.</summary>
    private static readonly Dictionary<(string VaultId, string ItemId), Dictionary<long, int>> InProcess = new();

    /// <summary>
    /// Keeps <paramref name="point"/> from this process's retention while it is read, without writing to the vault
    /// (a read-only vault, or a verification that must leave the vault as it found it). Retention in another
    /// process does not see it: the reader checks afterwards that the point is still there
    /// (see <see cref="RecoveryPointVerifier"/>).
    /// </summary>
    public static IDisposable HoldInProcess(AsrVault vault, AsrRecoveryPoint point)
    {
        var key = (vault.VaultId, point.ItemId);
        lock (InProcess)
        {
            if (!InProcess.TryGetValue(key, out var held)) InProcess[key] = held = new Dictionary<long, int>();
            held[point.Sequence] = held.GetValueOrDefault(point.Sequence) + 1;
        }
        return new InProcessHold(key, point.Sequence);
    }

    private sealed class InProcessHold((string, string) key, long sequence) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            lock (InProcess)
            {
                if (!InProcess.TryGetValue(key, out var held)) return;
                if (--held[sequence] <= 0) held.Remove(sequence);
                if (held.Count == 0) InProcess.Remove(key);
            }
        }
    }

    /// <summary>Sequences pinned by live readers (stale pins of dead local processes are removed), and those this process holds.</summary>
    internal static async Task<HashSet<long>> ActiveSequencesAsync(AsrVault vault, string itemId, CancellationToken ct)
    {
        var pinned = new HashSet<long>();
        lock (InProcess)
            if (InProcess.TryGetValue((vault.VaultId, itemId), out var held)) pinned.UnionWith(held.Keys);
        foreach (var o in await vault.Store.ListAsync(VaultLayout.PinsPrefix(itemId), ct).ConfigureAwait(false))
        {
            // Only pins named as AcquireAsync names them: a stray file is not a pin, and not ours to delete.
            if (!Guid.TryParseExact(Path.GetFileNameWithoutExtension(o.Key), "N", out var pinId) || o.Key != VaultLayout.Pin(itemId, pinId))
            {
                vault.Logger.LogWarning("Ignoring vault object '{Key}': its name is not one this module writes, so it is neither read nor deleted", o.Key);
                continue;
            }
            if (await vault.Records.ReadAsync<PinRecord>(o.Key, ct).ConfigureAwait(false) is not { } pin) continue;
            if (pin.OwnerHost == Environment.MachineName && !OwnerAlive(pin))
            {
                await vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
                continue;
            }
            pinned.Add(pin.Sequence);
        }
        return pinned;
    }

    private static bool OwnerAlive(PinRecord pin)
    {
        try
        {
            using var p = Process.GetProcessById(pin.OwnerProcessId);
            return Math.Abs((p.StartTime.ToUniversalTime() - pin.OwnerProcessStartUtc).TotalSeconds) < 2;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        _hold?.Dispose();
        if (_key is null) return;
        try { await _vault.Store.DeleteAsync(_key, CancellationToken.None).ConfigureAwait(false); }
        catch (Exception ex) when (ex is IOException or AsrException)
        {
            // A pin left behind (the store was unreachable) is removed by retention once this process is gone.
        }
    }

    private sealed class PinRecord
    {
        public long Sequence { get; set; }
        public Guid PointId { get; set; }
        public string Purpose { get; set; } = "";
        public string OwnerHost { get; set; } = "";
        public int OwnerProcessId { get; set; }
        public DateTime OwnerProcessStartUtc { get; set; }
        public DateTimeOffset CreatedUtc { get; set; }
    }
}
