using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Failover;

/// <summary>
/// A failover target on this machine: recovered disks in a directory plus <c>machine.json</c>
/// (see docs/failover.md for the layout and how QEMU boots it). Drills into a local target are served over NBD
/// by <see cref="TestFailoverService"/> from the drill's own directory under <see cref="Path"/>.
/// </summary>
public sealed class AsrLocalTarget : IRecoveryTarget
{
    public const string LocalKind = "Local";

    public AsrLocalTarget(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }
    public string Kind => LocalKind;
    public string Location => Path;

    /// <summary>Where a failover of <paramref name="itemName"/> puts its disks.</summary>
    public string MachineDirectory(string itemName) => System.IO.Path.Combine(Path, itemName);

    /// <summary>Where a drill of <paramref name="itemName"/> puts its overlays and description.</summary>
    public string DrillDirectory(string itemName, Guid drillId) => System.IO.Path.Combine(Path, $"{itemName}-drill-{drillId.ToString("N")[..8]}");

    public string Describe(string itemName, RecoveryPurpose purpose) =>
        purpose == RecoveryPurpose.Failover ? $"'{MachineDirectory(itemName)}'" : $"a drill directory under '{Path}' (disks served over NBD)";

    /// <summary>
    /// A failover target must be fresh: it may not be inside the vault or a system directory, may not hold (or be inside)
    /// any protected disk of the vault, and the machine's disk files must not exist there yet.
    /// </summary>
    public async Task ValidateAsync(AsrVault vault, AsrProtectedItem item, RecoveryPurpose purpose, CancellationToken cancellationToken)
    {
        Storage.OutputLocation.EnsureAllowed(Path, vault.Store, AsrErrorIds.FailoverTargetInvalid, purpose == RecoveryPurpose.Failover ? "Failover target" : "Drill target");
        if (purpose != RecoveryPurpose.Failover) return;
        string dir = System.IO.Path.GetFullPath(MachineDirectory(item.Name)).TrimEnd('/') + "/";
        foreach (var other in await vault.GetItemsAsync(cancellationToken).ConfigureAwait(false))
            foreach (var disk in other.Disks)
                if (System.IO.Path.GetFullPath(disk.SourcePath).StartsWith(dir, StringComparison.Ordinal))
                    throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument,
                        $"Target '{Path}' would put recovered disks in '{dir}', which holds the protected disk '{disk.SourcePath}' of '{other.Name}'. Choose a target away from protected disks.", Path);
        foreach (var disk in item.Disks)
            if (File.Exists(dir + disk.Name) || File.Exists(dir + MachineDescription.FileName))
                throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.ResourceExists,
                    $"'{dir}' already holds '{disk.Name}' or {MachineDescription.FileName}; a failover never overwrites files it did not create. Choose an empty target.", Path);
    }

    /// <summary>Exports the point's disks, verified, into the machine's directory and describes them in machine.json.</summary>
    public async Task<RecoveredMachineRecord> RecoverAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose,
        Guid operationId, JobContext context)
    {
        if (purpose != RecoveryPurpose.Failover)
            throw new InvalidOperationException("Drills into a local target are served over NBD by TestFailoverService.");
        string dir = MachineDirectory(item.Name);
        var files = await RecoveryPointExporter.ExportAsync(vault, point, dir, force: true, diskFilter: null, context).ConfigureAwait(false);
        MachineDescription.For(item.Name, "Failover", vault.VaultId, point,
            point.Disks.Select((d, i) => new MachineDisk { Name = d.Name, SizeBytes = d.SizeBytes, Location = d.Name, BootOrder = i })).Write(dir);
        return new RecoveredMachineRecord
        {
            TargetKind = Kind,
            TargetLocation = Path,
            OperationId = operationId,
            MachineId = dir,
            Disks = point.Disks.Zip(files).ToDictionary(p => p.First.DiskId, p => p.Second),
        };
    }

    /// <summary>The disk files are rewritten in place from the other point (verified as any export).</summary>
    public Task<RecoveredMachineRecord> ReplaceDisksAsync(AsrVault vault, AsrProtectedItem item, RecoveredMachineRecord current, AsrRecoveryPoint point,
        Guid operationId, JobContext context)
    {
        EnsureOwns(current, item.Name);
        return RecoverAsync(vault, item, point, RecoveryPurpose.Failover, operationId, context);
    }

    /// <summary>
    /// Deletes the recovered disk files and machine.json. The file names are re-derived from the item's disk names
    /// inside this target's machine directory (the record is vault data: its paths are not obeyed).
    /// </summary>
    public Task<IReadOnlyList<string>> RemoveAsync(AsrProtectedItem item, RecoveredMachineRecord machine, JobContext context)
    {
        EnsureOwns(machine, item.Name);
        string dir = MachineDirectory(item.Name);
        var removed = new List<string>();
        foreach (var name in item.Disks.Select(d => d.Name).Append(MachineDescription.FileName))
        {
            string file = VaultRecordChecks.JoinInside(dir, name, "", VaultLayout.Item(item.Id));
            if (!File.Exists(file)) continue;
            File.Delete(file);
            removed.Add(file);
        }
        if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
        return Task.FromResult<IReadOnlyList<string>>(removed);
    }

    public void EnsureOwns(RecoveredMachineRecord machine, string itemName)
    {
        if (!string.Equals(machine.TargetKind, Kind, StringComparison.Ordinal) || !string.Equals(System.IO.Path.GetFullPath(machine.TargetLocation), Path, StringComparison.Ordinal))
            throw new AsrException(AsrErrorIds.RecoveryTargetMismatch, AsrErrorKind.InvalidArgument,
                $"'{itemName}' was recovered into {machine.TargetKind} target '{machine.TargetLocation}', not '{Path}'. Pass that target.", itemName);
    }

    public Task<RecoveredDiskSet> OpenRecoveredDisksAsync(AsrProtectedItem item, RecoveredMachineRecord machine, CancellationToken cancellationToken)
    {
        EnsureOwns(machine, item.Name);
        string dir = MachineDirectory(item.Name);
        var readers = new Dictionary<string, IRecoveredDiskReader>();
        try
        {
            foreach (var disk in item.Disks)
                readers[disk.DiskId] = new RecoveredDiskFile(VaultRecordChecks.JoinInside(dir, disk.Name, "", VaultLayout.Item(item.Id)));
        }
        catch
        {
            foreach (var r in readers.Values) ((IDisposable)r).Dispose();
            throw;
        }
        return Task.FromResult(new RecoveredDiskSet(readers));
    }

    /// <summary>The target a local failover record was made in (records from before targets had kinds name only their directory).</summary>
    public static RecoveredMachineRecord MachineOf(FailoverRecord failover) => failover.Machine ?? new RecoveredMachineRecord
    {
        TargetKind = LocalKind,
        TargetLocation = System.IO.Path.GetDirectoryName(failover.TargetPath) ?? failover.TargetPath,
        MachineId = failover.TargetPath,
        Disks = new Dictionary<string, string>(failover.RecoveredDisks),
    };

    public override string ToString() => Path;
}
