using AsrModule.Engine.Errors;
using Azure;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What an Azure Resource Manager failure becomes: an <see cref="AsrException"/> with an id of
/// <see cref="AzureControlPlaneErrorIds"/>, a message that names the resource and says what to do, built from the
/// HTTP status and ARM's error code only (the style of BlobVaultStore's translation). A failed long-running operation
/// reaches here as a RequestFailedException with status 200 and the operation's error code.
/// </summary>
internal static class ArmErrors
{
    private static readonly HashSet<string> AuthCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "AuthenticationFailed", "AuthorizationFailed", "InvalidAuthenticationToken", "InvalidAuthenticationTokenTenant",
        "ExpiredAuthenticationToken", "LinkedAuthorizationFailed", "InvalidAuthenticationTokenAudience",
    };

    private static readonly HashSet<string> SkuCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest", "VMSizeNotSupported", "InvalidVmSize",
    };

    private static readonly HashSet<string> NotFoundCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "NotFound", "ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound", "ParentResourceNotFound",
        "InvalidResourceReference", "SubnetNotFound", "InvalidSubnetReference",
    };

    private static readonly HashSet<string> ThrottleCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        "TooManyRequests", "SubscriptionRequestsThrottled", "TenantRequestsThrottled", "ResourceRequestsThrottled",
    };

    /// <param name="what">What was being done, for the message: "create the virtual machine 'web01'".</param>
    /// <param name="target">The resource the error is about (its name or id): the exception's target.</param>
    /// <param name="hint">What to check when something it refers to is missing (the subnet, the disks).</param>
    /// <param name="maxRetries">The retries the SDK made, for the throttled and unavailable messages.</param>
    /// <returns>The exception, or null to let <paramref name="ex"/> through (ours, or a cancellation asked for).</returns>
    public static AsrException? Translate(Exception ex, string what, string target, string? hint, int maxRetries, CancellationToken cancellationToken)
    {
        if (ex is AsrException) return null;
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested) return null;
        if (BlobRetryPolicy.IsTlsFailure(ex))
            return new AsrException(AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError,
                $"Could not {what}: the Azure Resource Manager endpoint's TLS certificate is not trusted by this machine. " +
                "Check the endpoint (the cloud chosen), or add the issuing CA to the machine's trusted roots.", target);
        switch (ex)
        {
            case global::Azure.Identity.AuthenticationFailedException or global::Azure.Identity.CredentialUnavailableException:
                // No inner exception and no text of its own: an identity library's message can quote the request.
                return new AsrException(AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError,
                    $"Could not {what}: the credential could not get a token for Azure Resource Manager ({ex.GetType().Name}). " +
                    "Sign in (Connect-AzAccount, az login), or check the managed identity, service principal or cloud given.", target);
            case RequestFailedException rfe:
                return FromResponse(rfe, what, target, hint, maxRetries);
            case AggregateException { InnerExceptions.Count: > 0 } agg:
                // The retry policy gave up: every attempt failed (the last one may have had an answer).
                if (agg.InnerExceptions[^1] is RequestFailedException { Status: > 0 } last) return FromResponse(last, what, target, hint, maxRetries);
                return Unavailable(what, target, agg.InnerExceptions[^1].GetType().Name, maxRetries, ex);
            case HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException:
                return Unavailable(what, target, ex.GetType().Name, maxRetries, ex);
            default:
                return null;
        }
    }

    private static AsrException FromResponse(RequestFailedException ex, string what, string target, string? hint, int maxRetries)
    {
        string code = ex.ErrorCode ?? "";
        // A failed operation is read with status 200: the code is what it failed with.
        string detail = ex.Status == 200 ? $"the operation failed with {Or(code, "no error code")}" : $"HTTP {ex.Status}{(code.Length > 0 ? " " + code : "")}";
        if (ex.Status == 0)
            return Unavailable(what, target, "no response", maxRetries, ex);
        if (ex.Status is 401 or 403 || AuthCodes.Contains(code))
            // No inner exception: keep whatever the service echoed out of the message.
            return new AsrException(AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError,
                $"Azure Resource Manager refused to {what} ({detail}). Sign in again (the token may have expired or be for another tenant), " +
                "and check that the identity has a role such as Contributor on the resource group.", target);
        if (string.Equals(code, "QuotaExceeded", StringComparison.OrdinalIgnoreCase)
            || code.Contains("Quota", StringComparison.OrdinalIgnoreCase)
            || (string.Equals(code, "OperationNotAllowed", StringComparison.OrdinalIgnoreCase) && ex.Message.Contains("quota", StringComparison.OrdinalIgnoreCase)))
            return new AsrException(AzureControlPlaneErrorIds.AzureQuotaExceeded, AsrErrorKind.InvalidOperation,
                $"Azure refused to {what}: the subscription's quota is exceeded ({detail}). " +
                "Request a quota increase for the VM family or disks in that region (Azure portal, Quotas), or choose a smaller size, then run the failover again.",
                target, ex);
        if (SkuCodes.Contains(code))
            return new AsrException(AzureControlPlaneErrorIds.AzureSkuNotAvailable, AsrErrorKind.InvalidArgument,
                $"Azure refused to {what}: the size or SKU is not available in that region or zone ({detail}). " +
                "Choose another VM size (Get-AzComputeResourceSku lists what the region offers), another zone, or try again later.",
                target, ex);
        if (ex.Status == 404 || NotFoundCodes.Contains(code))
            return new AsrException(AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound,
                $"Azure could not {what}: a resource it needs does not exist ({detail}). " +
                (hint ?? "Check that the subscription and resource group exist.") ,
                target, ex);
        if (ex.Status == 429 || ThrottleCodes.Contains(code))
            return new AsrException(AzureControlPlaneErrorIds.AzureThrottled, AsrErrorKind.ResourceBusy,
                $"Azure Resource Manager throttled the requests to {what} ({detail}) through {maxRetries} retries. " +
                "Wait a few minutes and run the operation again; fewer failovers at once help.",
                target, ex);
        if (ex.Status is 408 or >= 500)
            return Unavailable(what, target, detail, maxRetries, ex);
        return new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
            $"Azure refused to {what}: {detail}.", target, ex);
    }

    private static AsrException Unavailable(string what, string target, string cause, int maxRetries, Exception inner) =>
        new(AzureControlPlaneErrorIds.AzureUnavailable, AsrErrorKind.ConnectionError,
            $"Azure Resource Manager is unavailable: could not {what} after {maxRetries + 1} attempts with backoff ({cause}). " +
            "Check the network and the endpoint, and run the operation again: what was created is tagged and is found again.",
            target, inner);

    private static string Or(string value, string fallback) => value.Length > 0 ? value : fallback;
}
