using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using AsrModule.Agent;
using AsrModule.Engine.Agent;

// The replication agent: a generic host (systemd-aware: Type=notify, journal-friendly logs) running
// one ReplicationAgent loop over one vault. Settings come from appsettings.json, environment
// (ASR_AGENT__VAULTPATH, ...) and the command line (--vault, --host-name, --key-file).
var builder = Host.CreateApplicationBuilder(args);
builder.Configuration.AddEnvironmentVariables("ASR_");
builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
{
    ["--vault"] = "Agent:VaultPath",
    ["--host-name"] = "Agent:HostName",
    ["--key-file"] = "Agent:KeyFile",
    ["--tick"] = "Agent:TickInterval",
    ["--allowed-freeze-scripts"] = "Agent:AllowedFreezeScripts",
});
builder.Services.AddSystemd();
builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection("Agent"));
builder.Services.Configure<AgentHostSettings>(builder.Configuration.GetSection("Agent"));
builder.Services.AddHostedService<AgentWorker>();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(75));

var host = builder.Build();
await host.RunAsync();
return Environment.ExitCode;
