using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Vault;

/// <summary>
/// Checks on records read from the vault, before the engine acts on them. The vault is untrusted input
/// (issue #12): whoever can write to its directory or container can plant a record, so every value that
/// becomes a file name, a key segment or a size is checked where the record is read, and a bad record is
/// refused with <see cref="AsrErrorIds.VaultDataCorrupt"/> naming its key and the bad value.
/// See docs/design.md, "Untrusted records".
/// </summary>
public static class VaultRecordChecks
{
    /// <summary>The longest file name (in UTF-8 bytes) common file systems accept (ext4, XFS, NTFS in UTF-16 units).</summary>
    public const int MaxFileNameBytes = 255;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Why <paramref name="name"/> is not a plain file name (one path segment that stays where it is joined),
    /// or null when it is one: not empty, not '.' or '..', no '/' or '\', no NUL or other control character,
    /// not rooted, valid Unicode, at most <see cref="MaxFileNameBytes"/> bytes of UTF-8.
    /// </summary>
    public static string? FileNameProblem(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "it is empty";
        if (name is "." or "..") return "it names a directory";
        if (name.Contains('/') || name.Contains('\\')) return "it contains a path separator";
        foreach (char c in name)
            if (char.IsControl(c)) return "it contains a control character";
        if (Path.IsPathRooted(name)) return "it is rooted";
        if (name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0) return "it contains a character file names cannot hold";
        int bytes;
        try { bytes = StrictUtf8.GetByteCount(name); }
        catch (EncoderFallbackException) { return "it is not valid Unicode"; }
        if (bytes > MaxFileNameBytes) return $"it is {bytes} bytes long; a file name has at most {MaxFileNameBytes}";
        return null;
    }

    /// <summary>Throws <see cref="AsrErrorIds.VaultDataCorrupt"/> unless <paramref name="diskName"/> is a plain file name.</summary>
    public static void CheckDiskName(string? diskName, string recordKey)
    {
        if (FileNameProblem(diskName) is { } why)
            throw Corrupt(recordKey, $"disk name '{Printable(diskName)}' is not a plain file name ({why})");
    }

    /// <summary>
    /// <paramref name="directory"/> joined with the vault-supplied <paramref name="diskName"/> (plus a suffix of
    /// ours such as ".overlay"): the name must be a plain file name, and, as a second line of defence, the joined
    /// path must still be inside <paramref name="directory"/> once normalised.
    /// </summary>
    public static string JoinInside(string directory, string diskName, string suffix, string recordKey)
    {
        CheckDiskName(diskName, recordKey);
        string joined = Path.Combine(directory, diskName + suffix);
        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)) + Path.DirectorySeparatorChar;
        string full = Path.GetFullPath(joined);
        var comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        if (!full.StartsWith(root, comparison) || full.Length == root.Length)
            throw Corrupt(recordKey, $"disk name '{Printable(diskName)}' would put a file at '{full}', outside '{root}'");
        return joined;
    }

    /// <summary>
    /// A recovery point manifest read from <paramref name="key"/>: it must belong where it was read (item and
    /// sequence of its key), and its disks must have key-safe ids, plain, distinct file names and sane geometry.
    /// </summary>
    internal static void CheckPoint(AsrRecoveryPoint point, string key, string itemId, long sequence)
    {
        if (point.FormatVersion > AsrRecoveryPoint.CurrentFormatVersion)
            throw new AsrException(AsrErrorIds.VaultFormatUnsupported, AsrErrorKind.InvalidData,
                $"Recovery point manifest '{key}' has point format {point.FormatVersion}; this module reads formats 1 to {AsrRecoveryPoint.CurrentFormatVersion}. " +
                "A newer AsrModule wrote it: update the module in this session and on every agent host that uses the vault. Until then this item's " +
                "cycles and retention stop here (nothing is deleted) and its older points stay readable.", key);
        if (point.FormatVersion < 1)
            throw Corrupt(key, $"point format {point.FormatVersion} is not a format (1 or more)");
        if (point.ItemId != itemId || point.Sequence != sequence)
            throw Corrupt(key, $"it says it is point {point.Sequence} of item '{Printable(point.ItemId)}', but it is stored as point {sequence} of item '{itemId}'");
        if (point.Disks is null || point.Disks.Any(d => d is null))
            throw Corrupt(key, "its list of disks is missing or has an empty entry");
        if (point.IndexGeneration < 0)
            throw Corrupt(key, $"index generation {point.IndexGeneration} is negative");
        if (point.IndexRelativeToParent && (point.IndexGeneration == 0 || point.ParentSequence is null))
            throw Corrupt(key, "it says its maps are relative to its parent, but it names no parent or no map generation");
        // Attempt ids become parts of object names: only what NewAttemptId writes.
        if (point.AttemptId is not null && !VaultLayout.IsValidAttemptId(point.AttemptId))
            throw Corrupt(key, $"attempt id '{Printable(point.AttemptId)}' is not 8 hex digits");
        if (point.PackAttempts?.Any(a => a.Key <= 0 || a.Key >= sequence || !VaultLayout.IsValidAttemptId(a.Value)) == true)
            throw Corrupt(key, "its pack attempts name a sequence that is not an older point, or an attempt id that is not 8 hex digits");
        CheckDisks(point.Disks.Select(d => (d.DiskId, d.Name, d.SizeBytes, d.BlockSize)), key);
        if (point.Disks.FirstOrDefault(d => d.DigestSegmentBlocks is { } s && !Replication.TrackerTables.HashSegments.IsValid(s)) is { } odd)
            throw Corrupt(key, $"disk '{Printable(odd.Name)}' states digest segments of {odd.DigestSegmentBlocks} blocks (a power of two from {Replication.TrackerTables.HashSegments.MinSegmentBlocks} to {Replication.TrackerTables.HashSegments.MaxSegmentBlocks})");
    }

    /// <summary>
    /// An item record read from <paramref name="key"/> (<c>items/&lt;id&gt;/item.json</c>): it must be the item its key
    /// names, its name and policy name key segments, and its disks pass the same checks as a manifest's.
    /// </summary>
    internal static void CheckItem(AsrProtectedItem item, string key)
    {
        string[] parts = key.Split('/');
        if (parts.Length == 3 && item.Id != parts[1])
            throw Corrupt(key, $"it says it is item '{Printable(item.Id)}', but it is stored as item '{parts[1]}'");
        if (item.Name is null || !VaultLayout.IsValidName(item.Name))
            throw Corrupt(key, $"item name '{Printable(item.Name)}' is not a valid name (letters, digits, '.', '_', '-')");
        if (item.PolicyName is null || !VaultLayout.IsValidName(item.PolicyName))
            throw Corrupt(key, $"policy name '{Printable(item.PolicyName)}' is not a valid name (letters, digits, '.', '_', '-')");
        if (item.Disks is null || item.Disks.Any(d => d is null))
            throw Corrupt(key, "its list of disks is missing or has an empty entry");
        CheckDisks(item.Disks.Select(d => (d.DiskId, d.Name, d.SizeBytes, d.BlockSize)), key);
    }

    /// <summary>
    /// A policy read from <paramref name="key"/> (<c>policies/&lt;name&gt;.json</c>): it must be the policy its key names
    /// and have settings New-AsrPolicy accepts (a planted retention of -1 hour or a zstd level of 99 is not obeyed).
    /// </summary>
    internal static void CheckPolicy(Policies.AsrPolicy policy, string key)
    {
        string keyName = Path.GetFileNameWithoutExtension(key);
        if (policy.Name is null || !string.Equals(policy.Name.ToLowerInvariant(), keyName, StringComparison.Ordinal))
            throw Corrupt(key, $"it says it is policy '{Printable(policy.Name)}', but it is stored as policy '{keyName}'");
        try { policy.Validate(); }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.PolicySettingInvalid)
        {
            throw Corrupt(key, ex.Message.TrimEnd('.'));
        }
    }

    private static void CheckDisks(IEnumerable<(string? Id, string? Name, long SizeBytes, int BlockSize)> disks, string key)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (id, name, size, blockSize) in disks)
        {
            // Disk ids become key segments (index, tracker and bitmap names): the same rule as item and policy names.
            if (id is null || !VaultLayout.IsValidName(id))
                throw Corrupt(key, $"disk id '{Printable(id)}' is not a valid id (letters, digits, '.', '_', '-')");
            CheckDiskName(name, key);
            if (!ids.Add(id) || !names.Add(name!))
                throw Corrupt(key, $"disk '{Printable(name)}' ({id}) is listed twice");
            if (size < 0)
                throw Corrupt(key, $"disk '{Printable(name)}' has a negative size ({size})");
            if (blockSize < 512 || blockSize > (1 << 20) || (blockSize & (blockSize - 1)) != 0)
                throw Corrupt(key, $"disk '{Printable(name)}' has block size {blockSize} (a power of two from 512 bytes to 1 MiB)");
        }
    }

    /// <summary>A record that cannot be trusted: <see cref="AsrErrorIds.VaultDataCorrupt"/> naming its key.</summary>
    public static AsrException Corrupt(string key, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Vault record '{key}' is corrupt: {why}; the engine refuses to use it.", key);

    /// <summary>A vault-supplied string as it can be shown in a message: control characters escaped, long ones cut.</summary>
    public static string Printable(string? value)
    {
        if (value is null) return "(null)";
        var sb = new StringBuilder(Math.Min(value.Length, 300));
        foreach (char c in value)
        {
            if (sb.Length >= 300) { sb.Append('…'); break; }
            if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}"); else sb.Append(c);
        }
        return sb.ToString();
    }
}
