using AsrModule.Engine.Security;

namespace AsrModule.Engine.Vault;

/// <summary>The vault's root object (<c>asrvault.json</c>): identity, format version, encryption settings.</summary>
public sealed class VaultHeader
{
    public const string Key = "asrvault.json";
    public const string FormatName = "asr-vault";
    /// <summary>
    /// Format of an unencrypted vault: records are plain JSON. Also what encrypted vaults were before version 2 (their
    /// records plain JSON too, only packs, indexes and trackers sealed); this module still reads and writes those as they are.
    /// </summary>
    public const int PlainFormatVersion = 1;

    /// <summary>
    /// Format of an encrypted vault written by this module: every record is sealed and authenticated with the vault key
    /// (<see cref="VaultRecords"/>), and the header's key check names the version, so a header rewritten to say 1 (to
    /// make plain records acceptable again) no longer opens with the key. Readers of version 1 refuse it as an unknown version.
    /// </summary>
    public const int SealedFormatVersion = 2;

    /// <summary>The newest vault format this engine reads and writes. Bump on any incompatible layout change.</summary>
    public const int CurrentFormatVersion = SealedFormatVersion;

    /// <summary>The format a new vault is written in: unencrypted ones stay readable by earlier versions of this module.</summary>
    public static int FormatVersionFor(bool encrypted) => encrypted ? SealedFormatVersion : PlainFormatVersion;

    public string Format { get; set; } = FormatName;
    public int FormatVersion { get; set; } = PlainFormatVersion;
    public string VaultId { get; set; } = "";
    public DateTimeOffset CreatedUtc { get; set; }
    public string CreatedBy { get; set; } = "";
    public EncryptionSettings? Encryption { get; set; }
    /// <summary>Seed of the block hashes in an unencrypted vault (an encrypted vault derives it from its key, so it is secret).</summary>
    public ulong BlockHashSeed { get; set; }
}
