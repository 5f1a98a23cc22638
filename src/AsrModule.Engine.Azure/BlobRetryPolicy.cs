using System.Security.Authentication;
using Azure.Core;
using Azure.Core.Pipeline;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The SDK's exponential retry, with two exceptions:
/// <list type="bullet">
/// <item>A server certificate this client refuses (untrusted, expired or for another name) is configuration, not a
/// transient fault: retrying it only delays the error.</item>
/// <item>An outage is waited out once, not once per request. When a request has spent all its retries without the
/// service answering at all (connection refused or reset, DNS, timeout), the outage is confirmed: until the next
/// response from the service, requests through this pipeline make one attempt each. Otherwise a failing cycle would
/// spend the whole retry budget again on every write of its failure path (the item record's lock, the item record,
/// the job's end, the lock's release) and report the outage after 50-70 s instead of within the budget (~15 s by
/// default). The failure path's writes are retried by their owners (a job's end in the background, a lock's release
/// by its own loop), so nothing is given up; a short outage, shorter than the budget, is still ridden through.</item>
/// </list>
/// One instance serves every request of a store's clients.
/// </summary>
internal sealed class BlobRetryPolicy(int maxRetries, TimeSpan delay, TimeSpan maxDelay)
    : RetryPolicy(maxRetries, DelayStrategy.CreateExponentialDelayStrategy(delay, maxDelay))
{
    private long _outageConfirmedTicks;

    /// <summary>When the current outage was confirmed (a request spent its retries unanswered); null while the service answers.</summary>
    internal DateTimeOffset? OutageConfirmedUtc
    {
        get
        {
            long ticks = Interlocked.Read(ref _outageConfirmedTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    protected override bool ShouldRetry(HttpMessage message, Exception? exception) =>
        Decide(message, exception, !IsTlsFailure(exception) && base.ShouldRetry(message, exception));

    protected override async ValueTask<bool> ShouldRetryAsync(HttpMessage message, Exception? exception) =>
        Decide(message, exception, !IsTlsFailure(exception) && await base.ShouldRetryAsync(message, exception).ConfigureAwait(false));

    private const string AttemptsProperty = "AsrModule.BlobRetryPolicy.Attempts";

    protected override void OnSendingRequest(HttpMessage message)
    {
        base.OnSendingRequest(message);
        CountAttempt(message);
    }

    protected override async ValueTask OnSendingRequestAsync(HttpMessage message)
    {
        await base.OnSendingRequestAsync(message).ConfigureAwait(false);
        CountAttempt(message);
    }

    /// <summary>The SDK keeps its retry count internal: count this request's attempts on the message.</summary>
    private static void CountAttempt(HttpMessage message) =>
        message.SetProperty(AttemptsProperty, Attempts(message) + 1);

    private static int Attempts(HttpMessage message) =>
        message.TryGetProperty(AttemptsProperty, out var value) && value is int n ? n : 0;

    protected override void OnRequestSent(HttpMessage message)
    {
        base.OnRequestSent(message);
        NoteAnswer(message);
    }

    protected override async ValueTask OnRequestSentAsync(HttpMessage message)
    {
        await base.OnRequestSentAsync(message).ConfigureAwait(false);
        NoteAnswer(message);
    }

    /// <summary>Any response, even an error status, means the service is reachable again.</summary>
    private void NoteAnswer(HttpMessage message)
    {
        if (message.HasResponse) Interlocked.Exchange(ref _outageConfirmedTicks, 0);
    }

    private bool Decide(HttpMessage message, Exception? exception, bool retry)
    {
        // Only unanswered requests count: a 503 or 429 is the service answering (busy), retried as the SDK does.
        if (exception is null || message.HasResponse || message.CancellationToken.IsCancellationRequested || IsTlsFailure(exception)) return retry;
        if (!retry)
        {
            if (Attempts(message) > maxRetries)
                Interlocked.CompareExchange(ref _outageConfirmedTicks, DateTimeOffset.UtcNow.UtcTicks, 0);
            return false;
        }
        return Interlocked.Read(ref _outageConfirmedTicks) == 0;
    }

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
