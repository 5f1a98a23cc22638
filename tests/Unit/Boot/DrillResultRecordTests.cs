using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Plans;
using Xunit;

namespace AsrModule.Tests.Unit.Boot;

public class DrillResultRecordTests
{
    private static readonly byte[] Png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];

    private static DrillResultRecord Record(string item = "i1", byte[]? shot = null, string outcome = BootVerificationResult.Passed) =>
        new() { ItemId = item, ItemName = "web01", Screenshot = shot, Boot = new BootVerificationResult { Outcome = outcome } };

    [Fact]
    public void A_record_of_the_item_with_a_PNG_is_valid()
    {
        Record(shot: Png).Validate("k", "i1");
        Record().Validate("k", "i1");
    }

    [Theory]
    [InlineData("other", true, BootVerificationResult.Passed, "names item 'other'")]
    [InlineData("i1", false, BootVerificationResult.Passed, "not a PNG")]
    [InlineData("i1", true, "<b>Pwned</b>", "unknown")]
    public void Anything_else_is_damaged_data_naming_the_record(string item, bool png, string outcome, string why)
    {
        var record = Record(item, png ? Png : "GIF89a----"u8.ToArray(), outcome);
        var ex = Assert.Throws<AsrException>(() => record.Validate("items/i1/drills/x.json", "i1"));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal("items/i1/drills/x.json", ex.Target);
        Assert.Contains(why, ex.Message);
    }

    [Fact]
    public void A_screenshot_over_the_limit_is_refused()
    {
        var big = new byte[DrillResultRecord.MaximumScreenshotBytes + 1];
        Png.CopyTo(big, 0);
        Assert.Throws<AsrException>(() => Record(shot: big).Validate("k", "i1"));
    }

    /// <summary>The recovery time of a booted plan run: from the run's start until its last machine was ready.</summary>
    [Fact]
    public void The_run_note_gives_the_time_until_the_last_machine_was_ready()
    {
        var start = new DateTimeOffset(2026, 12, 5, 10, 0, 0, TimeSpan.Zero);
        var job = new AsrJob
        {
            StartTimeUtc = start,
            Plan = new PlanRunRecord { PlanName = "p", FailoverType = PlanFailoverType.Test, Boot = true },
            Tasks =
            [
                new PlanTask { Kind = PlanTaskKind.Machine, Item = "a", Boot = new BootVerificationResult { Booted = true, StartedUtc = start.AddSeconds(2), ReadyAfterSeconds = 10 } },
                new PlanTask { Kind = PlanTaskKind.StepAfter },
                new PlanTask { Kind = PlanTaskKind.Machine, Item = "b", Boot = new BootVerificationResult { Booted = true, StartedUtc = start.AddSeconds(20), ReadyAfterSeconds = 15.5 } },
            ],
        };
        Assert.Equal("; 2 machine(s) booted and ready, the last 35.5 s after the run started", RecoveryPlanRunner.ReadySummary(job));
        var drill = AsrModule.Reports.HealthReportCollector.PlanDrillOf(job);
        Assert.Equal((2, 2, 35.5), (drill.Machines, drill.Ready, drill.AllReadyAfterSeconds!.Value));
        job.Tasks[2].Boot = new BootVerificationResult { Booted = false };
        Assert.Null(AsrModule.Reports.HealthReportCollector.PlanDrillOf(job).AllReadyAfterSeconds);
        // Not every machine ready: no recovery time, but the note still says when the last ready one was.
        Assert.Equal(new PlanBootReadiness(2, 1, 12.0), job.BootReadiness);
        Assert.Equal("; 1 machine(s) booted and ready, the last 12.0 s after the run started", RecoveryPlanRunner.ReadySummary(job));
    }
}
