using System.Management.Automation;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Policies;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Creates a replication policy in the vault.</summary>
[Cmdlet(VerbsCommon.New, "AsrPolicy", SupportsShouldProcess = true)]
[OutputType(typeof(AsrPolicy))]
public sealed class NewAsrPolicyCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Name { get; set; } = "";

    [Parameter] public int RecoveryPointRetentionHours { get; set; } = 24;
    [Parameter] public double CrashConsistentFrequencyMinutes { get; set; } = 5;
    /// <summary>The crash-consistent frequency in seconds (5 or more), for sources with change tracking (reflink clones, QEMU); overrides -CrashConsistentFrequencyMinutes.</summary>
    [Parameter] public int CrashConsistentFrequencySeconds { get; set; }
    [Parameter] public int AppConsistentFrequencyHours { get; set; } = 4;
    [Parameter] public int RpoThresholdMinutes { get; set; } = 15;
    [Parameter] public CompressionMethod Compression { get; set; } = CompressionMethod.Zstd;
    [Parameter] public int CompressionLevel { get; set; } = 1;

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        var policy = new AsrPolicy
        {
            Name = Name,
            RecoveryPointRetentionHours = RecoveryPointRetentionHours,
            CrashConsistentFrequencyMinutes = MyInvocation.BoundParameters.ContainsKey(nameof(CrashConsistentFrequencySeconds))
                ? CrashConsistentFrequencySeconds / 60.0 : CrashConsistentFrequencyMinutes,
            AppConsistentFrequencyHours = AppConsistentFrequencyHours,
            RpoThresholdMinutes = RpoThresholdMinutes,
            Compression = Compression,
            CompressionLevel = CompressionLevel,
        };
        if (!ShouldProcess($"{Name} in {vault.Location}", "Create policy")) return;
        ForItem(Name, () => WriteObject(Await(ct => vault.CreatePolicyAsync(policy, ct))));
    }
}
