using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The one place blob clients get their pipeline: the SDK's exponential retry (with <see cref="BlobRetryPolicy"/>,
/// which does not retry a certificate the machine refuses), the application id, and no content logging. Azure.Core's
/// request logging (EventSource) keeps its defaults: query parameters such as a SAS's "sig" are redacted and
/// bodies are not logged. Used by the blob vault and by managed-disk uploads.
/// </summary>
internal static class BlobClientSettings
{
    public static BlobClientOptions Create(int maxRetries, TimeSpan delay, TimeSpan maxDelay, TimeSpan networkTimeout,
        HttpPipelineTransport? transport, BlobClientOptions.ServiceVersion? serviceVersion = null)
    {
        var options = serviceVersion is { } version ? new BlobClientOptions(version) : new BlobClientOptions();
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.MaxRetries = maxRetries;
        options.Retry.Delay = delay;
        options.Retry.MaxDelay = maxDelay;
        options.Retry.NetworkTimeout = networkTimeout;
        options.RetryPolicy = new BlobRetryPolicy(maxRetries, delay, maxDelay);
        options.Diagnostics.ApplicationId = "AsrModule";
        options.Diagnostics.IsLoggingContentEnabled = false;
        if (transport is not null) options.Transport = transport;
        return options;
    }
}
