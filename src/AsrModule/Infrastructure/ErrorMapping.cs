using System.Management.Automation;
using AsrModule.Engine.Errors;

namespace AsrModule.Infrastructure;

/// <summary>Engine errors → PowerShell ErrorRecords with a stable id and the right category.</summary>
internal static class ErrorMapping
{
    public static ErrorCategory Category(AsrErrorKind kind) => kind switch
    {
        AsrErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
        AsrErrorKind.ObjectNotFound => ErrorCategory.ObjectNotFound,
        AsrErrorKind.ResourceExists => ErrorCategory.ResourceExists,
        AsrErrorKind.InvalidOperation => ErrorCategory.InvalidOperation,
        AsrErrorKind.ReadError => ErrorCategory.ReadError,
        AsrErrorKind.WriteError => ErrorCategory.WriteError,
        AsrErrorKind.InvalidData => ErrorCategory.InvalidData,
        AsrErrorKind.SecurityError => ErrorCategory.SecurityError,
        AsrErrorKind.OperationStopped => ErrorCategory.OperationStopped,
        AsrErrorKind.ResourceBusy => ErrorCategory.ResourceBusy,
        AsrErrorKind.NotImplemented => ErrorCategory.NotImplemented,
        AsrErrorKind.OperationTimeout => ErrorCategory.OperationTimeout,
        AsrErrorKind.ConnectionError => ErrorCategory.ConnectionError,
        AsrErrorKind.ResourceUnavailable => ErrorCategory.ResourceUnavailable,
        AsrErrorKind.InvalidResult => ErrorCategory.InvalidResult,
        _ => ErrorCategory.NotSpecified,
    };

    public static ErrorRecord ToErrorRecord(AsrException ex, object? target) =>
        new(ex, ex.ErrorId, Category(ex.Kind), target ?? ex.Target)
        {
            ErrorDetails = new ErrorDetails(ex.Message),
        };

    public static ErrorRecord FromJob(Engine.Jobs.AsrJob job)
    {
        var error = job.Errors.LastOrDefault();
        string id = error?.ErrorId ?? "JobFailed";
        var kind = Enum.TryParse<AsrErrorKind>(error?.Kind, out var k) ? k : AsrErrorKind.InvalidOperation;
        string message = $"Job {job.Id} ({job.Operation} of '{job.TargetName}') {job.State.ToString().ToLowerInvariant()}: {error?.Message ?? job.StatusMessage}";
        return new ErrorRecord(new AsrException(id, kind, message, job.TargetName), id, Category(kind), job);
    }
}
