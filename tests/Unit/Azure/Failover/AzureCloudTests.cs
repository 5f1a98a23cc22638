using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>The named clouds carry the SDK's ArmEnvironment and AzureAuthorityHosts values (docs/azure-target-notes.md §6).</summary>
public sealed class AzureCloudTests
{
    [Theory]
    [InlineData("AzureCloud", "https://management.azure.com/", "https://management.azure.com/", "https://login.microsoftonline.com/")]
    [InlineData("azurechinacloud", "https://management.chinacloudapi.cn/", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn/")]
    [InlineData("AzureUSGovernment", "https://management.usgovcloudapi.net/", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us/")]
    public void NamedClouds_HaveTheSdksEndpointsAudiencesAndAuthorities(string name, string endpoint, string audience, string authority)
    {
        var cloud = AzureCloud.FromName(name);
        Assert.Equal((endpoint, audience, authority), (cloud.ResourceManagerEndpoint.ToString(), cloud.Audience, cloud.AuthorityHost.ToString()));
    }

    [Fact]
    public void NamedClouds_MatchTheSdksArmEnvironments()
    {
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzurePublicCloud.Audience, AzureCloud.AzurePublic.Audience);
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzureChina.Audience, AzureCloud.AzureChina.Audience);
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzureGovernment.Audience, AzureCloud.AzureUSGovernment.Audience);
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzurePublicCloud.Endpoint, AzureCloud.AzurePublic.ResourceManagerEndpoint);
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzureChina.Endpoint, AzureCloud.AzureChina.ResourceManagerEndpoint);
        Assert.Equal(global::Azure.ResourceManager.ArmEnvironment.AzureGovernment.Endpoint, AzureCloud.AzureUSGovernment.ResourceManagerEndpoint);
        Assert.Equal(global::Azure.Identity.AzureAuthorityHosts.AzurePublicCloud, AzureCloud.AzurePublic.AuthorityHost);
        Assert.Equal(global::Azure.Identity.AzureAuthorityHosts.AzureChina, AzureCloud.AzureChina.AuthorityHost);
        Assert.Equal(global::Azure.Identity.AzureAuthorityHosts.AzureGovernment, AzureCloud.AzureUSGovernment.AuthorityHost);
    }

    [Fact]
    public void CustomCloud_DefaultsTheAudienceToTheEndpoint_AndNeedsHttps()
    {
        var cloud = AzureCloud.Custom(new Uri("https://management.local.azurestack.external/"), new Uri("https://adfs.local.azurestack.external/adfs/"));
        Assert.Equal("https://management.local.azurestack.external", cloud.Audience);
        var ex = Assert.Throws<AsrException>(() => AzureCloud.Custom(new Uri("http://127.0.0.1:8080/"), new Uri("https://login.example/")));
        Assert.Equal((AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument), (ex.ErrorId, ex.Kind));
        Assert.Equal(AzureControlPlaneErrorIds.AzureSpecInvalid, Assert.Throws<AsrException>(() => AzureCloud.FromName("AzureGermanCloud")).ErrorId);
    }
}
