namespace AsrModule.Engine.Agent;

/// <summary>Settings of a replication agent (section "Agent" of its configuration).</summary>
public sealed class AgentOptions
{
    /// <summary>The host name items are assigned to (Enable-AsrReplication -AgentHost). Default: this machine's name.</summary>
    public string HostName { get; set; } = Environment.MachineName;
    /// <summary>How often the catalog is read and due cycles are started.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// How often the agent reads the whole catalog (every item record, every job record, the event days) instead of
    /// only its host's change markers; also once at start. Between full reads a quiet tick costs two listings
    /// whatever the vault holds (issue #15; docs/design.md "Scale").
    /// </summary>
    public TimeSpan FullCatalogInterval { get; set; } = TimeSpan.FromHours(1);
    /// <summary>
    /// Shortest time between two writes of the host's catalog snapshot (<see cref="Vault.HostCatalogSnapshot"/>), which a
    /// listing of every item reads instead of the items; written only when what the agent keeps changed.
    /// </summary>
    public TimeSpan CatalogSnapshotInterval { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// Allocated bytes after which the agent, once no cycle runs, collects garbage and gives the memory back (0: never;
    /// the runtime then collects when it sees fit, and an idle agent keeps its last large cycle's garbage).
    /// </summary>
    public long ReturnMemoryAfterBytes { get; set; } = 128L << 20;
    /// <summary>Cycles running at once; each cycle already uses every core for compression and encryption.</summary>
    public int MaxParallelCycles { get; set; } = 2;
    public TimeSpan EventRetention { get; set; } = TimeSpan.FromDays(30);
    /// <summary>The agent's successful cycle jobs are removed after this (one every 30 s would flood Get-AsrJob); failed ones stay for <see cref="EventRetention"/>.</summary>
    public TimeSpan SucceededJobRetention { get; set; } = TimeSpan.FromHours(1);
    /// <summary>Longest wait before retrying a failed cycle (doubles from the tick interval).</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The freeze scripts this host allows the agent to run (':'-separated files, or directories whose scripts
    /// are all allowed): host configuration, never the vault. An item's script outside it is not run (its
    /// points are crash-consistent, with an AppConsistencyScriptNotAllowed event). See FreezeScriptTrust.
    /// </summary>
    public string? AllowedFreezeScripts { get; set; }

    /// <summary>
    /// How long a starting agent waits for the lock of a previous agent for its host that is known dead (its
    /// process is gone, or its heartbeat is late): a blob lease outlives a killed holder by up to a minute.
    /// </summary>
    public TimeSpan DeadAgentLockWait { get; set; } = TimeSpan.FromSeconds(90);
}
