using System.Management.Automation;
using AsrModule.Drills;
using AsrModule.Infrastructure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Verifies a running drill. Without -Boot: reads every served disk over NBD, as a hypervisor would, and compares it
/// with the recovery point (Result.Verified). With -Boot: boots the drilled machine under QEMU from the drill's exports,
/// waits for its readiness signal, runs -Check, and records the result (Result.Boot; Result.Verified stays null, no bytes
/// were compared; the job fails with DrillBootFailed or DrillCheckFailed when the machine is not right).
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "AsrTestFailover", DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class TestAsrTestFailoverCommand : ItemJobCmdlet
{
    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    /// <summary>Boots the drilled machine under QEMU instead of comparing its disks' bytes.</summary>
    [Parameter]
    public SwitchParameter Boot { get; set; }

    /// <summary>-Boot: a regular expression; the machine is ready once a serial-console line matches it.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ReadyPattern { get; set; }

    /// <summary>-Boot: a guest TCP port that must answer (through a forward on 127.0.0.1) for the machine to be ready.</summary>
    [Parameter]
    [ValidateRange(1, 65535)]
    public int? ReadyPort { get; set; }

    /// <summary>-Boot: more guest TCP ports forwarded to 127.0.0.1 for -Check.</summary>
    [Parameter]
    [ValidateRange(1, 65535)]
    public int[] ForwardPort { get; set; } = [];

    /// <summary>-Boot: how long the machine may take to become ready (default 300).</summary>
    [Parameter]
    [ValidateRange(5, 7200)]
    public int BootTimeoutSeconds { get; set; } = BootOptions.DefaultTimeoutSeconds;

    /// <summary>-Boot: the machine's memory (default 1024 MiB).</summary>
    [Parameter]
    [ValidateRange(64, 65536)]
    public int MemoryMiB { get; set; } = BootOptions.DefaultMemoryMiB;

    /// <summary>-Boot: virtual CPUs (default 1).</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int Cpus { get; set; } = 1;

    /// <summary>-Boot: the disk controller the machine's operating system has drivers for (Virtio, Ide, Sata).</summary>
    [Parameter]
    public BootDiskBus DiskBus { get; set; } = BootDiskBus.Virtio;

    /// <summary>-Boot: the network card model.</summary>
    [Parameter]
    [ValidateSet("virtio-net-pci", "e1000", "rtl8139")]
    public string NicModel { get; set; } = "virtio-net-pci";

    /// <summary>-Boot: the item's check, run once the machine is ready; gets the console log and forwarded ports; passes when it returns $true.</summary>
    [Parameter]
    public ScriptBlock? Check { get; set; }

    private static readonly string[] BootOnly = ["ReadyPattern", "ReadyPort", "ForwardPort", "BootTimeoutSeconds", "MemoryMiB", "Cpus", "DiskBus", "NicModel", "Check"];

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        if (!Boot)
        {
            if (BootOnly.FirstOrDefault(MyInvocation.BoundParameters.ContainsKey) is { } given)
                throw new AsrException(AsrErrorIds.BootSettingInvalid, AsrErrorKind.InvalidArgument,
                    $"-{given} is a boot setting: add -Boot to boot the drilled machine, or leave it out to compare the disks' bytes.", given);
            TestFailoverService.ValidateVerify(item, Target); // refuse before any job exists
            RunItemJob(vault, item, "VerifyTestFailover", null, ctx => new TestFailoverService(vault).VerifyAsync(item, Target, ctx), AsJob);
            return;
        }
        var options = new BootOptions
        {
            ReadyPattern = ReadyPattern,
            ReadyPort = ReadyPort,
            ForwardPorts = ForwardPort,
            Timeout = TimeSpan.FromSeconds(BootTimeoutSeconds),
            MemoryMiB = MemoryMiB,
            Cpus = Cpus,
            DiskBus = DiskBus,
            NicModel = NicModel,
        };
        DrillBootVerifier.Validate(item, options); // refuse before any job exists
        BootCheck? check = Check is null ? null
            : AsJob ? BootCheckScript.InOwnRunspace(Check, ModuleManifest())
            : BootCheckScript.InSession(Check, OnPipelineThread);
        RunItemJob(vault, item, "BootTestFailover", null, ctx => new DrillBootVerifier(vault).BootAsync(item, options, check, ctx), AsJob);
    }
}
