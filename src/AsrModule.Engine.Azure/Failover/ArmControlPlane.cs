using System.Text.RegularExpressions;
using AsrModule.Engine.Errors;
using Azure;
using Azure.Core;
using Azure.ResourceManager;
using Azure.ResourceManager.Compute;
using Azure.ResourceManager.Compute.Models;
using Azure.ResourceManager.Resources;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// <see cref="IAzureControlPlane"/> on Azure Resource Manager, through the SDK's resource model
/// (Azure.ResourceManager 1.7.0 + Azure.ResourceManager.Compute 1.2.0): ArmClient → resource group → disk, snapshot and VM
/// collections, <c>CreateOrUpdateAsync(WaitUntil.Completed, …)</c> awaited through the SDK's own poller. One
/// subscription and resource group per instance. No request is sent until an operation is called (the SDK makes no
/// start-up or provider call for the typed resources used here; GenericResource is never used to delete, because it
/// first asks the provider for an api-version). The request sequences and bodies are those of
/// docs/azure-target-notes.md §1; the unit tests check every body sent against the azure-rest-api-specs examples.
/// </summary>
public sealed partial class ArmControlPlane : IAzureControlPlane
{
    private readonly ArmClient _client;
    private readonly ResourceGroupResource _resourceGroup;
    private readonly ArmControlPlaneOptions _options;

    /// <param name="cloud">The cloud whose Resource Manager to call (<see cref="AzureCloud.AzurePublic"/>, ...).</param>
    /// <param name="credential">An Azure.Identity credential for <paramref name="cloud"/>'s authority host (the scope requested is its audience + "/.default").</param>
    public ArmControlPlane(AzureCloud cloud, string subscriptionId, string resourceGroup, TokenCredential credential, ArmControlPlaneOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cloud);
        ArgumentNullException.ThrowIfNull(credential);
        options ??= new ArmControlPlaneOptions();
        options.Validate();
        if (string.IsNullOrWhiteSpace(subscriptionId) || subscriptionId.Contains('/'))
            throw Invalid($"'{subscriptionId}' is not a subscription id.", subscriptionId);
        if (string.IsNullOrWhiteSpace(resourceGroup) || resourceGroup.Length > 90 || resourceGroup.Contains('/'))
            throw Invalid($"'{resourceGroup}' is not a resource group name.", resourceGroup);
        _options = options;
        SubscriptionId = subscriptionId;
        ResourceGroupName = resourceGroup;
        Cloud = cloud;

        var clientOptions = new ArmClientOptions { Environment = new ArmEnvironment(cloud.ResourceManagerEndpoint, cloud.Audience) };
        // The SDK's exponential retry (Retry-After as the lower bound), except for a refused TLS certificate.
        clientOptions.RetryPolicy = new BlobRetryPolicy(options.MaxRetries, options.RetryDelay, options.MaxRetryDelay);
        clientOptions.Retry.MaxRetries = options.MaxRetries;
        clientOptions.Retry.NetworkTimeout = options.NetworkTimeout;
        if (options.Transport is not null) clientOptions.Transport = options.Transport;
        _client = new ArmClient(credential, subscriptionId, clientOptions);
        _resourceGroup = _client.GetResourceGroupResource(ResourceGroupResource.CreateResourceIdentifier(subscriptionId, resourceGroup));
    }

    public AzureCloud Cloud { get; }
    public string SubscriptionId { get; }
    public string ResourceGroupName { get; }

    // ---- disks ----

    public async Task<string> CreateUploadDiskAsync(AzureDiskSpec disk, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(disk);
        CheckName(disk.Name, 80, "disk");
        CheckLocation(disk.Location, disk.Name);
        CheckUploadSize(disk);
        var data = new ManagedDiskData(new AzureLocation(disk.Location))
        {
            Sku = new DiskSku { Name = new DiskStorageAccountType(disk.Sku) },
            CreationData = new DiskCreationData(DiskCreateOption.Upload) { UploadSizeBytes = disk.UploadSizeBytes },
        };
        if (disk.Zone is { Length: > 0 } zone) data.Zones.Add(zone);
        foreach (var (key, value) in disk.Tags) data.Tags[key] = value;
        if (disk.OsType is { } os) data.OSType = os == AzureOsType.Windows ? SupportedOperatingSystemType.Windows : SupportedOperatingSystemType.Linux;
        if (disk.HyperVGeneration is { } generation) data.HyperVGeneration = generation == AzureHyperVGeneration.V2 ? HyperVGeneration.V2 : HyperVGeneration.V1;

        var created = await CallAsync($"create the upload disk '{disk.Name}' in resource group '{ResourceGroupName}'", disk.Name,
            "Check that the resource group exists in the subscription.",
            ct => _resourceGroup.GetManagedDisks().CreateOrUpdateAsync(WaitUntil.Completed, disk.Name, data, ct), cancellationToken).ConfigureAwait(false);
        return created.Value.Id.ToString();
    }

    public async Task<Uri> GrantWriteAccessAsync(string diskId, TimeSpan duration, CancellationToken cancellationToken)
    {
        var id = ParseId(diskId, AzureResource.DiskType);
        if (duration < TimeSpan.FromSeconds(1) || duration.TotalSeconds > int.MaxValue)
            throw Invalid($"A write access of {duration} is not possible: give a positive number of seconds (durationInSeconds is an int32).", id.Name);
        var granted = await CallAsync($"grant write access to disk '{id.Name}'", id.Name, "Check that the disk exists.",
            ct => _client.GetManagedDiskResource(id).GrantAccessAsync(WaitUntil.Completed, new GrantAccessData(AccessLevel.Write, (int)duration.TotalSeconds), ct),
            cancellationToken).ConfigureAwait(false);
        // The SAS is a secret: it is returned, never put in a message.
        string? sas = granted.Value.AccessSas;
        if (string.IsNullOrEmpty(sas) || !Uri.TryCreate(sas, UriKind.Absolute, out var uri))
            throw new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidData,
                $"Azure granted write access to disk '{id.Name}' but returned no usable SAS URI.", id.Name);
        return uri;
    }

    public async Task RevokeAccessAsync(string diskId, CancellationToken cancellationToken)
    {
        var id = ParseId(diskId, expectedType: null);
        if (IsType(id, SnapshotType))
            await CallAsync($"revoke access to snapshot '{id.Name}'", id.Name, "Check that the snapshot exists.",
                ct => _client.GetSnapshotResource(id).RevokeAccessAsync(WaitUntil.Completed, ct), cancellationToken).ConfigureAwait(false);
        else if (IsType(id, AzureResource.DiskType))
            await CallAsync($"revoke access to disk '{id.Name}'", id.Name, "Check that the disk exists.",
                ct => _client.GetManagedDiskResource(id).RevokeAccessAsync(WaitUntil.Completed, ct), cancellationToken).ConfigureAwait(false);
        else
            throw Invalid($"'{diskId}' is not the id of a {AzureResource.DiskType} or {SnapshotType} resource.", diskId);
    }

    // ---- snapshots ----

    public async Task<string> CreateSnapshotAsync(AzureSnapshotSpec snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        CheckName(snapshot.Name, 80, "snapshot");
        CheckLocation(snapshot.Location, snapshot.Name);
        var sourceId = ParseId(snapshot.SourceDiskId, AzureResource.DiskType);
        // A copy of the disk as it is now (it may be attached to a running VM: crash-consistent). No SKU: an
        // incremental snapshot is Standard_LRS, a full one takes the source's storage type.
        var data = new SnapshotData(new AzureLocation(snapshot.Location))
        {
            CreationData = new DiskCreationData(DiskCreateOption.Copy) { SourceResourceId = sourceId },
            Incremental = snapshot.Incremental,
        };
        foreach (var (key, value) in snapshot.Tags) data.Tags[key] = value;

        var created = await CallAsync($"create the snapshot '{snapshot.Name}' of disk '{sourceId.Name}' in resource group '{ResourceGroupName}'", snapshot.Name,
            $"Check that the disk '{snapshot.SourceDiskId}' and the resource group exist, in the snapshot's region.",
            ct => _resourceGroup.GetSnapshots().CreateOrUpdateAsync(WaitUntil.Completed, snapshot.Name, data, ct), cancellationToken).ConfigureAwait(false);
        return created.Value.Id.ToString();
    }

    public async Task<Uri> GrantReadAccessAsync(string resourceId, TimeSpan duration, CancellationToken cancellationToken)
    {
        var id = ParseId(resourceId, expectedType: null);
        bool snapshot = IsType(id, SnapshotType);
        if (!snapshot && !IsType(id, AzureResource.DiskType))
            throw Invalid($"'{resourceId}' is not the id of a {SnapshotType} or {AzureResource.DiskType} resource.", resourceId);
        if (duration < TimeSpan.FromSeconds(1) || duration.TotalSeconds > int.MaxValue)
            throw Invalid($"A read access of {duration} is not possible: give a positive number of seconds (durationInSeconds is an int32).", id.Name);
        string what = snapshot ? $"snapshot '{id.Name}'" : $"disk '{id.Name}'";
        var request = new GrantAccessData(AccessLevel.Read, (int)duration.TotalSeconds);
        var granted = await CallAsync($"grant read access to {what}", id.Name,
            snapshot ? "Check that the snapshot exists." : "Check that the disk exists (and is not attached to a running VM).",
            ct => snapshot
                ? _client.GetSnapshotResource(id).GrantAccessAsync(WaitUntil.Completed, request, ct)
                : _client.GetManagedDiskResource(id).GrantAccessAsync(WaitUntil.Completed, request, ct),
            cancellationToken).ConfigureAwait(false);
        // The SAS is a secret: it is returned, never put in a message.
        string? sas = granted.Value.AccessSas;
        if (string.IsNullOrEmpty(sas) || !Uri.TryCreate(sas, UriKind.Absolute, out var uri))
            throw new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidData,
                $"Azure granted read access to {what} but returned no usable SAS URI.", id.Name);
        return uri;
    }

    public async Task<AzureDiskInfo?> GetDiskAsync(string diskId, CancellationToken cancellationToken)
    {
        var id = ParseId(diskId, AzureResource.DiskType);
        try
        {
            var disk = await CallAsync($"read disk '{id.Name}'", id.Name, null,
                ct => _client.GetManagedDiskResource(id).GetAsync(ct), cancellationToken).ConfigureAwait(false);
            var d = disk.Value.Data;
            return new AzureDiskInfo(d.Id!.ToString(), d.Name, d.Location.Name, d.DiskState?.ToString(), d.ProvisioningState,
                d.CreationData?.UploadSizeBytes, d.ManagedBy?.ToString(), Tags(d.Tags));
        }
        catch (AsrException ex) when (ex.ErrorId == AzureControlPlaneErrorIds.AzureResourceNotFound && ex.InnerException is RequestFailedException { Status: 404 })
        {
            return null;
        }
    }

    // ---- virtual machines ----

    public async Task<string> CreateVirtualMachineAsync(AzureVmSpec vm, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(vm);
        CheckName(vm.Name, 64, "virtual machine");
        CheckLocation(vm.Location, vm.Name);
        if (string.IsNullOrWhiteSpace(vm.Size)) throw Invalid($"The virtual machine '{vm.Name}' needs a size (Standard_B2s, ...).", vm.Name);
        var osDiskId = ParseId(vm.OsDiskId, AzureResource.DiskType);
        var subnetId = ParseId(vm.SubnetId, "Microsoft.Network/virtualNetworks/subnets");
        var luns = new HashSet<int>();
        foreach (var d in vm.DataDisks)
            if (d.Lun is < 0 or > 63 || !luns.Add(d.Lun))
                throw Invalid($"The data disks of '{vm.Name}' need distinct LUNs from 0 to 63; LUN {d.Lun} is repeated or out of range.", vm.Name);

        var data = new VirtualMachineData(new AzureLocation(vm.Location))
        {
            HardwareProfile = new VirtualMachineHardwareProfile { VmSize = new VirtualMachineSizeType(vm.Size) },
            StorageProfile = new VirtualMachineStorageProfile
            {
                // A specialized disk: attached as it is, no image and no OS profile.
                OSDisk = new VirtualMachineOSDisk(DiskCreateOptionType.Attach)
                {
                    OSType = vm.OsType == AzureOsType.Windows ? SupportedOperatingSystemType.Windows : SupportedOperatingSystemType.Linux,
                    ManagedDisk = new VirtualMachineManagedDisk { Id = osDiskId },
                },
            },
            NetworkProfile = new VirtualMachineNetworkProfile { NetworkApiVersion = NetworkApiVersion.TwoThousandTwenty1101 },
        };
        foreach (var d in vm.DataDisks.OrderBy(d => d.Lun))
            data.StorageProfile.DataDisks.Add(new VirtualMachineDataDisk(d.Lun, DiskCreateOptionType.Attach)
            {
                ManagedDisk = new VirtualMachineManagedDisk { Id = ParseId(d.DiskId, AzureResource.DiskType) },
            });
        // One NIC made with the VM, deleted with it (nothing else to clean up), dynamic private IP.
        var ip = new VirtualMachineNetworkInterfaceIPConfiguration("ipconfig1") { SubnetId = subnetId, Primary = true };
        var nic = new VirtualMachineNetworkInterfaceConfiguration($"{vm.Name}-nic0") { Primary = true, DeleteOption = ComputeDeleteOption.Delete };
        nic.IPConfigurations.Add(ip);
        data.NetworkProfile.NetworkInterfaceConfigurations.Add(nic);
        if (vm.BootDiagnostics) data.BootDiagnostics = new BootDiagnostics { Enabled = true };
        if (vm.Security == AzureVmSecurity.TrustedLaunch)
            data.SecurityProfile = new SecurityProfile
            {
                SecurityType = SecurityType.TrustedLaunch,
                UefiSettings = new UefiSettings { IsSecureBootEnabled = vm.SecureBoot, IsVirtualTpmEnabled = true },
            };
        if (vm.Zone is { Length: > 0 } zone) data.Zones.Add(zone);
        foreach (var (key, value) in vm.Tags) data.Tags[key] = value;

        var created = await CallAsync($"create the virtual machine '{vm.Name}' in resource group '{ResourceGroupName}'", vm.Name,
            $"Check that the subnet '{vm.SubnetId}' and the disks exist, in the VM's region.",
            ct => _resourceGroup.GetVirtualMachines().CreateOrUpdateAsync(WaitUntil.Completed, vm.Name, data, ct), cancellationToken).ConfigureAwait(false);
        return created.Value.Id.ToString();
    }

    public async Task<AzureVmInfo?> GetVirtualMachineAsync(string vmId, CancellationToken cancellationToken)
    {
        var id = ParseId(vmId, AzureResource.VirtualMachineType);
        try
        {
            var vm = await CallAsync($"read virtual machine '{id.Name}'", id.Name, null,
                ct => _client.GetVirtualMachineResource(id).GetAsync(expand: null, cancellationToken: ct), cancellationToken).ConfigureAwait(false);
            var d = vm.Value.Data;
            var dataDisks = d.StorageProfile?.DataDisks.Select(x => new AzureDataDisk(x.Lun, x.ManagedDisk?.Id?.ToString() ?? "")).ToList() ?? [];
            return new AzureVmInfo(d.Id!.ToString(), d.Name, d.Location.Name, d.ProvisioningState, d.HardwareProfile?.VmSize?.ToString(),
                d.StorageProfile?.OSDisk?.ManagedDisk?.Id?.ToString(), dataDisks, d.BootDiagnostics?.Enabled ?? false, Tags(d.Tags));
        }
        catch (AsrException ex) when (ex.ErrorId == AzureControlPlaneErrorIds.AzureResourceNotFound && ex.InnerException is RequestFailedException { Status: 404 })
        {
            return null;
        }
    }

    // ---- by tag ----

    public async Task<IReadOnlyList<AzureResource>> ListByTagAsync(string tagName, string tagValue, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(tagName);
        ArgumentNullException.ThrowIfNull(tagValue);
        string filter = $"tagName eq '{tagName.Replace("'", "''", StringComparison.Ordinal)}' and tagValue eq '{tagValue.Replace("'", "''", StringComparison.Ordinal)}'";
        return await CallAsync($"list the resources tagged {tagName}={tagValue} in resource group '{ResourceGroupName}'", ResourceGroupName,
            "Check that the resource group exists in the subscription.",
            async ct =>
            {
                var found = new List<AzureResource>();
                // The SDK follows nextLink. Tags are not returned when filtering by tag (ARM), and not needed.
                await foreach (var r in _resourceGroup.GetGenericResourcesAsync(filter: filter, cancellationToken: ct).ConfigureAwait(false))
                    found.Add(new AzureResource(r.Id.ToString(), r.Data.ResourceType.ToString(), r.Data.Name));
                return (IReadOnlyList<AzureResource>)found;
            }, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> DeleteAsync(string resourceId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(resourceId);
        var id = ParseId(resourceId, expectedType: null);
        string type = id.ResourceType.ToString();
        ArmOperation operation;
        try
        {
            if (string.Equals(type, AzureResource.VirtualMachineType, StringComparison.OrdinalIgnoreCase))
                operation = await CallAsync($"delete virtual machine '{id.Name}'", id.Name, null,
                    ct => _client.GetVirtualMachineResource(id).DeleteAsync(WaitUntil.Completed, forceDeletion: null, ct), cancellationToken).ConfigureAwait(false);
            else if (string.Equals(type, AzureResource.DiskType, StringComparison.OrdinalIgnoreCase))
                operation = await CallAsync($"delete disk '{id.Name}'", id.Name, null,
                    ct => _client.GetManagedDiskResource(id).DeleteAsync(WaitUntil.Completed, ct), cancellationToken).ConfigureAwait(false);
            else if (string.Equals(type, SnapshotType, StringComparison.OrdinalIgnoreCase))
                operation = await CallAsync($"delete snapshot '{id.Name}'", id.Name, null,
                    ct => _client.GetSnapshotResource(id).DeleteAsync(WaitUntil.Completed, ct), cancellationToken).ConfigureAwait(false);
            else
                throw Invalid($"The control plane deletes virtual machines, disks and snapshots only, not '{type}' ('{id.Name}').", id.Name);
            // ARM answers a delete of what is not there with 204 (or 404 when its parent is gone).
            return operation.GetRawResponse().Status != 204;
        }
        catch (AsrException ex) when (ex.ErrorId == AzureControlPlaneErrorIds.AzureResourceNotFound && ex.InnerException is RequestFailedException { Status: 404 })
        {
            return false;
        }
    }

    public async Task<AzureDeleteByTagResult> DeleteByTagAsync(string tagName, string tagValue, CancellationToken cancellationToken)
    {
        var tagged = await ListByTagAsync(tagName, tagValue, cancellationToken).ConfigureAwait(false);
        var deleted = new List<AzureResource>();
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = _options.DeleteConcurrency, CancellationToken = cancellationToken };
        // VMs first: a disk attached to a VM cannot be deleted, and VM deletion detaches its disks. Snapshots are
        // independent of their source disk: they go with the disks.
        foreach (var batch in new[] { tagged.Where(r => r.IsVirtualMachine).ToList(), tagged.Where(r => r.IsDisk || IsSnapshot(r)).ToList() })
            await Parallel.ForEachAsync(batch, parallel, async (resource, ct) =>
            {
                if (await DeleteAsync(resource.Id, ct).ConfigureAwait(false))
                    lock (deleted) deleted.Add(resource);
            }).ConfigureAwait(false);
        var notDeleted = tagged.Where(r => !r.IsVirtualMachine && !r.IsDisk && !IsSnapshot(r)).ToList();
        return new AzureDeleteByTagResult(deleted, notDeleted);
    }

    // ---- helpers ----

    /// <summary>The resource type of snapshots (Microsoft.Compute/snapshots, DiskRP).</summary>
    internal const string SnapshotType = "Microsoft.Compute/snapshots";

    private static bool IsSnapshot(AzureResource resource) => string.Equals(resource.Type, SnapshotType, StringComparison.OrdinalIgnoreCase);

    private static bool IsType(ResourceIdentifier id, string type) => string.Equals(id.ResourceType.ToString(), type, StringComparison.OrdinalIgnoreCase);

    private async Task<T> CallAsync<T>(string what, string target, string? hint, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ArmErrors.Translate(ex, what, target, hint, _options.MaxRetries, cancellationToken) is { } mapped)
        {
            throw mapped;
        }
    }

    private static IReadOnlyDictionary<string, string> Tags(IDictionary<string, string>? tags) =>
        tags is null ? new Dictionary<string, string>() : new Dictionary<string, string>(tags, StringComparer.OrdinalIgnoreCase);

    /// <summary>Names of disks and snapshots (80) and VMs (64): letters, digits, '_', '.', '-'; starting with a letter or digit, not ending with '.' or '-'.</summary>
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?<![.\-])$")]
    private static partial Regex NamePattern();

    private static void CheckName(string name, int maxLength, string what)
    {
        if (string.IsNullOrEmpty(name) || name.Length > maxLength || !NamePattern().IsMatch(name))
            throw Invalid($"'{name}' is not a valid {what} name: 1 to {maxLength} letters, digits, '_', '.' or '-', starting with a letter or digit and not ending with '.' or '-'.", name);
    }

    private static void CheckLocation(string location, string name)
    {
        if (string.IsNullOrWhiteSpace(location))
            throw Invalid($"'{name}' needs a location (an Azure region such as westeurope).", name);
    }

    /// <summary>A whole number of MiB plus the 512-byte VHD footer, from 20 MiB + 512 to 32 TiB + 512 (DiskRP's uploadSizeBytes).</summary>
    private static void CheckUploadSize(AzureDiskSpec disk)
    {
        const long min = (20L << 20) + 512, max = (32L << 40) + 512;
        if (disk.UploadSizeBytes < min || disk.UploadSizeBytes > max || (disk.UploadSizeBytes - 512) % (1L << 20) != 0)
            throw Invalid($"The upload size {disk.UploadSizeBytes} of disk '{disk.Name}' is not possible: it must be a whole number of MiB plus 512 bytes (the VHD footer), from {min} to {max}.", disk.Name);
    }

    private static ResourceIdentifier ParseId(string resourceId, string? expectedType)
    {
        ResourceIdentifier id;
        try
        {
            id = new ResourceIdentifier(resourceId);
            _ = id.ResourceType;
            _ = id.Name;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            throw Invalid($"'{resourceId}' is not an Azure resource id (/subscriptions/…/resourceGroups/…/providers/…).", resourceId);
        }
        if (expectedType is not null && !string.Equals(id.ResourceType.ToString(), expectedType, StringComparison.OrdinalIgnoreCase))
            throw Invalid($"'{resourceId}' is not the id of a {expectedType} resource.", resourceId);
        return id;
    }

    private static AsrException Invalid(string message, string target) =>
        new(AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument, message, target);
}
