using System.Diagnostics;
using AsrModule.Engine.Agent;
using AsrModule.Engine.Vault;
using Xunit;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>
/// Stop-AsrAgent (AgentProcessLauncher.StopAsync) waits for the agent's Stopped record. An agent whose heartbeat is late
/// (shown NotResponding because it is busy) is still alive and stopping: returning its stale record made scripts that
/// restart it meet AgentAlreadyRunning (bench/README.md, ten-agents finding 3).
/// </summary>
public sealed class AgentStopTests
{
    private static AsrAgentRecord Running(string host, int pid) => new()
    {
        HostName = host,
        MachineName = Environment.MachineName,
        ProcessId = pid,
        RecordedState = AsrAgentState.Running,
        StartedUtc = DateTimeOffset.UtcNow.AddMinutes(-5),
        LastHeartbeatUtc = DateTimeOffset.UtcNow.AddMinutes(-1), // late: shown NotResponding
        HeartbeatIntervalSeconds = 1,
    };

    [Fact]
    public async Task A_busy_agent_with_a_late_heartbeat_is_waited_for_until_it_writes_Stopped()
    {
        using var h = await EngineHarness.CreateAsync();
        using var alive = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            var record = Running("busy", alive.Id);
            await h.Vault.Records.WriteAsync(VaultLayout.Agent("busy"), record, default);
            Assert.Equal(AsrAgentState.NotResponding, (await AgentDirectory.GetAsync(h.Vault, "busy", default)).State);

            var stop = AgentProcessLauncher.StopAsync(h.Vault, "busy", TimeSpan.FromSeconds(30), force: false, default);
            await Task.Delay(1500);
            Assert.False(stop.IsCompleted, "Stop returned while the agent's process was alive and had not written Stopped.");
            // The agent, having seen the stop request, writes its last record.
            Assert.True(await h.Vault.Store.ExistsAsync(VaultLayout.AgentStopRequest("busy"), default));
            record.RecordedState = AsrAgentState.Stopped;
            record.StoppedUtc = DateTimeOffset.UtcNow;
            await h.Vault.Records.WriteAsync(VaultLayout.Agent("busy"), record, default);

            var stopped = await stop.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(AsrAgentState.Stopped, stopped.RecordedState);
        }
        finally
        {
            alive.Kill();
        }
    }

    [Fact]
    public async Task An_agent_whose_process_is_gone_is_not_waited_for()
    {
        using var h = await EngineHarness.CreateAsync();
        using var gone = Process.Start(new ProcessStartInfo("true"))!;
        await gone.WaitForExitAsync();
        await h.Vault.Records.WriteAsync(VaultLayout.Agent("gone"), Running("gone", gone.Id), default);

        // Waiting out the 10-minute timeout would be the defect: the test gives up long before (a hang, not a timing).
        var record = await AgentProcessLauncher.StopAsync(h.Vault, "gone", TimeSpan.FromMinutes(10), force: false, default).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(AsrAgentState.NotResponding, record.State);
        Assert.Equal(AsrAgentState.Running, record.RecordedState);
    }
}
