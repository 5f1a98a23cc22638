using System.Globalization;
using System.Net;
using System.Text;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Reports;

/// <summary>
/// Writes a <see cref="HealthReportData"/> as one self-contained HTML file: inline CSS, charts as inline SVG, screenshots
/// as data: URIs, no script, and a Content-Security-Policy that forbids every fetch, so it opens offline and cannot call
/// out. Every text from the vault (names, messages, console output) is HTML-encoded; screenshots were checked to be PNG.
/// Elements carry ids and data- attributes (items, charts, drills) for tools that read the report.
/// </summary>
public static class HealthReportHtml
{
    private const string Css = """
        body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#1a202c;background:#fff}
        h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #cbd5e0;padding-bottom:4px}
        h3{font-size:15px;margin:16px 0 4px} .meta{color:#4a5568;font-size:13px}
        table{border-collapse:collapse;font-size:13px;margin:6px 0} th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
        th{background:#edf2f7} td.n{text-align:right;font-variant-numeric:tabular-nums}
        .badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
        .Normal,.Passed,.Succeeded{background:#2f855a} .Warning,.InProgress,.Suspended{background:#b7791f}
        .Critical,.Failed,.NotReady,.CheckFailed,.Interrupted{background:#c53030} .Cancelled,.NotRun,.Information{background:#718096}
        .Error{background:#c53030} .cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
        .card{border:1px solid #cbd5e0;border-radius:6px;padding:8px 14px;min-width:120px} .card b{display:block;font-size:22px}
        figure{margin:8px 0} figure svg{max-width:100%;height:auto} img.shot{width:360px;border:1px solid #a0aec0}
        pre{background:#1a202c;color:#e2e8f0;padding:6px;font-size:11px;max-width:720px;overflow:auto;white-space:pre-wrap}
        """;

    public static string Render(HealthReportData data, int maximumItemCharts)
    {
        var since = data.GeneratedUtc.AddDays(-data.Days);
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">")
            .Append("<title>AsrModule health report</title><style>").Append(Css).Append("</style></head><body>\n");
        Header(html, data);
        ItemsTable(html, data);
        html.Append("<h2 id=\"activity\">Points and vault size</h2>\n");
        Figure(html, "points-per-day", null, HealthReportCharts.PointsPerDay(data.Items, since, data.GeneratedUtc));
        Figure(html, "vault-size", null, HealthReportCharts.VaultSize(data.SizeSamples, data.Items, since, data.GeneratedUtc));
        RpoCharts(html, data, since, maximumItemCharts);
        Drills(html, data);
        Jobs(html, data);
        Events(html, data);
        if (data.Skipped.Count > 0)
        {
            html.Append("<h2 id=\"skipped\">Records not read</h2><p class=\"meta\">Damaged or not valid, so left out of this report:</p><ul>");
            foreach (var s in data.Skipped) html.Append("<li>").Append(E(s)).Append("</li>");
            html.Append("</ul>\n");
        }
        html.Append("</body></html>\n");
        return html.ToString();
    }

    private static void Header(StringBuilder html, HealthReportData data)
    {
        var items = data.Items.Select(i => i.Item).ToList();
        html.Append("<h1>Site recovery health</h1><div class=\"meta\">Vault ").Append(E(data.VaultLocation)).Append(" (").Append(E(data.VaultId))
            .Append(data.Encrypted ? ", encrypted" : "").Append(") &middot; generated ").Append(Time(data.GeneratedUtc)).Append(" UTC &middot; the last ")
            .Append(data.Days).Append(" day(s)</div>\n<div class=\"cards\">");
        Card(html, "items", "Protected items", items.Count.ToString(CultureInfo.InvariantCulture));
        foreach (var health in Enum.GetValues<ReplicationHealth>())
            Card(html, health.ToString().ToLowerInvariant(), health.ToString(), items.Count(i => i.ReplicationHealth == health).ToString(CultureInfo.InvariantCulture));
        var worst = items.Where(i => i.CurrentRpo is not null).MaxBy(i => i.CurrentRpo);
        Card(html, "worst-rpo", "Worst RPO now", worst is null ? "-" : $"{Duration(worst.CurrentRpo!.Value)} ({E(worst.Name)})");
        var drill = data.Drills.FirstOrDefault();
        Card(html, "last-drill", "Last boot drill", drill is null ? "none" : $"{E(drill.Boot.Outcome)} ({E(drill.ItemName)})");
        var plan = data.PlanDrills.FirstOrDefault();
        Card(html, "rto", "Last plan drill: all ready after", plan?.AllReadyAfterSeconds is { } s ? $"{s:0.0} s ({plan.Ready}/{plan.Machines})" : plan is null ? "none" : $"not all ready ({plan.Ready}/{plan.Machines})");
        html.Append("</div>\n");
    }

    private static void Card(StringBuilder html, string id, string label, string value) =>
        html.Append("<div class=\"card\" id=\"card-").Append(id).Append("\"><b>").Append(value).Append("</b>").Append(E(label)).Append("</div>");

    private static void ItemsTable(StringBuilder html, HealthReportData data)
    {
        html.Append("<h2 id=\"items-heading\">Items</h2>\n<table id=\"items\"><tr><th>Item</th><th>State</th><th>Health</th><th>RPO now</th><th>Threshold</th>")
            .Append("<th>Latest point (UTC)</th><th>Points kept</th><th>Crash / app / inconsistent</th><th>Last drill boot</th></tr>\n");
        foreach (var r in data.Items.OrderByDescending(i => i.Item.ReplicationHealth).ThenByDescending(i => i.Item.CurrentRpo))
        {
            var i = r.Item;
            var lastBoot = (i.TestFailover?.Boot ?? i.LastTestFailover?.Boot);
            html.Append("<tr data-item=\"").Append(E(i.Name)).Append("\"><td>").Append(E(i.Name)).Append("</td><td>").Append(E(i.State.ToString())).Append("</td><td>")
                .Append(Badge(i.ReplicationHealth.ToString())).Append("</td><td class=\"n\">").Append(i.CurrentRpo is { } rpo ? Duration(rpo) : "-")
                .Append("</td><td class=\"n\">").Append(r.RpoThresholdMinutes is { } t ? $"{t} min" : "-").Append("</td><td>")
                .Append(i.LastRecoveryPointTimeUtc is { } last ? Time(last) : "-").Append("</td><td class=\"n\">").Append(r.Points.Count)
                .Append("</td><td class=\"n\">").Append(Count(r.Points, RecoveryPointConsistency.CrashConsistent)).Append(" / ").Append(Count(r.Points, RecoveryPointConsistency.AppConsistent))
                .Append(" / ").Append(Count(r.Points, RecoveryPointConsistency.Inconsistent)).Append("</td><td>")
                .Append(lastBoot is null ? "-" : Badge(lastBoot.Outcome) + (lastBoot.ReadyAfterSeconds is { } s ? $" {s:0.0} s" : "")).Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void RpoCharts(StringBuilder html, HealthReportData data, DateTimeOffset since, int maximum)
    {
        var ordered = data.Items.OrderByDescending(i => i.Item.ReplicationHealth).ThenByDescending(i => i.Item.CurrentRpo ?? TimeSpan.Zero).ToList();
        html.Append("<h2 id=\"rpo\">RPO over time</h2>\n");
        if (ordered.Count > maximum)
            html.Append("<p class=\"meta\">The ").Append(maximum).Append(" items with the worst health and RPO of ").Append(ordered.Count).Append(".</p>\n");
        foreach (var item in ordered.Take(maximum))
        {
            html.Append("<h3>").Append(E(item.Item.Name)).Append("</h3>");
            Figure(html, "rpo", item.Item.Name, HealthReportCharts.Rpo(item, since, data.GeneratedUtc));
        }
    }

    private static void Drills(StringBuilder html, HealthReportData data)
    {
        html.Append("<h2 id=\"drills-heading\">Drills</h2>\n");
        if (data.PlanDrills.Count > 0)
        {
            html.Append("<table id=\"plan-drills\"><tr><th>Plan</th><th>Started (UTC)</th><th>Run</th><th>Machines ready</th><th>All ready after (RTO)</th></tr>\n");
            foreach (var p in data.PlanDrills)
                html.Append("<tr data-plan=\"").Append(E(p.PlanName)).Append("\"><td>").Append(E(p.PlanName)).Append("</td><td>").Append(Time(p.StartedUtc)).Append("</td><td>")
                    .Append(Badge(p.State)).Append("</td><td class=\"n\">").Append(p.Ready).Append(" / ").Append(p.Machines).Append("</td><td class=\"n\">")
                    .Append(p.AllReadyAfterSeconds is { } s ? $"{s:0.0} s" : "-").Append("</td></tr>\n");
            html.Append("</table>\n");
        }
        if (data.Drills.Count == 0)
        {
            html.Append("<p class=\"meta\">No boot-verified drill in this period (Test-AsrTestFailover -Boot).</p>\n");
            return;
        }
        html.Append("<table id=\"drills\"><tr><th>Started (UTC)</th><th>Item</th><th>Point</th><th>Boot</th><th>Ready after</th><th>Check</th><th>Screen</th><th>Console</th></tr>\n");
        foreach (var d in data.Drills)
        {
            var b = d.Boot;
            html.Append("<tr class=\"drill\" data-item=\"").Append(E(d.ItemName)).Append("\" data-outcome=\"").Append(E(b.Outcome)).Append("\"><td>").Append(Time(b.StartedUtc))
                .Append("</td><td>").Append(E(d.ItemName)).Append("</td><td class=\"n\">").Append(d.RecoveryPointSequence).Append(" (").Append(Time(d.RecoveryPointTimeUtc))
                .Append(")</td><td>").Append(Badge(b.Outcome)).Append("<br>").Append(E(b.Detail)).Append(" (").Append(E(b.Accelerator)).Append(")</td><td class=\"n\">")
                .Append(b.ReadyAfterSeconds is { } s ? $"{s:0.0} s" : "-").Append("</td><td>").Append(Badge(b.CheckResult))
                .Append(b.CheckMessage is null ? "" : "<br>" + E(b.CheckMessage)).Append("</td><td>");
            if (d.Screenshot is { } png && DrillResultRecord.IsPng(png))
                html.Append("<img class=\"shot\" alt=\"screen of ").Append(E(d.ItemName)).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(png)).Append("\">");
            else html.Append('-');
            html.Append("</td><td><details><summary>tail</summary><pre>").Append(E(b.ConsoleTail)).Append("</pre></details></td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void Jobs(StringBuilder html, HealthReportData data)
    {
        var failed = data.Jobs.Where(j => j.State is AsrJobState.Failed or AsrJobState.Interrupted).ToList();
        html.Append("<h2 id=\"failures\">Failures</h2>\n");
        if (failed.Count == 0) html.Append("<p class=\"meta\">No failed or interrupted job in this period.</p>\n");
        else JobTable(html, "failed-jobs", failed);
        html.Append("<h2 id=\"jobs-heading\">Jobs</h2>\n");
        JobTable(html, "jobs", data.Jobs.Take(100).ToList());
    }

    private static void JobTable(StringBuilder html, string id, List<AsrJob> jobs)
    {
        html.Append("<table id=\"").Append(id).Append("\"><tr><th>Started (UTC)</th><th>Operation</th><th>Target</th><th>State</th><th>Duration</th><th>Error / result</th></tr>\n");
        foreach (var j in jobs)
        {
            var error = j.Errors.LastOrDefault();
            html.Append("<tr><td>").Append(Time(j.StartTimeUtc)).Append("</td><td>").Append(E(j.Operation)).Append("</td><td>").Append(E(j.TargetName)).Append("</td><td>")
                .Append(Badge(j.State.ToString())).Append("</td><td class=\"n\">").Append(j.Duration is { } d ? Duration(d) : "-").Append("</td><td>")
                .Append(error is null ? E(j.Result?.Note ?? "") : $"{E(error.ErrorId)}: {E(error.Message)}").Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void Events(StringBuilder html, HealthReportData data)
    {
        html.Append("<h2 id=\"events-heading\">Events</h2>\n<table id=\"events\"><tr><th>Time (UTC)</th><th>Severity</th><th>Type</th><th>Item</th><th>Message</th></tr>\n");
        foreach (var e in data.Events)
            html.Append("<tr><td>").Append(Time(e.TimeUtc)).Append("</td><td>").Append(Badge(e.Severity.ToString())).Append("</td><td>").Append(E(e.EventType))
                .Append("</td><td>").Append(E(e.ItemName ?? "")).Append("</td><td>").Append(E(e.Message)).Append("</td></tr>\n");
        html.Append("</table>\n");
    }

    private static void Figure(StringBuilder html, string chart, string? item, string svg)
    {
        html.Append("<figure class=\"chart\" data-chart=\"").Append(chart).Append('"');
        if (item is not null) html.Append(" data-item=\"").Append(E(item)).Append('"');
        // ScottPlot's SVG starts with an XML declaration, which does not belong inside HTML.
        int start = svg.IndexOf("<svg", StringComparison.Ordinal);
        html.Append('>').Append(start >= 0 ? svg[start..] : svg).Append("</figure>\n");
    }

    private static int Count(List<ReportPoint> points, RecoveryPointConsistency c) => points.Count(p => p.Consistency == c);

    private static string Badge(string value) => $"<span class=\"badge {E(value)}\">{E(value)}</span>";

    private static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    private static string Duration(TimeSpan d) => d.TotalSeconds < 90 ? $"{d.TotalSeconds:0.0} s" : d.TotalMinutes < 90 ? $"{d.TotalMinutes:0.0} min" : d.TotalHours < 48 ? $"{d.TotalHours:0.0} h" : $"{d.TotalDays:0.0} d";
}
