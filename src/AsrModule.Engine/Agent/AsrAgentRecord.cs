using System.Text.Json.Serialization;

namespace AsrModule.Engine.Agent;

public enum AsrAgentState { Running, Stopped, NotResponding }

/// <summary>
/// An agent's heartbeat in the vault (agents/&lt;host&gt;.json): who protects what, and whether it is alive.
/// Any session can read it; only the agent writes it.
/// </summary>
public sealed class AsrAgentRecord
{
    public string HostName { get; set; } = "";
    public string MachineName { get; set; } = "";
    public int ProcessId { get; set; }
    public string Version { get; set; } = "";
    public DateTimeOffset StartedUtc { get; set; }
    public DateTimeOffset LastHeartbeatUtc { get; set; }
    public DateTimeOffset? StoppedUtc { get; set; }
    /// <summary>As written by the agent (Running or Stopped); see <see cref="State"/> for what it means now.</summary>
    public AsrAgentState RecordedState { get; set; }
    public double HeartbeatIntervalSeconds { get; set; }
    public List<string> ProtectedItems { get; set; } = new();
    public List<string> ActiveCycles { get; set; } = new();
    public long CyclesSucceeded { get; set; }
    public long CyclesFailed { get; set; }
    public string? LastError { get; set; }
    /// <summary>The agent process's resident memory at its last heartbeat.</summary>
    public long WorkingSetBytes { get; set; }

    [JsonIgnore] public string? VaultLocation { get; set; }

    /// <summary>Running, Stopped, or NotResponding (its heartbeat is late or its process on this machine is gone).</summary>
    [JsonIgnore]
    public AsrAgentState State
    {
        get
        {
            if (RecordedState != AsrAgentState.Running) return RecordedState;
            if (MachineName == Environment.MachineName && !ProcessIsAlive(ProcessId)) return AsrAgentState.NotResponding;
            return DateTimeOffset.UtcNow - LastHeartbeatUtc > TimeSpan.FromSeconds(Math.Max(15, 3 * HeartbeatIntervalSeconds))
                ? AsrAgentState.NotResponding : AsrAgentState.Running;
        }
    }

    /// <summary>A Running record of this machine whose process is gone (its state is NotResponding for that reason, not for a late heartbeat).</summary>
    [JsonIgnore]
    internal bool ProcessGoneHere => RecordedState == AsrAgentState.Running && MachineName == Environment.MachineName && !ProcessIsAlive(ProcessId);

    private static bool ProcessIsAlive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public override string ToString() => HostName;
}
