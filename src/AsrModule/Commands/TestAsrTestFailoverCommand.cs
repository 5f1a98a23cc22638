using System.Management.Automation;
using AsrModule.Infrastructure;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Verifies a running drill: reads every served disk over NBD, as a hypervisor would, and compares it
/// with the recovery point. The job's Result.Verified says whether every disk matched.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "AsrTestFailover", DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class TestAsrTestFailoverCommand : ItemJobCmdlet
{
    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        TestFailoverService.ValidateVerify(item, Target); // refuse before any job exists
        RunItemJob(vault, item, "VerifyTestFailover", null, ctx => new TestFailoverService(vault).VerifyAsync(item, Target, ctx), AsJob);
    }
}
