namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A VM created from uploaded (specialized) disks: the OS disk and the data disks are attached (createOption Attach),
/// so there is no image, no OS profile and no computer name. One NIC is created with the VM in
/// <see cref="SubnetId"/> (networkInterfaceConfigurations, deleted with the VM), with a dynamic private IP: the
/// 2023-07-01 schema has no static private IP for such a NIC (docs/azure-target-notes.md §5). Boot diagnostics are
/// on (managed storage) unless turned off.
/// </summary>
public sealed record AzureVmSpec(string Name, string Location, string Size, string OsDiskId, AzureOsType OsType, string SubnetId)
{
    public IReadOnlyList<AzureDataDisk> DataDisks { get; init; } = [];

    /// <summary>An availability zone, or null for a regional VM; its disks must be in the same zone.</summary>
    public string? Zone { get; init; }

    public bool BootDiagnostics { get; init; } = true;

    public AzureVmSecurity Security { get; init; } = AzureVmSecurity.Standard;

    /// <summary>Secure boot under <see cref="AzureVmSecurity.TrustedLaunch"/> (off by default: a replicated guest's boot chain may not be signed).</summary>
    public bool SecureBoot { get; init; }

    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();
}
