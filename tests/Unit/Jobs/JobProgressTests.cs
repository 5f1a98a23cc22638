using AsrModule.Engine.Jobs;

namespace AsrModule.Tests.Unit.Jobs;

/// <summary>The two pieces of a job's progress: phases that map into slices, and the guard that never goes back.</summary>
public sealed class JobProgressTests
{
    [Theory]
    [InlineData(0, 40, 0, 0)]
    [InlineData(0, 40, 50, 20)]
    [InlineData(0, 40, 100, 40)]
    [InlineData(55, 99, 0, 55)]
    [InlineData(55, 99, 100, 99)]
    [InlineData(55, 99, 150, 99)]
    [InlineData(55, 99, -5, 55)]
    public void A_phase_maps_its_0_to_100_into_its_slice(int start, int end, int phasePercent, int jobPercent)
    {
        var job = new ProgressRecorder();
        new ProgressPhase(job, start, end).Report(new JobProgress(phasePercent, "x"));
        Assert.Equal(jobPercent, job.Reports.Single().PercentComplete);
    }

    [Fact]
    public void Nested_phases_land_inside_their_parents_slice()
    {
        var job = new ProgressRecorder();
        var context = job.NewJob();
        // A resync's replica checksums (first 30% of the scan) inside a cycle (scan = 0..95) inside a failover's sync (0..35).
        var replica = context.Phase(0, 35).Phase(0, 95).Phase(0, 30);
        replica.Report(0, "a");
        replica.Report(100, "b");
        context.Phase(35, 55).Report(0, "c");
        Assert.Equal([0, 9, 35], job.Reports.Select(r => r.PercentComplete));
    }

    [Fact]
    public void A_phase_outside_0_to_100_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProgressPhase(new ProgressRecorder(), 60, 40));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProgressPhase(new ProgressRecorder(), 0, 101));
    }

    [Fact]
    public void The_guard_holds_the_highest_percentage_and_passes_the_latest_status()
    {
        var shown = new ProgressRecorder();
        var guard = new MonotonicProgress(shown);
        foreach (var (p, s) in new[] { (92, "sync"), (50, "check"), (25, "export"), (66, "export"), (100, "done") })
            guard.Report(new JobProgress(p, s));
        Assert.Equal([92, 92, 92, 92, 100], shown.Reports.Select(r => r.PercentComplete));
        Assert.Equal(["sync", "check", "export", "export", "done"], shown.Reports.Select(r => r.StatusMessage));
    }

    [Fact]
    public void The_guard_keeps_order_when_parallel_workers_report()
    {
        var shown = new ProgressRecorder();
        var guard = new MonotonicProgress(shown);
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => guard.Report(new JobProgress(i % 101, "x")));
        var percents = shown.Reports.Select(r => r.PercentComplete).ToList();
        Assert.Equal(percents.Order(), percents);
    }

    [Fact]
    public async Task A_job_run_by_the_runner_never_shows_less_than_it_showed_and_a_new_job_starts_from_0()
    {
        using var h = await EngineHarness.CreateAsync();
        var seen = new List<(int Percent, string? Status)>();
        RunningJob Run(params int[] percents) => JobRunner.Start(h.Vault, JobRunner.NewRecord("Test", "m", null), ctx =>
        {
            foreach (int p in percents)
            {
                ctx.Report(p, $"at {p}");
                lock (ctx.Job) seen.Add((ctx.Job.PercentComplete, ctx.Job.StatusMessage));
            }
            return Task.FromResult<AsrJobResult?>(null);
        });

        var first = Run(92, 50, 25, 66);
        await first.Completion;
        Assert.Equal([(92, "at 92"), (92, "at 50"), (92, "at 25"), (92, "at 66")], seen);
        Assert.Equal(100, (await h.Vault.Jobs.GetAsync(first.Job.Id, default)).PercentComplete);

        seen.Clear();
        var second = Run(10);
        await second.Completion;
        Assert.Equal([(10, "at 10")], seen);
    }
}
