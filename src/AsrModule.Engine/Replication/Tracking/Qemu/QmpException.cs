namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>QEMU answered a QMP command with an error; <see cref="ErrorClass"/> and <see cref="Description"/> are QEMU's own.</summary>
public sealed class QmpException(string command, string errorClass, string description)
    : Exception($"QMP {command} failed: {description} ({errorClass})")
{
    public string Command { get; } = command;

    /// <summary>QEMU's error class, e.g. GenericError, DeviceNotFound, DeviceNotActive.</summary>
    public string ErrorClass { get; } = errorClass;

    /// <summary>QEMU's human-readable message.</summary>
    public string Description { get; } = description;
}
