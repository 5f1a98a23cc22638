namespace AsrModule.Engine.Storage;

/// <summary>
/// A store lock that can lapse while its holder still runs: a blob lease the holder could not renew through
/// a storage outage, which another process may then take. A local file lock never lapses (the kernel holds it
/// until the process dies), so it does not implement this.
/// </summary>
public interface ILeasedLock : IDisposable
{
    /// <summary>Cancelled once the lock is known to be no longer held.</summary>
    CancellationToken Lost { get; }
}
