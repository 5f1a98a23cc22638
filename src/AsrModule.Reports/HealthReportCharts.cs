using AsrModule.Engine.RecoveryPoints;
using ScottPlot;

namespace AsrModule.Reports;

/// <summary>
/// The report's charts, drawn by ScottPlot and written as SVG (inline in the HTML: no script, no network, scales with
/// the page). Only numbers and this class's own labels go into a chart; names from the vault stay in the HTML, where they
/// are encoded.
/// </summary>
internal static class HealthReportCharts
{
    private static readonly Color Crash = Color.FromHex("#2b6cb0");
    private static readonly Color App = Color.FromHex("#2f855a");
    private static readonly Color Inconsistent = Color.FromHex("#dd6b20");
    private static readonly Color Threshold = Color.FromHex("#c53030");

    private static Plot NewPlot(string title, string yLabel)
    {
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        plot.Title(title, size: 14);
        plot.YLabel(yLabel, size: 12);
        return plot;
    }

    /// <summary>
    /// RPO over the period from the item's point times: it falls to zero at each point and grows until the next, up to
    /// now; the policy's threshold as a dashed line.
    /// </summary>
    public static string Rpo(ReportItem item, DateTimeOffset since, DateTimeOffset now)
    {
        var times = item.Points.Select(p => p.TimeUtc).Order().ToList();
        var xs = new List<double>();
        var ys = new List<double>();
        var before = times.LastOrDefault(t => t < since);
        var inWindow = times.Where(t => t >= since && t <= now).ToList();
        DateTimeOffset? last = before == default ? null : before;
        if (last is { } b) { xs.Add(since.UtcDateTime.ToOADate()); ys.Add((since - b).TotalMinutes); }
        foreach (var t in inWindow)
        {
            if (last is { } previous) { xs.Add(t.UtcDateTime.ToOADate()); ys.Add((t - previous).TotalMinutes); }
            xs.Add(t.UtcDateTime.ToOADate()); ys.Add(0);
            last = t;
        }
        if (last is { } l) { xs.Add(now.UtcDateTime.ToOADate()); ys.Add((now - l).TotalMinutes); }
        var plot = NewPlot("RPO over time", "minutes");
        // A point before the period: the curve spans the whole period; else it starts at the first point.
        double from = Start(since, now, before != default || inWindow.Count == 0 ? since : inWindow[0]);
        if (xs.Count > 0)
        {
            var line = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
            line.MarkerSize = 0;
            line.LineWidth = 2;
            line.Color = Crash;
            line.LegendText = "RPO";
        }
        if (item.RpoThresholdMinutes is { } threshold)
        {
            var limit = plot.Add.HorizontalLine(threshold);
            limit.Color = Threshold;
            limit.LinePattern = LinePattern.Dashed;
            limit.LegendText = $"threshold {threshold} min";
        }
        plot.Axes.DateTimeTicksBottom();
        plot.Axes.SetLimitsX(from, now.UtcDateTime.ToOADate());
        double top = Math.Max(ys.DefaultIfEmpty(0).Max(), item.RpoThresholdMinutes ?? 1) * 1.15;
        plot.Axes.SetLimitsY(0, top);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot.GetSvgXml(760, 220);
    }

    /// <summary>
    /// Where a time axis starts: at the first data of the period (with a margin of a twentieth of the span shown, at
    /// least a minute) rather than at the period's start, so a young vault's minutes are not a sliver at the right edge.
    /// </summary>
    private static double Start(DateTimeOffset since, DateTimeOffset now, DateTimeOffset firstData)
    {
        if (firstData <= since) return since.UtcDateTime.ToOADate();
        var margin = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMinutes(1).Ticks, (now - firstData).Ticks / 20));
        return (firstData - margin < since ? since : firstData - margin).UtcDateTime.ToOADate();
    }

    /// <summary>Points per day over the period, every item together, stacked by consistency.</summary>
    public static string PointsPerDay(IEnumerable<ReportItem> items, DateTimeOffset since, DateTimeOffset now)
    {
        var byDay = items.SelectMany(i => i.Points).Where(p => p.TimeUtc >= since && p.TimeUtc <= now)
            .GroupBy(p => p.TimeUtc.UtcDateTime.Date).ToDictionary(g => g.Key, g => g.ToList());
        var plot = NewPlot("Recovery points per day", "points");
        var bars = new List<Bar>();
        for (var day = since.UtcDateTime.Date; day <= now.UtcDateTime.Date; day = day.AddDays(1))
        {
            var points = byDay.GetValueOrDefault(day) ?? [];
            double x = day.AddHours(12).ToOADate(), bottom = 0;
            foreach (var (consistency, color) in new[] { (RecoveryPointConsistency.CrashConsistent, Crash), (RecoveryPointConsistency.AppConsistent, App), (RecoveryPointConsistency.Inconsistent, Inconsistent) })
            {
                int n = points.Count(p => p.Consistency == consistency);
                if (n == 0) continue;
                bars.Add(new Bar { Position = x, ValueBase = bottom, Value = bottom + n, FillColor = color, Size = 0.7, LineWidth = 0 });
                bottom += n;
            }
        }
        if (bars.Count > 0) plot.Add.Bars(bars);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "crash-consistent", FillColor = Crash });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "app-consistent", FillColor = App });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "inconsistent", FillColor = Inconsistent });
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.DateTimeTicksBottom();
        plot.Axes.SetLimitsX(since.UtcDateTime.Date.ToOADate(), now.UtcDateTime.Date.AddDays(1).ToOADate());
        plot.Axes.SetLimitsY(0, Math.Max(1, bars.Select(b => b.Value).DefaultIfEmpty(0).Max()) * 1.2);
        return plot.GetSvgXml(760, 260);
    }

    /// <summary>
    /// The vault's size: the measured samples (each report lists the vault), and the data the kept points stored, added
    /// up by the time each point was taken (what retention keeps, by age).
    /// </summary>
    public static string VaultSize(IReadOnlyList<VaultSizeSample> samples, IEnumerable<ReportItem> items, DateTimeOffset since, DateTimeOffset now)
    {
        const double GiB = 1 << 30;
        var plot = NewPlot("Vault size", "GiB");
        var kept = items.SelectMany(i => i.Points).OrderBy(p => p.TimeUtc).ToList();
        if (kept.Count > 0)
        {
            double total = kept.Where(p => p.TimeUtc < since).Sum(p => p.StoredBytes);
            var xs = new List<double> { since.UtcDateTime.ToOADate() };
            var ys = new List<double> { total / GiB };
            foreach (var p in kept.Where(p => p.TimeUtc >= since && p.TimeUtc <= now))
            {
                total += p.StoredBytes;
                xs.Add(p.TimeUtc.UtcDateTime.ToOADate());
                ys.Add(total / GiB);
            }
            xs.Add(now.UtcDateTime.ToOADate());
            ys.Add(total / GiB);
            var stored = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
            stored.ConnectStyle = ConnectStyle.StepHorizontal;
            stored.MarkerSize = 0;
            stored.LineWidth = 2;
            stored.Color = App;
            stored.LegendText = "data of the kept points, by point time";
        }
        if (samples.Count > 0)
        {
            var measured = plot.Add.Scatter(samples.Select(s => s.TimeUtc.UtcDateTime.ToOADate()).ToArray(), samples.Select(s => s.Bytes / GiB).ToArray());
            measured.MarkerSize = 7;
            measured.LineWidth = 1;
            measured.Color = Crash;
            measured.LegendText = "measured (vault listed by a report)";
        }
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.DateTimeTicksBottom();
        var first = kept.Select(p => p.TimeUtc).Concat(samples.Select(x => x.TimeUtc)).Where(t => t >= since).DefaultIfEmpty(since).Min();
        plot.Axes.SetLimitsX(Start(since, now, kept.Any(p => p.TimeUtc < since) ? since : first), now.UtcDateTime.ToOADate());
        double top = Math.Max(samples.Select(s => s.Bytes / GiB).DefaultIfEmpty(0).Max(), kept.Sum(p => p.StoredBytes) / GiB);
        plot.Axes.SetLimitsY(0, Math.Max(top * 1.2, 1.0 / 1024));
        return plot.GetSvgXml(760, 240);
    }
}
