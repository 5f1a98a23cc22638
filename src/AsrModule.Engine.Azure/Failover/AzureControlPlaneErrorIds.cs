using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Stable error ids of the ARM control plane, in the <c>&lt;Noun&gt;&lt;Condition&gt;</c> form of
/// <see cref="AsrErrorIds"/> (where they belong once that file takes them; kept here meanwhile, as
/// <see cref="ManagedDiskErrorIds"/>, so that this folder does not edit the shared list). Messages are built from
/// the HTTP status and ARM's error code only: never from a token, a SAS or a response body.
/// </summary>
public static class AzureControlPlaneErrorIds
{
    /// <summary>The subscription's quota (cores, disks, ...) does not allow the resource (QuotaExceeded, or OperationNotAllowed about a quota); AsrErrorKind.InvalidOperation.</summary>
    public const string AzureQuotaExceeded = "AzureQuotaExceeded";

    /// <summary>The VM size (or disk SKU) is not offered, or has no capacity, in the region or zone (SkuNotAvailable, AllocationFailed, ZonalAllocationFailed); AsrErrorKind.InvalidArgument.</summary>
    public const string AzureSkuNotAvailable = "AzureSkuNotAvailable";

    /// <summary>The resource, or one it refers to (resource group, subnet, disk), does not exist (404, NotFound, ResourceNotFound, InvalidResourceReference, ...); AsrErrorKind.ObjectNotFound.</summary>
    public const string AzureResourceNotFound = "AzureResourceNotFound";

    /// <summary>Azure Resource Manager still throttled the requests (429) after the SDK's retries; AsrErrorKind.ResourceBusy.</summary>
    public const string AzureThrottled = "AzureThrottled";

    /// <summary>The credential got no token, or ARM refused it (401/403: expired, wrong tenant, no role), or the endpoint's TLS certificate is not trusted; AsrErrorKind.SecurityError.</summary>
    public const string AzureAuthenticationFailed = "AzureAuthenticationFailed";

    /// <summary>ARM did not answer, or answered 408/5xx, through all the retries; AsrErrorKind.ConnectionError.</summary>
    public const string AzureUnavailable = "AzureUnavailable";

    /// <summary>ARM refused the request for another reason (the message carries the status and ARM's error code); AsrErrorKind.InvalidOperation.</summary>
    public const string AzureRequestFailed = "AzureRequestFailed";

    /// <summary>A disk or VM specification, resource id or cloud given to the control plane is not valid; AsrErrorKind.InvalidArgument.</summary>
    public const string AzureSpecInvalid = "AzureSpecInvalid";
}
