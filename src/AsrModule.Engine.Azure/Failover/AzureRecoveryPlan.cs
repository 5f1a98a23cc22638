using System.Globalization;
using AsrModule.Engine.Failover;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What one recovery makes: names, placement, subnet and tags, after the spec checks; and from it, once the disks are
/// made, the VM to create and the record kept on the item.
/// </summary>
internal sealed record AzureRecoveryPlan(string VmName, string Operation, AzureMachinePlacement Placement, string Subnet,
    IReadOnlyDictionary<string, string> Tags, IReadOnlyList<string> DiskNames, string Region, string TargetLocation)
{
    /// <summary>The VM: OS disk first, data disks at LUN 0.. in the point's order, boot diagnostics on.</summary>
    public AzureVmSpec VmSpec(IReadOnlyList<AzureRecoveredDisk> disks) =>
        new(VmName, Region, Placement.VmSize, disks[0].DiskId, Placement.OsType, Subnet)
        {
            DataDisks = disks.Skip(1).Select((d, lun) => new AzureDataDisk(lun, d.DiskId)).ToList(),
            Zone = Placement.Zone,
            BootDiagnostics = true,
            Tags = Tags,
        };

    public RecoveredMachineRecord RecordOf(AsrRecoveryPoint point, string vmId, IReadOnlyList<AzureRecoveredDisk> disks)
    {
        var record = new RecoveredMachineRecord
        {
            TargetKind = AsrAzureTarget.AzureKind,
            TargetLocation = TargetLocation,
            OperationId = Guid.ParseExact(Operation, "N"),
            MachineId = vmId,
            Disks = point.Disks.Zip(disks).ToDictionary(p => p.First.DiskId, p => p.Second.DiskId),
            Properties = new Dictionary<string, string>
            {
                ["region"] = Region,
                ["vmName"] = VmName,
                ["vmSize"] = Placement.VmSize,
                ["subnet"] = Subnet,
                ["osType"] = Placement.OsType.ToString(),
                ["hyperVGeneration"] = disks[0].Generation.ToString(),
                ["hyperVGenerationSource"] = disks[0].GenerationSource,
                ["diskSku"] = Placement.DiskSku,
                ["uploadedBytes"] = disks.Sum(d => d.Result.BytesSent).ToString(CultureInfo.InvariantCulture),
            },
        };
        if (Placement.Zone is not null) record.Properties["zone"] = Placement.Zone;
        foreach (var (disk, made) in point.Disks.Zip(disks)) record.Properties[$"sha256:{disk.Name}"] = made.Result.Sha256;
        return record;
    }
}
