using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The upload of a point's disks into the resource group, up to <see cref="AsrAzureTarget.DisksInParallel"/> at once:
/// per disk, create an upload disk → grant write access → upload and verify by read-back SHA-256
/// (<see cref="ManagedDiskUploader"/>) → revoke, which leaves it Unattached, ready for a VM.
/// </summary>
internal sealed class AzureDiskUploads(AzureTargetResourceGroup group, ManagedDiskUploadOptions? upload)
{
    /// <summary>A disk made and verified: its id and what the upload sent.</summary>
    public sealed record Uploaded(string DiskId, ManagedDiskUploadResult Result);

    /// <summary>
    /// How long a SAS is asked for: one hour plus the disk read or written twice at 10 MiB/s, so a slow link does not
    /// see it expire (a revoke ends it as soon as the work is done).
    /// </summary>
    internal static TimeSpan AccessDuration(long diskBytes) =>
        TimeSpan.FromHours(1) + TimeSpan.FromSeconds(Math.Ceiling(2.0 * diskBytes / (10 << 20)));

    /// <summary>Creates, uploads, verifies and finalizes each disk of the point, up to <see cref="AsrAzureTarget.DisksInParallel"/> at once; progress by bytes.</summary>
    public async Task<Uploaded[]> UploadAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, IReadOnlyList<string> diskNames,
        AzureMachinePlacement placement, AzureHyperVGeneration generation, IReadOnlyDictionary<string, string> tags, JobContext phase)
    {
        var uploader = new ManagedDiskUploader(upload, phase.Logger);
        var disks = point.Disks;
        // Each disk is written then read back: both passes count.
        long total = Math.Max(1, disks.Sum(d => 2 * d.SizeBytes));
        var written = new long[disks.Count];
        var verified = new long[disks.Count];
        var gate = new object();
        int lastPercent = -1;
        string lastStatus = "";

        void Report(int index, ManagedDiskUploadProgress p)
        {
            lock (gate)
            {
                if (p.Phase == ManagedDiskUploadPhase.Writing) written[index] = p.BytesDone;
                else { written[index] = disks[index].SizeBytes; verified[index] = p.BytesDone; }
                long done = written.Sum() + verified.Sum();
                int percent = (int)(100 * done / total);
                string status = $"{(p.Phase == ManagedDiskUploadPhase.Writing ? "Uploading" : "Verifying")} disk '{disks[index].Name}' of '{item.Name}' to Azure " +
                                $"({done / 2:N0} of {total / 2:N0} bytes)";
                string key = $"{p.Phase}/{index}";
                if (percent == lastPercent && key == lastStatus) return;
                (lastPercent, lastStatus) = (percent, key);
                phase.Report(percent, status);
            }
        }

        phase.Report(0, $"Uploading {disks.Count} disk(s) of '{item.Name}' ({total / 2:N0} bytes) to Azure");
        return await BoundedParallel.RunAsync(disks.Count, AsrAzureTarget.DisksInParallel, async (i, ct) =>
        {
            var disk = disks[i];
            string diskId = await group.ControlPlane.CreateUploadDiskAsync(new AzureDiskSpec(diskNames[i], group.Region, ManagedDiskSize.UploadSizeBytes(disk.SizeBytes))
            {
                Zone = placement.Zone,
                Sku = placement.DiskSku,
                OsType = i == 0 ? placement.OsType : null,
                HyperVGeneration = i == 0 ? generation : null,
                Tags = tags,
            }, ct).ConfigureAwait(false);
            Uri sas = await group.ControlPlane.GrantWriteAccessAsync(diskId, AccessDuration(disk.SizeBytes), ct).ConfigureAwait(false);
            ManagedDiskUploadResult result;
            using (var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, ct).ConfigureAwait(false))
                result = await uploader.UploadAsync(reader, point, sas, new InlineProgress<ManagedDiskUploadProgress>(p => Report(i, p)), ct).ConfigureAwait(false);
            // The upload is final: the disk becomes Unattached, attachable.
            await group.ControlPlane.RevokeAccessAsync(diskId, ct).ConfigureAwait(false);
            return new Uploaded(diskId, result);
        }, phase.CancellationToken).ConfigureAwait(false);
    }

    /// <summary>Calls back on the reporting thread (System.Progress posts to a context, too late and out of order).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
