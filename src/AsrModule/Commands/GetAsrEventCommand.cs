using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Events;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists the vault's events (agents, cycles, health, app-consistency), oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "AsrEvent")]
[OutputType(typeof(AsrEvent))]
public sealed class GetAsrEventCommand : AsrCmdlet
{
    /// <summary>Only events of these protected items (wildcards allowed).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Name", "ItemName")]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    public string? ProtectedItem { get; set; }

    [Parameter]
    public string? ReplicationGroup { get; set; }

    /// <summary>Only events at least this severe.</summary>
    [Parameter]
    public AsrEventSeverity? Severity { get; set; }

    [Parameter]
    [SupportsWildcards]
    public string? EventType { get; set; }

    /// <summary>Start of the window (default: 24 hours ago).</summary>
    [Parameter]
    public DateTime? Since { get; set; }

    /// <summary>Only the newest N events.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? Newest { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        var since = Since is { } s ? new DateTimeOffset(s.ToUniversalTime()) : vault.Clock.GetUtcNow().AddDays(-1);
        var item = Wildcard(ProtectedItem);
        var type = Wildcard(EventType);
        var entries = Await(ct => vault.Events.ListEntriesAsync(since, ct));
        var events = entries.Where(e => e.Value is not null).Select(e => e.Value!)
            .Where(e => item is null || (e.ItemName is not null && item.IsMatch(e.ItemName)))
            .Where(e => ReplicationGroup is null || string.Equals(e.ReplicationGroup, ReplicationGroup, StringComparison.OrdinalIgnoreCase))
            .Where(e => Severity is null || e.Severity >= Severity)
            .Where(e => type is null || type.IsMatch(e.EventType))
            .ToList();
        if (Newest is { } n && events.Count > n) events = events.GetRange(events.Count - n, n);
        WriteObject(events, enumerateCollection: true);
        // A damaged event record (or, in an encrypted vault, one that does not authenticate) is never shown as an event:
        // a non-terminating VaultDataCorrupt naming it, after the events, whatever the filters (it cannot be matched).
        WriteEntries(entries.Where(e => e.IsDamaged));
    }
}
