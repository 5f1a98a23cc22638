using System.Text.RegularExpressions;
using AsrModule.Engine.Jobs;

namespace AsrModule.Tests.Unit.Jobs;

/// <summary>
/// Records every progress report of one job, in the order the engine made them (synchronously, on the
/// reporting thread), and checks what a person watching Write-Progress would see.
/// </summary>
internal sealed partial class ProgressRecorder : IProgress<JobProgress>
{
    private readonly List<JobProgress> _reports = new();

    public IReadOnlyList<JobProgress> Reports
    {
        get { lock (_reports) return _reports.ToList(); }
    }

    public void Report(JobProgress value)
    {
        lock (_reports) _reports.Add(value);
    }

    /// <summary>A context for one job whose reports this recorder receives (a new job: its percentage starts from 0).</summary>
    public JobContext NewJob(string operation = "Test", CancellationToken ct = default) =>
        new(new AsrJob { Id = Guid.NewGuid(), Operation = operation }, ct, this, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    [GeneratedRegex(@"(\d+(?:\.\d+)?)\s*%")]
    private static partial Regex PercentInText();

    /// <summary>
    /// The job's bar only moves forward, from at least 0 to 100, and no status text shows a percentage
    /// other than the bar's.
    /// </summary>
    public void AssertOnlyForwardTo100()
    {
        var reports = Reports;
        Assert.True(reports.Count >= 3, $"expected a few progress reports, got {reports.Count}:{Describe(reports)}");
        Assert.True(reports[0].PercentComplete >= 0, $"starts below 0:{Describe(reports)}");
        for (int i = 1; i < reports.Count; i++)
            Assert.True(reports[i].PercentComplete >= reports[i - 1].PercentComplete,
                $"progress went back from {reports[i - 1].PercentComplete}% ('{reports[i - 1].StatusMessage}') to {reports[i].PercentComplete}% ('{reports[i].StatusMessage}'):{Describe(reports)}");
        Assert.Equal(100, reports[^1].PercentComplete);
        foreach (var r in reports)
            foreach (Match m in PercentInText().Matches(r.StatusMessage))
                Assert.True(double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) == r.PercentComplete,
                    $"status '{r.StatusMessage}' shows {m.Value} while the bar shows {r.PercentComplete}%");
    }

    /// <summary>The sequence, with a line per change of status, for a failure message.</summary>
    private static string Describe(IReadOnlyList<JobProgress> reports) =>
        string.Concat(reports.Select((r, i) => (r, i)).Where(x => x.i == 0 || x.r.StatusMessage != reports[x.i - 1].StatusMessage || x.r.PercentComplete < reports[x.i - 1].PercentComplete)
            .Select(x => $"\n  {x.r.PercentComplete,3}% {x.r.StatusMessage}"));
}
