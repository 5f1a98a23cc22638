namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What one machine (protected item) overrides of an <see cref="AzureTargetSettings"/>: each value that is set wins over
/// the target's. <see cref="HyperVGeneration"/> has no target-wide value: unset, it is detected from the OS disk of the
/// recovery point (<see cref="OsDiskFirmware"/>).
/// </summary>
public sealed record AzureMachineSettings
{
    /// <summary>The VM size (Standard_D4s_v5, ...).</summary>
    public string? VmSize { get; init; }

    /// <summary>The subnet of the failed-over VM (a resource id).</summary>
    public string? SubnetId { get; init; }

    /// <summary>The subnet of the drill VM (a resource id, in an isolated network).</summary>
    public string? TestSubnetId { get; init; }

    /// <summary>An availability zone (1, 2, 3).</summary>
    public string? Zone { get; init; }

    public AzureOsType? OsType { get; init; }

    /// <summary>V1 (BIOS) or V2 (UEFI); unset: detected from the OS disk.</summary>
    public AzureHyperVGeneration? HyperVGeneration { get; init; }

    /// <summary>The managed disks' SKU (Standard_LRS, StandardSSD_LRS, Premium_LRS, ...).</summary>
    public string? DiskSku { get; init; }
}
