using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>A virtual machine held by the fake (Microsoft.Compute/virtualMachines, api-version 2023-07-01).</summary>
internal sealed class FakeVm
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string ResourceGroup { get; init; }
    public required string Location { get; set; }
    public JsonArray? Zones { get; set; }
    public JsonObject? Tags { get; set; }
    /// <summary>The properties as sent.</summary>
    public JsonObject Properties { get; set; } = [];
    public string ProvisioningState { get; set; } = "Succeeded";
    public string VmId { get; } = Guid.NewGuid().ToString();
    public DateTimeOffset TimeCreated { get; } = DateTimeOffset.UtcNow;
    /// <summary>Ids of the disks attached (OS disk first).</summary>
    public List<string> DiskIds { get; } = [];

    /// <summary>The VM as ComputeRP answers it (shape of VirtualMachine_Create_WithNetworkInterfaceConfiguration.json
    /// and VirtualMachine_Get.json): the NICs made from networkInterfaceConfigurations appear as networkInterfaces.</summary>
    public JsonObject ToJson()
    {
        var properties = (JsonObject)Properties.DeepClone();
        properties["vmId"] = VmId;
        properties["provisioningState"] = ProvisioningState;
        properties["timeCreated"] = TimeCreated.ToString("O");
        if (properties["networkProfile"] is JsonObject network && network["networkInterfaceConfigurations"] is JsonArray configurations)
        {
            string prefix = Id[..Id.IndexOf("/providers/", StringComparison.OrdinalIgnoreCase)];
            var nics = new JsonArray();
            foreach (var c in configurations.OfType<JsonObject>())
                nics.Add(new JsonObject
                {
                    ["id"] = $"{prefix}/providers/Microsoft.Network/networkInterfaces/{(string?)c["name"]}",
                    ["properties"] = new JsonObject { ["primary"] = (bool?)c["properties"]?["primary"] ?? false },
                });
            network["networkInterfaces"] = nics;
        }
        var vm = new JsonObject
        {
            ["id"] = Id,
            ["name"] = Name,
            ["type"] = "Microsoft.Compute/virtualMachines",
            ["location"] = Location,
        };
        if (Zones is not null) vm["zones"] = Zones.DeepClone();
        if (Tags is not null) vm["tags"] = Tags.DeepClone();
        vm["properties"] = properties;
        return vm;
    }
}
