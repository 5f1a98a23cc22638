namespace AsrModule.Engine.Azure.Failover;

/// <summary>What the control plane reads back of a VM (provisioningState Succeeded, Failed, Creating, ...).</summary>
public sealed record AzureVmInfo(
    string Id,
    string Name,
    string Location,
    string? ProvisioningState,
    string? Size,
    string? OsDiskId,
    IReadOnlyList<AzureDataDisk> DataDisks,
    bool BootDiagnostics,
    IReadOnlyDictionary<string, string> Tags);
