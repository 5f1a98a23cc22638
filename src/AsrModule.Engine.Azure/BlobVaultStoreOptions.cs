using Azure.Core;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure;

/// <summary>
/// Tuning of a <see cref="BlobVaultStore"/>: transfer sizes, the lock lease, and the retry policy of the
/// clients the factories build (a store built from a caller's own <see cref="BlobContainerClient"/> keeps
/// that client's retry policy).
/// </summary>
public sealed class BlobVaultStoreOptions
{
    /// <summary>Lease on a lock blob. Azure allows 15–60 s; a dead holder's lock frees itself within this time.</summary>
    public TimeSpan LockLeaseDuration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often a held lock renews its lease; default a third of <see cref="LockLeaseDuration"/>.</summary>
    public TimeSpan? LockRenewInterval { get; init; }

    /// <summary>How long disposing a lock waits for the lease release before leaving it to a background retry.</summary>
    public TimeSpan LockReleaseTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Block size of staged uploads. Packs are ~32 MiB: 8 MiB blocks send a pack as 4 blocks in parallel.
    /// Objects up to this size are sent in one request.
    /// </summary>
    public int UploadBlockSize { get; init; } = 8 << 20;

    /// <summary>Blocks of one object sent at once.</summary>
    public int UploadConcurrency { get; init; } = 4;

    /// <summary>Deletes in flight at once for <see cref="BlobVaultStore.DeletePrefixAsync"/>.</summary>
    public int DeleteConcurrency { get; init; } = 16;

    /// <summary>Ranged reads an export or resync keeps in flight (each up to 8 MiB of a pack): latency, not CPU, bounds a remote read.</summary>
    public int ReadConcurrency { get; init; } = 8;

    /// <summary>Retries of a transient fault (connection refused or reset, timeout, 408, 429, 5xx), with exponential backoff.</summary>
    public int MaxRetries { get; init; } = 5;
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(0.5);
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Time one request may take (per attempt).</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>
    /// Test hook: always ask the service for a lock, even one this process holds (as another process would),
    /// so that exclusivity is proven by the lease and not by the in-process registry.
    /// </summary>
    internal bool SkipInProcessLockCheck { get; init; }

    /// <summary>Test hook: the HTTP transport of the clients the factories build (an Azurite with a self-signed certificate).</summary>
    internal global::Azure.Core.Pipeline.HttpPipelineTransport? Transport { get; init; }

    /// <summary>Where lease renewals and release failures are logged (never with secrets).</summary>
    public ILogger? Logger { get; init; }

    internal TimeSpan RenewInterval => LockRenewInterval ?? TimeSpan.FromTicks(LockLeaseDuration.Ticks / 3);

    internal void Validate()
    {
        if (LockLeaseDuration < TimeSpan.FromSeconds(15) || LockLeaseDuration > TimeSpan.FromSeconds(60))
            throw new ArgumentOutOfRangeException(nameof(LockLeaseDuration), LockLeaseDuration, "A blob lease lasts 15 to 60 seconds.");
        if (RenewInterval <= TimeSpan.Zero || RenewInterval >= LockLeaseDuration)
            throw new ArgumentOutOfRangeException(nameof(LockRenewInterval), RenewInterval, "The renewal interval must be shorter than the lease.");
        if (UploadBlockSize < (64 << 10) || UploadBlockSize > (100 << 20))
            throw new ArgumentOutOfRangeException(nameof(UploadBlockSize), UploadBlockSize, "Blocks are 64 KiB to 100 MiB.");
        if (UploadConcurrency < 1) throw new ArgumentOutOfRangeException(nameof(UploadConcurrency));
        if (DeleteConcurrency < 1) throw new ArgumentOutOfRangeException(nameof(DeleteConcurrency));
        if (ReadConcurrency < 1) throw new ArgumentOutOfRangeException(nameof(ReadConcurrency));
        if (MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(MaxRetries));
    }

    /// <summary>The client options the factories use: the SDK's exponential retry policy configured from these options.</summary>
    public BlobClientOptions CreateClientOptions() =>
        BlobClientSettings.Create(MaxRetries, RetryDelay, MaxRetryDelay, NetworkTimeout, Transport);
}
