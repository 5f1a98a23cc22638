using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace AsrModule.Tests.FakeArm;

/// <summary>The control API under /_fake/ (for tests; see README.md) and the answer helpers.</summary>
internal sealed partial class FakeArmServer
{
    private async Task ControlAsync(HttpContext ctx, string command)
    {
        string method = ctx.Request.Method;
        JsonObject body = [];
        if (method == "POST")
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            string text = await reader.ReadToEndAsync(ctx.RequestAborted);
            if (!string.IsNullOrWhiteSpace(text)) body = JsonNode.Parse(text) as JsonObject ?? [];
        }
        switch (command.ToLowerInvariant().TrimEnd('/'), method)
        {
            case ("requests", "GET"):
                await JsonAsync(ctx, 200, _log.ToJson());
                break;
            case ("requests", "DELETE"):
                _log.Clear();
                ctx.Response.StatusCode = 204;
                break;
            case ("faults", "POST"):
                _faults.Add(Fault.FromJson(body));
                ctx.Response.StatusCode = 204;
                break;
            case ("subnets", "POST"):
                lock (_lock) _subnets.Add((string?)body["id"] ?? throw new BadRequest(400, "InvalidParameter", "{\"id\": \"<subnet id>\"} expected."));
                ctx.Response.StatusCode = 204;
                break;
            case ("config", "POST"):
                if ((string?)body["mode"] is { } mode) _mode = Enum.Parse<LroMode>(mode, ignoreCase: true);
                if ((int?)body["asyncPolls"] is { } polls) _asyncPolls = Math.Max(1, polls);
                if ((int?)body["listPageSize"] is { } size) _listPageSize = Math.Max(1, size);
                await JsonAsync(ctx, 200, new JsonObject { ["mode"] = _mode.ToString(), ["asyncPolls"] = _asyncPolls, ["listPageSize"] = _listPageSize });
                break;
            case ("state", "GET"):
                JsonObject state;
                lock (_lock)
                    state = new JsonObject
                    {
                        ["disks"] = new JsonArray(_disks.Values.Select(d => (JsonNode)d.ToJson()).ToArray()),
                        ["snapshots"] = new JsonArray(_snapshots.Values.Select(s => (JsonNode)s.ToJson()).ToArray()),
                        ["virtualMachines"] = new JsonArray(_vms.Values.Select(v => (JsonNode)v.ToJson()).ToArray()),
                        ["subnets"] = new JsonArray(_subnets.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                        ["operations"] = _operations.Count,
                    };
                await JsonAsync(ctx, 200, state);
                break;
            case ("reset", "POST"):
                lock (_lock)
                {
                    _disks.Clear();
                    _snapshots.Clear();
                    _vms.Clear();
                    _operations.Clear();
                    _subnets.Clear();
                }
                _faults.Clear();
                _log.Clear();
                ResetSettings();
                ctx.Response.StatusCode = 204;
                break;
            default:
                await ErrorAsync(ctx, 404, "NotFound", $"Unknown control command '{method} /_fake/{command}'.");
                break;
        }
    }

    /// <summary>JSON as ARM writes it: '&amp;' in a SAS and '+' in a time stay as they are.</summary>
    private static readonly JsonSerializerOptions Output = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static JsonObject Parse(string? body)
    {
        if (string.IsNullOrWhiteSpace(body)) return [];
        try
        {
            return JsonNode.Parse(body) as JsonObject ?? throw new BadRequest(400, "InvalidRequestContent", "The request content is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new BadRequest(400, "InvalidRequestContent", $"The request content was invalid and could not be deserialized: {ex.Message}");
        }
    }

    private JsonObject Snapshot(FakeDisk disk)
    {
        lock (_lock) return disk.ToJson();
    }

    private JsonObject Snapshot(FakeVm vm)
    {
        lock (_lock) return vm.ToJson();
    }

    private static BadRequest MethodNotAllowed(string method) => new(405, "MethodNotAllowed", $"The fake does not serve {method} here.");

    private static Task NotFoundAsync(HttpContext ctx, string type, string id)
    {
        var parts = id.Split('/');
        return ErrorAsync(ctx, 404, "ResourceNotFound", $"The Resource '{type}/{parts[^1]}' under resource group '{parts[4]}' was not found.");
    }

    private static Task ErrorAsync(HttpContext ctx, int status, string code, string message) =>
        JsonAsync(ctx, status, new JsonObject { ["error"] = new JsonObject { ["code"] = code, ["message"] = message } });

    private static async Task JsonAsync(HttpContext ctx, int status, JsonNode? body)
    {
        ctx.Response.StatusCode = status;
        if (body is null) return;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(body.ToJsonString(Output), ctx.RequestAborted);
    }
}
