namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The resource group an <see cref="AsrAzureTarget"/> recovers into, and the control plane that reaches it (made on
/// first use, so creating a target calls nothing). Every part of the target works through this one object.
/// </summary>
internal sealed class AzureTargetResourceGroup
{
    private readonly Lazy<IAzureControlPlane> _controlPlane;

    public AzureTargetResourceGroup(AzureTargetSettings settings, Func<IAzureControlPlane> controlPlane)
    {
        Settings = settings;
        _controlPlane = new Lazy<IAzureControlPlane>(controlPlane, LazyThreadSafetyMode.ExecutionAndPublication);
        Id = AzureResourceNames.ResourceGroupId(settings.SubscriptionId, settings.ResourceGroupName);
    }

    public AzureTargetSettings Settings { get; }

    /// <summary>/subscriptions/{subscription}/resourceGroups/{group}: the target's Location.</summary>
    public string Id { get; }

    public string Name => Settings.ResourceGroupName;

    /// <summary>The region as ARM writes it (westeurope).</summary>
    public string Region => Settings.NormalizedRegion;

    public IAzureControlPlane ControlPlane => _controlPlane.Value;

    /// <summary>Where a managed disk of this group lies: its id starts with this (compared ignoring case).</summary>
    private string DiskPrefix => Id + "/providers/" + AzureResource.DiskType + "/";

    public string VirtualMachineId(string name) => $"{Id}/providers/{AzureResource.VirtualMachineType}/{name}";

    /// <summary>True when <paramref name="id"/> is a managed disk directly in this group (the record naming it is vault data).</summary>
    public bool IsOwnDisk(string? id) =>
        id is not null && id.Length > DiskPrefix.Length && id.StartsWith(DiskPrefix, StringComparison.OrdinalIgnoreCase)
        && id.IndexOf('/', DiskPrefix.Length) < 0;
}
