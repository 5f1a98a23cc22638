using AsrModule.Engine.Errors;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// The key derivation's settings come from the vault header: a hostile header must not make Connect-AsrVault
/// derive for minutes (PBKDF2 cannot be cancelled) nor derive with no work at all. Out-of-range settings are
/// VaultFormatUnsupported, before any derivation (issue #12, C). The 60 s wait only turns a hang of code without
/// the bounds into a failure; with them the refusal is immediate.
/// </summary>
public class KeyDerivationBoundsTests
{
    private static async Task<string> EncryptedVaultAsync(TempDir dir, Action<System.Text.Json.Nodes.JsonNode> editEncryption)
    {
        string path = dir["v"];
        await AsrVault.CreateLocalAsync(path, "k");
        VaultTamper.EditJson(Path.Combine(path, VaultHeader.Key), header => editEncryption(header["encryption"]!));
        return path;
    }

    private static async Task<AsrException> RefusedAsync(string path, string? passphrase)
    {
        var open = Task.Run(() => AsrVault.OpenLocalAsync(path, passphrase));
        return await Assert.ThrowsAsync<AsrException>(() => open.WaitAsync(TimeSpan.FromSeconds(60)));
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(VaultKey.MinIterations - 1)]
    [InlineData(VaultKey.MaxIterations + 1)]
    public async Task An_iteration_count_out_of_bounds_is_refused_before_any_derivation(int iterations)
    {
        using var dir = new TempDir();
        string path = await EncryptedVaultAsync(dir, e => e["iterations"] = iterations);

        var ex = await RefusedAsync(path, "k");

        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
        Assert.Contains(iterations.ToString("N0"), ex.Message);
        Assert.Contains(VaultKey.MaxIterations.ToString("N0"), ex.Message);
    }

    [Fact]
    public async Task The_bad_header_is_reported_even_without_a_key()
    {
        using var dir = new TempDir();
        string path = await EncryptedVaultAsync(dir, e => e["iterations"] = int.MaxValue);
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, (await RefusedAsync(path, null)).ErrorId);
    }

    [Theory]
    [InlineData("salt", "not base64!")]
    [InlineData("salt", "AAAA")]
    [InlineData("kdf", "scrypt")]
    [InlineData("algorithm", "ROT13")]
    [InlineData("keyCheck", "")]
    public async Task Other_settings_this_module_did_not_write_are_refused(string field, string value)
    {
        using var dir = new TempDir();
        string path = await EncryptedVaultAsync(dir, e => e[field] = value);
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, (await RefusedAsync(path, "k")).ErrorId);
    }

    [Fact]
    public void The_bounds_bracket_what_the_module_writes()
    {
        Assert.InRange(VaultKey.Iterations, VaultKey.MinIterations, VaultKey.MaxIterations);
        Assert.Equal(100_000, VaultKey.MinIterations);
        Assert.Equal(2_400_000, VaultKey.MaxIterations);
    }

    [Fact]
    public async Task A_vault_the_module_wrote_still_opens()
    {
        using var dir = new TempDir();
        await AsrVault.CreateLocalAsync(dir["v"], "k");
        Assert.True((await AsrVault.OpenLocalAsync(dir["v"], "k")).IsEncrypted);
    }
}
