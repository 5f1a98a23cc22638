using System.Management.Automation;
using AsrModule.Engine.Failover;

namespace AsrModule.Infrastructure;

/// <summary>
/// Lets -Target take a directory path as well as a target object: a string becomes an <see cref="AsrLocalTarget"/>
/// (resolved against the current location). Azure targets come from New-AsrAzureTarget.
/// </summary>
public sealed class RecoveryTargetTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject ps ? ps.BaseObject : inputData;
        return value switch
        {
            IRecoveryTarget target => target,
            string path when !string.IsNullOrWhiteSpace(path) => new AsrLocalTarget(engineIntrinsics.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path)),
            System.IO.DirectoryInfo dir => new AsrLocalTarget(dir.FullName),
            _ => throw new ArgumentTransformationMetadataException(
                $"-Target takes a target from New-AsrLocalTarget or New-AsrAzureTarget, or a directory path; '{value}' is a {value?.GetType().Name ?? "null"}."),
        };
    }
}
