namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The Azure control plane of a failover to Azure, kept small so that the engine is testable against a fake and the
/// fake stays honest: create an upload disk, grant and revoke write access to it, create a VM from the disks,
/// find and delete what a job made by its tag. Every long-running operation is awaited to completion. Failures are
/// <see cref="AsrModule.Engine.Errors.AsrException"/>s with the ids of <see cref="AzureControlPlaneErrorIds"/>;
/// no Azure SDK type appears here, so cmdlets can pass these records through.
/// </summary>
public interface IAzureControlPlane
{
    /// <summary>Creates (or, with the same creation data, finds) a managed disk in ReadyToUpload; returns its resource id.</summary>
    Task<string> CreateUploadDiskAsync(AzureDiskSpec disk, CancellationToken cancellationToken);

    /// <summary>Grants write access for <paramref name="duration"/>: the disk becomes ActiveUpload, and the page blob's SAS URI is returned. The SAS is a secret: never log it.</summary>
    Task<Uri> GrantWriteAccessAsync(string diskId, TimeSpan duration, CancellationToken cancellationToken);

    /// <summary>Revokes the SAS of a disk (the upload is final and the disk becomes Unattached, attachable) or of a snapshot.</summary>
    Task RevokeAccessAsync(string diskId, CancellationToken cancellationToken);

    /// <summary>Creates a snapshot of a managed disk (which may be attached to a running VM); returns its resource id.</summary>
    Task<string> CreateSnapshotAsync(AzureSnapshotSpec snapshot, CancellationToken cancellationToken);

    /// <summary>Grants read access to a snapshot (or an unattached disk) for <paramref name="duration"/>; returns the SAS URI of its fixed VHD (payload and footer). A secret: never log it.</summary>
    Task<Uri> GrantReadAccessAsync(string resourceId, TimeSpan duration, CancellationToken cancellationToken);

    /// <summary>Creates (or updates) a VM from attached disks; returns its resource id.</summary>
    Task<string> CreateVirtualMachineAsync(AzureVmSpec vm, CancellationToken cancellationToken);

    /// <summary>The disk, or null when it does not exist.</summary>
    Task<AzureDiskInfo?> GetDiskAsync(string diskId, CancellationToken cancellationToken);

    /// <summary>The VM, or null when it does not exist.</summary>
    Task<AzureVmInfo?> GetVirtualMachineAsync(string vmId, CancellationToken cancellationToken);

    /// <summary>The resources of the resource group carrying the tag <paramref name="tagName"/> = <paramref name="tagValue"/>.</summary>
    Task<IReadOnlyList<AzureResource>> ListByTagAsync(string tagName, string tagValue, CancellationToken cancellationToken);

    /// <summary>Deletes a VM, a disk or a snapshot (by its type; nothing else); false when Azure answered that it was not there.</summary>
    Task<bool> DeleteAsync(string resourceId, CancellationToken cancellationToken);

    /// <summary>Deletes the VMs, then the snapshots and disks, carrying the tag (a VM's disks can only be deleted once it is gone).</summary>
    Task<AzureDeleteByTagResult> DeleteByTagAsync(string tagName, string tagValue, CancellationToken cancellationToken);
}
