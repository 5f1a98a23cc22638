using System.Security.Authentication;
using Azure.Core;
using Azure.Core.Pipeline;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The SDK's exponential retry, except for a TLS handshake the client refuses (an untrusted or mismatched
/// certificate): that is configuration, not a transient fault, and retrying it only delays the error.
/// </summary>
internal sealed class BlobRetryPolicy(int maxRetries, TimeSpan delay, TimeSpan maxDelay)
    : RetryPolicy(maxRetries, DelayStrategy.CreateExponentialDelayStrategy(delay, maxDelay))
{
    protected override bool ShouldRetry(HttpMessage message, Exception? exception) =>
        !IsTlsFailure(exception) && base.ShouldRetry(message, exception);

    protected override ValueTask<bool> ShouldRetryAsync(HttpMessage message, Exception? exception) =>
        IsTlsFailure(exception) ? new ValueTask<bool>(false) : base.ShouldRetryAsync(message, exception);

    /// <summary>Whether a failure is the TLS handshake being refused (anywhere in its inner exceptions).</summary>
    internal static bool IsTlsFailure(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is AuthenticationException) return true;
        return false;
    }
}
