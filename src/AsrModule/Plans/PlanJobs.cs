using AsrModule.Engine.Jobs;
using AsrModule.Engine.Plans;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Plans;

/// <summary>Starts (or continues) a plan run as a job that owns its plan session.</summary>
internal static class PlanJobs
{
    public static RunningJob Start(AsrVault vault, AsrJob job, PlanSession session, Engine.Failover.IRecoveryTarget? target, bool asJob, PipelineLogger log) =>
        JobRunner.Start(vault, job, async ctx =>
        {
            using (session) return await new RecoveryPlanRunner(vault, session.Definition.Plan, session, target).RunAsync(ctx).ConfigureAwait(false);
        }, asJob ? null : log);
}
