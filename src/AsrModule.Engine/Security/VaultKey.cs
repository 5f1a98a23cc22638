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

    /// <summary>
    /// Fewest iterations a vault header may ask for: what this module writes (<see cref="Iterations"/>) ÷ 6, the
    /// 100,000 of older guidance. A header below it was not written by this module; deriving with it would be cheap
    /// for an attacker who planted it, and 0 or a negative count is no derivation at all.
    /// </summary>
    public const int MinIterations = Iterations / 6;

    /// <summary>
    /// Most iterations a vault header may ask for: 4 × <see cref="Iterations"/> (about a second where the default
    /// takes 0.3 s), room for a later default. A hostile header asking for 2^31 − 1 (about 20 minutes of CPU, which
    /// nothing can cancel) is refused before any derivation starts.
    /// </summary>
    public const int MaxIterations = Iterations * 4;

    /// <summary>The salt this module writes is 16 bytes; a header's may be 16 to 64.</summary>
    private const int MinSaltBytes = 16, MaxSaltBytes = 64;
    private const string KeyCheckLabel = "asr-vault-key-check";
    private readonly byte[] _master;

    private VaultKey(byte[] master) => _master = master;

    public static EncryptionSettings CreateSettings(string passphrase, string vaultId, int formatVersion, out VaultKey key)
    {
        byte[] salt = RandomNumberGenerator.GetBytes(16);
        key = Derive(passphrase, salt, Iterations);
        return new EncryptionSettings
        {
            Algorithm = "AES-256-GCM",
            Kdf = "PBKDF2-SHA256",
            Iterations = Iterations,
            Salt = Convert.ToBase64String(salt),
            KeyCheck = key.ComputeKeyCheck(vaultId, formatVersion),
        };
    }

    /// <summary>
    /// Checks the encryption settings of a vault header before anything is derived from them: the algorithm and KDF
    /// this module implements, an iteration count within [<see cref="MinIterations"/>, <see cref="MaxIterations"/>], a
    /// 16–64 byte salt and a key check. Anything else is <see cref="AsrErrorIds.VaultFormatUnsupported"/> (InvalidData):
    /// a header this module did not write, reported on Connect-AsrVault like an unknown format version.
    /// </summary>
    public static void CheckSettings(EncryptionSettings settings, string vaultLocation)
    {
        string? problem = null;
        byte[]? salt = null;
        try { salt = Convert.FromBase64String(settings.Salt ?? ""); }
        catch (FormatException) { }
        if (settings.Algorithm != "AES-256-GCM" || settings.Kdf != "PBKDF2-SHA256")
            problem = $"encryption '{Vault.VaultRecordChecks.Printable(settings.Algorithm)}' with key derivation '{Vault.VaultRecordChecks.Printable(settings.Kdf)}' (this module uses AES-256-GCM with PBKDF2-SHA256)";
        else if (settings.Iterations is < MinIterations or > MaxIterations)
            problem = $"a key derivation of {settings.Iterations:N0} iterations (this module accepts {MinIterations:N0} to {MaxIterations:N0}; it writes {Iterations:N0})";
        else if (salt is null || salt.Length is < MinSaltBytes or > MaxSaltBytes)
            problem = $"a salt that is not {MinSaltBytes} to {MaxSaltBytes} bytes of base64";
        else if (string.IsNullOrEmpty(settings.KeyCheck))
            problem = "no key check";
        if (problem is not null)
            throw new AsrException(AsrErrorIds.VaultFormatUnsupported, AsrErrorKind.InvalidData,
                $"The vault header at '{vaultLocation}' asks for {problem}; it was not written by this module and is refused before any key is derived.", vaultLocation);
    }

    /// <summary>
    /// The key of the vault whose header holds <paramref name="settings"/>, checked against its key check. The check is
    /// an HMAC of the vault id and (from format version 2) of the format version: a version-2 header edited to say 1
    /// fails here as a wrong key would, so nobody without the key can turn record authentication off.
    /// </summary>
    public static VaultKey Open(string passphrase, EncryptionSettings settings, string vaultId, int formatVersion, string vaultLocation)
    {
        CheckSettings(settings, vaultLocation);
        var key = Derive(passphrase, Convert.FromBase64String(settings.Salt), settings.Iterations);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(key.ComputeKeyCheck(vaultId, formatVersion)), Encoding.ASCII.GetBytes(settings.KeyCheck)))
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

    private string ComputeKeyCheck(string vaultId, int formatVersion) =>
        Convert.ToBase64String(HMACSHA256.HashData(_master, Encoding.UTF8.GetBytes(
            formatVersion <= 1 ? KeyCheckLabel + ":" + vaultId : $"{KeyCheckLabel}:v{formatVersion}:{vaultId}")));

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
