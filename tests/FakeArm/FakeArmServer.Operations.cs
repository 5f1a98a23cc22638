using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace AsrModule.Tests.FakeArm;

/// <summary>Long-running operations: Azure-AsyncOperation (status) and Location (result) URLs, polled to completion.</summary>
internal sealed partial class FakeArmServer
{
    /// <summary>
    /// Registers an operation and puts its URLs on the response: Azure-AsyncOperation
    /// (…/locations/{region}/operations/{id}?p=…&amp;api-version=…) and/or Location (the same with monitor=true).
    /// A failed-LRO <paramref name="fault"/> makes it end Failed with the fault's error code.
    /// </summary>
    private void StartOperation(HttpContext ctx, string region, Fault? fault, bool asyncOperation, bool locationHeader, Func<Task<(int, JsonNode?)>> complete)
    {
        string id = Guid.NewGuid().ToString();
        string subscription = ctx.Request.Path.Value!.Split('/', StringSplitOptions.RemoveEmptyEntries)[1];
        string statusPath = $"/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{Region(region)}/operations/{id}";
        string apiVersion = ctx.Request.Query["api-version"].ToString();
        var operation = new FakeOperation
        {
            Id = id,
            StatusPath = statusPath,
            PollsNeeded = _asyncPolls,
            ErrorCode = fault?.Code,
            ErrorMessage = fault?.Message,
            Complete = complete,
        };
        lock (_lock) _operations[id] = operation;
        string url = $"{BaseUrl(ctx)}{statusPath}?p={id[..8]}&api-version={apiVersion}";
        if (asyncOperation) ctx.Response.Headers["Azure-AsyncOperation"] = url;
        if (locationHeader) ctx.Response.Headers.Location = $"{BaseUrl(ctx)}{statusPath}?p={id[..8]}&monitor=true&api-version={apiVersion}";
        ctx.Response.Headers.RetryAfter = "0";
    }

    /// <summary>
    /// A poll of either URL. The operation completes on its PollsNeeded-th poll: its effect applies then. The status
    /// URL always answers 200 (InProgress, Succeeded or Failed with the error); the Location URL answers 202 while
    /// running, then the operation's final status and body (or 400 with the error of a failed operation).
    /// </summary>
    private async Task PollAsync(HttpContext ctx, string id)
    {
        FakeOperation? operation;
        lock (_lock) _operations.TryGetValue(id, out operation);
        if (operation is null)
        {
            await ErrorAsync(ctx, 404, "NotFound", $"Operation {id} was not found.");
            return;
        }
        await operation.Gate.WaitAsync(ctx.RequestAborted);
        try
        {
            operation.Polls++;
            if (operation.Status == "InProgress" && operation.Polls >= operation.PollsNeeded)
            {
                try
                {
                    var (status, body) = await operation.Complete();
                    operation.FinalStatus = status;
                    operation.FinalBody = body;
                    operation.Status = operation.ErrorCode is null ? "Succeeded" : "Failed";
                }
                catch (Exception ex)
                {
                    operation.Status = "Failed";
                    operation.FailureMessage = $"The fake failed to complete the operation: {ex.Message}";
                }
                operation.Ended = DateTimeOffset.UtcNow;
            }
        }
        finally
        {
            operation.Gate.Release();
        }

        bool monitor = string.Equals(ctx.Request.Query["monitor"], "true", StringComparison.OrdinalIgnoreCase);
        if (!monitor)
        {
            if (operation.Status == "InProgress") ctx.Response.Headers.RetryAfter = "0";
            await JsonAsync(ctx, 200, operation.StatusJson());
        }
        else if (operation.Status == "InProgress")
        {
            ctx.Response.Headers.Location = $"{BaseUrl(ctx)}{ctx.Request.Path.Value}{ctx.Request.QueryString.Value}";
            ctx.Response.Headers.RetryAfter = "0";
            ctx.Response.StatusCode = 202;
        }
        else if (operation.Status == "Failed")
        {
            var error = (JsonObject)operation.StatusJson()["error"]!.DeepClone();
            await JsonAsync(ctx, 400, new JsonObject { ["error"] = error });
        }
        else if (operation.FinalBody is null)
        {
            ctx.Response.StatusCode = operation.FinalStatus;
        }
        else
        {
            await JsonAsync(ctx, operation.FinalStatus, operation.FinalBody.DeepClone());
        }
    }

    private static string Region(string location) => location.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant();

    private static bool SameLocation(string a, string b) => Region(a) == Region(b);

    private static string BaseUrl(HttpContext ctx) => $"https://{ctx.Request.Host.Value}";

    private static void RequireApiVersion(HttpContext ctx, string expected)
    {
        string? version = ctx.Request.Query["api-version"];
        if (string.IsNullOrEmpty(version))
            throw new BadRequest(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
        // The vendored examples are of this version: a request of another would not be checked against its spec.
        if (version != expected)
            throw new BadRequest(400, "InvalidApiVersionParameter",
                $"The fake serves api-version '{expected}' for this resource type (the version of its vendored examples), not '{version}'.");
    }

    /// <summary>
    /// Answers an operation that may run long, as ARM does in the fake's mode: at once (sync mode and no fault: the
    /// result's status, with its body when it has one), or accepted (202 with Azure-AsyncOperation and/or Location) and
    /// completed on a later poll, with an injected LRO fault if one matches the request.
    /// </summary>
    private async Task AnswerLroAsync(HttpContext ctx, string location, bool asyncOperationHeader, bool locationHeader,
        Func<Task<(int, JsonNode?)>> complete, Action? beforeAsync = null)
    {
        var fault = _faults.TakeLro(ctx.Request.Method, ctx.Request.Path.Value!);
        if (fault is null && _mode == LroMode.Sync)
        {
            var (status, body) = await complete();
            if (body is null) ctx.Response.StatusCode = status;
            else await JsonAsync(ctx, status, body);
            return;
        }
        beforeAsync?.Invoke();
        StartOperation(ctx, location, fault, asyncOperation: asyncOperationHeader, locationHeader: locationHeader, complete: complete);
        ctx.Response.StatusCode = 202;
    }
}
