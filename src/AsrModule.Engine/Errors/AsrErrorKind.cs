namespace AsrModule.Engine.Errors;

/// <summary>
/// What kind of failure an <see cref="AsrException"/> is. The cmdlet layer maps each kind onto a
/// PowerShell ErrorCategory; the engine itself never references PowerShell.
/// </summary>
public enum AsrErrorKind
{
    InvalidArgument,
    ObjectNotFound,
    ResourceExists,
    InvalidOperation,
    ReadError,
    WriteError,
    InvalidData,
    SecurityError,
    OperationStopped,
    ResourceBusy,
    NotImplemented,
    OperationTimeout,
    ConnectionError,
    /// <summary>A resource the operation needs is used up (the vault's file system is full).</summary>
    ResourceUnavailable,
    /// <summary>An operation ran but its outcome is not what was asked (a drill's check failed).</summary>
    InvalidResult,
}
