namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Tuning of an <see cref="ArmControlPlane"/>. Transient faults (no answer, 408, 429, 5xx) are retried by the SDK
/// with exponential backoff, Retry-After as the lower bound; long-running operations are polled by the SDK's own
/// poller (at least 1 s apart).
/// </summary>
public sealed class ArmControlPlaneOptions
{
    public int MaxRetries { get; init; } = 5;
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(0.8);
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>Time one request may take (per attempt).</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(100);
    /// <summary>Deletes in flight at once in <see cref="IAzureControlPlane.DeleteByTagAsync"/>.</summary>
    public int DeleteConcurrency { get; init; } = 4;

    /// <summary>Test hook: the HTTP transport (a handler that trusts a test endpoint's certificate).</summary>
    internal global::Azure.Core.Pipeline.HttpPipelineTransport? Transport { get; init; }

    internal void Validate()
    {
        if (MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(MaxRetries), MaxRetries, "Must be 0 or more.");
        if (RetryDelay <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RetryDelay), RetryDelay, "Must be positive.");
        if (MaxRetryDelay < RetryDelay) throw new ArgumentOutOfRangeException(nameof(MaxRetryDelay), MaxRetryDelay, "Must be at least RetryDelay.");
        if (NetworkTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(NetworkTimeout), NetworkTimeout, "Must be positive.");
        if (DeleteConcurrency < 1) throw new ArgumentOutOfRangeException(nameof(DeleteConcurrency), DeleteConcurrency, "Must be 1 or more.");
    }
}
