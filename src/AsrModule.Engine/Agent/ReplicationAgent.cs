using AsrModule.Engine.Errors;
using AsrModule.Engine.Events;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Groups;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Agent;

/// <summary>
/// Continuous protection: the loop an agent process runs. Every tick it reads the catalog (so new,
/// changed and removed items take effect without a restart), starts the cycles that the policies make
/// due — crash-consistent at the policy's frequency, app-consistent at its own, one coordinated cycle
/// per replication group — applies retention after each point, watches RPO health and writes events.
/// One agent per host name and vault (a vault lock enforces it).
/// </summary>
public sealed class ReplicationAgent
{
    private readonly AsrVault _vault;
    private readonly AgentOptions _options;
    private readonly ILogger _logger;
    private readonly EventLog _events;
    private readonly Dictionary<string, UnitRun> _running = new(StringComparer.Ordinal);
    // Written by cycle completions on pool threads, read by the tick loop.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (int Failures, DateTimeOffset NotBefore)> _retry = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ReplicationHealth> _health = new(StringComparer.Ordinal);
    private readonly HashSet<string> _assigned = new(StringComparer.Ordinal);
    private readonly HashSet<string> _warnedOnce = new(StringComparer.Ordinal);
    // item id → why its freeze script is not run here, as last reported (one event per change, not one per tick)
    private readonly Dictionary<string, string> _scriptRefused = new(StringComparer.Ordinal);
    private AsrAgentRecord _record = new();
    private DateTimeOffset _lastHeartbeat, _lastHousekeeping;
    private DateTimeOffset? _lastFullHousekeeping;
    private readonly AgentCatalog _catalog;
    // Cycle jobs this process finished (written by completions on pool threads): deleted after their retention
    // without listing every job of the vault (a full sweep runs only every FullCatalogInterval).
    private readonly List<(Guid Id, DateTimeOffset EndedUtc, bool Succeeded)> _finishedJobs = new();
    private bool _stopRequested;

    public ReplicationAgent(AsrVault vault, AgentOptions options, ILogger logger)
    {
        _vault = vault;
        _options = options;
        _logger = logger;
        _events = new EventLog(vault.Records, vault.Clock, logger);
        _catalog = new AgentCatalog(vault, options.HostName, options.FullCatalogInterval, logger);
        // What this host allows to run comes from its own configuration; the vault only names a script.
        Replication.Consistency.FreezeScriptTrust.Allow(Replication.Consistency.FreezeScriptTrust.ParseList(options.AllowedFreezeScripts));
        if (!VaultLayout.IsValidName(options.HostName))
            throw new AsrException(AsrErrorIds.AgentHostNameInvalid, AsrErrorKind.InvalidArgument,
                $"'{options.HostName}' is not a valid agent host name: use 1–64 letters, digits, '.', '_' or '-'.", options.HostName);
    }

    private sealed record UnitRun(string Key, string DisplayName, Task Task, RunningJob? Job);

    private DateTimeOffset Now => _vault.Clock.GetUtcNow();

    /// <summary>Runs until <paramref name="stoppingToken"/> fires or a stop request arrives through the vault.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        string host = _options.HostName;
        using var agentLock = await AcquireAgentLockAsync(host, stoppingToken).ConfigureAwait(false);
        // A blob lease can lapse through a long outage while this process lives on: from then on another agent
        // may hold the host, so this one stops (systemd restarts it, and it waits for the lock again).
        var lockLost = (agentLock as ILeasedLock)?.Lost ?? CancellationToken.None;
        using var running = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, lockLost);
        // A stop request left from before this start must not stop it at once.
        await _vault.Store.DeleteAsync(VaultLayout.AgentStopRequest(host), stoppingToken).ConfigureAwait(false);
        _record = new AsrAgentRecord
        {
            HostName = host,
            MachineName = Environment.MachineName,
            ProcessId = Environment.ProcessId,
            Version = typeof(ReplicationAgent).Assembly.GetName().Version?.ToString() ?? "",
            StartedUtc = Now,
            RecordedState = AsrAgentState.Running,
            HeartbeatIntervalSeconds = _options.HeartbeatInterval.TotalSeconds,
        };
        // The event first: Start-AsrAgent returns on the first heartbeat, and the start must be in the events by then.
        await _events.WriteAsync(AsrEventSeverity.Information, AsrEventTypes.AgentStarted,
            $"Agent for host '{host}' started (process {Environment.ProcessId} on {Environment.MachineName}).", agentHost: host, cancellationToken: stoppingToken).ConfigureAwait(false);
        await HeartbeatAsync(stoppingToken).ConfigureAwait(false);
        using var heartbeatsStop = CancellationTokenSource.CreateLinkedTokenSource(running.Token);
        var heartbeats = HeartbeatWhileBusyAsync(heartbeatsStop.Token);
        string reason = "the service was stopped";
        try
        {
            while (!running.IsCancellationRequested)
            {
                try
                {
                    await TickAsync(running.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The vault may be briefly unreachable; the agent keeps going and says so.
                    _record.LastError = ex.Message;
                    _logger.LogError(ex, "Agent tick failed");
                }
                // Seen by the tick's listing, even if the rest of the tick failed.
                if (_stopRequested)
                {
                    reason = "Stop-AsrAgent asked it to stop";
                    try { await _vault.Store.DeleteAsync(VaultLayout.AgentStopRequest(host), running.Token).ConfigureAwait(false); }
                    catch (Exception ex) when (ex is not OperationCanceledException) { _logger.LogWarning(ex, "The stop request was not deleted"); }
                    break;
                }
                await Task.Delay(_options.TickInterval, running.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (running.IsCancellationRequested)
        {
        }
        await StopCyclesAsync().ConfigureAwait(false);
        heartbeatsStop.Cancel();
        try { await heartbeats.ConfigureAwait(false); } catch (OperationCanceledException) { }
        if (lockLost.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
        {
            string message = $"Agent for host '{host}' stopped: its lock on the vault (a lease) lapsed during a storage outage, so another agent may now serve the host. " +
                             "Its cycles were cancelled (the next one resyncs); restart it (systemd does) and it resumes once it holds the lock again.";
            // No final heartbeat: the record may already be another agent's.
            await _events.WriteAsync(AsrEventSeverity.Error, AsrEventTypes.AgentStopped, message, agentHost: host).ConfigureAwait(false);
            throw new AsrException(AsrErrorIds.AgentLockLost, AsrErrorKind.ConnectionError, message, host);
        }
        // The event first, then the Stopped record: whoever sees the record (Stop-AsrAgent waits for it) also finds the event.
        await _events.WriteAsync(AsrEventSeverity.Information, AsrEventTypes.AgentStopped, $"Agent for host '{host}' stopped: {reason}.", agentHost: host).ConfigureAwait(false);
        _record.RecordedState = AsrAgentState.Stopped;
        _record.StoppedUtc = Now;
        _record.ActiveCycles.Clear();
        await HeartbeatAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// The host's agent lock. While a live agent holds it, this one refuses to start; while a dead one's lease
    /// still runs (a blob vault after kill -9 or a crash), it waits for the lease to expire.
    /// </summary>
    private async Task<IDisposable> AcquireAgentLockAsync(string host, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + _options.DeadAgentLockWait;
        bool waitLogged = false;
        while (true)
        {
            if (_vault.Store.TryAcquireLock(VaultLayout.AgentLock(host)) is { } held) return held;
            var holder = await AgentDirectory.FindAsync(_vault, host, ct).ConfigureAwait(false);
            if (holder is null || holder.State == AsrAgentState.Running || DateTime.UtcNow >= deadline)
                throw new AsrException(AsrErrorIds.AgentAlreadyRunning, AsrErrorKind.ResourceBusy,
                    holder is { State: not AsrAgentState.Running }
                        ? $"The lock of host '{host}' on the vault at '{_vault.Location}' is still held {_options.DeadAgentLockWait.TotalSeconds:0} s after its agent (process {holder.ProcessId} on {holder.MachineName}) stopped responding; another process may hold it."
                        : $"An agent for host '{host}' is already running on the vault at '{_vault.Location}'. Stop it with Stop-AsrAgent -HostName {host} first.", host);
            if (!waitLogged)
            {
                _logger.LogWarning("The previous agent for host {Host} (process {Pid} on {Machine}) is {State} but its vault lock is still held (a lease expires up to a minute after its holder dies); waiting for it.",
                    host, holder.ProcessId, holder.MachineName, holder.State);
                waitLogged = true;
            }
            await Task.Delay(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);
        }
    }

    private long _allocatedAtLastCollect = GC.GetTotalAllocatedBytes();

    /// <summary>
    /// With no cycle running and more than <see cref="AgentOptions.ReturnMemoryAfterBytes"/> allocated since the last time:
    /// a full, compacting collection that gives the freed memory back to the system. Without it a long-lived agent keeps
    /// the garbage of its last large cycle (hundreds of MiB of pack buffers and decoded extents) until the garbage
    /// collector happens to run, which an idle process rarely makes it do (bench/memory-scale.sh, issue #15 item 3).
    /// </summary>
    private void ReturnMemoryWhenIdle()
    {
        if (_options.ReturnMemoryAfterBytes <= 0 || _running.Count > 0) return;
        long allocated = GC.GetTotalAllocatedBytes();
        if (allocated - _allocatedAtLastCollect < _options.ReturnMemoryAfterBytes) return;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        _allocatedAtLastCollect = GC.GetTotalAllocatedBytes();
    }

    /// <summary>
    /// One pass: the catalog refreshed from the host's change markers (two listings when nothing changed: see
    /// <see cref="AgentCatalog"/>), then health, assignments, due cycles, heartbeat, housekeeping. A stop request seen
    /// by the refresh ends the pass before any cycle starts.
    /// </summary>
    public async Task TickAsync(CancellationToken ct)
    {
        foreach (var done in _running.Values.Where(r => r.Task.IsCompleted).ToList())
            _running.Remove(done.Key);
        ReturnMemoryWhenIdle();

        try { await _catalog.RefreshAsync(ct).ConfigureAwait(false); }
        finally
        {
            // Seen by the listing even when reading what changed failed: a stop request is honoured whatever else fails.
            if (_catalog.StopRequested) _stopRequested = true;
        }
        if (_stopRequested) return;
        var mine = _catalog.Items;
        var policies = _catalog.Policies;
        await _catalog.WriteSnapshotIfDueAsync(_options.CatalogSnapshotInterval, ct).ConfigureAwait(false);
        await TrackAssignmentsAsync(mine, ct).ConfigureAwait(false);
        await TrackHealthAsync(mine, ct).ConfigureAwait(false);

        // The most overdue unit first (a resync or no point at all before any other): an agent with more due items than
        // cycle slots serves them oldest point first, never the same first names over and over (found by bench/ten-agents.sh).
        var units = mine.GroupBy(i => i.ReplicationGroup is { } g ? "group:" + g.ToLowerInvariant() : "item:" + i.Id)
            .OrderBy(u => u.Min(m => m.NeedsResync ? DateTimeOffset.MinValue : m.LastRecoveryPointTimeUtc ?? DateTimeOffset.MinValue))
            .ThenBy(u => u.Key, StringComparer.Ordinal);
        foreach (var unit in units)
        {
            if (_running.Count >= _options.MaxParallelCycles) break;
            if (_running.ContainsKey(unit.Key)) continue;
            var members = unit.ToList();
            if (!members.All(IsReplicating))
            {
                await WarnStalledGroupAsync(members, ct).ConfigureAwait(false);
                continue;
            }
            _warnedOnce.Remove(unit.Key);
            if (_retry.TryGetValue(unit.Key, out var retry) && Now < retry.NotBefore) continue;
            if (!policies.TryGetValue(members[0].PolicyName, out var policy)) continue;
            await ReportScriptsNotAllowedAsync(members, ct).ConfigureAwait(false);
            var (due, appConsistent) = Due(members, policy);
            if (!due) continue;
            StartUnit(unit.Key, members, appConsistent, ct);
        }

        _record.ProtectedItems = mine.Select(i => i.Name).ToList();
        _record.ActiveCycles = _running.Values.Select(r => r.DisplayName).ToList();
        if (Now - LastHeartbeat >= _options.HeartbeatInterval) await HeartbeatAsync(ct).ConfigureAwait(false);
        if (Now - _lastHousekeeping >= TimeSpan.FromMinutes(1)) await HousekeepingAsync(ct).ConfigureAwait(false);
    }

    /// <summary>States in which the vault direction is being replicated (drills do not stop replication).</summary>
    private static bool IsReplicating(AsrProtectedItem item) =>
        item.State is ProtectedItemState.InitialReplicationPending or ProtectedItemState.Protected
            or ProtectedItemState.ResyncRequired or ProtectedItemState.TestFailedOver
        && item.ExclusiveOperation is null;

    /// <summary>
    /// Whether a unit needs a cycle now and whether it should be app-consistent. A point is due when the
    /// newest one is as old as the policy's frequency; a resync is due at once.
    /// </summary>
    internal (bool Due, bool AppConsistent) Due(IReadOnlyList<AsrProtectedItem> members, AsrPolicy policy)
    {
        var now = Now;
        // A script this host does not allow makes no point due: the item's points stay crash-consistent at the
        // policy's frequency (one AppConsistencyScriptNotAllowed event says why), not a refused freeze every tick.
        bool app = policy.AppConsistentFrequencyHours > 0
            && members.Any(m => m.AppConsistencyScript is not null && Replication.Consistency.FreezeScriptTrust.WhyNotAllowed(m) is null)
            && members.Any(m => m.LastAppConsistentPointTimeUtc is not { } t || now - t >= TimeSpan.FromHours(policy.AppConsistentFrequencyHours));
        var frequency = TimeSpan.FromMinutes(policy.CrashConsistentFrequencyMinutes);
        bool due = members.Any(m => m.NeedsResync || m.LastRecoveryPointTimeUtc is not { } last || now - last >= frequency) || app;
        return (due, app);
    }

    /// <summary>Writes an AppConsistencyScriptNotAllowed warning when a member's script is refused on this host, once per reason.</summary>
    private async Task ReportScriptsNotAllowedAsync(List<AsrProtectedItem> members, CancellationToken ct)
    {
        foreach (var m in members)
        {
            string? why = m.AppConsistencyScript is null ? null : Replication.Consistency.FreezeScriptTrust.WhyNotAllowed(m);
            if (why is null) { _scriptRefused.Remove(m.Id); continue; }
            if (_scriptRefused.TryGetValue(m.Id, out var last) && last == why) continue;
            _scriptRefused[m.Id] = why;
            _logger.LogWarning("{Why}", why);
            await _events.WriteAsync(AsrEventSeverity.Warning, AsrEventTypes.AppConsistencyScriptNotAllowed,
                why + " Its points are crash-consistent until this host allows it (AllowedFreezeScripts, Start-AsrAgent -AllowedFreezeScript).",
                m.Name, _options.HostName, null, m.ReplicationGroup, cancellationToken: ct).ConfigureAwait(false);
        }
    }

    private void StartUnit(string key, List<AsrProtectedItem> members, bool appConsistent, CancellationToken ct)
    {
        var service = new ReplicationService(_vault);
        string? group = members[0].ReplicationGroup;
        var leases = new List<IDisposable>();
        try
        {
            foreach (var m in members.OrderBy(m => m.Id, StringComparer.Ordinal))
                leases.Add(service.AcquireLease(m));
        }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.ProtectedItemBusy)
        {
            // Someone else (a person's Invoke-AsrReplication, a failover) has it: try again next tick.
            foreach (var l in leases) l.Dispose();
            return;
        }
        // The catalog was read before the leases: a failover may have finished in between.
        List<AsrProtectedItem> current;
        try { current = members.Select(m => _vault.GetItemAsync(m.Name, ct).GetAwaiter().GetResult()).ToList(); }
        catch (AsrException) { current = []; }
        // ... or moved it to another host (the marker that says so may not have been written).
        if (current.Count != members.Count || !current.All(IsReplicating) || !current.All(m => string.Equals(m.AgentHost, _options.HostName, StringComparison.OrdinalIgnoreCase)))
        {
            foreach (var l in leases) l.Dispose();
            return;
        }
        members = current;
        var job = JobRunner.NewRecord(group is null ? "ReplicationCycle" : "GroupReplicationCycle", group ?? members[0].Name, group is null ? members[0].Id : null);
        job.StatusMessage = $"Started by the agent for host '{_options.HostName}'";
        job.StartedBy = "agent:" + _options.HostName;
        RunningJob running;
        try
        {
            running = JobRunner.Start(_vault, job, async ctx => group is null
                ? await service.RunCycleAsync(members[0], false, ctx, new CycleOptions { AppConsistent = appConsistent }).ConfigureAwait(false)
                : await GroupReplicationCycle.RunAsync(_vault, group, members, appConsistent, ctx).ConfigureAwait(false), _logger);
        }
        catch
        {
            foreach (var l in leases) l.Dispose();
            throw;
        }
        var task = FinishUnitAsync(key, members, group, running, leases, appConsistent);
        _running[key] = new UnitRun(key, group is null ? members[0].Name : "group " + group, task, running);
    }

    private async Task FinishUnitAsync(string key, List<AsrProtectedItem> members, string? group, RunningJob running, List<IDisposable> leases, bool appConsistent)
    {
        try
        {
            await running.Completion.ConfigureAwait(false);
            var job = JobRunner.Snapshot(running.Job);
            lock (_finishedJobs) _finishedJobs.Add((job.Id, job.EndTimeUtc ?? Now, job.State == AsrJobState.Succeeded));
            string name = group ?? members[0].Name;
            if (job.State == AsrJobState.Succeeded)
            {
                _retry.TryRemove(key, out _);
                lock (_record) _record.CyclesSucceeded++;
                if (job.Result?.Mode?.Contains(nameof(CycleMode.Resync), StringComparison.Ordinal) == true)
                    await Event(AsrEventSeverity.Information, AsrEventTypes.ResyncCompleted, $"Checksum resync of '{name}' completed: {job.Result.Note}", members, group, job.Id).ConfigureAwait(false);
                if (job.Result?.Note?.Contains("App-consistent point not possible", StringComparison.Ordinal) == true)
                    await Event(AsrEventSeverity.Warning,
                        job.Result.Note.Contains(Replication.Consistency.FreezeScriptTrust.NotAllowedMarker, StringComparison.Ordinal)
                            ? AsrEventTypes.AppConsistencyScriptNotAllowed : AsrEventTypes.AppConsistencyFailed,
                        job.Result.Note, members, group, job.Id).ConfigureAwait(false);
                else if (appConsistent)
                    await Event(AsrEventSeverity.Information, AsrEventTypes.AppConsistentPointCreated, $"App-consistent point {job.Result?.RecoveryPointSequence} of '{name}' created.", members, group, job.Id).ConfigureAwait(false);
                if (group is not null)
                    _logger.LogInformation("{Note}", job.Result?.Note);
                if (group is not null) await ApplyGroupRetentionAsync(members).ConfigureAwait(false);
            }
            else if (job.State == AsrJobState.Failed)
            {
                lock (_record) _record.CyclesFailed++;
                int failures = (_retry.TryGetValue(key, out var r) ? r.Failures : 0) + 1;
                var delay = TimeSpan.FromTicks(Math.Min(_options.MaxRetryDelay.Ticks, _options.TickInterval.Ticks * (1L << Math.Min(failures + 1, 20))));
                _retry[key] = (failures, Now + delay);
                string message = job.Errors.LastOrDefault()?.Message ?? job.StatusMessage ?? "unknown error";
                lock (_record) _record.LastError = message;
                await Event(AsrEventSeverity.Error, AsrEventTypes.CycleFailed, $"Replication cycle of '{name}' failed (attempt {failures}, next in {delay.TotalSeconds:0} s): {message}", members, group, job.Id).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Finishing the cycle of {Unit} failed", key);
        }
        finally
        {
            foreach (var l in leases) l.Dispose();
            ReleaseCycleMemory();
        }
    }

    /// <summary>
    /// A cycle allocates large, short-lived buffers (hash tables of 8 MiB per 4 GiB disk, pack buffers):
    /// on a machine with plenty of RAM the runtime would let them pile up on the large object heap for
    /// many cycles (measured: +45 MiB per minute at 30 s points). One compacting collection after each
    /// cycle keeps a long-running agent at its working size; it costs milliseconds every 30 s.
    /// </summary>
    private static void ReleaseCycleMemory()
    {
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    }

    /// <summary>Single items get retention inside their cycle; a group's members get it here, under the group's leases.</summary>
    private async Task ApplyGroupRetentionAsync(List<AsrProtectedItem> members)
    {
        var service = new ReplicationService(_vault);
        foreach (var m in members) await service.ApplyRetentionAsync(m, _logger).ConfigureAwait(false);
        try { await GroupReplicationCycle.PruneIncompleteAsync(_vault, members[0].ReplicationGroup!, CancellationToken.None).ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OperationCanceledException) { _logger.LogWarning(ex, "Pruning group points failed"); }
    }

    /// <summary>A group whose members are not all replicating gets no point at all: say so once, naming who holds it up.</summary>
    private async Task WarnStalledGroupAsync(List<AsrProtectedItem> members, CancellationToken ct)
    {
        string? group = members[0].ReplicationGroup;
        if (group is null || !members.Any(IsReplicating)) return;
        string key = "group:" + group.ToLowerInvariant();
        if (!_warnedOnce.Add(key)) return;
        var stuck = members.Where(m => !IsReplicating(m)).Select(m => $"'{m.Name}' is {m.State}{(m.ExclusiveOperation is { } op ? $" ({op.Operation} running)" : "")}");
        await _events.WriteAsync(AsrEventSeverity.Warning, AsrEventTypes.GroupStalled,
            $"Replication group '{group}' gets no coordinated points while {string.Join(", ", stuck)}: a group point needs every member.",
            agentHost: _options.HostName, group: group, cancellationToken: ct).ConfigureAwait(false);
    }

    private Task Event(AsrEventSeverity severity, string type, string message, IReadOnlyList<AsrProtectedItem> members, string? group, Guid? jobId) =>
        _events.WriteAsync(severity, type, message, group is null ? members[0].Name : null, _options.HostName, jobId, group);

    private async Task TrackAssignmentsAsync(List<AsrProtectedItem> mine, CancellationToken ct)
    {
        var now = mine.Select(i => i.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var i in mine.Where(i => !_assigned.Contains(i.Id)))
            await _events.WriteAsync(AsrEventSeverity.Information, AsrEventTypes.ItemAssigned,
                $"Agent '{_options.HostName}' now protects '{i.Name}'{(i.ReplicationGroup is { } g ? $" (group '{g}')" : "")}.", i.Name, _options.HostName, cancellationToken: ct).ConfigureAwait(false);
        foreach (var gone in _assigned.Where(id => !now.Contains(id)).ToList())
            await _events.WriteAsync(AsrEventSeverity.Information, AsrEventTypes.ItemUnassigned,
                $"Agent '{_options.HostName}' no longer protects item {gone} (removed or assigned elsewhere).", agentHost: _options.HostName, cancellationToken: ct).ConfigureAwait(false);
        _assigned.Clear();
        _assigned.UnionWith(now);
    }

    private async Task TrackHealthAsync(List<AsrProtectedItem> mine, CancellationToken ct)
    {
        foreach (var i in mine)
        {
            var before = _health.TryGetValue(i.Id, out var h) ? h : ReplicationHealth.Normal;
            _health[i.Id] = i.ReplicationHealth;
            if (before == i.ReplicationHealth) continue;
            string rpo = i.CurrentRpo is { } r ? $"{r.TotalSeconds:0} s" : "no point yet";
            var severity = i.ReplicationHealth switch
            {
                ReplicationHealth.Critical => AsrEventSeverity.Critical,
                ReplicationHealth.Warning => AsrEventSeverity.Warning,
                _ => AsrEventSeverity.Information,
            };
            await _events.WriteAsync(severity, AsrEventTypes.HealthChanged,
                $"Replication health of '{i.Name}' changed from {before} to {i.ReplicationHealth} (RPO {rpo}{(i.LastError is { } e ? "; last error: " + e : "")}).",
                i.Name, _options.HostName, group: i.ReplicationGroup, cancellationToken: ct).ConfigureAwait(false);
        }
    }

    private readonly SemaphoreSlim _heartbeatGate = new(1, 1);

    private DateTimeOffset LastHeartbeat { get { lock (_record) return _lastHeartbeat; } }

    /// <summary>Writes the agent's record with the time now; one write at a time (the tick and <see cref="HeartbeatWhileBusyAsync"/> both call it).</summary>
    private async Task HeartbeatAsync(CancellationToken ct)
    {
        await _heartbeatGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            byte[] json;
            DateTimeOffset at;
            lock (_record)
            {
                _record.LastHeartbeatUtc = at = Now;
                _record.WorkingSetBytes = Environment.WorkingSet;
                json = _vault.Records.Serialize(VaultLayout.Agent(_options.HostName), _record);
            }
            await _vault.Store.WriteAsync(VaultLayout.Agent(_options.HostName), json, ct).ConfigureAwait(false);
            lock (_record) _lastHeartbeat = at;
        }
        finally
        {
            _heartbeatGate.Release();
        }
    }

    /// <summary>
    /// The heartbeat goes out every interval even while a tick runs long — the start-up full catalog read of a large vault,
    /// a slow store: Get-AsrAgent must not show a busy agent NotResponding (bench/ten-agents.sh found 10 agents starting on
    /// a 1,000-item vault silent for 2.5–4 minutes). The tick still writes it when due; this loop writes only when it is late.
    /// </summary>
    private async Task HeartbeatWhileBusyAsync(CancellationToken ct)
    {
        while (true)
        {
            await Task.Delay(_options.HeartbeatInterval, ct).ConfigureAwait(false);
            if (Now - LastHeartbeat < _options.HeartbeatInterval) continue;
            try { await HeartbeatAsync(ct).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OperationCanceledException) { _logger.LogWarning(ex, "The heartbeat was not written"); }
        }
    }

    /// <summary>
    /// Every minute: this process's finished cycle jobs past their retention are deleted (no listing). Every
    /// <see cref="AgentOptions.FullCatalogInterval"/> (and at start): events of days past their retention, and a sweep of
    /// every job record for the agent jobs of earlier processes; these read what the whole vault holds, so not every minute.
    /// </summary>
    private async Task HousekeepingAsync(CancellationToken ct)
    {
        _lastHousekeeping = Now;
        List<Guid> expired;
        lock (_finishedJobs)
        {
            expired = _finishedJobs.Where(j => Now - j.EndedUtc > (j.Succeeded ? _options.SucceededJobRetention : _options.EventRetention)).Select(j => j.Id).ToList();
            var gone = expired.ToHashSet();
            _finishedJobs.RemoveAll(j => gone.Contains(j.Id));
        }
        foreach (var id in expired) await _vault.Store.DeleteAsync(VaultLayout.Job(id), ct).ConfigureAwait(false);
        if (_lastFullHousekeeping is { } last && Now - last < _options.FullCatalogInterval) return;
        _lastFullHousekeeping = Now;
        await _events.PruneAsync(_options.EventRetention, ct).ConfigureAwait(false);
        // A damaged job record is left alone (Get-AsrJob shows it); it must not stop housekeeping of the others.
        foreach (var job in (await _vault.Catalog.ListJobsAsync(ct).ConfigureAwait(false)).Where(e => e.Value is not null).Select(e => e.Value!))
        {
            // The agent's cycle jobs, of this process or of earlier ones (a restarted agent must not leave
            // thousands behind); people's Invoke-AsrReplication jobs are not the agent's to delete.
            if (!IsAgentJob(job) || (!job.IsFinished && !JobRunner.OwnerIsGone(job))) continue;
            var keep = job.State == AsrJobState.Succeeded ? _options.SucceededJobRetention : _options.EventRetention;
            if (Now - (job.EndTimeUtc ?? job.StartTimeUtc) > keep)
                await _vault.Store.DeleteAsync(VaultLayout.Job(job.Id), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Cycle jobs an agent started carry its marker (people's Invoke-AsrReplication jobs are not the agent's to delete).</summary>
    private static bool IsAgentJob(AsrJob job) => job.StartedBy?.StartsWith("agent:", StringComparison.Ordinal) == true;

    /// <summary>Cancels running cycles cleanly (a cancelled cycle publishes nothing and needs no resync) and waits for them.</summary>
    private async Task StopCyclesAsync()
    {
        foreach (var r in _running.Values) r.Job?.Cancel();
        try { await Task.WhenAll(_running.Values.Select(r => r.Task)).WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false); }
        catch (TimeoutException) { _logger.LogWarning("Cycles did not stop within 60 s"); }
        _running.Clear();
    }
}
