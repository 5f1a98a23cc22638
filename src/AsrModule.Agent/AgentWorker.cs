using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using AsrModule.Engine.Agent;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Options;

namespace AsrModule.Agent;

/// <summary>Opens the vault and runs the replication loop until the service stops or Stop-AsrAgent asks it to.</summary>
public sealed class AgentWorker(
    IOptions<AgentOptions> options,
    IOptions<AgentHostSettings> settings,
    IHostApplicationLifetime lifetime,
    ILogger<AgentWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            string vaultPath = settings.Value.VaultPath
                ?? throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.InvalidArgument, "No vault given: pass --vault <path or container URL> or set Agent:VaultPath.", null);
            string? key = Environment.GetEnvironmentVariable("ASR_VAULT_KEY");
            if (settings.Value.KeyFile is { } keyFile) key = (await File.ReadAllTextAsync(keyFile, stoppingToken)).TrimEnd('\r', '\n');
            // A container URL authenticates with what the environment provides (Start-AsrAgent forwards the
            // session's credential there; under systemd an EnvironmentFile does): see BlobVaultConnection.FromEnvironment.
            var vault = await AsrVault.OpenAsync(VaultStores.Open(vaultPath, logger), key, logger, stoppingToken);
            logger.LogInformation("Agent for host {Host} protecting from vault {Vault}", options.Value.HostName, vault.Location);
            await new ReplicationAgent(vault, options.Value, logger).RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            logger.LogCritical(ex, "The agent cannot run: {Message}", ex.Message);
            Environment.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }
}
