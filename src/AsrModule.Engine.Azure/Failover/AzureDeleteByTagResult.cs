namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What a delete by tag did: the VMs and disks it deleted (VMs first), and the resources carrying the tag that it
/// left because the control plane does not delete their type (it deletes only what it creates).
/// </summary>
public sealed record AzureDeleteByTagResult(IReadOnlyList<AzureResource> Deleted, IReadOnlyList<AzureResource> NotDeleted);
