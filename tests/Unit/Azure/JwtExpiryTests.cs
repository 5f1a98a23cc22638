using System.Text;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Azure.Failover;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>The 'exp' claim of a bearer token, read once for the blob vault and the Azure target.</summary>
public sealed class JwtExpiryTests
{
    private static string Jwt(string payloadJson) =>
        "eyJhbGciOiJub25lIn0." + Convert.ToBase64String(Encoding.UTF8.GetBytes(payloadJson)).TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".c2ln";

    [Fact]
    public void The_exp_claim_of_a_jwt_is_its_expiry()
    {
        Assert.True(JwtExpiry.TryRead(Jwt("{\"exp\":4102444800}"), out var expiresOn));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(4102444800), expiresOn);
    }

    [Theory]
    [InlineData("opaque-token-value")]
    [InlineData("a.b")]
    [InlineData("a.!!!.c")]
    public void A_token_that_is_not_a_jwt_has_no_expiry(string token) => Assert.False(JwtExpiry.TryRead(token, out _));

    [Theory]
    [InlineData("[1,2,3]")]
    [InlineData("\"exp\"")]
    [InlineData("42")]
    [InlineData("null")]
    [InlineData("not json")]
    [InlineData("{\"sub\":\"x\"}")]
    [InlineData("{\"exp\":\"4102444800\"}")]
    [InlineData("{\"exp\":1.5}")]
    [InlineData("{\"exp\":99999999999999999}")]
    public void A_payload_without_a_usable_exp_has_no_expiry(string payloadJson) => Assert.False(JwtExpiry.TryRead(Jwt(payloadJson), out _));

    [Fact]
    public void A_payload_that_is_not_an_object_gives_the_default_hour_not_an_exception()
    {
        string token = Jwt("[1,2,3]");
        var connection = BlobVaultConnection.WithAccessToken(new Uri("https://contoso.blob.core.windows.net/asr-vault"), token);
        Assert.Equal(BlobVaultAuthentication.AccessToken, connection.Authentication);
        var credential = AzureTargetCredential.AccessToken(token);
        Assert.InRange(credential.ExpiresOn!.Value, DateTimeOffset.UtcNow.AddMinutes(59), DateTimeOffset.UtcNow.AddMinutes(61));
    }
}
