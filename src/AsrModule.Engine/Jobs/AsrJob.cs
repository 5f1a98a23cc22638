namespace AsrModule.Engine.Jobs;

public enum AsrJobState { NotStarted, InProgress, Suspended, Succeeded, Failed, Cancelled, Interrupted }

/// <summary>A long operation, as recorded in the vault (<c>jobs/&lt;id&gt;.json</c>).</summary>
public sealed class AsrJob
{
    public Guid Id { get; set; }
    public string Operation { get; set; } = "";
    public string TargetName { get; set; } = "";
    public string? TargetId { get; set; }
    public AsrJobState State { get; set; }
    public int PercentComplete { get; set; }
    public string? StatusMessage { get; set; }
    public DateTimeOffset StartTimeUtc { get; set; }
    public DateTimeOffset? EndTimeUtc { get; set; }
    public List<AsrJobError> Errors { get; set; } = new();
    public AsrJobResult? Result { get; set; }
    /// <summary>Recovery plan runs: one task per step, machine and pause.</summary>
    public List<Plans.PlanTask>? Tasks { get; set; }
    public Plans.PlanRunRecord? Plan { get; set; }
    public int OwnerProcessId { get; set; }
    public DateTimeOffset? OwnerProcessStartUtc { get; set; }
    public string OwnerHost { get; set; } = "";
    /// <summary>Who started the job when it was not a cmdlet: "agent:&lt;host&gt;" for the replication agent's cycles.</summary>
    public string? StartedBy { get; set; }

    [System.Text.Json.Serialization.JsonIgnore] public string? VaultLocation { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public bool IsFinished => State is AsrJobState.Succeeded or AsrJobState.Failed or AsrJobState.Cancelled or AsrJobState.Interrupted;
    /// <summary>Plan runs: their machines, how many became ready and when the last was ready (booted runs; see <see cref="Plans.PlanBootReadiness"/>).</summary>
    [System.Text.Json.Serialization.JsonIgnore] public Plans.PlanBootReadiness? BootReadiness => Tasks is null ? null : Plans.PlanBootReadiness.Of(this);
    [System.Text.Json.Serialization.JsonIgnore] public TimeSpan? Duration => (EndTimeUtc ?? (IsFinished ? null : DateTimeOffset.UtcNow)) - StartTimeUtc;
    [System.Text.Json.Serialization.JsonIgnore]
    public string[] AllowedActions => State switch
    {
        AsrJobState.Suspended => ["Resume-AsrJob", "Stop-AsrJob"],
        AsrJobState.Interrupted or AsrJobState.Failed or AsrJobState.Cancelled when Plan is not null => ["Restart-AsrJob"],
        _ when IsFinished => [],
        _ => ["Stop-AsrJob", "Wait-AsrJob"],
    };

    public AsrJob Clone() => (AsrJob)MemberwiseClone() is var c ? WithLists(c) : throw new InvalidOperationException();

    private AsrJob WithLists(AsrJob c)
    {
        c.Errors = new List<AsrJobError>(Errors);
        c.Tasks = Tasks?.Select(t => (Plans.PlanTask)t.CloneTask()).ToList();
        return c;
    }

    public override string ToString() => $"{Operation} {TargetName} ({State})";
}

public sealed class AsrJobError
{
    public string ErrorId { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Message { get; set; } = "";
    public string? Target { get; set; }
    public override string ToString() => $"{ErrorId}: {Message}";
}

/// <summary>What a finished job produced. Only the fields that apply to the operation are set.</summary>
public sealed class AsrJobResult
{
    public string? Mode { get; set; }
    public long? RecoveryPointSequence { get; set; }
    public Guid? RecoveryPointId { get; set; }
    public long? BytesScanned { get; set; }
    /// <summary>Blocks whose checksums were compared (every block of every disk in a cycle).</summary>
    public long? BlocksCompared { get; set; }
    /// <summary>Bytes written to the destination (vault bytes stored, or bytes copied to a disk).</summary>
    public long? BytesSent { get; set; }
    public long? ChangedBlocks { get; set; }
    public long? ChangedBytes { get; set; }
    public long? BytesStored { get; set; }
    public List<string>? Files { get; set; }
    /// <summary>Drills: disk name → nbd:// URI of the served disk.</summary>
    public Dictionary<string, string>? Exports { get; set; }
    /// <summary>Drills: time from the job's start until every disk could be read.</summary>
    public long? ReadyAfterMilliseconds { get; set; }
    /// <summary>Byte verifications: whether the bytes read back matched; null when no bytes were compared (a boot: see <see cref="Boot"/>).</summary>
    public bool? Verified { get; set; }
    /// <summary>Boot verification of a drill (Test-AsrTestFailover -Boot): ready or not, time to ready, check, console tail, screenshot.</summary>
    public Failover.Boot.BootVerificationResult? Boot { get; set; }
    public string? Note { get; set; }
}
