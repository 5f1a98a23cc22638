using AsrModule.Engine.Agent;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Events;
using AsrModule.Engine.Items;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Replication;
using AsrModule.Tests.Unit.Retention;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>The agent's decisions under a manual clock: what is due, and how health turns into events.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")] // freeze scripts are executables made with chmod
public sealed class ReplicationAgentTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 25, 8, 0, 0, TimeSpan.Zero);

    /// <summary>An executable freeze script with the given body, deleted with the returned handle.</summary>
    private sealed class ScriptFile : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "asr-freeze-" + Guid.NewGuid().ToString("N") + ".sh");
        public string Log => Path + ".log";
        public ScriptFile(Func<string, string> body)
        {
            File.WriteAllText(Path, "#!/bin/sh\n" + body(Log));
            File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        }
        public void Dispose() { File.Delete(Path); File.Delete(Log); }
    }

    private static async Task<(EngineHarness H, ManualClock Clock, AsrProtectedItem Item)> SetupAsync(AsrPolicy policy, string? script = null)
    {
        var h = await EngineHarness.CreateAsync();
        var clock = new ManualClock(T0);
        h.Vault.Clock = clock;
        await h.Vault.CreatePolicyAsync(policy, default);
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 256 * 1024, 1);
        await h.Replication.RegisterAsync("vm", [disk], policy.Name, default, settings: new ItemReplicationSettings { AgentHost = "h1", AppConsistencyScript = script });
        await h.CycleAsync("vm");
        return (h, clock, await h.Vault.GetItemAsync("vm", default));
    }

    [Fact]
    public async Task APointIsDueExactlyWhenTheNewestIsAsOldAsThePolicyFrequency()
    {
        var policy = new AsrPolicy { Name = "p30", CrashConsistentFrequencyMinutes = 0.5, AppConsistentFrequencyHours = 0 };
        var (h, clock, _) = await SetupAsync(policy);
        using var _h = h;
        var agent = new ReplicationAgent(h.Vault, new AgentOptions { HostName = "h1" }, NullLogger.Instance);
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.False(agent.Due([await h.Vault.GetItemAsync("vm", default)], policy).Due);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal((true, false), agent.Due([await h.Vault.GetItemAsync("vm", default)], policy));
    }

    [Fact]
    public async Task AnAppConsistentPointIsDueAtItsOwnFrequencyOnlyForItemsWithAFreezeScript()
    {
        var policy = new AsrPolicy { Name = "papp", CrashConsistentFrequencyMinutes = 5, AppConsistentFrequencyHours = 1 };
        using var script = new ScriptFile(_ => "exit 0\n");
        var (h, clock, item) = await SetupAsync(policy, script.Path);
        using var _h = h;
        var agent = new ReplicationAgent(h.Vault, new AgentOptions { HostName = "h1" }, NullLogger.Instance);
        // Never had one: due now, app-consistent.
        Assert.Equal((true, true), agent.Due([item], policy));
        var result = await h.Replication.RunCycleAsync(item, false, Engine.Jobs.JobContext.Detached(), new CycleOptions { AppConsistent = true });
        var point = await h.Vault.GetLatestPointAsync(item.Id, default);
        Assert.Equal(Engine.RecoveryPoints.RecoveryPointConsistency.AppConsistent, point!.Consistency);
        item = await h.Vault.GetItemAsync("vm", default);
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal((true, false), agent.Due([item], policy));
        clock.Advance(TimeSpan.FromMinutes(55));
        Assert.Equal((true, true), agent.Due([item], policy));
        item.AppConsistencyScript = null;
        Assert.Equal((true, false), agent.Due([item], policy));
    }

    [Fact]
    public async Task AFailingFreezeScriptLeavesACrashConsistentPointAndSaysWhy()
    {
        var policy = new AsrPolicy { Name = "pfail", CrashConsistentFrequencyMinutes = 5, AppConsistentFrequencyHours = 1 };
        using var script = new ScriptFile(log => $"echo $1 >> '{log}'\n[ \"$1\" = thaw ] || {{ echo 'database refused to freeze' >&2; exit 3; }}\n");
        var (h, _, item) = await SetupAsync(policy, script.Path);
        using var _h = h;
        var result = await h.Replication.RunCycleAsync(item, false, Engine.Jobs.JobContext.Detached(), new CycleOptions { AppConsistent = true });
        var point = await h.Vault.GetLatestPointAsync(item.Id, default);
        Assert.Equal(Engine.RecoveryPoints.RecoveryPointConsistency.CrashConsistent, point!.Consistency);
        Assert.Contains("database refused to freeze", result.Note);
        // A failed freeze is thawed at once: an application is never left frozen.
        Assert.Equal(["freeze", "thaw"], File.ReadAllLines(script.Log));
    }

    [Fact]
    public async Task WithMoreDueItemsThanCycleSlotsTheOldestPointGoesFirstNotTheFirstName()
    {
        var policy = new AsrPolicy { Name = "pfair", CrashConsistentFrequencyMinutes = 0.5, AppConsistentFrequencyHours = 0 };
        var (h, clock, _) = await SetupAsync(policy);   // "vm": point 1 at T0
        using var _h = h;
        string disk = h.Dir["a.img"];
        TestDisks.Create(disk, 256 * 1024, 2);
        await h.Replication.RegisterAsync("aaa", [disk], policy.Name, default, settings: new ItemReplicationSettings { AgentHost = "h1" });
        clock.Advance(TimeSpan.FromMinutes(1));
        await h.CycleAsync("aaa");                      // "aaa" (first by name): point 1 a minute later than vm's
        clock.Advance(TimeSpan.FromMinutes(1));         // both due now
        var agent = new ReplicationAgent(h.Vault, new AgentOptions { HostName = "h1", MaxParallelCycles = 1 }, NullLogger.Instance);
        await agent.TickAsync(default);                 // one slot: one cycle starts
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await h.Vault.GetItemAsync("vm", default)).LastPointSequence < 2 && DateTime.UtcNow < deadline) await Task.Delay(100);
        var vm = await h.Vault.GetItemAsync("vm", default);
        Assert.Equal(2, vm.LastPointSequence);
        Assert.Equal(1, (await h.Vault.GetItemAsync("aaa", default)).LastPointSequence);
        // The cycle's job ends after its point is listed (events, the job's end record): wait for the stored end before the vault goes.
        while (await h.Vault.Records.ReadAsync<Engine.Jobs.AsrJob>(Engine.Vault.VaultLayout.Job(vm.LastJobId!.Value), default) is not { IsFinished: true } && DateTime.UtcNow < deadline)
            await Task.Delay(100);
    }

    [Fact]
    public async Task HealthFollowsTheRpoThresholdAndEachChangeIsAnEvent()
    {
        var policy = new AsrPolicy { Name = "prpo", CrashConsistentFrequencyMinutes = 0.5, AppConsistentFrequencyHours = 0, RpoThresholdMinutes = 1 };
        var (h, clock, _) = await SetupAsync(policy);
        using var _h = h;
        // No cycles: the agent only watches, as when its cycles keep failing.
        var agent = new ReplicationAgent(h.Vault, new AgentOptions { HostName = "h1", MaxParallelCycles = 0 }, NullLogger.Instance);
        await agent.TickAsync(default);
        Assert.Equal(ReplicationHealth.Normal, (await h.Vault.GetItemAsync("vm", default)).ReplicationHealth);
        clock.Advance(TimeSpan.FromSeconds(61));
        await agent.TickAsync(default);
        var item = await h.Vault.GetItemAsync("vm", default);
        Assert.Equal(ReplicationHealth.Warning, item.ReplicationHealth);
        Assert.Equal(61, item.CurrentRpo!.Value.TotalSeconds, 3);
        clock.Advance(TimeSpan.FromSeconds(60));
        await agent.TickAsync(default);
        Assert.Equal(ReplicationHealth.Critical, (await h.Vault.GetItemAsync("vm", default)).ReplicationHealth);
        var events = (await h.Vault.Events.ListAsync(T0, default)).Where(e => e.EventType == AsrEventTypes.HealthChanged).ToList();
        Assert.Equal([AsrEventSeverity.Warning, AsrEventSeverity.Critical], events.Select(e => e.Severity));
        Assert.All(events, e => Assert.Equal("vm", e.ItemName));
        Assert.Contains("RPO 121 s", events[1].Message);
    }

    [Fact]
    public async Task AFreezeLeftHeldByAKilledCycleIsThawedByTheNextCycleBeforeAnythingElse()
    {
        var policy = new AsrPolicy { Name = "pheld", CrashConsistentFrequencyMinutes = 5, AppConsistentFrequencyHours = 1 };
        using var script = new ScriptFile(log => $"echo $1 >> '{log}'\n");
        var (h, _, item) = await SetupAsync(policy, script.Path);
        using var _h = h;
        var dead = Guid.NewGuid();
        await h.Vault.UpdateItemAsync(item.Id, i => i.FreezeHeldByJobId = dead, default);
        await h.CycleAsync("vm"); // a crash-consistent cycle: no freeze of its own
        Assert.Equal(["thaw"], File.ReadAllLines(script.Log));
        Assert.Null((await h.Vault.GetItemAsync("vm", default)).FreezeHeldByJobId);
        var recovered = (await h.Vault.Events.ListAsync(DateTimeOffset.MinValue, default)).Single(e => e.EventType == AsrEventTypes.FreezeRecovered);
        Assert.Contains(dead.ToString(), recovered.Message);
        // An app-consistent cycle records the freeze while it holds it and clears it after the thaw.
        item = await h.Vault.GetItemAsync("vm", default);
        await h.Replication.RunCycleAsync(item, false, Engine.Jobs.JobContext.Detached(), new CycleOptions { AppConsistent = true });
        Assert.Equal(["thaw", "freeze", "thaw"], File.ReadAllLines(script.Log));
        Assert.Null((await h.Vault.GetItemAsync("vm", default)).FreezeHeldByJobId);
    }
}

/// <summary>Review findings on #5, each pinned by a test that failed before its fix.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ContinuousReplicationSafetyTests
{
    [Fact]
    public async Task AFreezeScriptThatLeavesAChildHoldingItsOutputStillReturnsAtOnce()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 64 * 1024, 1);
        string script = h.Dir["hold.sh"];
        // Like a database quiesce that keeps a locking session open until thaw.
        File.WriteAllText(script, "#!/bin/sh\nsleep 30 &\necho held\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        var item = await h.Replication.RegisterAsync("vm", [disk], "default", default, settings: new ItemReplicationSettings { AppConsistencyScript = script });
        var hook = new Engine.Replication.Consistency.FreezeHook(item, 1, NullLogger.Instance);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await hook.FreezeAsync(default);
        await hook.ThawAsync();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"freeze + thaw took {watch.Elapsed}");
    }

    [Fact]
    public async Task AGroupWhoseLiveMemberCannotBeFrozenPublishesNoPointForAnyMember()
    {
        using var h = await EngineHarness.CreateAsync();
        string ok = h.Dir["ok.sh"], failing = h.Dir["fail.sh"];
        File.WriteAllText(ok, "#!/bin/sh\nexit 0\n");
        File.WriteAllText(failing, "#!/bin/sh\n[ \"$1\" = thaw ] || exit 4\n");
        foreach (var f in new[] { ok, failing }) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        var members = new List<AsrProtectedItem>();
        foreach (var (name, script) in new[] { ("a", ok), ("b", failing) })
        {
            string disk = h.Dir[name + ".img"];
            TestDisks.Create(disk, 128 * 1024, name[0]);
            await h.Replication.RegisterAsync(name, [disk], "default", default, settings: new ItemReplicationSettings { AgentHost = "h", ReplicationGroup = "g", AppConsistencyScript = script });
            await h.CycleAsync(name);
            members.Add(await h.Vault.GetItemAsync(name, default));
        }
        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            Engine.Replication.Groups.GroupReplicationCycle.RunAsync(h.Vault, "g", members, appConsistent: false, Engine.Jobs.JobContext.Detached()));
        Assert.Equal(AsrErrorIds.GroupPointNotConsistent, ex.ErrorId);
        Assert.Contains("'b'", ex.Message);
        foreach (var m in members) Assert.Equal(1, (await h.Vault.GetLatestPointAsync(m.Id, default))!.Sequence);
        Assert.Empty(await Engine.Replication.Groups.GroupReplicationCycle.ListAsync(h.Vault, "g", default));
        // And a file member without any script cannot join a group in the first place.
        string c = h.Dir["c.img"];
        TestDisks.Create(c, 64 * 1024, 3);
        var refused = await Assert.ThrowsAsync<AsrException>(() => h.Replication.RegisterAsync("c", [c], "default", default, settings: new ItemReplicationSettings { AgentHost = "h", ReplicationGroup = "g" }));
        Assert.Equal(AsrErrorIds.ReplicationGroupInvalid, refused.ErrorId);
    }

    [Fact]
    public async Task ACycleStartedFromAStaleCopyOfAFailedOverItemPublishesNothing()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, stale) = await h.NewMachineAsync("vm", 128 * 1024, 1);
        await h.Vault.UpdateItemAsync(stale.Id, i => i.State = ProtectedItemState.FailedOver, default);
        using var lease = h.Replication.AcquireLease(stale);
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Replication.RunCycleAsync(stale, false, Engine.Jobs.JobContext.Detached()));
        Assert.Equal(AsrErrorIds.InvalidStateTransition, ex.ErrorId);
        Assert.Equal(1, (await h.Vault.GetLatestPointAsync(stale.Id, default))!.Sequence);
    }

    [Fact]
    public async Task APinnedPointSurvivesRetentionAndAStaleCopyOfARebasedPointStillVerifies()
    {
        using var h = await EngineHarness.CreateAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 25, 0, 0, 0, TimeSpan.Zero));
        h.Vault.Clock = clock;
        var (disk, item) = await h.NewMachineAsync("vm", 256 * 1024, 1);
        var rng = new Random(3);
        for (int i = 0; i < 3; i++)
        {
            clock.Advance(TimeSpan.FromHours(1));
            RetentionTestKit.RewriteBlocks(disk, rng, count: 4, hotBlocks: 16);
            await h.CycleAsync("vm");
        }
        var points = await h.Vault.GetPointsAsync(item, default);
        var pinnedPoint = points.Single(p => p.Sequence == 1);
        var staleThird = points.Single(p => p.Sequence == 3);
        var staleNewest = points.Single(p => p.Sequence == 4); // a delta over 3: rebased when 3 goes
        await using (var pin = await PointPin.AcquireAsync(h.Vault, pinnedPoint, "test", default))
        {
            clock.Advance(TimeSpan.FromHours(30)); // everything but the newest is past the 24 h retention
            await Engine.Retention.RetentionService.ApplyAsync(h.Vault, await h.Vault.GetItemAsync("vm", default), default);
            var kept = (await h.Vault.GetPointsAsync(item, default)).Select(p => p.Sequence).ToList();
            Assert.Equal([1L, 4L], kept);
            Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, pin.Point, default)).Verified);
        }
        await Engine.Retention.RetentionService.ApplyAsync(h.Vault, await h.Vault.GetItemAsync("vm", default), default);
        Assert.Equal([4L], (await h.Vault.GetPointsAsync(item, default)).Select(p => p.Sequence));
        // A copy of the newest point read before its rebase still verifies (the vault's manifest is re-read).
        Assert.NotNull(staleNewest.ParentSequence);
        Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, staleNewest, default)).Verified);
        // A copy of a point read before retention: pruned now, said clearly.
        var gone = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointVerifier.VerifyAsync(h.Vault, staleThird, default));
        Assert.Equal(AsrErrorIds.RecoveryPointNotFound, gone.ErrorId);
    }
}
