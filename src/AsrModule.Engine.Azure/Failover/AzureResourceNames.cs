using System.Text;
using System.Text.RegularExpressions;
using AsrModule.Engine.Failover;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The names and id shapes of what <see cref="AsrAzureTarget"/> makes and refers to. Names are derived from the item,
/// the disk and the operation, so a resumed job finds (and idempotently re-PUTs) what it already made:
/// <list type="bullet">
/// <item>VM: the item's name for a failover, <c>{item}-test</c> for a drill (at most 64 characters).</item>
/// <item>Disk: <c>{vm}-{disk name without extension}-{first 8 hex of the operation}</c> (at most 80 characters).</item>
/// <item>Snapshot: <c>{managed disk name}-snap-{8 random hex}</c> (at most 80 characters).</item>
/// </list>
/// Every name is sanitized, never refused: characters other than letters, digits, '_', '.' and '-' become '-', it
/// starts with a letter or digit and does not end with '.' or '-' (ARM's rule for disks and VMs, which the
/// control plane checks again), and it is shortened to fit.
/// </summary>
public static partial class AzureResourceNames
{
    public const int MaxVirtualMachineName = 64;
    public const int MaxDiskName = 80;
    public const int MaxSnapshotName = 80;
    /// <summary>The suffix of a drill's VM.</summary>
    public const string DrillSuffix = "-test";

    /// <summary>The VM's name for <paramref name="itemName"/>.</summary>
    public static string VirtualMachine(string itemName, RecoveryPurpose purpose)
    {
        string suffix = purpose == RecoveryPurpose.TestFailover ? DrillSuffix : "";
        return Fit(Sanitize(itemName, "vm"), MaxVirtualMachineName - suffix.Length) + suffix;
    }

    /// <summary>
    /// The managed disks' names of one operation, in the order of <paramref name="disks"/> (disk id, disk name). Two
    /// disks whose names differ only by extension or case get their disk ids instead, so the names stay distinct.
    /// </summary>
    public static IReadOnlyList<string> Disks(string vmName, IReadOnlyList<(string DiskId, string Name)> disks, Guid operationId)
    {
        string tail = "-" + AzureTargetTags.OperationValue(operationId)[..8];
        string Name(string stem) => Fit($"{vmName}-{stem}", MaxDiskName - tail.Length) + tail;
        var names = disks.Select(d => Name(Sanitize(Path.GetFileNameWithoutExtension(d.Name), d.DiskId))).ToList();
        var clash = names.GroupBy(n => n, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key)
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < names.Count; i++)
            if (clash.Contains(names[i])) names[i] = Name(Sanitize(disks[i].DiskId, $"disk{i}"));
        return names;
    }

    /// <summary>A snapshot's name for the managed disk named <paramref name="diskName"/>.</summary>
    public static string Snapshot(string diskName, string random8)
    {
        string tail = $"-snap-{random8}";
        return Fit(Sanitize(diskName, "disk"), MaxSnapshotName - tail.Length) + tail;
    }

    /// <summary>
    /// <paramref name="name"/> with what ARM refuses in a disk or VM name replaced by '-', leading characters other
    /// than letters and digits removed, trailing '.' and '-' removed; <paramref name="fallback"/> when nothing is left.
    /// </summary>
    public static string Sanitize(string name, string fallback)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '-');
        string s = sb.ToString().TrimStart('_', '.', '-').TrimEnd('.', '-');
        return s.Length > 0 ? s : fallback;
    }

    /// <summary>At most <paramref name="max"/> characters, still not ending with '.' or '-'.</summary>
    private static string Fit(string name, int max) => name.Length <= max ? name : name[..max].TrimEnd('.', '-');

    // ---- ids ----

    /// <summary>The id of a resource group.</summary>
    public static string ResourceGroupId(string subscriptionId, string resourceGroupName) =>
        $"/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}";

    /// <summary>A subnet's resource id: /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/virtualNetworks/{v}/subnets/{n}.</summary>
    [GeneratedRegex(@"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", RegexOptions.IgnoreCase)]
    internal static partial Regex SubnetIdPattern();

    /// <summary>A resource group's name: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending with '.'.</summary>
    [GeneratedRegex(@"^[\p{L}\p{Nd}_\-.()]{1,90}(?<!\.)$")]
    internal static partial Regex ResourceGroupPattern();

    /// <summary>A region's name as ARM writes it (westeurope, eastus2).</summary>
    [GeneratedRegex("^[a-z][a-z0-9]{1,40}$")]
    internal static partial Regex RegionPattern();

    /// <summary>An availability zone (1, 2, 3).</summary>
    [GeneratedRegex("^[1-9]$")]
    internal static partial Regex ZonePattern();

    /// <summary>A VM size or disk SKU (Standard_D2s_v5, StandardSSD_LRS).</summary>
    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{1,79}$")]
    internal static partial Regex SkuPattern();

    /// <summary>The name and subscription of a subnet id (for messages).</summary>
    internal static bool IsSubnetId(string? id) => id is not null && SubnetIdPattern().IsMatch(id);
}
