using System.Management.Automation;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Reads back recovery points from the vault and checks every disk against the digest taken at capture.</summary>
[Cmdlet(VerbsDiagnostic.Test, "AsrRecoveryPoint")]
[OutputType(typeof(RecoveryPointVerification))]
public sealed class TestAsrRecoveryPointCommand : AsrCmdlet
{
    /// <summary>Points to verify (Get-AsrRecoveryPoint output).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public AsrRecoveryPoint[] RecoveryPoint { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var point in RecoveryPoint)
        {
            var vault = ResolveVault(point.VaultLocation);
            ForItem(point, () =>
            {
                // Writes nothing to the vault; a damaged point is a result too (Verified = false, with the errors).
                var result = Await(ct => RecoveryPointVerifier.VerifyAsync(vault, point, ct));
                WriteObject(result);
                if (!result.Verified)
                {
                    var problems = result.Error is { } whole ? [whole]
                        : result.Disks.Where(d => !d.Verified).Select(d => d.Error is { } e ? $"disk '{d.Disk}': {e}" : $"disk '{d.Disk}' digest {d.ActualDigest}, expected {d.ExpectedDigest}");
                    WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                        $"Recovery point {point} does not verify: " + string.Join("; ", problems), point), point));
                }
            });
        }
    }
}
