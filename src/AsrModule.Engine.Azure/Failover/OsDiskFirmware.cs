using System.Buffers;
using System.Buffers.Binary;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Which firmware an OS disk boots with, read from its first sectors, so that the managed disk gets the right
/// <see cref="AzureHyperVGeneration"/> (a V1 VM boots BIOS, a V2 VM boots UEFI and needs an EFI system partition):
/// <list type="number">
/// <item>A GPT disk (the "EFI PART" header at LBA 1, for 512- or 4096-byte sectors): V2 when its partition table
/// (read when it lies within <see cref="HeadBytes"/>) holds an EFI system partition, V1 when it holds none (UEFI cannot
/// boot it; a BIOS boot partition is what GRUB uses on GPT under BIOS). When the table cannot be read: V2.</item>
/// <item>Else a protective MBR (partition type 0xEE in its first entry at offset 446 + 4, the header not found): V2.</item>
/// <item>Else an MBR with an EFI system partition (type 0xEF): V2.</item>
/// <item>Else (a BIOS MBR, or nothing recognisable): V1.</item>
/// </list>
/// A GPT disk with both an EFI system partition and a BIOS boot partition (cloud images are made this way) boots
/// either way; V2 is chosen. Override per machine with <see cref="AzureMachineSettings.HyperVGeneration"/> when the
/// guest is known to boot otherwise.
/// </summary>
public static class OsDiskFirmware
{
    /// <summary>How much of the disk's start is read: the MBR, the GPT header and a 128-entry table for 512- and 4096-byte sectors.</summary>
    public const int HeadBytes = 64 << 10;

    private static ReadOnlySpan<byte> GptSignature => "EFI PART"u8;

    /// <summary>C12A7328-F81F-11D2-BA4B-00A0C93EC93B, the EFI system partition, as GPT stores it (mixed-endian).</summary>
    private static readonly Guid EfiSystemPartition = new("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");

    /// <summary>The generation for a disk starting with <paramref name="head"/> (its first bytes, ideally <see cref="HeadBytes"/>; shorter is read as far as it goes).</summary>
    public static AzureHyperVGeneration Detect(ReadOnlySpan<byte> head) => Detect(head, out _);

    /// <summary>As <see cref="Detect(ReadOnlySpan{byte})"/>, with why in words (kept with the recovered machine).</summary>
    public static AzureHyperVGeneration Detect(ReadOnlySpan<byte> head, out string reason)
    {
        foreach (int sector in (ReadOnlySpan<int>)[512, 4096])
        {
            if (head.Length < sector * 2 || !head.Slice(sector, 8).SequenceEqual(GptSignature)) continue;
            switch (HasEfiSystemPartition(head, sector))
            {
                case true:
                    reason = $"GPT ({sector}-byte sectors) with an EFI system partition: UEFI";
                    return AzureHyperVGeneration.V2;
                case false:
                    reason = $"GPT ({sector}-byte sectors) without an EFI system partition: BIOS";
                    return AzureHyperVGeneration.V1;
                default:
                    reason = $"GPT ({sector}-byte sectors), partition table not read: UEFI";
                    return AzureHyperVGeneration.V2;
            }
        }
        if (head.Length >= 512 && head[510] == 0x55 && head[511] == 0xAA)
        {
            if (head[446 + 4] == 0xEE)
            {
                reason = "protective MBR (GPT): UEFI";
                return AzureHyperVGeneration.V2;
            }
            for (int entry = 0; entry < 4; entry++)
                if (head[446 + 16 * entry + 4] == 0xEF)
                {
                    reason = "MBR with an EFI system partition: UEFI";
                    return AzureHyperVGeneration.V2;
                }
            reason = "MBR: BIOS";
            return AzureHyperVGeneration.V1;
        }
        reason = "no partition table recognised: BIOS";
        return AzureHyperVGeneration.V1;
    }

    /// <summary>
    /// Whether the GPT whose header is at LBA 1 lists an EFI system partition; null when its entries do not lie
    /// within <paramref name="head"/> or the header is implausible.
    /// </summary>
    private static bool? HasEfiSystemPartition(ReadOnlySpan<byte> head, int sector)
    {
        var header = head.Slice(sector, 92);
        long entriesLba = BinaryPrimitives.ReadInt64LittleEndian(header[72..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(header[80..]);
        uint entrySize = BinaryPrimitives.ReadUInt32LittleEndian(header[84..]);
        if (entriesLba < 2 || entrySize < 128 || entrySize % 8 != 0 || count == 0 || count > 4096) return null;
        long start = entriesLba * sector, end = start + (long)count * entrySize;
        if (end > head.Length) return null;
        for (long offset = start; offset < end; offset += entrySize)
        {
            var type = new Guid(head.Slice((int)offset, 16));
            if (type == EfiSystemPartition) return true;
        }
        return false;
    }

    /// <summary>Reads the first <see cref="HeadBytes"/> of disk <paramref name="diskId"/> at <paramref name="point"/> and detects its generation.</summary>
    public static async Task<(AzureHyperVGeneration Generation, string Reason)> DetectAsync(AsrVault vault, AsrRecoveryPoint point, string diskId,
        CancellationToken cancellationToken)
    {
        using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, diskId, cancellationToken).ConfigureAwait(false);
        byte[] head = ArrayPool<byte>.Shared.Rent(HeadBytes);
        try
        {
            int n = await reader.ReadAsync(0, head.AsMemory(0, HeadBytes), cancellationToken).ConfigureAwait(false);
            var generation = Detect(head.AsSpan(0, n), out string reason);
            return (generation, reason);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }
    }
}
