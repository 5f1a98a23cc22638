namespace AsrModule.Engine.Azure.Failover;

/// <summary>An Azure resource found by tag: its ARM id, type (e.g. Microsoft.Compute/disks) and name.</summary>
public sealed record AzureResource(string Id, string Type, string Name)
{
    public const string VirtualMachineType = "Microsoft.Compute/virtualMachines";
    public const string DiskType = "Microsoft.Compute/disks";

    public bool IsVirtualMachine => string.Equals(Type, VirtualMachineType, StringComparison.OrdinalIgnoreCase);
    public bool IsDisk => string.Equals(Type, DiskType, StringComparison.OrdinalIgnoreCase);
}
