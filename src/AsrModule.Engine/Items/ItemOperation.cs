namespace AsrModule.Engine.Items;

/// <summary>Everything a user can ask of a protected item; the state machine says which are allowed when.</summary>
public enum ItemOperation
{
    Replicate,
    Resync,
    ExportRecoveryPoint,
    TestFailover,
    TestFailoverCleanup,
    Failover,
    ChangeRecoveryPoint,
    CancelFailover,
    CommitFailover,
    Reprotect,
    Failback,
    Disable,
}
