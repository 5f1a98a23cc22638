namespace AsrModule.Engine.Azure.Failover;

/// <summary>An existing managed disk attached to a VM as a data disk at <paramref name="Lun"/> (0-63, unique per VM).</summary>
public sealed record AzureDataDisk(int Lun, string DiskId);
