namespace AsrModule.Engine.Azure.Failover;

/// <summary>The VM generation an OS disk boots in: V1 (BIOS) or V2 (UEFI). A VM takes it from its OS disk.</summary>
public enum AzureHyperVGeneration
{
    V1,
    V2,
}
