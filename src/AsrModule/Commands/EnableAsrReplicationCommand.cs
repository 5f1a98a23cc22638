using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Registers a machine's disks and runs its initial replication as a job.</summary>
[Cmdlet(VerbsLifecycle.Enable, "AsrReplication", SupportsShouldProcess = true)]
[OutputType(typeof(AsrJob))]
public sealed class EnableAsrReplicationCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("MachineName")]
    public string Name { get; set; } = "";

    /// <summary>Raw disk image files or block devices.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [Alias("Path", "Disks")]
    public string[] Disk { get; set; } = [];

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [PolicyNameTransformation]
    [ArgumentCompleter(typeof(PolicyNameCompleter))]
    [Alias("PolicyName")]
    public string Policy { get; set; } = "";

    /// <summary>Host name of the agent that protects the machine continuously (default: this machine's name).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? AgentHost { get; set; }

    /// <summary>Replication group: its machines get coordinated points taken at one instant.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? ReplicationGroup { get; set; }

    /// <summary>Executable run with "freeze" / "thaw" around app-consistent points.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? AppConsistencyScript { get; set; }

    /// <summary>QMP socket of the running QEMU/KVM guest that has these disks open: changes come from QEMU's dirty bitmaps.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? QmpSocket { get; set; }

    /// <summary>Returns the job at once instead of waiting for initial replication.</summary>
    /// <summary>
    /// The disks' image format. Auto (default): each file's magic bytes decide (qcow2, VMDK, VHDX, VDI, VHD; anything else is
    /// raw; a block device is raw). The format is pinned when the disk is protected and never probed again.
    /// </summary>
    [Parameter]
    [ValidateSet("Auto", "Raw", "Qcow2", "Vmdk", "Vhdx", "Vdi", "Vhd")]
    public string SourceFormat { get; set; } = "Auto";

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        var paths = Disk.Select(d => SessionState.Path.GetUnresolvedProviderPathFromPSPath(d)).ToList();
        if (!ShouldProcess(Name, $"Enable replication of {paths.Count} disk(s) with policy '{Policy}'")) return;
        ForItem(Name, () =>
        {
            var service = new ReplicationService(vault);
            var settings = new ItemReplicationSettings
            {
                AgentHost = AgentHost ?? Environment.MachineName,
                ReplicationGroup = ReplicationGroup,
                AppConsistencyScript = AppConsistencyScript is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(AppConsistencyScript),
                QmpSocketPath = QmpSocket is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(QmpSocket),
            };
            var item = Await(ct => service.RegisterAsync(Name, paths, Policy, ct, settings: settings, sourceFormat: SourceFormat.ToLowerInvariant()));
            var lease = Await(ct => service.PrepareCycleAsync(item, false, ct));
            RunningJob running;
            try
            {
                running = StartJob(vault, JobRunner.NewRecord("EnableReplication", item.Name, item.Id), async ctx =>
                {
                    using (lease) return await service.RunCycleAsync(item, false, ctx).ConfigureAwait(false);
                }, AsJob);
            }
            catch
            {
                lease.Dispose();
                throw;
            }
            CompleteJob(running, AsJob);
        });
    }
}
