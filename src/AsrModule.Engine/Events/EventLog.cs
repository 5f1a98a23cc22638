using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Events;

/// <summary>
/// The vault's event log: one small object per event under a folder per UTC day, so listing a time
/// window reads only its days and pruning old events deletes whole days. Every event is also logged.
/// </summary>
public sealed class EventLog
{
    public const string Prefix = "events/";
    private readonly VaultRecords _records;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private IVaultStore _store => _records.Store;

    /// <summary>The event log of a vault (<see cref="AsrVault.Events"/>): events are records, sealed in an encrypted vault.</summary>
    public EventLog(VaultRecords records, TimeProvider clock, ILogger logger)
    {
        _records = records;
        _clock = clock;
        _logger = logger;
    }

    private static string DayPrefix(DateTimeOffset day) => $"{Prefix}{day.UtcDateTime:yyyyMMdd}/";

    public async Task<AsrEvent> WriteAsync(AsrEventSeverity severity, string eventType, string message, string? itemName = null,
        string? agentHost = null, Guid? jobId = null, string? group = null, CancellationToken cancellationToken = default)
    {
        var e = new AsrEvent
        {
            Id = Guid.NewGuid(), TimeUtc = _clock.GetUtcNow(), Severity = severity, EventType = eventType,
            ItemName = itemName, AgentHost = agentHost, JobId = jobId, ReplicationGroup = group, Message = message,
        };
        var level = severity switch
        {
            AsrEventSeverity.Information => LogLevel.Information,
            AsrEventSeverity.Warning => LogLevel.Warning,
            AsrEventSeverity.Error => LogLevel.Error,
            _ => LogLevel.Critical,
        };
        _logger.Log(level, "{EventType} {Item}: {Message}", eventType, itemName ?? group ?? agentHost ?? "", message);
        try
        {
            await _records.WriteAsync($"{DayPrefix(e.TimeUtc)}{e.TimeUtc.UtcTicks:D19}-{e.Id:N}.json", e, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The log line above is the record of last resort when the vault cannot be written.
            _logger.LogWarning(ex, "Could not write event {EventType} to the vault", eventType);
        }
        return e;
    }

    /// <summary>Events at or after <paramref name="sinceUtc"/>, oldest first; a damaged one (or one that does not authenticate) is logged and left out.</summary>
    public async Task<List<AsrEvent>> ListAsync(DateTimeOffset sinceUtc, CancellationToken cancellationToken)
    {
        var events = new List<AsrEvent>();
        foreach (var entry in await ListEntriesAsync(sinceUtc, cancellationToken).ConfigureAwait(false))
        {
            if (entry.Value is { } e) events.Add(e);
            else _logger.LogWarning("Skipping damaged vault record '{Key}': {Message}", entry.Key, entry.Error!.Message);
        }
        return events;
    }

    /// <summary>
    /// Events at or after <paramref name="sinceUtc"/>, oldest first, then each damaged event record (one that does not
    /// parse or, in an encrypted vault, authenticate: never shown as an event) as its VaultDataCorrupt error.
    /// </summary>
    public async Task<List<VaultListEntry<AsrEvent>>> ListEntriesAsync(DateTimeOffset sinceUtc, CancellationToken cancellationToken)
    {
        var days = (await _store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false))
            .Where(o => string.CompareOrdinal(o.Key, DayPrefix(sinceUtc)) >= 0).ToList();
        var events = new List<VaultListEntry<AsrEvent>>(days.Count);
        var damaged = new List<VaultListEntry<AsrEvent>>();
        foreach (var o in days)
        {
            try
            {
                if (await _records.ReadAsync<AsrEvent>(o.Key, cancellationToken).ConfigureAwait(false) is { } e && e.TimeUtc >= sinceUtc)
                    events.Add(VaultListEntry<AsrEvent>.Ok(o.Key, e.Id.ToString("D"), e));
            }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt)
            {
                damaged.Add(VaultListEntry<AsrEvent>.Damaged(o.Key, null, ex));
            }
        }
        return events.OrderBy(e => e.Value!.TimeUtc).Concat(damaged).ToList();
    }

    /// <summary>Deletes the days older than <paramref name="keep"/>.</summary>
    public async Task PruneAsync(TimeSpan keep, CancellationToken cancellationToken)
    {
        string oldestKept = DayPrefix(_clock.GetUtcNow() - keep);
        // The day folders first (one request), then only the expired days' events: not every event of the vault.
        foreach (var day in await _store.ListFoldersAsync(Prefix, cancellationToken).ConfigureAwait(false))
        {
            // Only the day folders this log writes (yyyyMMdd): another name in the vault is not ours to delete.
            if (day.Length != 8 || !day.All(char.IsAsciiDigit)) continue;
            string dayPrefix = Prefix + day + "/";
            if (string.CompareOrdinal(dayPrefix, oldestKept) >= 0) continue;
            foreach (var o in await _store.ListAsync(dayPrefix, cancellationToken).ConfigureAwait(false))
                await _store.DeleteAsync(o.Key, cancellationToken).ConfigureAwait(false);
        }
    }

}
