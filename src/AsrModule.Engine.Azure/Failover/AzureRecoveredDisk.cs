namespace AsrModule.Engine.Azure.Failover;

/// <summary>A managed disk made for a recovered VM: its id, its upload's result, and the generation the VM boots as (and where that came from).</summary>
internal sealed record AzureRecoveredDisk(string DiskId, ManagedDiskUploadResult Result, AzureHyperVGeneration Generation, string GenerationSource);
