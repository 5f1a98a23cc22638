using System.Security.Cryptography;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.RecoveryPoints;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// The pieces of a failover into Azure, together (issue #11): each disk of a real recovery point becomes a managed
/// disk through the control plane (the FAKE Azure Resource Manager of tests/FakeArm, real Azure SDK), is uploaded
/// through the write SAS that grant-access returns (a real page blob in Azurite) by <see cref="ManagedDiskUploader"/>,
/// access is revoked, a VM is created from the disks, and everything is found and deleted by its tag. What lands in
/// Azure is read back with the storage account key and compared with the source disks by SHA-256.
/// </summary>
[Collection(FakeArmCollection.Name)]
public sealed class AzureRecoveryPipelineTests(FakeArmFixture fixture)
{
    private FakeArmProcess Fake => fixture.Fake;
    private AzuriteServer Azurite => fixture.Azurite;

    [FakeArmFact]
    public async Task A_two_disk_point_becomes_managed_disks_equal_to_the_source_and_a_vm_that_is_cleaned_up_by_tag()
    {
        using var h = await EngineHarness.CreateAsync();
        string os = h.Dir["os.img"], data = h.Dir["data.img"];
        TestDisks.Create(os, (3L << 20) + 4096, seed: 21);
        TestDisks.Create(data, 2L << 20, seed: 22);
        var item = await h.EnableAsync("web01", os, data);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string run = Guid.NewGuid().ToString("N")[..8];
        var tags = new Dictionary<string, string> { ["asr-item"] = item.Name, ["asr-job"] = run, ["asr-point"] = point.Sequence.ToString() };

        var arm = Fake.ControlPlane();
        var uploader = new ManagedDiskUploader(new ManagedDiskUploadOptions { MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50) });
        var diskIds = new List<string>();
        var blobs = new List<string>();
        foreach (var disk in point.Disks)
        {
            string id = await arm.CreateUploadDiskAsync(new AzureDiskSpec($"{item.Name}-{Path.GetFileNameWithoutExtension(disk.Name)}-{run}", "westeurope",
                ManagedDiskSize.UploadSizeBytes(disk.SizeBytes))
            {
                OsType = diskIds.Count == 0 ? AzureOsType.Linux : null,
                HyperVGeneration = diskIds.Count == 0 ? AzureHyperVGeneration.V2 : null,
                Tags = tags,
            }, default);
            Uri sas = await arm.GrantWriteAccessAsync(id, TimeSpan.FromHours(1), default);
            using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, disk.DiskId, default))
            {
                var result = await uploader.UploadAsync(reader, point, sas);
                Assert.Equal(disk.SizeBytes, result.DiskSizeBytes);
            }
            await arm.RevokeAccessAsync(id, default);
            Assert.Equal("Unattached", (await arm.GetDiskAsync(id, default))!.DiskState);
            diskIds.Add(id);
            blobs.Add(Uri.UnescapeDataString(sas.Segments[^1]));
        }

        // What Azure holds equals the source disks at the point, then zeros, then a fixed-VHD footer for the payload.
        foreach (var (path, blob) in new[] { os, data }.Zip(blobs))
        {
            byte[] content = (await Azurite.ContainerClient(FakeArmProcess.Container).GetPageBlobClient(blob).DownloadContentAsync()).Value.Content.ToArray();
            long n = new FileInfo(path).Length, payload = ManagedDiskSize.PayloadBytes(n);
            Assert.Equal(payload + 512, content.LongLength);
            Assert.Equal(TestDisks.Sha256(path), Convert.ToHexString(SHA256.HashData(content.AsSpan(0, (int)n))));
            Assert.Equal(-1, content.AsSpan((int)n, (int)(payload - n)).IndexOfAnyExcept((byte)0));
            Assert.Equal(payload, FixedVhdFooter.Parse(content.AsSpan((int)payload, 512)).CurrentSize);
        }

        string subnet = FakeArmProcess.SubnetId("drill-" + run);
        await Fake.RegisterSubnetAsync(subnet);
        string vmId = await arm.CreateVirtualMachineAsync(new AzureVmSpec($"{item.Name}-{run}", "westeurope", "Standard_D2s_v5", diskIds[0], AzureOsType.Linux, subnet)
        {
            DataDisks = [new AzureDataDisk(0, diskIds[1])],
            Tags = tags,
        }, default);
        var vm = (await arm.GetVirtualMachineAsync(vmId, default))!;
        Assert.Equal(("Succeeded", true), (vm.ProvisioningState, vm.BootDiagnostics));
        Assert.Equal(diskIds[0], vm.OsDiskId, ignoreCase: true);
        Assert.Equal(diskIds[1], Assert.Single(vm.DataDisks).DiskId, ignoreCase: true);

        // Exactly what this run made carries its tag; deleting by tag removes the VM first, then the disks.
        var tagged = await arm.ListByTagAsync("asr-job", run, default);
        Assert.Equal(3, tagged.Count);
        var deleted = await arm.DeleteByTagAsync("asr-job", run, default);
        Assert.Empty(deleted.NotDeleted);
        Assert.Equal(3, deleted.Deleted.Count);
        Assert.Empty(await arm.ListByTagAsync("asr-job", run, default));
        Assert.Null(await arm.GetVirtualMachineAsync(vmId, default));
    }
}
