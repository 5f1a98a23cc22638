using System.Collections;
using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>
/// A failover/drill target in Azure: the subscription, resource group, region and subnets where failovers and drills
/// create managed disks and VMs, and the credential used for Azure Resource Manager. No Azure SDK type appears on a
/// parameter or on the output (the module's Azure assemblies stay in its own load context). The target is also
/// remembered in this session, so later commands on its failovers and drills find it without -Target.
/// </summary>
[Cmdlet(VerbsCommon.New, "AsrAzureTarget", DefaultParameterSetName = ByDefaultCredential)]
[OutputType(typeof(AsrAzureTarget))]
public sealed class NewAsrAzureTargetCommand : PSCmdlet
{
    private const string ByDefaultCredential = "DefaultCredential";
    private const string ByManagedIdentity = "ManagedIdentity";
    private const string ByServicePrincipal = "ServicePrincipal";
    private const string ByAccessToken = "AccessToken";

    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string SubscriptionId { get; set; } = "";

    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string ResourceGroupName { get; set; } = "";

    /// <summary>The Azure region (westeurope, eastus2, ...) of everything created.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Location { get; set; } = "";

    /// <summary>The subnet resource id where failed-over VMs get their NIC.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string SubnetId { get; set; } = "";

    /// <summary>The subnet for drills (an isolated network); drills are refused without one.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TestSubnetId { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string VMSize { get; set; } = "Standard_D2s_v5";

    [Parameter]
    [ValidateSet("Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS", "PremiumV2_LRS", "UltraSSD_LRS")]
    public string DiskSku { get; set; } = "StandardSSD_LRS";

    [Parameter]
    [ValidateSet("1", "2", "3")]
    public string? Zone { get; set; }

    [Parameter]
    public AzureOsType OsType { get; set; } = AzureOsType.Linux;

    /// <summary>Extra tags on everything created (the asr-* tags are added and win).</summary>
    [Parameter]
    public Hashtable? Tag { get; set; }

    /// <summary>Per-machine settings, by item name: @{ web01 = @{ VMSize = 'Standard_D4s_v5'; SubnetId = '...' } }.</summary>
    [Parameter]
    public Hashtable? MachineSetting { get; set; }

    /// <summary>The Azure cloud, by its Az environment name.</summary>
    [Parameter]
    [ValidateSet("AzureCloud", "AzureChinaCloud", "AzureUSGovernment")]
    public string Environment { get; set; } = "AzureCloud";

    /// <summary>An explicit Resource Manager endpoint (Azure Stack Hub, another sovereign cloud); needs -AuthorityHost.</summary>
    [Parameter]
    public Uri? ResourceManagerUrl { get; set; }

    [Parameter]
    public Uri? AuthorityHost { get; set; }

    /// <summary>The audience of tokens for -ResourceManagerUrl (default: the endpoint).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ResourceManagerAudience { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ByManagedIdentity)]
    public SwitchParameter ManagedIdentity { get; set; }

    [Parameter(ParameterSetName = ByManagedIdentity)]
    [ValidateNotNullOrEmpty]
    public string? ManagedIdentityClientId { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ByServicePrincipal)]
    [ValidateNotNullOrEmpty]
    public string TenantId { get; set; } = "";

    /// <summary>The application (client) id as user name and the client secret as password.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByServicePrincipal)]
    [Credential]
    public PSCredential Credential { get; set; } = null!;

    /// <summary>A bearer token for Azure Resource Manager (Get-AzAccessToken); not renewed.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByAccessToken)]
    [SecureStringTransformation]
    public SecureString AccessToken { get; set; } = null!;

    protected override void ProcessRecord()
    {
        try
        {
            var cloud = Cloud();
            var settings = new AzureTargetSettings
            {
                SubscriptionId = SubscriptionId.Trim(),
                ResourceGroupName = ResourceGroupName.Trim(),
                Region = Location.Trim(),
                SubnetId = SubnetId.Trim(),
                TestSubnetId = TestSubnetId?.Trim(),
                VmSize = VMSize.Trim(),
                DiskSku = DiskSku,
                Zone = Zone,
                OsType = OsType,
                Tags = Strings(Tag, "-Tag"),
                Machines = Machines(),
                Cloud = cloud,
            };
            var credential = ParameterSetName switch
            {
                ByManagedIdentity => AzureTargetCredential.ManagedIdentity(ManagedIdentityClientId),
                ByServicePrincipal => AzureTargetCredential.ServicePrincipal(TenantId, Credential.UserName, Credential.GetNetworkCredential().Password),
                ByAccessToken => AzureTargetCredential.AccessToken(new System.Net.NetworkCredential("", AccessToken).Password),
                _ => AzureTargetCredential.Default(),
            };
            var target = AsrAzureTarget.Create(settings, credential);
            RecoveryTargets.Register(target);
            WriteObject(target);
        }
        catch (AsrException ex)
        {
            ThrowTerminatingError(ErrorMapping.ToErrorRecord(ex, SubscriptionId));
        }
    }

    private AzureCloud Cloud()
    {
        if (ResourceManagerUrl is null && AuthorityHost is null) return AzureCloud.FromName(Environment);
        if (ResourceManagerUrl is null || AuthorityHost is null)
            throw Invalid("An explicit cloud needs both -ResourceManagerUrl and -AuthorityHost (or neither, with -Environment).", "ResourceManagerUrl");
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Environment)))
            throw Invalid("Give either -Environment or -ResourceManagerUrl with -AuthorityHost, not both.", "Environment");
        return AzureCloud.Custom(ResourceManagerUrl, AuthorityHost, ResourceManagerAudience);
    }

    private static readonly string[] MachineKeys = ["VMSize", "SubnetId", "TestSubnetId", "Zone", "OsType", "HyperVGeneration", "DiskSku"];

    private Dictionary<string, AzureMachineSettings> Machines()
    {
        var machines = new Dictionary<string, AzureMachineSettings>(StringComparer.OrdinalIgnoreCase);
        if (MachineSetting is null) return machines;
        foreach (DictionaryEntry entry in MachineSetting)
        {
            string name = entry.Key?.ToString() ?? "";
            if ((entry.Value is PSObject p ? p.BaseObject : entry.Value) is not IDictionary values)
                throw Invalid($"-MachineSetting['{name}'] must be a hashtable of {string.Join(", ", MachineKeys)}.", name);
            var s = Strings(values, $"-MachineSetting['{name}']");
            foreach (var key in s.Keys)
                if (!MachineKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
                    throw Invalid($"-MachineSetting['{name}'] has '{key}'; the settings are {string.Join(", ", MachineKeys)}. " +
                                  "A static private IP is not supported: the VM's NIC is created with the VM (networkInterfaceConfigurations), which takes a dynamic IP (docs/failover.md).", name);
            machines[name] = new AzureMachineSettings
            {
                VmSize = s.GetValueOrDefault("VMSize"),
                SubnetId = s.GetValueOrDefault("SubnetId"),
                TestSubnetId = s.GetValueOrDefault("TestSubnetId"),
                Zone = s.GetValueOrDefault("Zone"),
                OsType = s.TryGetValue("OsType", out var os) ? Enum<AzureOsType>(os, name, "OsType") : null,
                HyperVGeneration = s.TryGetValue("HyperVGeneration", out var gen) ? Enum<AzureHyperVGeneration>(gen, name, "HyperVGeneration") : null,
                DiskSku = s.GetValueOrDefault("DiskSku"),
            };
        }
        return machines;
    }

    private static T Enum<T>(string value, string machine, string key) where T : struct, System.Enum =>
        System.Enum.TryParse<T>(value, ignoreCase: true, out var v) && System.Enum.IsDefined(v)
            ? v
            : throw Invalid($"-MachineSetting['{machine}'].{key} is '{value}'; use one of {string.Join(", ", System.Enum.GetNames<T>())}.", machine);

    private static Dictionary<string, string> Strings(IDictionary? table, string what)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (table is null) return result;
        foreach (DictionaryEntry e in table)
        {
            object? v = e.Value is PSObject p ? p.BaseObject : e.Value;
            if (e.Key is null || v is null or IDictionary or IEnumerable and not string)
                throw Invalid($"{what}: '{e.Key}' must have a single text value.", e.Key?.ToString());
            result[e.Key.ToString()!] = v.ToString()!;
        }
        return result;
    }

    private static AsrException Invalid(string message, string? target) =>
        new(AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument, message, target);
}
