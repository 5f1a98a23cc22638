namespace AsrModule.Engine.Azure.Failover;

/// <summary>Which pass of an upload is running.</summary>
public enum ManagedDiskUploadPhase
{
    /// <summary>Reading the point's disk from the vault and writing its non-zero pages.</summary>
    Writing,
    /// <summary>Reading the managed disk back and comparing it with what was written.</summary>
    Verifying,
}

/// <summary>
/// Progress of an upload: <see cref="BytesDone"/> of <see cref="BytesTotal"/> bytes of the disk covered by the
/// current <see cref="Phase"/> (zero ranges count as they are passed over), and the page bytes sent so far.
/// Reported in order, from the thread that made the progress.
/// </summary>
public readonly record struct ManagedDiskUploadProgress(string DiskName, ManagedDiskUploadPhase Phase, long BytesDone, long BytesTotal, long BytesSent)
{
    public double Fraction => BytesTotal <= 0 ? 1 : (double)BytesDone / BytesTotal;
}
