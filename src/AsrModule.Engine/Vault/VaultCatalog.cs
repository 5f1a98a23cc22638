using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Storage;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Vault;

/// <summary>
/// What a vault lists: policies, protected items (as shown: with RPO, health and the running job), recovery
/// points and job records. Every record is read and checked (<see cref="VaultRecordChecks"/>) one by one, and a
/// record that is damaged (does not parse, validate or authenticate: <see cref="AsrErrorIds.VaultDataCorrupt"/>)
/// becomes a damaged <see cref="VaultListEntry{T}"/> naming its key while the listing goes on: one bad object
/// affects only what it describes (issue #12, item 6; docs/design.md, "Damaged records in listings").
/// </summary>
public sealed class VaultCatalog
{
    private readonly AsrVault _vault;
    private readonly ManifestCache _manifests = new();

    internal VaultCatalog(AsrVault vault) => _vault = vault;

    private IVaultStore Store => _vault.Store;
    private ILogger Logger => _vault.Logger;

    private static bool IsDamage(AsrException ex) => ex.ErrorId == AsrErrorIds.VaultDataCorrupt;

    // ---- policies ----

    /// <summary>Every policy record, by key (name) order; a damaged one as its error.</summary>
    public async Task<List<VaultListEntry<AsrPolicy>>> ListPoliciesAsync(CancellationToken ct)
    {
        var list = new List<VaultListEntry<AsrPolicy>>();
        foreach (var o in await Store.ListAsync(VaultLayout.PoliciesPrefix, ct).ConfigureAwait(false))
        {
            if (!o.Key.EndsWith(".json", StringComparison.Ordinal) || o.Key.Count(c => c == '/') != 1) continue;
            string name = Path.GetFileNameWithoutExtension(o.Key);
            try
            {
                if (await ReadPolicyRecordAsync(o.Key, ct).ConfigureAwait(false) is { } p) list.Add(VaultListEntry<AsrPolicy>.Ok(o.Key, p.Name, p));
            }
            catch (AsrException ex) when (IsDamage(ex))
            {
                list.Add(VaultListEntry<AsrPolicy>.Damaged(o.Key, name, ex));
            }
        }
        return list;
    }

    /// <summary>A policy record as stored (null when absent), checked: a damaged one throws VaultDataCorrupt naming it.</summary>
    internal async Task<AsrPolicy?> ReadPolicyRecordAsync(string key, CancellationToken ct)
    {
        var policy = await _vault.Records.ReadAsync<AsrPolicy>(key, ct).ConfigureAwait(false);
        if (policy is not null) VaultRecordChecks.CheckPolicy(policy, key);
        return policy;
    }

    // ---- protected items ----

    /// <summary>
    /// Every item record, by name; a damaged one as its error, named by its name claim where one points to it. The items
    /// are found by one listing of the folders under items/ (not of everything stored there) and read and decorated
    /// concurrently, each policy read once; an item an agent's current snapshot holds is taken from it (<see cref="HostCatalogSnapshot"/>).
    /// </summary>
    /// <param name="fromSnapshots">
    /// Take the items an agent's current snapshot holds from it (what Get-AsrProtectedItem shows). Off for every caller that
    /// decides something: a record write whose marker write failed shows in a snapshot only after the agent's next full read.
    /// </param>
    public Task<List<VaultListEntry<AsrProtectedItem>>> ListItemsAsync(CancellationToken ct, bool fromSnapshots = false) =>
        ListItemsAsync(keep: null, fromSnapshots, ct);

    /// <summary>
    /// The items whose record <paramref name="keep"/> accepts, as shown, and every damaged record: each record is read (one
    /// request an item), but only the kept ones are decorated (~3 requests more each: points listing, latest manifest, a
    /// cycle's job). An agent's full read keeps its host's items this way, so it costs one read per item of other hosts.
    /// </summary>
    internal Task<List<VaultListEntry<AsrProtectedItem>>> ListItemsWhereAsync(Func<AsrProtectedItem, bool> keep, CancellationToken ct) =>
        ListItemsAsync(keep, fromSnapshots: false, ct);

    private async Task<List<VaultListEntry<AsrProtectedItem>>> ListItemsAsync(Func<AsrProtectedItem, bool>? keep, bool fromSnapshots, CancellationToken ct)
    {
        var ids = (await Store.ListFoldersAsync(VaultLayout.ItemsPrefix, ct).ConfigureAwait(false)).Where(VaultLayout.IsValidName).ToList();
        // The agents' snapshots give the items they keep, as long as each item's marker shows no write since: ~2 requests
        // per agent host instead of ~4 per item (issue #15). The others are read one by one, as before.
        var snapshots = fromSnapshots ? await HostCatalogSnapshots.ReadCurrentAsync(_vault, ct).ConfigureAwait(false) : [];
        var entries = new VaultListEntry<AsrProtectedItem>?[ids.Count];
        var policies = new PolicyReads(this);
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(8, Store.PreferredReadConcurrency), CancellationToken = ct };
        var now = _vault.Clock.GetUtcNow();
        await Parallel.ForEachAsync(Enumerable.Range(0, ids.Count), options, async (i, token) =>
        {
            string key = VaultLayout.Item(ids[i]);
            if (snapshots.TryGetValue(ids[i], out var snapshotted))
            {
                var item = snapshotted.Item;
                if (keep is not null && !keep(item)) return;
                item.VaultLocation = _vault.Location;
                item.HealthInputs = new ItemHealthInputs(snapshotted.RecordDamaged, snapshotted.RpoThresholdMinutes, snapshotted.HasLatestPoint);
                EvaluateHealth(item, now);
                entries[i] = VaultListEntry<AsrProtectedItem>.Ok(key, item.Name, item);
                return;
            }
            try
            {
                if (await ReadItemRecordAsync(key, token).ConfigureAwait(false) is { } item && (keep is null || keep(item)))
                    entries[i] = VaultListEntry<AsrProtectedItem>.Ok(key, item.Name, await DecorateAsync(item, token, policies).ConfigureAwait(false));
            }
            catch (AsrException ex) when (IsDamage(ex))
            {
                entries[i] = VaultListEntry<AsrProtectedItem>.Damaged(key, null, ex);
            }
        }).ConfigureAwait(false);
        var list = new List<VaultListEntry<AsrProtectedItem>>(ids.Count);
        Dictionary<string, string>? namesById = null;
        foreach (var e in entries)
        {
            if (e is null) continue;
            if (e.Value is null)
            {
                namesById ??= await ReadNameClaimsAsync(ct).ConfigureAwait(false);
                string? name = namesById.GetValueOrDefault(e.Key.Split('/')[1]);
                list.Add(name is null ? e : VaultListEntry<AsrProtectedItem>.Damaged(e.Key, name, DamagedItem(name, e.Error!)));
            }
            else list.Add(e);
        }
        return list.OrderBy(e => e.Name ?? "", StringComparer.OrdinalIgnoreCase).ThenBy(e => e.Key, StringComparer.Ordinal).ToList();
    }

    /// <summary>The policies one listing reads: each at most once, however many items use it.</summary>
    internal sealed class PolicyReads(VaultCatalog catalog)
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Task<AsrPolicy?>>> _reads = new(StringComparer.OrdinalIgnoreCase);

        public Task<AsrPolicy?> ReadAsync(string name, CancellationToken ct) =>
            _reads.GetOrAdd(name, n => new Lazy<Task<AsrPolicy?>>(() => catalog.ReadPolicyRecordAsync(VaultLayout.Policy(n), ct))).Value;
    }

    /// <summary>
    /// The item of that name, as shown; a damaged record throws VaultDataCorrupt naming the item and the record. The name
    /// claim only leads to the record: the record must carry that name itself (a claim edited to lead to another item's
    /// record is VaultDataCorrupt naming the claim, so an operation on one machine never acts on another).
    /// </summary>
    public async Task<AsrProtectedItem> GetItemAsync(string name, CancellationToken ct)
    {
        string claimKey = VaultLayout.ItemNameClaim(name);
        var claim = VaultLayout.IsValidName(name) ? await Store.ReadAllAsync(claimKey, ct).ConfigureAwait(false) : null;
        AsrProtectedItem? item = null;
        try
        {
            string? id = claim is null ? null : System.Text.Encoding.UTF8.GetString(_vault.Records.OpenBytes(claimKey, claim));
            if (id is not null && VaultLayout.IsValidName(id))
            {
                item = await ReadItemRecordAsync(VaultLayout.Item(id), ct).ConfigureAwait(false);
                if (item is not null && !string.Equals(item.Name, name, StringComparison.OrdinalIgnoreCase))
                    throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                        $"Vault object '{claimKey}' leads to the record of item '{VaultRecordChecks.Printable(item.Name)}' ('{VaultLayout.Item(id)}'), not of '{name}': the claim was altered and is not followed.", claimKey);
            }
        }
        catch (AsrException ex) when (IsDamage(ex)) { throw DamagedItem(name, ex); }
        if (item is null)
            throw new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound,
                $"No protected item named '{name}' in the vault at '{_vault.Location}'. Use Get-AsrProtectedItem to list items.", name);
        return await DecorateAsync(item, ct).ConfigureAwait(false);
    }

    private static AsrException DamagedItem(string name, AsrException ex) =>
        new(ex.ErrorId, ex.Kind, $"The record of protected item '{name}' is damaged: {ex.Message}", ex.Target, ex);

    /// <summary>Item id → name, from the name claims (only read when a damaged item record needs naming).</summary>
    private async Task<Dictionary<string, string>> ReadNameClaimsAsync(CancellationToken ct)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var o in await Store.ListAsync("names/", ct).ConfigureAwait(false))
        {
            if (o.Length > 1024 || await Store.ReadAllAsync(o.Key, ct).ConfigureAwait(false) is not { } data) continue;
            string name = o.Key["names/".Length..];
            if (!VaultLayout.IsValidName(name)) continue;
            // Only for naming a damaged record: a claim that does not authenticate names nothing.
            try { map[System.Text.Encoding.UTF8.GetString(_vault.Records.OpenBytes(o.Key, data))] = name; }
            catch (AsrException ex) when (IsDamage(ex)) { }
        }
        return map;
    }

    /// <summary>An item record as stored, checked before use (its disk names become file names: see <see cref="VaultRecordChecks"/>).</summary>
    internal async Task<AsrProtectedItem?> ReadItemRecordAsync(string key, CancellationToken ct)
    {
        var item = await _vault.Records.ReadAsync<AsrProtectedItem>(key, ct).ConfigureAwait(false);
        if (item is not null) VaultRecordChecks.CheckItem(item, key);
        return item;
    }

    /// <summary>
    /// The item as shown: the latest point from the manifests, RPO and health from its policy, a running job's
    /// progress. A damaged latest manifest or policy does not hide the item: it shows Critical with the record
    /// named in LastError (and can still be disabled).
    /// </summary>
    internal async Task<AsrProtectedItem> DecorateAsync(AsrProtectedItem item, CancellationToken ct, PolicyReads? policies = null)
    {
        item.VaultLocation = _vault.Location;
        bool damaged = false;
        AsrRecoveryPoint? latest = null;
        try
        {
            latest = await GetLatestPointAsync(item.Id, ct).ConfigureAwait(false);
        }
        catch (AsrException ex) when (IsDamage(ex))
        {
            // A damaged or planted manifest must not hide the item; what would read the point refuses it.
            damaged = true;
            item.LastError = ex.Message;
            Logger.LogWarning("Item {Item}: {Message}", item.Name, ex.Message);
        }
        if (latest is not null)
        {
            // The published manifests are the truth; the item record may lag after a crash.
            item.LastPointSequence = latest.Sequence;
            item.LastRecoveryPointTimeUtc = latest.RecoveryPointTimeUtc;
            item.CurrentRpo = _vault.Clock.GetUtcNow() - latest.RecoveryPointTimeUtc;
        }
        AsrPolicy? policy = null;
        try
        {
            policy = policies is null ? await ReadPolicyRecordAsync(VaultLayout.Policy(item.PolicyName), ct).ConfigureAwait(false)
                : await policies.ReadAsync(item.PolicyName, ct).ConfigureAwait(false);
        }
        catch (AsrException ex) when (IsDamage(ex))
        {
            // Its cycles cannot run without a policy: shown Critical, with the policy's problem.
            string message = $"Policy '{item.PolicyName}' of this item is damaged, so its cycles cannot run: {ex.Message}";
            // Like a damaged manifest's, this replaces the stored (older) error; both damages are shown together.
            item.LastError = damaged ? item.LastError + " " + message : message;
            damaged = true;
            Logger.LogWarning("Item {Item}: {Message}", item.Name, message);
        }
        double threshold = policy?.RpoThresholdMinutes ?? 15;
        if (item.CycleInProgressJobId is { } cycleJob && !JobRunner.TryGetRunning(cycleJob, out _))
        {
            var record = await TryReadJobRecordAsync(cycleJob, ct).ConfigureAwait(false);
            if (JobRunner.TryGetPendingEnd(cycleJob, out var ended)) record = ended;
            if (record is not null && (record.IsFinished || JobRunner.OwnerIsGone(record)))
            {
                if (latest is not null)
                {
                    // Shown now, not only when the next cycle notices: that cycle will be a checksum resync.
                    item.ResyncReason ??= $"The cycle of job {cycleJob} did not complete (process killed or transfer failed).";
                    if (item.State == ProtectedItemState.Protected) item.State = ProtectedItemState.ResyncRequired;
                }
                else
                {
                    // No point yet, so nothing to compare checksums with: the next cycle (Invoke-AsrReplication, Resume-AsrResync
                    // or the agent's) runs the initial replication again and first removes what the dead attempt stored.
                    item.LastError ??= $"The initial replication (job {cycleJob}) did not complete ({(record.IsFinished ? record.State.ToString() : "its process ended")}); " +
                        "run Invoke-AsrReplication to run it again.";
                }
            }
        }
        if (item.TestFailover is { } drill && drill.OwnerHost == Environment.MachineName && !Failover.TestFailoverService.ProcessIsAliveOrHere(drill.OwnerProcessId))
            item.LastError = $"The drill's disks are no longer served: process {drill.OwnerProcessId} that served them has ended. Clean it up with Start-AsrTestFailoverCleanup.";
        item.HealthInputs = new ItemHealthInputs(damaged, threshold, latest is not null);
        EvaluateHealth(item, _vault.Clock.GetUtcNow());
        if (item.LastJobId is { } jobId && !JobRunner.EndedHere(jobId))
        {
            // A running job's progress shows on the item (e.g. a resync's percentage), from any session; one that ended in this
            // process is not running anywhere, and its record is not read.
            var job = JobRunner.TryGetRunning(jobId, out var running) ? JobRunner.Snapshot(running.Job)
                : await TryReadJobRecordAsync(jobId, ct).ConfigureAwait(false);
            if (job is { State: AsrJobState.InProgress } && !JobRunner.OwnerIsGone(job))
            {
                item.ActiveJobOperation = job.Operation;
                item.ActiveJobPercent = job.PercentComplete;
            }
        }
        return item;
    }

    /// <summary>
    /// RPO and health at <paramref name="now"/> from what the item's last read found (<see cref="AsrProtectedItem.HealthInputs"/>):
    /// the agent re-evaluates the items it keeps in memory every tick without reading them again (issue #15).
    /// </summary>
    internal static void EvaluateHealth(AsrProtectedItem item, DateTimeOffset now)
    {
        var inputs = item.HealthInputs ?? new ItemHealthInputs(false, 15, item.LastRecoveryPointTimeUtc is not null);
        if (inputs.HasLatestPoint && item.LastRecoveryPointTimeUtc is { } last) item.CurrentRpo = now - last;
        bool damaged = inputs.RecordDamaged;
        double threshold = inputs.RpoThresholdMinutes;
        item.ReplicationHealth = item.State switch
        {
            _ when damaged => ReplicationHealth.Critical,
            // After failover the vault is not being replicated to: RPO does not apply.
            ProtectedItemState.FailedOver or ProtectedItemState.Committed => ReplicationHealth.Warning,
            ProtectedItemState.Reprotected => ReplicationHealth.Normal,
            ProtectedItemState.InitialReplicationPending when !inputs.HasLatestPoint => ReplicationHealth.Warning,
            _ when item.State == ProtectedItemState.ResyncRequired || item.CurrentRpo is null => ReplicationHealth.Critical,
            _ when item.CurrentRpo!.Value.TotalMinutes > 2 * threshold => ReplicationHealth.Critical,
            _ when item.CurrentRpo!.Value.TotalMinutes > threshold => ReplicationHealth.Warning,
            _ => ReplicationHealth.Normal,
        };
        if (item.TestFailover is not null && item.LastError?.StartsWith("The drill's disks", StringComparison.Ordinal) == true && item.ReplicationHealth == ReplicationHealth.Normal)
            item.ReplicationHealth = ReplicationHealth.Warning;
    }

    /// <summary>A job record for decorating an item; a damaged one is not the item's problem (Get-AsrJob shows it).</summary>
    private async Task<AsrJob?> TryReadJobRecordAsync(Guid id, CancellationToken ct)
    {
        try { return await _vault.Records.ReadAsync<AsrJob>(VaultLayout.Job(id), ct).ConfigureAwait(false); }
        catch (AsrException ex) when (IsDamage(ex)) { return null; }
    }

    // ---- recovery points ----

    /// <summary>Every manifest of the item, oldest first; a damaged one as its error, naming the point and the record.</summary>
    public async Task<List<VaultListEntry<AsrRecoveryPoint>>> ListPointsAsync(string itemId, CancellationToken ct)
    {
        var list = new List<VaultListEntry<AsrRecoveryPoint>>();
        var listing = await Store.ListAsync(VaultLayout.PointsPrefix(itemId), ct).ConfigureAwait(false);
        _manifests.KeepOnly(itemId, listing.Select(o => o.Key).ToHashSet(StringComparer.Ordinal));
        foreach (var o in listing)
        {
            // Only manifests named as this engine names them (a stray or nested file is not a point).
            if (!VaultLayout.TryParsePointSequence(o.Key, out long sequence) || o.Key != VaultLayout.PointManifest(itemId, sequence)) continue;
            try
            {
                if (await ReadPointAsync(itemId, sequence, o.Version, ct).ConfigureAwait(false) is { } p)
                    list.Add(VaultListEntry<AsrRecoveryPoint>.Ok(o.Key, sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), p));
            }
            // A point of a newer format is listed like a damaged one (it and only it cannot be read), under its own error id.
            catch (AsrException ex) when (IsDamage(ex) || ex.ErrorId == AsrErrorIds.VaultFormatUnsupported)
            {
                list.Add(VaultListEntry<AsrRecoveryPoint>.Damaged(o.Key, sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), ex));
            }
        }
        return list;
    }

    public async Task<AsrRecoveryPoint?> GetLatestPointAsync(string itemId, CancellationToken ct)
    {
        var keys = await Store.ListAsync(VaultLayout.PointsPrefix(itemId), ct).ConfigureAwait(false);
        for (int i = keys.Count - 1; i >= 0; i--)
        {
            if (!VaultLayout.TryParsePointSequence(keys[i].Key, out long sequence) || keys[i].Key != VaultLayout.PointManifest(itemId, sequence)) continue;
            var p = await ReadPointAsync(itemId, sequence, keys[i].Version, ct).ConfigureAwait(false);
            if (p is not null) return p;
        }
        return null;
    }

    /// <summary>
    /// The manifest of a point as stored, or null when there is none; checked before use (it must be the point
    /// its key names, and its disk names become file names: see <see cref="VaultRecordChecks"/>).
    /// </summary>
    internal Task<AsrRecoveryPoint?> ReadPointAsync(string itemId, long sequence, CancellationToken ct) => ReadPointAsync(itemId, sequence, null, ct);

    /// <summary>
    /// As <see cref="ReadPointAsync(string, long, CancellationToken)"/>, for a manifest a listing just showed at
    /// <paramref name="listedVersion"/>: taken from <see cref="ManifestCache"/> when this process read it at that version
    /// (opened, parsed and checked again all the same), read and kept there otherwise.
    /// </summary>
    private async Task<AsrRecoveryPoint?> ReadPointAsync(string itemId, long sequence, string? listedVersion, CancellationToken ct)
    {
        string key = VaultLayout.PointManifest(itemId, sequence);
        var stored = _manifests.TryGet(itemId, key, listedVersion);
        bool read = stored is null;
        stored ??= await Store.ReadAllAsync(key, ct).ConfigureAwait(false);
        if (stored is null) return null;
        var p = _vault.Records.Deserialize<AsrRecoveryPoint>(key, stored);
        VaultRecordChecks.CheckPoint(p, key, itemId, sequence);
        if (read) _manifests.Put(itemId, key, listedVersion, stored);
        p.VaultLocation = _vault.Location;
        return p;
    }

    // ---- jobs ----

    /// <summary>
    /// Every job record, oldest first, each as <see cref="JobStore.GetAsync"/> shows it (a running job of this process as it is
    /// now, an end not yet written as it ended); damaged records last.
    /// </summary>
    public async Task<List<VaultListEntry<AsrJob>>> ListJobsAsync(CancellationToken ct)
    {
        var jobs = new List<VaultListEntry<AsrJob>>();
        var damaged = new List<VaultListEntry<AsrJob>>();
        JobRunner.KickPendingEnds(_vault.Location); // as JobStore.ListAsync: ends this process could not write yet are retried now
        foreach (var o in await Store.ListAsync(VaultLayout.JobsPrefix, ct).ConfigureAwait(false))
        {
            if (!Guid.TryParse(Path.GetFileNameWithoutExtension(o.Key), out var id) || o.Key != VaultLayout.Job(id)) continue;
            try
            {
                jobs.Add(VaultListEntry<AsrJob>.Ok(o.Key, id.ToString("D"), await _vault.Jobs.GetAsync(id, ct).ConfigureAwait(false)));
            }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.JobNotFound)
            {
                // Deleted since it was listed (the agent's housekeeping).
            }
            catch (AsrException ex) when (IsDamage(ex))
            {
                damaged.Add(VaultListEntry<AsrJob>.Damaged(o.Key, id.ToString("D"),
                    new AsrException(ex.ErrorId, ex.Kind, $"The record of job {id} is damaged: {ex.Message}", ex.Target, ex)));
            }
        }
        return jobs.OrderBy(j => j.Value!.StartTimeUtc).Concat(damaged).ToList();
    }
}
