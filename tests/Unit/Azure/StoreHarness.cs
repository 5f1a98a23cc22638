using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// <see cref="EngineHarness"/> on any store: creates a vault on it and drives the engine the way the
/// cmdlets do (register, cycle under the item lease, export).
/// </summary>
internal sealed class StoreHarness : IDisposable
{
    public TempDir Dir { get; } = new();
    public AsrVault Vault { get; private set; } = null!;
    public ReplicationService Replication => new(Vault);

    public static async Task<StoreHarness> CreateAsync(IVaultStore store, string? key = null, int compressionLevel = 1)
    {
        var h = new StoreHarness();
        h.Vault = await AsrVault.CreateAsync(store, key, null, default);
        await h.Vault.CreatePolicyAsync(new AsrPolicy { Name = "default", CompressionLevel = compressionLevel }, default);
        return h;
    }

    public async Task<AsrJobResult> CycleAsync(string name, bool resync = false, CancellationToken ct = default, IProgress<JobProgress>? progress = null)
    {
        var item = await Vault.GetItemAsync(name, ct);
        using var lease = await Replication.PrepareCycleAsync(item, resync, ct);
        var context = new JobContext(new AsrJob { Id = Guid.NewGuid() }, ct, progress, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        return await Replication.RunCycleAsync(item, resync, context);
    }

    public async Task<Dictionary<string, string>> ExportHashesAsync(AsrRecoveryPoint point)
    {
        string dest = Dir["export-" + point.Sequence + "-" + Guid.NewGuid().ToString("N")[..6]];
        var files = await RecoveryPointExporter.ExportAsync(Vault, point, dest, false, null, JobContext.Detached());
        var hashes = files.ToDictionary(f => Path.GetFileName(f), TestDisks.Sha256);
        Directory.Delete(dest, recursive: true);
        return hashes;
    }

    /// <summary>Random (incompressible) content, so every changed block costs its full size in packs.</summary>
    public static void WriteRandomDisk(string path, long size, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        var buffer = new byte[1 << 20];
        for (long done = 0; done < size; done += buffer.Length)
        {
            rng.NextBytes(buffer);
            fs.Write(buffer, 0, (int)Math.Min(buffer.Length, size - done));
        }
    }

    public void Dispose() => Dir.Dispose();
}
