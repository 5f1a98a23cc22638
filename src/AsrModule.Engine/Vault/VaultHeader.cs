using AsrModule.Engine.Security;

namespace AsrModule.Engine.Vault;

/// <summary>The vault's root object (<c>asrvault.json</c>): identity, format version, encryption settings.</summary>
public sealed class VaultHeader
{
    public const string Key = "asrvault.json";
    public const string FormatName = "asr-vault";
    /// <summary>The vault format this engine reads and writes. Bump on any incompatible layout change.</summary>
    public const int CurrentFormatVersion = 1;

    public string Format { get; set; } = FormatName;
    public int FormatVersion { get; set; } = CurrentFormatVersion;
    public string VaultId { get; set; } = "";
    public DateTimeOffset CreatedUtc { get; set; }
    public string CreatedBy { get; set; } = "";
    public EncryptionSettings? Encryption { get; set; }
    /// <summary>Seed of the block hashes in an unencrypted vault (an encrypted vault derives it from its key, so it is secret).</summary>
    public ulong BlockHashSeed { get; set; }
}
