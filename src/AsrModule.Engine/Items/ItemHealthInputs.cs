namespace AsrModule.Engine.Items;

/// <summary>
/// What an item's read found that its health depends on besides the clock: a damaged record (latest manifest or
/// policy), the policy's RPO threshold, and whether a point exists. The agent keeps items in memory between ticks and
/// re-evaluates their RPO and health from these (VaultCatalog.EvaluateHealth) without reading them again.
/// </summary>
internal sealed record ItemHealthInputs(bool RecordDamaged, double RpoThresholdMinutes, bool HasLatestPoint);
