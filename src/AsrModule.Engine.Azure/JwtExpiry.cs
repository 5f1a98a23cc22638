using System.Text.Json;

namespace AsrModule.Engine.Azure;

/// <summary>
/// The 'exp' claim of a bearer token, when it is a JWT: how long a token given by the user (Get-AzAccessToken) is
/// used. Both the blob vault's <see cref="BlobVaultConnection"/> and the Azure target's credential read it here.
/// </summary>
internal static class JwtExpiry
{
    /// <summary>
    /// True with the expiry when <paramref name="token"/> is a JWT whose payload is a JSON object with a whole-number
    /// 'exp' (seconds since 1970); false for anything else: not three parts, not base64url, not JSON, not an object, no
    /// 'exp', or one out of range. The signature is not checked (the service does that).
    /// </summary>
    public static bool TryRead(string token, out DateTimeOffset expiresOn)
    {
        expiresOn = default;
        var parts = token.Split('.');
        if (parts.Length != 3) return false;
        string payload = parts[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + (4 - payload.Length % 4) % 4, '=');
        try
        {
            using var json = JsonDocument.Parse(Convert.FromBase64String(payload));
            if (json.RootElement.ValueKind != JsonValueKind.Object
                || !json.RootElement.TryGetProperty("exp", out var exp)
                || exp.ValueKind != JsonValueKind.Number
                || !exp.TryGetInt64(out long seconds)
                || seconds < DateTimeOffset.MinValue.ToUnixTimeSeconds() || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
                return false;
            expiresOn = DateTimeOffset.FromUnixTimeSeconds(seconds);
            return true;
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return false;
        }
    }
}
