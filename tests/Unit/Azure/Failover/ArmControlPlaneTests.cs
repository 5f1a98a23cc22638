using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// <see cref="ArmControlPlane"/> with the real Azure SDK against the FAKE Azure Resource Manager (tests/FakeArm), whose
/// upload disks are real page blobs in Azurite. Most tests use the fake's synchronous answers; one runs every
/// long-running operation through Azure-AsyncOperation/Location polling (the SDK waits at least 1 s per poll).
/// </summary>
[Collection(FakeArmCollection.Name)]
public sealed class ArmControlPlaneTests(FakeArmFixture fixture)
{
    private const long UploadBytes = (20L << 20) + 512;
    private const string Location = "westeurope";
    private static readonly CancellationToken None = CancellationToken.None;

    private FakeArmProcess Fake => fixture.Fake;
    private AzuriteServer Azurite => fixture.Azurite;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    private static Dictionary<string, string> Tags(string run) => new() { ["asr-test"] = run, ["asr-item"] = "web01" };

    /// <summary>A disk created, granted and revoked: Unattached, ready to attach.</summary>
    private static async Task<string> UploadedDiskAsync(ArmControlPlane arm, string name, IReadOnlyDictionary<string, string> tags,
        AzureOsType? os = null, string? zone = null, string sku = "StandardSSD_LRS")
    {
        string id = await arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes)
        {
            OsType = os,
            HyperVGeneration = os is null ? null : AzureHyperVGeneration.V2,
            Zone = zone,
            Sku = sku,
            Tags = tags,
        }, None);
        await arm.GrantWriteAccessAsync(id, TimeSpan.FromHours(1), None);
        await arm.RevokeAccessAsync(id, None);
        return id;
    }

    private async Task<long> LastSequenceAsync() => (long?)(await Fake.RequestsAsync()).LastOrDefault()?["sequence"] ?? 0;

    private async Task<List<JsonObject>> RequestsSinceAsync(long sequence) =>
        (await Fake.RequestsAsync()).Where(r => (long)r["sequence"]! > sequence).ToList();

    private static IEnumerable<string> Sorted(IEnumerable<string> ids) => ids.Select(i => i.ToLowerInvariant()).Order(StringComparer.Ordinal);

    [FakeArmFact]
    public async Task UploadDisk_WriteAccess_IsARealPageBlobOfUploadSizeBytes_AndRevokeMakesItAttachable()
    {
        var arm = Fake.ControlPlane();
        string name = Unique("web01-os");
        string id = await arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes)
        {
            OsType = AzureOsType.Linux,
            HyperVGeneration = AzureHyperVGeneration.V2,
            Tags = Tags(Unique("run")),
        }, None);
        Assert.Equal(FakeArmProcess.DiskId(name), id, ignoreCase: true);
        var created = await arm.GetDiskAsync(id, None);
        Assert.NotNull(created);
        Assert.Equal(("ReadyToUpload", "Succeeded", UploadBytes), (created.DiskState, created.ProvisioningState, created.UploadSizeBytes!.Value));
        Assert.Equal("web01", created.Tags["asr-item"]);

        Uri sas = await arm.GrantWriteAccessAsync(id, TimeSpan.FromHours(1), None);
        Assert.StartsWith(Azurite.BlobEndpoint.ToString(), sas.ToString(), StringComparison.Ordinal);
        Assert.Contains("sp=rw", sas.Query, StringComparison.Ordinal);
        Assert.Equal("ActiveUpload", (await arm.GetDiskAsync(id, None))!.DiskState);

        // The page blob is real: exactly uploadSizeBytes, writable through the SAS (read back with the account key).
        var keyed = Azurite.ContainerClient(FakeArmProcess.Container).GetPageBlobClient(Uri.UnescapeDataString(sas.Segments[^1]));
        Assert.Equal(UploadBytes, (await keyed.GetPropertiesAsync()).Value.ContentLength);
        byte[] pages = new byte[8 * 512];
        Random.Shared.NextBytes(pages);
        await new PageBlobClient(sas).UploadPagesAsync(new MemoryStream(pages), 1 << 20);
        var read = await keyed.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(1 << 20, pages.Length) });
        Assert.Equal(pages, read.Value.Content.ToArray());

        await arm.RevokeAccessAsync(id, None);
        Assert.Equal("Unattached", (await arm.GetDiskAsync(id, None))!.DiskState);

        Assert.True(await arm.DeleteAsync(id, None));
        Assert.Null(await arm.GetDiskAsync(id, None));
        Assert.False((await keyed.ExistsAsync()).Value);
        Assert.False(await arm.DeleteAsync(id, None));
    }

    [FakeArmFact]
    public async Task VirtualMachine_FromAnOsAndTwoDataDisks_IsFoundByItsTag_AndDeletedVmFirst()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        // Another job's disk in the same resource group: never listed nor deleted by this job's tag.
        string decoy = await UploadedDiskAsync(arm, Unique("other-os"), Tags(Unique("run")));
        string subnet = FakeArmProcess.SubnetId(Unique("subnet"));
        await Fake.RegisterSubnetAsync(subnet);
        string os = await UploadedDiskAsync(arm, Unique("web01-os"), Tags(run), AzureOsType.Linux);
        string data0 = await UploadedDiskAsync(arm, Unique("web01-data0"), Tags(run));
        string data1 = await UploadedDiskAsync(arm, Unique("web01-data1"), Tags(run));
        string vmName = Unique("web01");

        string vmId = await arm.CreateVirtualMachineAsync(new AzureVmSpec(vmName, Location, "Standard_B2s", os, AzureOsType.Linux, subnet)
        {
            DataDisks = [new AzureDataDisk(1, data1), new AzureDataDisk(0, data0)],
            Tags = Tags(run),
        }, None);

        var vm = await arm.GetVirtualMachineAsync(vmId, None);
        Assert.NotNull(vm);
        Assert.Equal(("Succeeded", "Standard_B2s", true), (vm.ProvisioningState, vm.Size, vm.BootDiagnostics));
        Assert.Equal(os, vm.OsDiskId, ignoreCase: true);
        Assert.Equal([(0, data0.ToLowerInvariant()), (1, data1.ToLowerInvariant())], vm.DataDisks.Select(d => (d.Lun, d.DiskId.ToLowerInvariant())).Order());
        Assert.Equal(run, vm.Tags["asr-test"]);
        foreach (string disk in new[] { os, data0, data1 })
        {
            var info = (await arm.GetDiskAsync(disk, None))!;
            Assert.Equal("Attached", info.DiskState);
            Assert.Equal(vmId, info.ManagedBy, ignoreCase: true);
        }

        long before = await LastSequenceAsync();
        await Fake.ConfigureAsync("sync", listPageSize: 2);
        try
        {
            var listed = await arm.ListByTagAsync("asr-test", run, None);
            Assert.Equal(Sorted([vmId, os, data0, data1]), Sorted(listed.Select(r => r.Id)));
            Assert.Single(listed, r => r.IsVirtualMachine);
            Assert.Equal(3, listed.Count(r => r.IsDisk));
            // Two pages of two: the SDK followed the fake's nextLink.
            Assert.Contains(await RequestsSinceAsync(before), r => ((string)r["query"]!).Contains("skiptoken", StringComparison.OrdinalIgnoreCase));

            before = await LastSequenceAsync();
            var result = await arm.DeleteByTagAsync("asr-test", run, None);
            Assert.Equal(Sorted([vmId, os, data0, data1]), Sorted(result.Deleted.Select(r => r.Id)));
            Assert.Empty(result.NotDeleted);
            var deletes = (await RequestsSinceAsync(before)).Where(r => (string)r["method"]! == "DELETE").ToList();
            Assert.Equal(4, deletes.Count);
            Assert.EndsWith("/virtualMachines/" + vmName, (string)deletes[0]["path"]!, StringComparison.OrdinalIgnoreCase);
            Assert.All(deletes.Skip(1), d => Assert.Contains("/disks/", (string)d["path"]!, StringComparison.OrdinalIgnoreCase));
            Assert.Empty(await arm.ListByTagAsync("asr-test", run, None));
            Assert.NotNull(await arm.GetDiskAsync(decoy, None));
        }
        finally
        {
            await Fake.ConfigureAsync("sync");
            await arm.DeleteAsync(decoy, None);
        }
    }

    [FakeArmFact]
    public async Task AsyncMode_EveryOperation_IsPolledThroughAzureAsyncOperationOrLocation()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string subnet = FakeArmProcess.SubnetId(Unique("subnet"));
        await Fake.RegisterSubnetAsync(subnet);
        long before = await LastSequenceAsync();
        // Each operation answers InProgress once, then Succeeded.
        await Fake.ConfigureAsync("async", asyncPolls: 2);
        var clock = Stopwatch.StartNew();
        try
        {
            string name = Unique("web02-os");
            string os = await arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes) { OsType = AzureOsType.Windows, Tags = Tags(run) }, None);
            Assert.Equal("Succeeded", (await arm.GetDiskAsync(os, None))!.ProvisioningState);
            Uri sas = await arm.GrantWriteAccessAsync(os, TimeSpan.FromHours(1), None);
            await new PageBlobClient(sas).UploadPagesAsync(new MemoryStream(new byte[512]), 0);
            Assert.Equal("ActiveUpload", (await arm.GetDiskAsync(os, None))!.DiskState);
            await arm.RevokeAccessAsync(os, None);
            Assert.Equal("Unattached", (await arm.GetDiskAsync(os, None))!.DiskState);
            string vmName = Unique("web02");
            string vmId = await arm.CreateVirtualMachineAsync(new AzureVmSpec(vmName, Location, "Standard_B2s", os, AzureOsType.Windows, subnet) { Tags = Tags(run) }, None);
            Assert.Equal("Succeeded", (await arm.GetVirtualMachineAsync(vmId, None))!.ProvisioningState);
            var result = await arm.DeleteByTagAsync("asr-test", run, None);
            Assert.Equal(2, result.Deleted.Count);
            Assert.Null(await arm.GetDiskAsync(os, None));

            var requests = await RequestsSinceAsync(before);
            int StatusOf(string method, string pathEnd) =>
                (int)requests.Single(r => (string)r["method"]! == method && ((string)r["path"]!).EndsWith(pathEnd, StringComparison.OrdinalIgnoreCase))["status"]!;
            Assert.Equal(202, StatusOf("PUT", "/disks/" + name));                 // DiskRP accepts with 202 (never 201)
            Assert.Equal(202, StatusOf("POST", "/disks/" + name + "/beginGetAccess"));
            Assert.Equal(202, StatusOf("POST", "/disks/" + name + "/endGetAccess"));
            Assert.Equal(201, StatusOf("PUT", "/virtualMachines/" + vmName));
            Assert.Equal(202, StatusOf("DELETE", "/virtualMachines/" + vmName));
            Assert.Equal(202, StatusOf("DELETE", "/disks/" + name));
            var polls = requests.Where(r => ((string)r["path"]!).Contains("/operations/", StringComparison.OrdinalIgnoreCase)).ToList();
            var statusPolls = polls.Where(r => !((string)r["query"]!).Contains("monitor=true", StringComparison.Ordinal)).ToList();
            var locationPolls = polls.Where(r => ((string)r["query"]!).Contains("monitor=true", StringComparison.Ordinal)).ToList();
            // Disk PUT, grant, revoke, VM PUT, VM DELETE through Azure-AsyncOperation (twice each: InProgress, Succeeded);
            // the final Location GET of grant and revoke (final-state-via: location); the disk DELETE through Location.
            Assert.True(statusPolls.Count >= 10, $"{statusPolls.Count} Azure-AsyncOperation polls");
            Assert.True(locationPolls.Count >= 4, $"{locationPolls.Count} Location polls");
            Assert.All(polls, p => Assert.Contains((int)p["status"]!, new[] { 200, 202 }));
        }
        finally
        {
            await Fake.ConfigureAsync("sync");
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    /// <summary>The page blob behind a SAS the fake handed out, read with the account key.</summary>
    private PageBlobClient Keyed(Uri sas) => Azurite.ContainerClient(FakeArmProcess.Container).GetPageBlobClient(Uri.UnescapeDataString(sas.Segments[^1]));

    [FakeArmFact]
    public async Task Snapshot_OfAnAttachedDisk_IsAPointInTimeCopy_ReadThroughAReadOnlySas_AndDeleteByTagRemovesVmSnapshotAndDisks()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string subnet = FakeArmProcess.SubnetId(Unique("subnet"));
        await Fake.RegisterSubnetAsync(subnet);
        string osName = Unique("web11-os");
        string os = await arm.CreateUploadDiskAsync(new AzureDiskSpec(osName, Location, UploadBytes) { OsType = AzureOsType.Linux, HyperVGeneration = AzureHyperVGeneration.V2, Tags = Tags(run) }, None);
        Uri writeSas = await arm.GrantWriteAccessAsync(os, TimeSpan.FromHours(1), None);
        byte[] pages = new byte[64 << 10];
        Random.Shared.NextBytes(pages);
        await new PageBlobClient(writeSas).UploadPagesAsync(new MemoryStream(pages), 3 << 20);
        await arm.RevokeAccessAsync(os, None);
        var diskBlob = Keyed(writeSas);

        // An unattached disk can be read through a read-only SAS too.
        Uri diskRead = await arm.GrantReadAccessAsync(os, TimeSpan.FromMinutes(5), None);
        Assert.Contains("sp=r&", diskRead.Query + "&", StringComparison.Ordinal);
        Assert.Equal(pages, (await new PageBlobClient(diskRead).DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(3 << 20, pages.Length) })).Value.Content.ToArray());
        await arm.RevokeAccessAsync(os, None);
        Assert.Equal("Unattached", (await arm.GetDiskAsync(os, None))!.DiskState);

        string data = await UploadedDiskAsync(arm, Unique("web11-data0"), Tags(run));
        string vmId = await arm.CreateVirtualMachineAsync(new AzureVmSpec(Unique("web11"), Location, "Standard_B2s", os, AzureOsType.Linux, subnet)
        {
            DataDisks = [new AzureDataDisk(0, data)],
            Tags = Tags(run),
        }, None);
        Assert.Equal("Attached", (await arm.GetDiskAsync(os, None))!.DiskState);
        // An attached disk is not exported (its VM may be running): it is snapshotted.
        var refused = await Assert.ThrowsAsync<AsrException>(() => arm.GrantReadAccessAsync(os, TimeSpan.FromMinutes(5), None));
        Assert.Equal(AzureControlPlaneErrorIds.AzureRequestFailed, refused.ErrorId);
        Assert.Contains("OperationNotAllowed", refused.Message, StringComparison.Ordinal);

        string snapshotName = Unique("web11-os-snap");
        string snapshot = await arm.CreateSnapshotAsync(new AzureSnapshotSpec(snapshotName, Location, os) { Tags = Tags(run) }, None);
        Assert.Equal($"/subscriptions/{FakeArmProcess.SubscriptionId}/resourceGroups/{FakeArmProcess.ResourceGroup}/providers/Microsoft.Compute/snapshots/{snapshotName}", snapshot, ignoreCase: true);
        Assert.Equal("Attached", (await arm.GetDiskAsync(os, None))!.DiskState);   // the disk is untouched
        // The VM keeps writing after the snapshot: the snapshot holds the disk as it was.
        byte[] before = (await diskBlob.DownloadContentAsync()).Value.Content.ToArray();
        await diskBlob.UploadPagesAsync(new MemoryStream(Enumerable.Repeat((byte)0x5A, 4096).ToArray()), 5 << 20);

        Uri readSas = await arm.GrantReadAccessAsync(snapshot, TimeSpan.FromHours(1), None);
        Assert.StartsWith(Azurite.BlobEndpoint.ToString(), readSas.ToString(), StringComparison.Ordinal);
        Assert.Contains("sp=r&", readSas.Query + "&", StringComparison.Ordinal);
        var snapshotBlob = new PageBlobClient(readSas);
        byte[] copy = (await snapshotBlob.DownloadContentAsync()).Value.Content.ToArray();
        Assert.Equal(UploadBytes, copy.LongLength);
        int differs = before.AsSpan().CommonPrefixLength(copy);
        Assert.True(before.AsSpan().SequenceEqual(copy), $"the snapshot's blob differs from the disk's at the snapshot from byte {differs}");
        // Only the pages the disk held are valid pages of the copy (Get Page Ranges works through the read SAS).
        var ranges = new List<(long, long?)>();
        await foreach (var r in snapshotBlob.GetAllPageRangesAsync(new GetPageRangesOptions()))
            if (!r.IsClear) ranges.Add((r.Range.Offset, r.Range.Length));
        Assert.Equal([(3L << 20, (long?)pages.Length)], ranges);
        // Read-only.
        var write = await Assert.ThrowsAsync<RequestFailedException>(() => snapshotBlob.UploadPagesAsync(new MemoryStream(new byte[512]), 0));
        Assert.Equal(403, write.Status);
        await arm.RevokeAccessAsync(snapshot, None);

        long sequence = await LastSequenceAsync();
        var listed = await arm.ListByTagAsync("asr-test", run, None);
        Assert.Equal(Sorted([vmId, os, data, snapshot]), Sorted(listed.Select(r => r.Id)));
        Assert.Equal("Microsoft.Compute/snapshots", listed.Single(r => r.Name == snapshotName).Type, ignoreCase: true);
        var result = await arm.DeleteByTagAsync("asr-test", run, None);
        Assert.Equal(Sorted([vmId, os, data, snapshot]), Sorted(result.Deleted.Select(r => r.Id)));
        Assert.Empty(result.NotDeleted);
        var deletes = (await RequestsSinceAsync(sequence)).Where(r => (string)r["method"]! == "DELETE").Select(r => (string)r["path"]!).ToList();
        Assert.Equal(4, deletes.Count);
        Assert.Contains("/virtualMachines/", deletes[0], StringComparison.OrdinalIgnoreCase);
        Assert.Single(deletes, d => d.Contains("/snapshots/", StringComparison.OrdinalIgnoreCase));
        Assert.Empty(await arm.ListByTagAsync("asr-test", run, None));
        Assert.False((await Keyed(readSas).ExistsAsync()).Value);
        Assert.False(await arm.DeleteAsync(snapshot, None));
    }

    [FakeArmFact]
    public async Task AsyncMode_SnapshotCreateGrantRevokeDelete_ArePolledToCompletion()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string os = await UploadedDiskAsync(arm, Unique("web12-os"), Tags(run), AzureOsType.Windows);
        long before = await LastSequenceAsync();
        await Fake.ConfigureAsync("async", asyncPolls: 2);
        try
        {
            string name = Unique("web12-os-snap");
            string snapshot = await arm.CreateSnapshotAsync(new AzureSnapshotSpec(name, Location, os) { Incremental = false, Tags = Tags(run) }, None);
            Uri sas = await arm.GrantReadAccessAsync(snapshot, TimeSpan.FromHours(1), None);
            Assert.Equal(UploadBytes, (await new PageBlobClient(sas).GetPropertiesAsync()).Value.ContentLength);
            await arm.RevokeAccessAsync(snapshot, None);
            Assert.Equal(2, (await arm.DeleteByTagAsync("asr-test", run, None)).Deleted.Count);

            var requests = await RequestsSinceAsync(before);
            int StatusOf(string method, string pathEnd) =>
                (int)requests.Single(r => (string)r["method"]! == method && ((string)r["path"]!).EndsWith(pathEnd, StringComparison.OrdinalIgnoreCase))["status"]!;
            Assert.Equal(202, StatusOf("PUT", "/snapshots/" + name));
            Assert.Equal(202, StatusOf("POST", "/snapshots/" + name + "/beginGetAccess"));
            Assert.Equal(202, StatusOf("POST", "/snapshots/" + name + "/endGetAccess"));
            Assert.Equal(202, StatusOf("DELETE", "/snapshots/" + name));
            var put = JsonNode.Parse((string)requests.Single(r => (string)r["method"]! == "PUT")["body"]!)!;
            Assert.False((bool)put["properties"]!["incremental"]!);
            Assert.Empty(await arm.ListByTagAsync("asr-test", run, None));
        }
        finally
        {
            await Fake.ConfigureAsync("sync");
        }
    }

    [FakeArmFact]
    public async Task Throttling_429WithRetryAfter_IsRetriedByTheSdk_AndSucceeds()
    {
        var arm = Fake.ControlPlane();
        string name = Unique("web03-os");
        await Fake.InjectAsync("PUT", "/disks/" + name, 429, "TooManyRequests", count: 1, retryAfter: 1);
        long before = await LastSequenceAsync();

        string id = await arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes), None);

        var puts = (await RequestsSinceAsync(before)).Where(r => (string)r["method"]! == "PUT").ToList();
        Assert.Equal([429, 200], puts.Select(r => (int)r["status"]!));
        var gap = DateTimeOffset.Parse((string)puts[1]["received"]!) - DateTimeOffset.Parse((string)puts[0]["received"]!);
        Assert.True(gap >= TimeSpan.FromSeconds(0.9), $"retried after {gap}, before Retry-After: 1");
        Assert.True(await arm.DeleteAsync(id, None));
    }

    [FakeArmFact]
    public async Task Throttling_ThroughAllRetries_IsAzureThrottled()
    {
        var arm = Fake.ControlPlane(maxRetries: 2);
        string name = Unique("web04-os");
        await Fake.InjectAsync("PUT", "/disks/" + name, 429, "TooManyRequests", count: 3, retryAfter: 0);

        var ex = await Assert.ThrowsAsync<AsrException>(() => arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes), None));

        Assert.Equal((AzureControlPlaneErrorIds.AzureThrottled, AsrErrorKind.ResourceBusy), (ex.ErrorId, ex.Kind));
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
        Assert.Null(await arm.GetDiskAsync(FakeArmProcess.DiskId(name), None));
    }

    [FakeArmFact]
    public async Task FailedVmCreate_QuotaExceeded_IsAzureQuotaExceededNamingTheVm_AndWhatWasMadeIsListedForCleanup()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string subnet = FakeArmProcess.SubnetId(Unique("subnet"));
        await Fake.RegisterSubnetAsync(subnet);
        string os = await UploadedDiskAsync(arm, Unique("web05-os"), Tags(run), AzureOsType.Linux);
        string vmName = Unique("web05");
        await Fake.InjectFailedOperationAsync("PUT", "/virtualMachines/" + vmName, "QuotaExceeded",
            "Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota.");

        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            arm.CreateVirtualMachineAsync(new AzureVmSpec(vmName, Location, "Standard_D4s_v3", os, AzureOsType.Linux, subnet) { Tags = Tags(run) }, None));

        Assert.Equal((AzureControlPlaneErrorIds.AzureQuotaExceeded, AsrErrorKind.InvalidOperation), (ex.ErrorId, ex.Kind));
        Assert.Contains($"'{vmName}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("QuotaExceeded", ex.Message, StringComparison.Ordinal);
        Assert.Equal(vmName, ex.Target);
        // As Azure does, the failed VM stays (Failed, its disk attached): it carries the job's tag, so cleanup finds it.
        var listed = await arm.ListByTagAsync("asr-test", run, None);
        string vmId = listed.Single(r => r.IsVirtualMachine).Id;
        Assert.Equal(Sorted([vmId, os]), Sorted(listed.Select(r => r.Id)));
        Assert.Equal("Failed", (await arm.GetVirtualMachineAsync(vmId, None))!.ProvisioningState);
        Assert.Equal(2, (await arm.DeleteByTagAsync("asr-test", run, None)).Deleted.Count);
        Assert.Empty(await arm.ListByTagAsync("asr-test", run, None));
    }

    [FakeArmFact]
    public async Task VmCreate_InAMissingSubnet_IsAzureResourceNotFoundNamingTheSubnet_AndCreatesNoVm()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string os = await UploadedDiskAsync(arm, Unique("web06-os"), Tags(run), AzureOsType.Linux);
        string missing = FakeArmProcess.SubnetId(Unique("missing"));
        string vmName = Unique("web06");

        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            arm.CreateVirtualMachineAsync(new AzureVmSpec(vmName, Location, "Standard_B2s", os, AzureOsType.Linux, missing) { Tags = Tags(run) }, None));

        Assert.Equal((AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound), (ex.ErrorId, ex.Kind));
        Assert.Contains(missing, ex.Message, StringComparison.Ordinal);
        Assert.Contains("InvalidResourceReference", ex.Message, StringComparison.Ordinal);
        Assert.Equal(vmName, ex.Target);
        var listed = await arm.ListByTagAsync("asr-test", run, None);
        Assert.Equal(Sorted([os]), Sorted(listed.Select(r => r.Id)));
        Assert.Equal("Unattached", (await arm.GetDiskAsync(os, None))!.DiskState);
        Assert.Single((await arm.DeleteByTagAsync("asr-test", run, None)).Deleted);
    }

    public static TheoryData<int, string, string, AsrErrorKind> Failures => new()
    {
        { 401, "AuthenticationFailed", AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError },
        { 403, "AuthorizationFailed", AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError },
        { 409, "OperationNotAllowed", AzureControlPlaneErrorIds.AzureQuotaExceeded, AsrErrorKind.InvalidOperation },
        { 409, "SkuNotAvailable", AzureControlPlaneErrorIds.AzureSkuNotAvailable, AsrErrorKind.InvalidArgument },
        { 404, "ResourceGroupNotFound", AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound },
        { 429, "TooManyRequests", AzureControlPlaneErrorIds.AzureThrottled, AsrErrorKind.ResourceBusy },
        { 503, "ServiceUnavailable", AzureControlPlaneErrorIds.AzureUnavailable, AsrErrorKind.ConnectionError },
        { 400, "InvalidParameter", AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation },
    };

    [FakeArmTheory]
    [MemberData(nameof(Failures))]
    public async Task ArmFailures_MapToStableIds_NamingTheResource_WithoutTheToken(int status, string code, string errorId, AsrErrorKind kind)
    {
        string token = "secret-" + Guid.NewGuid().ToString("N");
        var arm = Fake.ControlPlane(maxRetries: 0, token: token);
        string name = Unique("web07-os");
        // A service that echoes what it got must not leak it either: the fault's message carries the token.
        await Fake.InjectAsync("PUT", "/disks/" + name, status, code, $"Operation results in exceeding quota limits of Core. Token {token}.");

        var ex = await Assert.ThrowsAsync<AsrException>(() => arm.CreateUploadDiskAsync(new AzureDiskSpec(name, Location, UploadBytes), None));

        Assert.Equal((errorId, kind), (ex.ErrorId, ex.Kind));
        Assert.Contains($"'{name}'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(name, ex.Target);
        Assert.DoesNotContain(token, ex.Message, StringComparison.Ordinal);
        if (kind == AsrErrorKind.SecurityError) Assert.DoesNotContain(token, ex.ToString(), StringComparison.Ordinal);
    }

    [FakeArmFact]
    public async Task InvalidSpecs_AreRefusedBeforeAnyRequest()
    {
        var arm = Fake.ControlPlane();
        long before = await LastSequenceAsync();
        string os = FakeArmProcess.DiskId("os"), subnet = FakeArmProcess.SubnetId("default");
        var attempts = new Func<Task>[]
        {
            () => arm.CreateUploadDiskAsync(new AzureDiskSpec("web08-os", Location, 20L << 20), None),              // no footer
            () => arm.CreateUploadDiskAsync(new AzureDiskSpec("web08-os", Location, (10L << 20) + 512), None),      // below 20 MiB
            () => arm.CreateUploadDiskAsync(new AzureDiskSpec("web08 os", Location, UploadBytes), None),            // name
            () => arm.CreateVirtualMachineAsync(new AzureVmSpec("web08", Location, "Standard_B2s", os, AzureOsType.Linux, subnet)
                { DataDisks = [new AzureDataDisk(0, os), new AzureDataDisk(0, os)] }, None),                            // LUN twice
            () => arm.CreateVirtualMachineAsync(new AzureVmSpec("web08", Location, "Standard_B2s", os, AzureOsType.Linux, "default"), None), // subnet id
            () => arm.GrantWriteAccessAsync(FakeArmProcess.SubnetId("x"), TimeSpan.FromHours(1), None),              // not a disk
            () => arm.DeleteAsync(FakeArmProcess.SubnetId("x"), None),                                               // not ours to delete
            () => arm.CreateSnapshotAsync(new AzureSnapshotSpec("web08 snap", Location, os), None),                      // name
            () => arm.CreateSnapshotAsync(new AzureSnapshotSpec("web08-snap", Location, FakeArmProcess.SubnetId("x")), None), // not of a disk
            () => arm.GrantReadAccessAsync(FakeArmProcess.SubnetId("x"), TimeSpan.FromHours(1), None),               // not a disk or snapshot
            () => arm.GrantReadAccessAsync(os, TimeSpan.Zero, None),                                                  // no duration
            () => arm.RevokeAccessAsync(FakeArmProcess.SubnetId("x"), None),                                         // not a disk or snapshot
        };
        foreach (var attempt in attempts)
        {
            var ex = await Assert.ThrowsAsync<AsrException>(attempt);
            Assert.Equal((AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument), (ex.ErrorId, ex.Kind));
        }
        Assert.Empty(await RequestsSinceAsync(before));
    }

    /// <summary>
    /// Every request body the control plane sends (read back from the fake's log) against the vendored
    /// azure-rest-api-specs examples of its operation: every property path sent appears in an example (or in the
    /// short, cited <see cref="SpecExamples.DefinedButNotExemplified"/> list), nothing read-only is sent, and what the
    /// operation needs is there. The fake's own answers are checked against the example responses too.
    /// </summary>
    [FakeArmFact]
    public async Task RequestBodies_UseOnlyPropertiesOfTheSpecExamples_AndCarryTheRequiredOnes()
    {
        var arm = Fake.ControlPlane();
        string run = Unique("run");
        string subnet = FakeArmProcess.SubnetId(Unique("subnet"));
        await Fake.RegisterSubnetAsync(subnet);
        long before = await LastSequenceAsync();

        // Everything the control plane can send: zonal disks with OS type, generation, SKU and tags; a zonal VM with a
        // data disk and boot diagnostics; a Trusted Launch VM without; list and delete by tag.
        string os1 = await UploadedDiskAsync(arm, Unique("web09-os"), Tags(run), AzureOsType.Linux, zone: "1", sku: "Premium_LRS");
        string data1 = await UploadedDiskAsync(arm, Unique("web09-data0"), Tags(run), zone: "1");
        string vm1 = await arm.CreateVirtualMachineAsync(new AzureVmSpec(Unique("web09"), Location, "Standard_D2s_v3", os1, AzureOsType.Linux, subnet)
        {
            Zone = "1",
            DataDisks = [new AzureDataDisk(0, data1)],
            Tags = Tags(run),
        }, None);
        string os2 = await UploadedDiskAsync(arm, Unique("web10-os"), Tags(run), AzureOsType.Windows);
        string vm2 = await arm.CreateVirtualMachineAsync(new AzureVmSpec(Unique("web10"), Location, "Standard_D2s_v3", os2, AzureOsType.Windows, subnet)
        {
            Security = AzureVmSecurity.TrustedLaunch,
            SecureBoot = true,
            BootDiagnostics = false,
            Tags = Tags(run),
        }, None);

        // A snapshot of an attached disk, read; a read grant of an unattached disk.
        string snapshot = await arm.CreateSnapshotAsync(new AzureSnapshotSpec(Unique("web09-os-snap"), Location, os1) { Tags = Tags(run) }, None);
        await arm.GrantReadAccessAsync(snapshot, TimeSpan.FromMinutes(5), None);
        await arm.RevokeAccessAsync(snapshot, None);
        string spare = await UploadedDiskAsync(arm, Unique("web09-spare"), Tags(run));
        await arm.GrantReadAccessAsync(spare, TimeSpan.FromMinutes(5), None);
        await arm.RevokeAccessAsync(spare, None);

        // The fake's answers have the shapes of the example responses (plus the read-only disk properties the spec
        // defines that no example shows).
        var diskResponse = await GetFromFakeAsync(os1 + "?api-version=2023-04-02");
        var vmResponse = await GetFromFakeAsync(vm1 + "?api-version=2023-07-01");
        var diskShapes = SpecExamples.ResponsePaths(SpecExamples.DiskCreate.ResponseExamples).Union(SpecExamples.AllowedRequestPaths(SpecExamples.DiskCreate))
            .Union(["properties.diskState", "properties.uniqueId", "properties.diskSizeBytes"]).ToHashSet();
        var vmShapes = SpecExamples.ResponsePaths(SpecExamples.VmCreate.ResponseExamples).Union(SpecExamples.AllowedRequestPaths(SpecExamples.VmCreate)).ToHashSet();
        Assert.Empty(SpecExamples.Paths(diskResponse).Except(diskShapes));
        Assert.Empty(SpecExamples.Paths(vmResponse).Except(vmShapes));
        var snapshotResponse = await GetFromFakeAsync(snapshot + "?api-version=2023-04-02");
        var snapshotShapes = SpecExamples.ResponsePaths(SpecExamples.SnapshotCreate.ResponseExamples).Union(SpecExamples.AllowedRequestPaths(SpecExamples.SnapshotCreate)).ToHashSet();
        Assert.Empty(SpecExamples.Paths(snapshotResponse).Except(snapshotShapes));
        Assert.Equal("Microsoft.Compute/snapshots", (string?)snapshotResponse["type"]);
        Assert.True((bool)snapshotResponse["properties"]!["incremental"]!);
        Assert.Equal(os1, (string?)snapshotResponse["properties"]!["creationData"]!["sourceResourceId"], ignoreCase: true);

        Assert.Equal(Sorted([os1, data1, vm1, os2, vm2, snapshot, spare]), Sorted((await arm.DeleteByTagAsync("asr-test", run, None)).Deleted.Select(r => r.Id)));

        var requests = await RequestsSinceAsync(before);
        // What the SDK sent (the test's own two GETs above are not the control plane's).
        var sdkRequests = requests.Where(r => ((string?)r["userAgent"] ?? "").StartsWith("azsdk-net-", StringComparison.Ordinal)).ToList();
        Assert.Equal(requests.Count - 3, sdkRequests.Count);
        var checkedOperations = new HashSet<string>();
        foreach (var request in sdkRequests)
        {
            string method = (string)request["method"]!, path = (string)request["path"]!, query = (string)request["query"]!;
            string? body = (string?)request["body"];
            Assert.True((bool)request["bearer"]!, $"{method} {path} without a bearer token");
            if (path.Contains("/operations/", StringComparison.OrdinalIgnoreCase)) continue;
            SpecExamples.Operation? operation = null;
            string apiVersion;
            if (path.Contains("/providers/Microsoft.Compute/disks/", StringComparison.OrdinalIgnoreCase))
            {
                apiVersion = "2023-04-02";
                if (method == "PUT") operation = SpecExamples.DiskCreate;
                else if (method == "POST" && path.EndsWith("/beginGetAccess", StringComparison.OrdinalIgnoreCase)) operation = SpecExamples.DiskGrantAccess;
            }
            else if (path.Contains("/providers/Microsoft.Compute/snapshots/", StringComparison.OrdinalIgnoreCase))
            {
                apiVersion = "2023-04-02";
                if (method == "PUT") operation = SpecExamples.SnapshotCreate;
                else if (method == "POST" && path.EndsWith("/beginGetAccess", StringComparison.OrdinalIgnoreCase)) operation = SpecExamples.SnapshotGrantAccess;
            }
            else if (path.Contains("/providers/Microsoft.Compute/virtualMachines/", StringComparison.OrdinalIgnoreCase))
            {
                apiVersion = "2023-07-01";
                if (method == "PUT") operation = SpecExamples.VmCreate;
            }
            else
            {
                Assert.Equal("GET", method);
                Assert.EndsWith("/resources", path, StringComparison.OrdinalIgnoreCase);
                apiVersion = "2022-09-01";
            }
            Assert.Contains("api-version=" + apiVersion, query, StringComparison.Ordinal);
            if (operation is null)
            {
                Assert.True(string.IsNullOrEmpty(body), $"{method} {path} sent a body its operation does not take: {body}");
                continue;
            }
            var sent = JsonNode.Parse(body!)!;
            var paths = SpecExamples.Paths(sent);
            var unknown = paths.Except(SpecExamples.AllowedRequestPaths(operation)).ToList();
            Assert.True(unknown.Count == 0, $"{operation.Name}: sent {string.Join(", ", unknown)}, which no example of the spec shows");
            Assert.Empty(paths.Intersect(SpecExamples.ReadOnly));
            CheckRequired(operation, sent, paths);
            checkedOperations.Add(operation.Name);
        }
        Assert.Equal(["Disks_CreateOrUpdate", "Disks_GrantAccess", "Snapshots_CreateOrUpdate", "Snapshots_GrantAccess", "VirtualMachines_CreateOrUpdate"],
            checkedOperations.Order(StringComparer.Ordinal));

        // The cited exceptions are still needed: none of them appears in a vendored example.
        foreach (var (operationName, extra) in SpecExamples.DefinedButNotExemplified)
        {
            var operation = new[] { SpecExamples.DiskCreate, SpecExamples.VmCreate }.Single(o => o.Name == operationName);
            var exemplified = operation.RequestExamples.SelectMany(f => SpecExamples.Paths(SpecExamples.Load(f)["parameters"]![operation.RequestParameter]))
                .Concat(SpecExamples.ResponsePaths(operation.ResponseExamples)).ToHashSet();
            Assert.Empty(extra.Keys.Intersect(exemplified));
        }
    }

    private static void CheckRequired(SpecExamples.Operation operation, JsonNode sent, IReadOnlySet<string> paths)
    {
        string[] required = operation.Name switch
        {
            "Disks_CreateOrUpdate" => ["location", "sku.name", "tags.*", "properties.creationData.createOption", "properties.creationData.uploadSizeBytes"],
            "Disks_GrantAccess" or "Snapshots_GrantAccess" => ["access", "durationInSeconds"],
            "Snapshots_CreateOrUpdate" => ["location", "tags.*", "properties.creationData.createOption", "properties.creationData.sourceResourceId", "properties.incremental"],
            _ =>
            [
                "location", "tags.*", "properties.hardwareProfile.vmSize",
                "properties.storageProfile.osDisk.createOption", "properties.storageProfile.osDisk.osType", "properties.storageProfile.osDisk.managedDisk.id",
                "properties.networkProfile.networkApiVersion",
                "properties.networkProfile.networkInterfaceConfigurations[].name",
                "properties.networkProfile.networkInterfaceConfigurations[].properties.primary",
                "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].name",
                "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.subnet.id",
            ],
        };
        Assert.Empty(required.Except(paths));
        switch (operation.Name)
        {
            case "Disks_CreateOrUpdate":
                Assert.Equal("Upload", (string?)sent["properties"]!["creationData"]!["createOption"]);
                break;
            case "Disks_GrantAccess":
                Assert.Contains((string?)sent["access"], new[] { "Write", "Read" });
                break;
            case "Snapshots_GrantAccess":
                Assert.Equal("Read", (string?)sent["access"]);
                break;
            case "Snapshots_CreateOrUpdate":
                Assert.Equal("Copy", (string?)sent["properties"]!["creationData"]!["createOption"]);
                Assert.Matches("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Compute/disks/[^/]+$", (string)sent["properties"]!["creationData"]!["sourceResourceId"]!);
                break;
            default:
                var storage = sent["properties"]!["storageProfile"]!;
                Assert.Equal("Attach", (string?)storage["osDisk"]!["createOption"]);
                Assert.All((storage["dataDisks"] as JsonArray ?? []).OfType<JsonObject>(), d => Assert.Equal("Attach", (string?)d["createOption"]));
                Assert.Null(sent["properties"]!["osProfile"]);   // a specialized disk: no OS profile
                break;
        }
    }

    private async Task<JsonObject> GetFromFakeAsync(string relative)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, relative.TrimStart('/'));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "shape-check");
        using var response = await Fake.Control.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return (JsonObject)JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }
}
