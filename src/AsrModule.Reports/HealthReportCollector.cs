using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Plans;
using AsrModule.Engine.Vault;

namespace AsrModule.Reports;

/// <summary>
/// Reads what a health report shows from the vault: items with their points and policies, the drill history, jobs,
/// events, and the vault's size (listed now, kept as a sample so later reports draw its course). Everything comes
/// through the engine's readers (validated, authenticated in an encrypted vault); a record that cannot be read is
/// named in <see cref="HealthReportData.Skipped"/> and left out, so one damaged record does not stop the report.
/// </summary>
public sealed class HealthReportCollector(AsrVault vault)
{
    public const string SizeSamplesPrefix = "stats/size/";
    private const int MaximumDrills = 100;
    private const int MaximumJobs = 300;
    private const int MaximumEvents = 300;

    public async Task<HealthReportData> CollectAsync(int days, IProgress<string>? progress, CancellationToken ct)
    {
        var now = vault.Clock.GetUtcNow();
        var since = now.AddDays(-days);
        var skipped = new List<string>();
        progress?.Report("Reading items and policies");
        var items = await vault.GetItemsAsync(ct).ConfigureAwait(false);
        var thresholds = (await vault.GetPoliciesAsync(ct).ConfigureAwait(false)).ToDictionary(p => p.Name, p => p.RpoThresholdMinutes, StringComparer.OrdinalIgnoreCase);
        var reportItems = new List<ReportItem>();
        var drills = new List<DrillResultRecord>();
        foreach (var item in items.OrderBy(i => i.Name, StringComparer.OrdinalIgnoreCase))
        {
            progress?.Report($"Reading the points and drills of '{item.Name}'");
            var points = new List<ReportPoint>();
            try
            {
                points = (await vault.GetPointsAsync(item, ct).ConfigureAwait(false))
                    .Select(p => new ReportPoint(p.Sequence, p.RecoveryPointTimeUtc, p.Consistency, p.StoredBytes)).ToList();
            }
            catch (AsrException ex) { skipped.Add($"{VaultLayout.PointsPrefix(item.Id)}: {ex.Message}"); }
            reportItems.Add(new ReportItem { Item = item, RpoThresholdMinutes = thresholds.TryGetValue(item.PolicyName, out int t) ? t : null, Points = points });
            drills.AddRange(await ReadDrillsAsync(item.Id, since, skipped, ct).ConfigureAwait(false));
        }
        progress?.Report("Reading jobs and events");
        var jobs = (await vault.Jobs.ListAsync(ct).ConfigureAwait(false)).Where(j => j.StartTimeUtc >= since).OrderByDescending(j => j.StartTimeUtc).ToList();
        var planDrills = jobs.Where(j => j.Plan is { FailoverType: PlanFailoverType.Test, Boot: true } && j.Tasks is not null).Select(PlanDrillOf).ToList();
        var events = (await vault.Events.ListAsync(since, ct).ConfigureAwait(false)).OrderByDescending(e => e.TimeUtc).Take(MaximumEvents).ToList();
        progress?.Report("Measuring the vault");
        var samples = await MeasureAndReadSizesAsync(now, since, skipped, ct).ConfigureAwait(false);
        return new HealthReportData
        {
            VaultLocation = vault.Location,
            VaultId = vault.VaultId,
            Encrypted = vault.IsEncrypted,
            GeneratedUtc = now,
            Days = days,
            Items = reportItems,
            Drills = drills.OrderByDescending(d => d.Boot.StartedUtc).Take(MaximumDrills).ToList(),
            PlanDrills = planDrills,
            Jobs = jobs.Take(MaximumJobs).ToList(),
            Events = events,
            SizeSamples = samples,
            Skipped = skipped,
        };
    }

    private async Task<List<DrillResultRecord>> ReadDrillsAsync(string itemId, DateTimeOffset since, List<string> skipped, CancellationToken ct)
    {
        var drills = new List<DrillResultRecord>();
        foreach (var o in await vault.Store.ListAsync(VaultLayout.DrillsPrefix(itemId), ct).ConfigureAwait(false))
        {
            try
            {
                var record = await vault.Records.ReadAsync<DrillResultRecord>(o.Key, ct).ConfigureAwait(false);
                if (record is null) continue;
                record.Validate(o.Key, itemId);
                if (record.Boot.StartedUtc >= since) drills.Add(record);
            }
            catch (AsrException ex) { skipped.Add($"{o.Key}: {ex.Message}"); }
        }
        return drills;
    }

    internal static ReportPlanDrill PlanDrillOf(Engine.Jobs.AsrJob job)
    {
        var readiness = job.BootReadiness!;
        return new ReportPlanDrill(job.Plan!.PlanName, job.Id, job.StartTimeUtc, job.State.ToString(), readiness.Machines, readiness.Ready, readiness.AllReadyAfterSeconds);
    }

    /// <summary>Lists the vault (a sample of its size now, kept in the vault) and reads the earlier samples of the period.</summary>
    private async Task<List<VaultSizeSample>> MeasureAndReadSizesAsync(DateTimeOffset now, DateTimeOffset since, List<string> skipped, CancellationToken ct)
    {
        var all = await vault.Store.ListAsync("", ct).ConfigureAwait(false);
        var sample = new VaultSizeSample
        {
            TimeUtc = now,
            Objects = all.Count,
            Bytes = all.Sum(o => o.Length),
            ItemBytes = all.Where(o => o.Key.StartsWith("items/", StringComparison.Ordinal)).Sum(o => o.Length),
        };
        await vault.Records.WriteAsync($"{SizeSamplesPrefix}{now.UtcDateTime:yyyyMMdd'T'HHmmssfff}.json", sample, ct).ConfigureAwait(false);
        var samples = new List<VaultSizeSample>();
        foreach (var o in all.Where(o => o.Key.StartsWith(SizeSamplesPrefix, StringComparison.Ordinal)))
        {
            try
            {
                var s = await vault.Records.ReadAsync<VaultSizeSample>(o.Key, ct).ConfigureAwait(false);
                if (s is null) continue;
                if (s.Objects < 0 || s.Bytes < 0 || s.ItemBytes < 0 || s.ItemBytes > s.Bytes || s.TimeUtc > now.AddDays(1))
                    throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, "its figures are not a size measurement", o.Key);
                if (s.TimeUtc >= since) samples.Add(s);
            }
            catch (AsrException ex) { skipped.Add($"{o.Key}: {ex.Message}"); }
        }
        samples.Add(sample);
        return samples.OrderBy(s => s.TimeUtc).ToList();
    }
}
