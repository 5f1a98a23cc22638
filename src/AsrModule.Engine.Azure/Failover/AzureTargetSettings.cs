using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Where and how <see cref="AsrAzureTarget"/> makes recovered machines: one subscription and resource group (everything
/// is created there, and only there is anything deleted), a region, the subnets of failovers and of drills, and the
/// defaults of VM size, disk SKU, zone and OS type, which <see cref="Machines"/> overrides per protected item. No secret:
/// the credential is separate (<see cref="AzureTargetCredential"/>).
/// </summary>
public sealed record AzureTargetSettings
{
    /// <summary>The subscription's id (a GUID).</summary>
    public required string SubscriptionId { get; init; }

    /// <summary>The resource group the disks and VMs are created in; it must exist.</summary>
    public required string ResourceGroupName { get; init; }

    /// <summary>The Azure region (location) of the disks and VMs: westeurope, eastus2, ... ("West Europe" is read as westeurope).</summary>
    public required string Region { get; init; }

    /// <summary>The subnet of failed-over VMs: /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/…/subnets/….</summary>
    public required string SubnetId { get; init; }

    /// <summary>The subnet of drill VMs, in a network isolated from production; drills are refused without one.</summary>
    public string? TestSubnetId { get; init; }

    public string VmSize { get; init; } = "Standard_D2s_v5";

    /// <summary>The managed disks' SKU (Standard_LRS, StandardSSD_LRS, Premium_LRS, ...); an upload disk is billed as Standard HDD until its upload ends.</summary>
    public string DiskSku { get; init; } = "StandardSSD_LRS";

    /// <summary>An availability zone (1, 2, 3) for the VMs and their disks, or null for regional ones.</summary>
    public string? Zone { get; init; }

    public AzureOsType OsType { get; init; } = AzureOsType.Linux;

    /// <summary>Tags put on everything created, besides the target's own (asr-*; those win on a clash).</summary>
    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();

    /// <summary>Per protected item (by name, case-insensitive): what differs from the values above.</summary>
    public IReadOnlyDictionary<string, AzureMachineSettings> Machines { get; init; } = new Dictionary<string, AzureMachineSettings>();

    public AzureCloud Cloud { get; init; } = AzureCloud.AzurePublic;

    /// <summary>The region as ARM writes it: lower case, without spaces.</summary>
    internal string NormalizedRegion => Region.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant();

    /// <summary>The overrides of <paramref name="itemName"/>, or null.</summary>
    public AzureMachineSettings? MachineSettings(string itemName) =>
        Machines.FirstOrDefault(m => string.Equals(m.Key, itemName, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>What applies to <paramref name="itemName"/>: its overrides over the target's values.</summary>
    internal AzureMachinePlacement PlacementOf(string itemName)
    {
        var m = MachineSettings(itemName);
        return new AzureMachinePlacement(
            m?.VmSize ?? VmSize,
            m?.SubnetId ?? SubnetId,
            m?.TestSubnetId ?? TestSubnetId,
            m?.Zone ?? Zone,
            m?.OsType ?? OsType,
            m?.HyperVGeneration,
            m?.DiskSku ?? DiskSku);
    }

    /// <summary>Checks the shapes of everything (no network); throws FailoverTargetInvalid naming what is wrong.</summary>
    internal void Validate()
    {
        if (!Guid.TryParse(SubscriptionId, out _))
            throw Invalid($"'{SubscriptionId}' is not a subscription id: give the subscription's GUID (Get-AzSubscription shows it).", SubscriptionId);
        if (string.IsNullOrEmpty(ResourceGroupName) || !AzureResourceNames.ResourceGroupPattern().IsMatch(ResourceGroupName))
            throw Invalid($"'{ResourceGroupName}' is not a resource group name: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending with '.'.", ResourceGroupName);
        if (string.IsNullOrWhiteSpace(Region) || !AzureResourceNames.RegionPattern().IsMatch(NormalizedRegion))
            throw Invalid($"'{Region}' is not an Azure region: give its name as ARM writes it (westeurope, eastus2; Get-AzLocation lists them).", Region);
        ArgumentNullException.ThrowIfNull(Cloud);
        CheckPlacement("the target", VmSize, SubnetId, TestSubnetId, Zone, DiskSku, subnetRequired: true);
        ArgumentNullException.ThrowIfNull(Tags);
        ArgumentNullException.ThrowIfNull(Machines);
        CheckTags();
        foreach (var group in Machines.Keys.GroupBy(k => k, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
            throw Invalid($"The machine settings name '{group.Key}' more than once (names are compared ignoring case).", group.Key);
        foreach (var (name, machine) in Machines)
        {
            if (machine is null) throw Invalid($"The settings of machine '{name}' are empty.", name);
            CheckPlacement($"machine '{name}'", machine.VmSize, machine.SubnetId, machine.TestSubnetId, machine.Zone, machine.DiskSku, subnetRequired: false);
        }
    }

    private static void CheckPlacement(string whose, string? vmSize, string? subnetId, string? testSubnetId, string? zone, string? diskSku, bool subnetRequired)
    {
        if ((subnetRequired || subnetId is not null) && !AzureResourceNames.IsSubnetId(subnetId))
            throw Invalid($"The subnet '{subnetId}' of {whose} is not a subnet id: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>.", subnetId ?? "");
        if (testSubnetId is not null && !AzureResourceNames.IsSubnetId(testSubnetId))
            throw Invalid($"The test subnet '{testSubnetId}' of {whose} is not a subnet id: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>.", testSubnetId);
        if (testSubnetId is not null && subnetId is not null && string.Equals(testSubnetId, subnetId, StringComparison.OrdinalIgnoreCase))
            throw Invalid($"The test subnet of {whose} is its failover subnet '{subnetId}': drills need an isolated network, so that a drill VM never answers as production.", testSubnetId);
        if (vmSize is not null && !AzureResourceNames.SkuPattern().IsMatch(vmSize))
            throw Invalid($"'{vmSize}' ({whose}) is not a VM size: a name such as Standard_D2s_v5.", vmSize);
        if (diskSku is not null && !AzureResourceNames.SkuPattern().IsMatch(diskSku))
            throw Invalid($"'{diskSku}' ({whose}) is not a disk SKU: Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS or Premium_ZRS.", diskSku);
        if (zone is not null && !AzureResourceNames.ZonePattern().IsMatch(zone))
            throw Invalid($"'{zone}' ({whose}) is not an availability zone: 1, 2 or 3 (or none, for a regional VM).", zone);
    }

    /// <summary>Azure's tag rules: a name of 1-512 characters without &lt; &gt; % &amp; \ ? /, a value of up to 256, at most 50 per resource.</summary>
    private void CheckTags()
    {
        foreach (var (key, value) in Tags)
        {
            if (string.IsNullOrWhiteSpace(key) || key.Length > 512 || key.IndexOfAny(['<', '>', '%', '&', '\\', '?', '/']) >= 0)
                throw Invalid($"'{key}' is not a valid Azure tag name: 1-512 characters, none of < > % & \\ ? /.", key);
            if (value is null || value.Length > 256)
                throw Invalid($"The value of tag '{key}' must be a string of up to 256 characters.", key);
        }
        int extra = Tags.Keys.Count(k => !AzureTargetTags.All.Contains(k, StringComparer.OrdinalIgnoreCase));
        if (extra + AzureTargetTags.All.Count > AzureTargetTags.MaxTagsPerResource)
            throw Invalid($"{extra} tags are too many: a resource holds {AzureTargetTags.MaxTagsPerResource} and the target adds {AzureTargetTags.All.Count} of its own.", extra);
    }

    internal static AsrException Invalid(string message, object target) =>
        new(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument, message, target);
}

/// <summary>What applies to one machine: its <see cref="AzureMachineSettings"/> over the target's <see cref="AzureTargetSettings"/>.</summary>
internal sealed record AzureMachinePlacement(
    string VmSize,
    string SubnetId,
    string? TestSubnetId,
    string? Zone,
    AzureOsType OsType,
    AzureHyperVGeneration? HyperVGeneration,
    string DiskSku);
