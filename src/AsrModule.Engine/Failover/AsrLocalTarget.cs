namespace AsrModule.Engine.Failover;

/// <summary>
/// A failover target on this machine: recovered disks in a directory plus <c>machine.json</c>
/// (see docs/failover.md for the layout and how QEMU boots it).
/// </summary>
public sealed class AsrLocalTarget
{
    public AsrLocalTarget(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }
    public string Kind => "Local";

    /// <summary>Where a failover of <paramref name="itemName"/> puts its disks.</summary>
    public string MachineDirectory(string itemName) => System.IO.Path.Combine(Path, itemName);

    /// <summary>Where a drill of <paramref name="itemName"/> puts its overlays and description.</summary>
    public string DrillDirectory(string itemName, Guid drillId) => System.IO.Path.Combine(Path, $"{itemName}-drill-{drillId.ToString("N")[..8]}");

    public override string ToString() => Path;
}
