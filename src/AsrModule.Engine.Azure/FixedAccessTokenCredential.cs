using Azure.Core;

namespace AsrModule.Engine.Azure;

/// <summary>
/// A bearer token obtained elsewhere (Get-AzAccessToken -ResourceTypeName Storage in a session signed in with
/// Az.Accounts): sent as it is, never renewed. Azure.Identity has no such credential because it cannot refresh.
/// </summary>
internal sealed class FixedAccessTokenCredential(string token, DateTimeOffset expiresOn) : TokenCredential
{
    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) => new(token, expiresOn);

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        new(new AccessToken(token, expiresOn));
}
