using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Failover;

/// <summary>
/// A failover target on this machine: recovered disks in a directory plus <c>machine.json</c>
/// (see docs/failover.md for the layout and how QEMU boots it). Drills into a local target are served over NBD
/// by <see cref="TestFailoverService"/> from the drill's own directory under <see cref="Path"/>.
/// A failover writes the disks in the target's <see cref="Format"/> (raw image files by default; qcow2, VMDK, VHDX, VDI,
/// or each disk in its source's format), named by <see cref="DiskImageFileNames"/>.
/// </summary>
public sealed class AsrLocalTarget : IRecoveryTarget
{
    public const string LocalKind = "Local";

    /// <summary>The key of <see cref="RecoveredMachineRecord.Properties"/> that records the format the disks were written in.</summary>
    public const string DiskFormatProperty = "DiskFormat";

    public AsrLocalTarget(string path, DiskOutputFormat format = DiskOutputFormat.Raw)
    {
        if (!Enum.IsDefined(format))
            throw new ArgumentOutOfRangeException(nameof(format), format, "Use Raw, Qcow2, Vmdk, Vhdx, Vdi or Source.");
        Path = System.IO.Path.GetFullPath(path);
        Format = format;
    }

    public string Path { get; }
    public string Kind => LocalKind;
    public string Location => Path;

    /// <summary>The format a failover writes the disks in (a drill serves them over NBD, whatever this is).</summary>
    public DiskOutputFormat Format { get; }

    /// <summary>Where a failover of <paramref name="itemName"/> puts its disks.</summary>
    public string MachineDirectory(string itemName) => System.IO.Path.Combine(Path, itemName);

    /// <summary>Where a drill of <paramref name="itemName"/> puts its overlays and description.</summary>
    public string DrillDirectory(string itemName, Guid drillId) => System.IO.Path.Combine(Path, $"{itemName}-drill-{drillId.ToString("N")[..8]}");

    public string Describe(string itemName, RecoveryPurpose purpose) =>
        purpose != RecoveryPurpose.Failover ? $"a drill directory under '{Path}' (disks served over NBD)"
        : Format == DiskOutputFormat.Raw ? $"'{MachineDirectory(itemName)}'"
        : $"'{MachineDirectory(itemName)}' as {FormatDescription(Format)}";

    private static string FormatDescription(DiskOutputFormat format) => format == DiskOutputFormat.Source
        ? "disk images in each source disk's format"
        : $"{DiskImageFormats.DisplayName(DiskOutputFormats.Resolve(format, null, "", ""))} disk images";

    /// <summary>
    /// Each disk of <paramref name="item"/> written as <paramref name="format"/>: its format and its file in the machine's
    /// directory (named by <see cref="DiskImageFileNames"/> from the item's disk name; never a path from a record).
    /// </summary>
    private List<(ProtectedDisk Disk, DiskImageFormat Format, string File)> DiskFiles(AsrProtectedItem item, DiskOutputFormat format)
    {
        string dir = MachineDirectory(item.Name);
        var files = item.Disks.Select(d =>
        {
            var f = DiskOutputFormats.Resolve(format, d.SourceFormat, d.Name, item.Name);
            return (d, f, DiskImageFileNames.JoinInside(dir, d.Name, f, VaultLayout.Item(item.Id)));
        }).ToList();
        RecoveryPointExporter.EnsureDistinctFiles(files.Select(f => (f.d.Name, f.Item3)), $"'{item.Name}'");
        return files;
    }

    /// <summary>The format the disks of <paramref name="machine"/> were written in (vault data: parsed, never a path; records from before formats: raw).</summary>
    public static DiskOutputFormat FormatOf(RecoveredMachineRecord machine) =>
        DiskOutputFormats.Parse(machine.Properties?.GetValueOrDefault(DiskFormatProperty), $"The recovered machine '{machine.MachineId}'");

    /// <summary>The local target that made <paramref name="machine"/>, with the format its disks were written in.</summary>
    public static AsrLocalTarget Of(RecoveredMachineRecord machine) => new(machine.TargetLocation, FormatOf(machine));

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
        // Also refuses a legacy VHD source with -Format Source, and two disks that would get the same file name.
        foreach (var (disk, _, file) in DiskFiles(item, Format))
            if (File.Exists(file) || File.Exists(dir + MachineDescription.FileName))
                throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.ResourceExists,
                    $"'{dir}' already holds '{System.IO.Path.GetFileName(file)}' or {MachineDescription.FileName}; a failover never overwrites files it did not create. Choose an empty target.", Path);
    }

    /// <summary>
    /// Exports the point's disks in the target's <see cref="Format"/>, verified (a converted disk is read back through QEMU
    /// and compared too), into the machine's directory and describes them in machine.json.
    /// </summary>
    public Task<RecoveredMachineRecord> RecoverAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose,
        Guid operationId, JobContext context)
    {
        if (purpose != RecoveryPurpose.Failover)
            throw new InvalidOperationException("Drills into a local target are served over NBD by TestFailoverService.");
        return WriteMachineAsync(vault, item, point, Format, operationId, context);
    }

    private async Task<RecoveredMachineRecord> WriteMachineAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, DiskOutputFormat format,
        Guid operationId, JobContext context)
    {
        string dir = MachineDirectory(item.Name);
        var files = await RecoveryPointExporter.ExportAsync(vault, point, dir, force: true, diskFilter: null, context, format,
            RecoveryPointExporter.SourceFormatsOf(item)).ConfigureAwait(false);
        var formats = point.Disks.Select(d => DiskOutputFormats.Resolve(format, item.Disks.FirstOrDefault(x => x.DiskId == d.DiskId)?.SourceFormat, d.Name, item.Name)).ToList();
        MachineDescription.For(item.Name, "Failover", vault.VaultId, point,
            point.Disks.Select((d, i) => new MachineDisk
            {
                Name = d.Name,
                SizeBytes = d.SizeBytes,
                Format = DiskImageFormats.QemuName(formats[i]),
                Location = System.IO.Path.GetFileName(files[i]),
                BootOrder = i,
            })).Write(dir);
        return new RecoveredMachineRecord
        {
            TargetKind = Kind,
            TargetLocation = Path,
            OperationId = operationId,
            MachineId = dir,
            Disks = point.Disks.Zip(files).ToDictionary(p => p.First.DiskId, p => p.Second),
            Properties = new Dictionary<string, string> { [DiskFormatProperty] = DiskOutputFormats.Name(format) },
        };
    }

    /// <summary>
    /// The disk files are rewritten in place from the other point (verified as any export), in the format the machine's disks
    /// were written in (recorded with the failover): a change of point never changes the machine's format.
    /// </summary>
    public Task<RecoveredMachineRecord> ReplaceDisksAsync(AsrVault vault, AsrProtectedItem item, RecoveredMachineRecord current, AsrRecoveryPoint point,
        Guid operationId, JobContext context)
    {
        EnsureOwns(current, item.Name);
        return WriteMachineAsync(vault, item, point, FormatOf(current), operationId, context);
    }

    /// <summary>
    /// Deletes the recovered disk files and machine.json. The file names are re-derived from the item's disk names and the
    /// recorded format inside this target's machine directory (the record is vault data: its paths are not obeyed).
    /// </summary>
    public Task<IReadOnlyList<string>> RemoveAsync(AsrProtectedItem item, RecoveredMachineRecord machine, JobContext context)
    {
        EnsureOwns(machine, item.Name);
        string dir = MachineDirectory(item.Name);
        var removed = new List<string>();
        foreach (var file in DiskFiles(item, FormatOf(machine)).Select(f => f.File)
                     .Append(VaultRecordChecks.JoinInside(dir, MachineDescription.FileName, "", VaultLayout.Item(item.Id))))
        {
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

    /// <summary>
    /// Readers of the recovered disks, found by the item's disk names and the recorded format (not the record's paths). A disk
    /// in an image format is read through QEMU, so what is read is what the recovered machine sees.
    /// </summary>
    public async Task<RecoveredDiskSet> OpenRecoveredDisksAsync(AsrProtectedItem item, RecoveredMachineRecord machine, CancellationToken cancellationToken)
    {
        EnsureOwns(machine, item.Name);
        var files = DiskFiles(item, FormatOf(machine));
        var readers = new Dictionary<string, IRecoveredDiskReader>();
        try
        {
            foreach (var (disk, format, file) in files)
                readers[disk.DiskId] = format == DiskImageFormat.Raw
                    ? new RecoveredDiskFile(file)
                    : await RecoveredImageFile.OpenAsync(file, format, disk.SizeBytes, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var r in readers.Values) ((IDisposable)r).Dispose();
            throw;
        }
        return new RecoveredDiskSet(readers);
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
