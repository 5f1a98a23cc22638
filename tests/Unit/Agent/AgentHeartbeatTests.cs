using AsrModule.Engine.Agent;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>
/// The heartbeat does not wait for the tick: ten agents starting on a 1,000-item blob vault spent 2.5–4 minutes in their
/// first tick (the full catalog read) and Get-AsrAgent showed all of them NotResponding (bench/ten-agents.sh, finding 2).
/// </summary>
public sealed class AgentHeartbeatTests
{
    [Fact]
    public async Task A_tick_stalled_on_the_vault_does_not_stop_the_heartbeat()
    {
        using var dir = new TempDir();
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]));
        using var h = await EngineHarness.CreateAsync(store: store);
        var stall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.BeforeList = prefix =>
        {
            if (!prefix.StartsWith(VaultLayout.HostPrefix("slow"), StringComparison.Ordinal)) return Task.CompletedTask;
            stalled.TrySetResult();
            return stall.Task; // every tick's listing of the host's markers waits until the test releases it
        };
        var agent = new ReplicationAgent(h.Vault, new AgentOptions
        {
            HostName = "slow",
            TickInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatInterval = TimeSpan.FromMilliseconds(300),
        }, NullLogger.Instance);
        using var cts = new CancellationTokenSource();
        var run = agent.RunAsync(cts.Token);
        try
        {
            await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
            var first = (await AgentDirectory.GetAsync(h.Vault, "slow", default)).LastHeartbeatUtc;
            // The tick is stuck in its listing; the record must still be refreshed, several times.
            var seen = new HashSet<DateTimeOffset> { first };
            for (int i = 0; i < 200 && seen.Count < 3; i++)
            {
                await Task.Delay(100);
                seen.Add((await AgentDirectory.GetAsync(h.Vault, "slow", default)).LastHeartbeatUtc);
            }
            Assert.False(stall.Task.IsCompleted);
            Assert.True(seen.Count >= 3, $"The agent's record was written {seen.Count - 1} time(s) while its tick was stalled.");
            Assert.Equal(AsrAgentState.Running, (await AgentDirectory.GetAsync(h.Vault, "slow", default)).State);
        }
        finally
        {
            stall.TrySetResult();
            await cts.CancelAsync();
            await run.WaitAsync(TimeSpan.FromSeconds(60));
        }
        var stopped = await AgentDirectory.GetAsync(h.Vault, "slow", default);
        Assert.Equal(AsrAgentState.Stopped, stopped.RecordedState);
    }
}
