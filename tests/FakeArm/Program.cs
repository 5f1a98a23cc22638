// FakeArm: a FAKE of Azure Resource Manager, for tests only. It is not Azure and makes no claim to be complete.
//
// The ARM control plane of the failover to Azure (issue #11, AsrModule.Engine.Azure/Failover/ArmControlPlane)
// runs against it in the unit tests, with the real Azure SDK (Azure.ResourceManager 1.7.0 + Compute 1.2.0). It
// serves the few operations that control plane uses (disk create for Upload, beginGetAccess/endGetAccess, disk
// and VM get/delete, VM create by attaching disks, list by tag, operation status) with the status codes, headers
// and body shapes of the azure-rest-api-specs examples vendored in examples/ (MIT; see examples/NOTICE.md). The
// page blob behind an upload disk is a real one in Azurite: beginGetAccess creates it and returns its SAS.
//
//   dotnet FakeArm.dll --port 0 --cert-dir <dir> [--azurite-connection-string <cs> --container <name>]
//                      [--mode sync|async] [--async-polls N] [--list-page-size N]
//
// Prints "LISTENING https://127.0.0.1:<port>" once it accepts connections; cert.pem in <dir> is its self-signed
// certificate (127.0.0.1, localhost). Control API for tests under /_fake/ (README.md). Stop it by killing it.

using System.Net;
using AsrModule.Tests.FakeArm;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

FakeArmOptions options;
try
{
    options = FakeArmOptions.Parse(args);
}
catch (Exception ex) when (ex is ArgumentException or FormatException)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}

var certificate = SelfSignedCertificate.CreateAndWrite(options.CertDir);
using var blobs = options.AzuriteConnectionString is { } cs ? new AzuriteBlobs(cs, options.Container) : null;
var server = new FakeArmServer(options, blobs);

var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, options.Port, listen => listen.UseHttps(certificate)));
var app = builder.Build();
app.Run(server.HandleAsync);
await app.StartAsync();

string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
int port = new Uri(address).Port;
Console.WriteLine($"LISTENING https://127.0.0.1:{port}");
Console.Out.Flush();
await app.WaitForShutdownAsync();
return 0;
