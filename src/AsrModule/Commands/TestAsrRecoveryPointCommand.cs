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
                var result = Await(ct => RecoveryPointVerifier.VerifyAsync(vault, point, ct));
                WriteObject(result);
                if (!result.Verified)
                    WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                        $"Recovery point {point} does not verify: " + string.Join("; ", result.Disks.Where(d => !d.Verified).Select(d => $"disk '{d.Disk}' digest {d.ActualDigest}, expected {d.ExpectedDigest}")), point), point));
            });
        }
    }
}
