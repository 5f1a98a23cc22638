using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Reports;
using Xunit;

namespace AsrModule.Tests.Unit.Reports;

/// <summary>The report page: self-contained, and vault text only ever as text.</summary>
public class HealthReportHtmlTests
{
    private const string Hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";

    private static HealthReportData Data()
    {
        var now = new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
        var item = new AsrProtectedItem { Name = "web01", Id = "i1", State = ProtectedItemState.Protected, LastError = Hostile, CurrentRpo = TimeSpan.FromMinutes(3), LastRecoveryPointTimeUtc = now.AddMinutes(-3) };
        return new HealthReportData
        {
            VaultLocation = "/srv/" + Hostile, VaultId = "v", GeneratedUtc = now, Days = 2,
            Items = [new ReportItem { Item = item, RpoThresholdMinutes = 15, Points = [new ReportPoint(1, now.AddHours(-5), RecoveryPointConsistency.CrashConsistent, 1 << 20), new ReportPoint(2, now.AddMinutes(-3), RecoveryPointConsistency.AppConsistent, 1 << 10)] }],
            Drills = [new DrillResultRecord { ItemId = "i1", ItemName = "web01", Boot = new BootVerificationResult { Outcome = "Passed", ConsoleTail = Hostile, CheckMessage = Hostile, Detail = Hostile, StartedUtc = now }, Screenshot = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1] }],
            SizeSamples = [new VaultSizeSample { TimeUtc = now, Bytes = 5 << 20, Objects = 9, ItemBytes = 4 << 20 }],
            Skipped = ["items/i1/drills/x.json: " + Hostile],
        };
    }

    [Fact]
    public void Vault_text_is_encoded_and_the_page_cannot_fetch_or_run_anything()
    {
        string html = HealthReportHtml.Render(Data(), 10);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("<img src=x", html);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;", html);
        Assert.Contains("content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"", html);
        Assert.DoesNotMatch("(src|href)=\"(https?:)?//", html);
        Assert.Contains("<img class=\"shot\" alt=\"screen of web01\" src=\"data:image/png;base64,iVBORw0KGgoB\">", html);
    }

    [Fact]
    public void Every_chart_is_inline_SVG_without_an_XML_declaration()
    {
        string html = HealthReportHtml.Render(Data(), 10);
        Assert.Contains("<figure class=\"chart\" data-chart=\"rpo\" data-item=\"web01\"><svg", html);
        Assert.Contains("<figure class=\"chart\" data-chart=\"points-per-day\"><svg", html);
        Assert.Contains("<figure class=\"chart\" data-chart=\"vault-size\"><svg", html);
        Assert.DoesNotContain("<?xml", html);
        Assert.Equal(3, html.Split("<svg").Length - 1);
        Assert.Equal(0, HealthReportHtml.Render(Data(), 0).Split("data-chart=\"rpo\"").Length - 1);
    }
}
