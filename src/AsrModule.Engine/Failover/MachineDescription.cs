using System.Text.Json;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Storage;

namespace AsrModule.Engine.Failover;

/// <summary>
/// machine.json: what a recovered machine is made of, for people and hypervisors. Disks are files
/// (failover) or nbd:// exports (drills); <see cref="QemuCommand"/> boots them as they are.
/// </summary>
public sealed class MachineDescription
{
    public const string FileName = "machine.json";
    public int FormatVersion { get; set; } = 1;
    public string Name { get; set; } = "";
    /// <summary>TestFailover or Failover.</summary>
    public string Purpose { get; set; } = "";
    public string VaultId { get; set; } = "";
    public long RecoveryPointSequence { get; set; }
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    public string Consistency { get; set; } = "";
    public DateTimeOffset CreatedUtc { get; set; }
    public List<MachineDisk> Disks { get; set; } = new();
    public string QemuCommand { get; set; } = "";

    public static MachineDescription For(string name, string purpose, string vaultId, AsrRecoveryPoint point, IEnumerable<MachineDisk> disks)
    {
        var d = new MachineDescription
        {
            Name = name,
            Purpose = purpose,
            VaultId = vaultId,
            RecoveryPointSequence = point.Sequence,
            RecoveryPointTimeUtc = point.RecoveryPointTimeUtc,
            Consistency = point.Consistency.ToString(),
            CreatedUtc = DateTimeOffset.UtcNow,
            Disks = disks.ToList(),
        };
        // The first disk boots; each disk is a file in its format (raw unless the target writes another) or an NBD export (drills, raw).
        d.QemuCommand = "qemu-system-x86_64 -m 2048 -nographic " + string.Join(" ", d.Disks.Select((x, i) =>
            $"-drive file={x.Location},format={x.Format},if=virtio{(i == 0 ? ",index=0" : "")}"));
        return d;
    }

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, FileName), JsonSerializer.SerializeToUtf8Bytes(this, VaultJson.Options));
    }
}

public sealed class MachineDisk
{
    public string Name { get; set; } = "";
    public long SizeBytes { get; set; }
    /// <summary>The file's format as QEMU names it: raw, qcow2, vmdk, vhdx or vdi.</summary>
    public string Format { get; set; } = "raw";
    /// <summary>A file path (relative to machine.json's directory) or an nbd:// URI.</summary>
    public string Location { get; set; } = "";
    public int BootOrder { get; set; }
}
