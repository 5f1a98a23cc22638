using Azure.Core;
using Azure.Storage.Blobs;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>Tuning of a <see cref="ManagedDiskUploader"/>: request sizes, requests in flight, and the SDK's retry policy.</summary>
public sealed class ManagedDiskUploadOptions
{
    /// <summary>Largest Put Page request. Azure's limit is 4 MiB; adjacent non-zero ranges are merged up to this size.</summary>
    public int MaxPageWriteBytes { get; init; } = MaxPutPageBytes;

    /// <summary>Put Page requests in flight at once.</summary>
    public int WritesInFlight { get; init; } = 8;

    /// <summary>
    /// Extents of the recovery point being fetched and decoded ahead of the write position (each one ranged read
    /// of the vault, up to one extent, typically 256 KiB).
    /// </summary>
    public int SourceReadsAhead { get; init; } = 16;

    /// <summary>Largest ranged read of the verification pass.</summary>
    public int VerifyReadBytes { get; init; } = 4 << 20;

    /// <summary>Ranged reads of the verification pass in flight at once.</summary>
    public int VerifyReadsInFlight { get; init; } = 8;

    /// <summary>Retries of a transient fault (connection refused or reset, timeout, 408, 429, 5xx), with exponential backoff, by the SDK.</summary>
    public int MaxRetries { get; init; } = 5;
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(0.5);
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Time one request may take (per attempt).</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>
    /// The storage service version (x-ms-version) to speak, or null for the SDK's newest. A lever, not a setting to
    /// change by default: should the storage behind managed disk SASs lag behind the SDK's newest version, pin one it
    /// accepts (Get Page Ranges with continuation needs 2020-10-02 or later).
    /// </summary>
    public BlobClientOptions.ServiceVersion? ServiceVersion { get; init; }

    /// <summary>Test hook: the HTTP transport of the page blob client.</summary>
    internal global::Azure.Core.Pipeline.HttpPipelineTransport? Transport { get; init; }

    /// <summary>Azure's limit of one Put Page request.</summary>
    public const int MaxPutPageBytes = 4 << 20;

    internal void Validate()
    {
        if (MaxPageWriteBytes < 512 || MaxPageWriteBytes > MaxPutPageBytes || MaxPageWriteBytes % 512 != 0)
            throw new ArgumentOutOfRangeException(nameof(MaxPageWriteBytes), MaxPageWriteBytes, "A Put Page request is a multiple of 512 bytes, up to 4 MiB.");
        if (VerifyReadBytes < 512 || VerifyReadBytes % 512 != 0)
            throw new ArgumentOutOfRangeException(nameof(VerifyReadBytes), VerifyReadBytes, "A verification read is a positive multiple of 512 bytes.");
        if (WritesInFlight < 1) throw new ArgumentOutOfRangeException(nameof(WritesInFlight));
        if (SourceReadsAhead < 1) throw new ArgumentOutOfRangeException(nameof(SourceReadsAhead));
        if (VerifyReadsInFlight < 1) throw new ArgumentOutOfRangeException(nameof(VerifyReadsInFlight));
        if (MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(MaxRetries));
    }

    /// <summary>The client options of the page blob client: the SDK's exponential retry, configured as <see cref="BlobVaultStoreOptions.CreateClientOptions"/> does.</summary>
    internal BlobClientOptions CreateClientOptions() =>
        BlobClientSettings.Create(MaxRetries, RetryDelay, MaxRetryDelay, NetworkTimeout, Transport, ServiceVersion);
}
