namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The security type of a VM. <see cref="Standard"/> sends no securityProfile (the default the notes recommend for
/// an uploaded disk); <see cref="TrustedLaunch"/> needs a V2 OS disk and turns the vTPM on (and secure boot when
/// <see cref="AzureVmSpec.SecureBoot"/> is set).
/// </summary>
public enum AzureVmSecurity
{
    Standard,
    TrustedLaunch,
}
