using System.Security.Cryptography;
using System.Text;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Security;

/// <summary>
/// The vault's master key, derived from a passphrase with PBKDF2-SHA256. Data is never encrypted
/// with the master key directly: every pack and metadata object gets its own subkey through HKDF,
/// so AES-GCM's random 96-bit nonces stay far below their collision bound per key.
/// </summary>
public sealed class VaultKey
{
    public const int Iterations = 600_000; // OWASP 2023 figure for PBKDF2-HMAC-SHA256
    private const string KeyCheckLabel = "asr-vault-key-check";
    private readonly byte[] _master;

    private VaultKey(byte[] master) => _master = master;

    public static EncryptionSettings CreateSettings(string passphrase, string vaultId, out VaultKey key)
    {
        byte[] salt = RandomNumberGenerator.GetBytes(16);
        key = Derive(passphrase, salt, Iterations);
        return new EncryptionSettings
        {
            Algorithm = "AES-256-GCM",
            Kdf = "PBKDF2-SHA256",
            Iterations = Iterations,
            Salt = Convert.ToBase64String(salt),
            KeyCheck = key.ComputeKeyCheck(vaultId),
        };
    }

    public static VaultKey Open(string passphrase, EncryptionSettings settings, string vaultId, string vaultLocation)
    {
        var key = Derive(passphrase, Convert.FromBase64String(settings.Salt), settings.Iterations);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(key.ComputeKeyCheck(vaultId)), Encoding.ASCII.GetBytes(settings.KeyCheck)))
            throw new AsrException(AsrErrorIds.VaultKeyInvalid, AsrErrorKind.SecurityError,
                $"The encryption key does not open the vault at '{vaultLocation}'. Supply the key the vault was created with.", vaultLocation);
        return key;
    }

    private static VaultKey Derive(string passphrase, byte[] salt, int iterations)
    {
        if (string.IsNullOrEmpty(passphrase))
            throw new AsrException(AsrErrorIds.VaultKeyInvalid, AsrErrorKind.InvalidArgument, "The encryption key must not be empty.");
        return new VaultKey(Rfc2898DeriveBytes.Pbkdf2(passphrase, salt, iterations, HashAlgorithmName.SHA256, 32));
    }

    private string ComputeKeyCheck(string vaultId) =>
        Convert.ToBase64String(HMACSHA256.HashData(_master, Encoding.UTF8.GetBytes(KeyCheckLabel + ":" + vaultId)));

    /// <summary>A subkey bound to one purpose/object (e.g. a pack id).</summary>
    public byte[] DeriveSubkey(string context) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _master, 32, salt: null, info: Encoding.UTF8.GetBytes(context));
}

/// <summary>What the vault header records about encryption (never the key).</summary>
public sealed class EncryptionSettings
{
    public string Algorithm { get; set; } = "AES-256-GCM";
    public string Kdf { get; set; } = "PBKDF2-SHA256";
    public int Iterations { get; set; }
    public string Salt { get; set; } = "";
    public string KeyCheck { get; set; } = "";
}
