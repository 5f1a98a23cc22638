using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit;

/// <summary>Drives the engine the way the cmdlets do, without PowerShell.</summary>
internal sealed class EngineHarness : IDisposable
{
    public TempDir Dir { get; } = new();
    public AsrVault Vault { get; private set; } = null!;
    public ReplicationService Replication => new(Vault);

    /// <summary>A vault in the test folder, or on <paramref name="store"/> (a blob container) when given.</summary>
    public static async Task<EngineHarness> CreateAsync(string? key = null, int compressionLevel = 1, AsrModule.Engine.Storage.IVaultStore? store = null)
    {
        var h = new EngineHarness();
        h.Vault = store is null ? await AsrVault.CreateLocalAsync(h.Dir["vault"], key) : await AsrVault.CreateAsync(store, key, null, default);
        await h.Vault.CreatePolicyAsync(new AsrPolicy { Name = "default", CompressionLevel = compressionLevel }, default);
        return h;
    }

    public async Task<AsrProtectedItem> EnableAsync(string name, params string[] disks)
    {
        var item = await Replication.RegisterAsync(name, disks, "default", default);
        await CycleAsync(name);
        return await Vault.GetItemAsync(name, default);
    }

    /// <summary>Generates a sample disk file in the test folder and protects it as item <paramref name="name"/>.</summary>
    public async Task<(string Disk, AsrProtectedItem Item)> NewMachineAsync(string name, long sizeBytes, int seed, string file = "d.img")
    {
        string disk = Dir[file];
        TestDisks.Create(disk, sizeBytes, seed);
        return (disk, await EnableAsync(name, disk));
    }

    public async Task<AsrJobResult> CycleAsync(string name, bool resync = false, CancellationToken ct = default, IProgress<JobProgress>? progress = null)
    {
        var item = await Vault.GetItemAsync(name, ct);
        using var lease = await Replication.PrepareCycleAsync(item, resync, ct);
        var context = new JobContext(new AsrJob { Id = Guid.NewGuid() }, ct, progress, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        return await Replication.RunCycleAsync(item, resync, context);
    }

    /// <summary>Calls back synchronously (System.Progress would post to the pool, too late to be deterministic).</summary>
    public sealed class SyncProgress(Action<JobProgress> onReport) : IProgress<JobProgress>
    {
        public void Report(JobProgress value) => onReport(value);
    }

    public async Task<Dictionary<string, string>> ExportHashesAsync(AsrRecoveryPoint point)
    {
        string dest = Dir["export-" + point.Sequence + "-" + Guid.NewGuid().ToString("N")[..6]];
        var files = await RecoveryPointExporter.ExportAsync(Vault, point, dest, false, null, JobContext.Detached());
        var hashes = files.ToDictionary(f => Path.GetFileName(f), TestDisks.Sha256);
        Directory.Delete(dest, recursive: true);
        return hashes;
    }

    public long VaultBytes() => new DirectoryInfo(Dir["vault"]).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    public void Dispose() => Dir.Dispose();
}
