using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Stable error ids of the managed-disk upload, in the <c>&lt;Noun&gt;&lt;Condition&gt;</c> form of
/// <see cref="AsrErrorIds"/> (where they belong once that file takes them; kept here meanwhile so that this
/// folder does not edit the shared list).
/// </summary>
public static class ManagedDiskErrorIds
{
    /// <summary>What Azure holds after an upload differs from the recovery point (content hash, non-zero padding or footer); AsrErrorKind.InvalidData.</summary>
    public const string ManagedDiskUploadMismatch = "ManagedDiskUploadMismatch";

    /// <summary>The disk cannot be uploaded at this size, or the page blob behind the SAS is not <see cref="ManagedDiskSize.UploadSizeBytes"/> long; AsrErrorKind.InvalidArgument.</summary>
    public const string ManagedDiskUploadSizeInvalid = "ManagedDiskUploadSizeInvalid";

    /// <summary>The managed disk's storage refused or did not answer a request (after the SDK's retries); the kind follows the status (SecurityError for 401/403, ConnectionError for no answer).</summary>
    public const string ManagedDiskUploadFailed = "ManagedDiskUploadFailed";

    /// <summary>512 bytes are not a valid fixed VHD footer; AsrErrorKind.InvalidData.</summary>
    public const string VhdFooterInvalid = "VhdFooterInvalid";
}
