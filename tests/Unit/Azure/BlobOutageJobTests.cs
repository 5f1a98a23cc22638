using System.Diagnostics;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// A cycle job whose blob storage goes away (Azurite stopped mid-cycle) is reported Failed (the time it took is printed, not asserted: timings live in bench/),
/// and its record in the vault ends Failed, not InProgress or Interrupted, once the storage is back (#12, item 10).
/// </summary>
public sealed class BlobOutageJobTests(ITestOutputHelper output)
{
    [RequiresAzurite]
    public async Task A_cycle_job_is_reported_failed_and_its_record_ends_Failed_once_Azurite_is_back()
    {
        using var server = AzuriteServer.Start(); // its own Azurite: this test stops it
        var options = new BlobVaultStoreOptions
        {
            MaxRetries = 3, RetryDelay = TimeSpan.FromMilliseconds(400), MaxRetryDelay = TimeSpan.FromSeconds(2),
        };
        var budget = TimeSpan.FromSeconds((0.4 + 0.8 + 1.6) * 1.2); // the backoff between 4 attempts, with the SDK's ±20% jitter
        var store = await server.NewStoreAsync(options: options);
        using var h = await EngineHarness.CreateAsync(store: store);
        string disk = h.Dir["db01.img"];
        TestDisks.CreateRandom(disk, 96 << 20, 11);
        var service = new ReplicationService(h.Vault);
        var item = await service.RegisterAsync("db01", [disk], "default", default);

        var stopped = new TaskCompletionSource<Stopwatch>(TaskCreationOptions.RunContinuationsAsynchronously);
        var lease = await service.PrepareCycleAsync(item, false, default);
        var job = JobRunner.NewRecord("EnableReplication", item.Name, item.Id);
        var running = JobRunner.Start(h.Vault, job, async ctx =>
        {
            var watching = new JobContext(ctx.Job, ctx.CancellationToken, new EngineHarness.SyncProgress(p =>
            {
                ctx.Progress?.Report(p);
                if (!stopped.Task.IsCompleted && p.PercentComplete >= 30 && p.PercentComplete < 95)
                {
                    server.Stop();
                    stopped.TrySetResult(Stopwatch.StartNew());
                }
            }), ctx.Logger);
            using (lease) return await service.RunCycleAsync(item, false, watching);
        });
        await running.Completion;
        var sinceStop = (await stopped.Task).Elapsed;
        output.WriteLine($"outage reported {sinceStop.TotalSeconds:F1} s after Azurite stopped (retry budget {budget.TotalSeconds:F1} s): {running.Job.Errors.FirstOrDefault()?.Message}");
        Assert.Equal(AsrJobState.Failed, running.Job.State);
        Assert.Equal(AsrErrorIds.VaultUnavailable, running.Job.Errors.Single().ErrorId);
        // In this process the job shows its true end meanwhile.
        Assert.Equal(AsrJobState.Failed, JobRunner.TryGetPendingEnd(job.Id, out var pending) ? pending.State : (await h.Vault.Jobs.GetAsync(job.Id, default)).State);

        server.StartProcess();
        var other = server.OpenStore(store.Location[(store.Location.LastIndexOf('/') + 1)..]); // as another process sees it
        var watch = Stopwatch.StartNew();
        AsrJob? stored;
        while ((stored = await other.ReadAsync<AsrJob>(VaultLayout.Job(job.Id), default))!.State == AsrJobState.InProgress && watch.Elapsed < TimeSpan.FromSeconds(20))
            await Task.Delay(200);
        output.WriteLine($"record in the vault: {stored.State} {watch.Elapsed.TotalSeconds:F1} s after Azurite restarted");
        Assert.Equal(AsrJobState.Failed, stored.State);
        Assert.Equal(AsrErrorIds.VaultUnavailable, stored.Errors.Single().ErrorId);

        // The item can go on: the next cycle runs the initial replication again.
        var result = await h.CycleAsync("db01");
        Assert.Equal("Initial", result.Mode);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!))["db01.img"]);
    }
}
