namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What an upload wrote and proved. <see cref="Sha256"/> is the SHA-256 of the disk's bytes [0, <see cref="DiskSizeBytes"/>),
/// the same as <c>sha256sum</c> of the disk exported as a raw image; the managed disk read back hashed to it.
/// Keep it (with <see cref="Footer"/>) to run <see cref="ManagedDiskUploader.VerifyAsync"/> again later.
/// </summary>
public sealed record ManagedDiskUploadResult
{
    public required string DiskName { get; init; }
    /// <summary>Size of the recovery point's disk.</summary>
    public required long DiskSizeBytes { get; init; }
    /// <summary>Size of the page blob: the payload (<see cref="DiskSizeBytes"/> padded with zeros) and the footer.</summary>
    public required long UploadSizeBytes { get; init; }
    /// <summary>Page bytes written, footer included: the non-zero data of the disk rounded out to 512-byte pages.</summary>
    public required long BytesSent { get; init; }
    /// <summary>Put Page requests that wrote data (the footer is one more).</summary>
    public required int RangesSent { get; init; }
    /// <summary>Page ranges that held data before this upload (a retried upload) and were cleared first.</summary>
    public required int PriorRangesCleared { get; init; }
    /// <summary>Lower-case hex SHA-256 of the disk's bytes [0, DiskSizeBytes).</summary>
    public required string Sha256 { get; init; }
    public required FixedVhdFooter Footer { get; init; }
    /// <summary>Bytes read back by the verification (the written page ranges only; unwritten pages are zeros by definition).</summary>
    public required long BytesVerified { get; init; }
    public required double WriteSeconds { get; init; }
    public required double VerifySeconds { get; init; }
    public double Seconds => WriteSeconds + VerifySeconds;
}
