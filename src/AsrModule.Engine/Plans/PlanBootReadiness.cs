using AsrModule.Engine.Jobs;

namespace AsrModule.Engine.Plans;

/// <summary>
/// How far a booted plan run (Start-AsrRecoveryPlan -Boot) got: its machines, how many became ready, and when the
/// last of those was ready, in seconds after the run's start (its recovery time once every machine is ready). The run's
/// note, the health report and the scheduled-drill sample all read it from here (<see cref="AsrJob.BootReadiness"/>).
/// </summary>
public sealed record PlanBootReadiness(int Machines, int Ready, double? LastReadyAfterSeconds)
{
    /// <summary>The run's recovery time: <see cref="LastReadyAfterSeconds"/> when every machine became ready, else null.</summary>
    public double? AllReadyAfterSeconds => Machines > 0 && Ready == Machines ? LastReadyAfterSeconds : null;

    public static PlanBootReadiness Of(AsrJob job)
    {
        var machines = (job.Tasks ?? []).Where(t => t.Kind == PlanTaskKind.Machine).ToList();
        var readyAt = machines.Where(t => t.Boot is { Booted: true, ReadyAfterSeconds: not null })
            .Select(t => t.Boot!.StartedUtc.AddSeconds(t.Boot.ReadyAfterSeconds!.Value)).ToList();
        double? last = readyAt.Count == 0 ? null : Math.Round((readyAt.Max() - job.StartTimeUtc).TotalSeconds, 1);
        return new PlanBootReadiness(machines.Count, readyAt.Count, last);
    }
}
