using System.Text.Json.Nodes;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// The azure-rest-api-specs examples vendored in tests/FakeArm/examples (NOTICE.md there gives repository, path and
/// commit of each) as property paths: "properties.creationData.uploadSizeBytes",
/// "properties.storageProfile.dataDisks[].lun", "tags.*" (a map's keys are data, not properties).
/// </summary>
internal static class SpecExamples
{
    /// <summary>What an operation's request body may contain: the request bodies of its examples, plus the writable
    /// paths of the resource's example responses (the PUT body and the responses are one definition in the spec:
    /// disk.json's Disk, virtualMachine.json's VirtualMachine), less <see cref="ReadOnly"/>.</summary>
    public sealed record Operation(string Name, IReadOnlyList<string> RequestExamples, string RequestParameter, IReadOnlyList<string> ResponseExamples);

    public static readonly Operation DiskCreate = new("Disks_CreateOrUpdate",
        ["DiskRP-2023-04-02/Disk_Create_UploadDisk.json", "DiskRP-2023-04-02/Disk_Create_FromUploadPreparedSecure.json", "DiskRP-2023-04-02/Disk_Create_WithSSDZRSAccountType.json"],
        "disk",
        ["DiskRP-2023-04-02/Disk_Get.json", "DiskRP-2023-04-02/Disk_Create_UploadDisk.json", "DiskRP-2023-04-02/Disk_Create_FromUploadPreparedSecure.json", "DiskRP-2023-04-02/Disk_Create_WithSSDZRSAccountType.json"]);

    public static readonly Operation DiskGrantAccess = new("Disks_GrantAccess", ["DiskRP-2023-04-02/Disk_BeginGetAccess.json"], "grantAccessData", []);

    public static readonly Operation SnapshotCreate = new("Snapshots_CreateOrUpdate",
        ["DiskRP-2023-04-02/Snapshot_Create_FromAnExistingSnapshot.json"],
        "snapshot",
        ["DiskRP-2023-04-02/Snapshot_Get.json", "DiskRP-2023-04-02/Snapshot_GetIncrementalSnapshot.json", "DiskRP-2023-04-02/Snapshot_Create_FromAnExistingSnapshot.json"]);

    public static readonly Operation SnapshotGrantAccess = new("Snapshots_GrantAccess", ["DiskRP-2023-04-02/Snapshot_BeginGetAccess.json"], "grantAccessData", []);

    public static readonly Operation VmCreate = new("VirtualMachines_CreateOrUpdate",
        [
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithNetworkInterfaceConfiguration.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithDiskEncryptionSetResource.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithManagedBootDiagnostics.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithUefiSettings.json",
        ],
        "parameters",
        [
            "ComputeRP-2023-07-01/VirtualMachine_Get.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithNetworkInterfaceConfiguration.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithDiskEncryptionSetResource.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithManagedBootDiagnostics.json",
            "ComputeRP-2023-07-01/VirtualMachine_Create_WithUefiSettings.json",
        ]);

    /// <summary>Read-only in the spec (readOnly: true in disk.json, snapshot.json / virtualMachine.json): never to be sent.</summary>
    public static readonly IReadOnlySet<string> ReadOnly = new HashSet<string>(StringComparer.Ordinal)
    {
        "id", "name", "type", "managedBy", "sku.tier", "resources",
        "properties.provisioningState", "properties.timeCreated", "properties.diskState", "properties.uniqueId",
        "properties.diskSizeBytes", "properties.LastOwnershipUpdateTime", "properties.vmId", "properties.instanceView",
        "properties.incrementalSnapshotFamilyId", "properties.creationData.sourceUniqueId",
    };

    /// <summary>
    /// Paths the spec defines that none of the vendored examples shows, each with where it is defined. Kept short on
    /// purpose: anything else sent must appear in an example.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> DefinedButNotExemplified =
        new Dictionary<string, IReadOnlyDictionary<string, string>>
        {
            [DiskCreate.Name] = new Dictionary<string, string>
            {
                ["zones"] = "DiskRP/stable/2023-04-02/disk.json @ 693e25cd, definitions.Disk.properties.zones (\"The Logical zone list for Disk.\")",
            },
            [VmCreate.Name] = new Dictionary<string, string>
            {
                ["zones"] = "ComputeRP/stable/2023-07-01/virtualMachine.json, definitions.VirtualMachine.properties.zones (Azure.ResourceManager.Compute 1.2.0 VirtualMachineData.Zones)",
                ["properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.subnet.id"] =
                    "ComputeRP/stable/2023-07-01/examples/virtualMachineScaleSetExamples/VirtualMachineScaleSetVM_Update_MaximumSet_Gen.json @ 1fc7d717 " +
                    "(62 KB, not vendored): the same path under a scale-set VM, whose networkProfile is the VM's NetworkProfile definition",
            },
        };

    public static JsonObject Load(string relativePath) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(FakeArmProcess.Directory, "examples", relativePath)))!;

    /// <summary>The paths an operation's request body may contain (see <see cref="Operation"/>).</summary>
    public static IReadOnlySet<string> AllowedRequestPaths(Operation operation)
    {
        var allowed = new HashSet<string>(StringComparer.Ordinal);
        foreach (string file in operation.RequestExamples)
            allowed.UnionWith(Paths(Load(file)["parameters"]![operation.RequestParameter]));
        foreach (string file in operation.ResponseExamples)
            foreach (var response in ((JsonObject)Load(file)["responses"]!).Select(r => r.Value?["body"]).OfType<JsonObject>())
                allowed.UnionWith(Paths(response).Where(p => !ReadOnly.Contains(p)));
        // An exception's parent objects come with it ("…properties.subnet" with "…properties.subnet.id").
        if (DefinedButNotExemplified.TryGetValue(operation.Name, out var extra))
            foreach (string path in extra.Keys)
                for (int dot = path.Length; dot > 0; dot = path.LastIndexOf('.', dot - 1))
                    allowed.Add(path[..dot]);
        return allowed;
    }

    /// <summary>Every path in the response bodies of the given examples.</summary>
    public static IReadOnlySet<string> ResponsePaths(IEnumerable<string> files)
    {
        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (string file in files)
            foreach (var response in ((JsonObject)Load(file)["responses"]!).Select(r => r.Value?["body"]).OfType<JsonObject>())
                paths.UnionWith(Paths(response));
        return paths;
    }

    /// <summary>The property paths of a JSON value: leaves and objects both (so "tags" and "tags.*" for a map).</summary>
    public static IReadOnlySet<string> Paths(JsonNode? node)
    {
        var paths = new HashSet<string>(StringComparer.Ordinal);
        Walk(node, "", paths);
        return paths;
    }

    private static void Walk(JsonNode? node, string prefix, HashSet<string> paths)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    bool map = key == "tags" && value is JsonObject;
                    string path = prefix.Length == 0 ? key : $"{prefix}.{key}";
                    paths.Add(path);
                    if (map) paths.Add(path + ".*");
                    else Walk(value, path, paths);
                }
                break;
            case JsonArray array:
                foreach (var item in array) Walk(item, prefix + "[]", paths);
                break;
        }
    }
}
