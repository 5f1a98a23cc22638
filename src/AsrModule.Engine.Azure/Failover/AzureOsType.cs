namespace AsrModule.Engine.Azure.Failover;

/// <summary>The operating system of an OS disk (DiskRP/ComputeRP osType).</summary>
public enum AzureOsType
{
    Windows,
    Linux,
}
