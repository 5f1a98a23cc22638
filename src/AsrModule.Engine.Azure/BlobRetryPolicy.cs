using System.Security.Authentication;
using Azure.Core;
using Azure.Core.Pipeline;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The SDK's exponential retry, except for a server certificate this client refuses (untrusted, expired or for
/// another name): that is configuration, not a transient fault, and retrying it only delays the error.
/// </summary>
internal sealed class BlobRetryPolicy(int maxRetries, TimeSpan delay, TimeSpan maxDelay)
    : RetryPolicy(maxRetries, DelayStrategy.CreateExponentialDelayStrategy(delay, maxDelay))
{
    protected override bool ShouldRetry(HttpMessage message, Exception? exception) =>
        !IsTlsFailure(exception) && base.ShouldRetry(message, exception);

    protected override ValueTask<bool> ShouldRetryAsync(HttpMessage message, Exception? exception) =>
        IsTlsFailure(exception) ? new ValueTask<bool>(false) : base.ShouldRetryAsync(message, exception);

    /// <summary>
    /// Whether a failure is this client refusing the server's certificate (anywhere in its inner exceptions).
    /// Other handshake failures (a connection dropped mid-handshake, a TLS alert from a busy front end) are
    /// transient and retried.
    /// </summary>
    internal static bool IsTlsFailure(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is AuthenticationException && e.Message.Contains("remote certificate", StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }
}
