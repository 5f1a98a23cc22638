using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// Snapshots (DiskRP 2023-04-02, the api-version of the disks): create by Copy of a managed disk (its page blob copied
/// in Azurite at that moment), read access (a read-only SAS of the copy), revoke, get, delete. Shapes and status codes
/// of the vendored Snapshot_*.json examples.
/// </summary>
internal sealed partial class FakeArmServer
{
    private readonly Dictionary<string, FakeSnapshot> _snapshots = new(StringComparer.OrdinalIgnoreCase);

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/resourceGroups/(?<rg>[^/]+)/providers/Microsoft\.Compute/snapshots/(?<n>[^/]+)(?<action>/beginGetAccess|/endGetAccess)?$", RegexOptions.IgnoreCase)]
    private static partial Regex SnapshotRoute();

    private async Task RouteSnapshotAsync(HttpContext ctx, Match m, string? body)
    {
        RequireApiVersion(ctx, DiskApiVersion);
        string rg = m.Groups["rg"].Value, name = m.Groups["n"].Value;
        string id = $"/subscriptions/{m.Groups["s"].Value}/resourceGroups/{rg}/providers/Microsoft.Compute/snapshots/{name}";
        switch (m.Groups["action"].Value.ToLowerInvariant(), ctx.Request.Method)
        {
            case ("", "GET"): await GetSnapshotAsync(ctx, id); break;
            case ("", "PUT"): await PutSnapshotAsync(ctx, id, rg, name, Parse(body)); break;
            case ("", "DELETE"): await DeleteSnapshotAsync(ctx, id); break;
            case ("/begingetaccess", "POST"): await GrantSnapshotAccessAsync(ctx, id, Parse(body)); break;
            case ("/endgetaccess", "POST"): await RevokeSnapshotAccessAsync(ctx, id); break;
            default: throw MethodNotAllowed(ctx.Request.Method);
        }
    }

    private JsonObject Snapshot(FakeSnapshot snapshot)
    {
        lock (_lock) return snapshot.ToJson();
    }

    private async Task GetSnapshotAsync(HttpContext ctx, string id)
    {
        JsonObject? json;
        lock (_lock) json = _snapshots.TryGetValue(id, out var snapshot) ? snapshot.ToJson() : null;
        if (json is null) await NotFoundAsync(ctx, "Microsoft.Compute/snapshots", id);
        else await JsonAsync(ctx, 200, json);
    }

    private async Task PutSnapshotAsync(HttpContext ctx, string id, string rg, string name, JsonObject body)
    {
        string location = (string?)body["location"] ?? throw new BadRequest(400, "LocationRequired", "The location property is required for this definition.");
        var properties = body["properties"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'properties' is missing (null).");
        var creation = properties["creationData"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'creationData' is missing (null).");
        if (!string.Equals((string?)creation["createOption"], "Copy", StringComparison.OrdinalIgnoreCase))
            throw new BadRequest(400, "InvalidParameter", "The fake creates snapshots by copying a managed disk only (creationData.createOption 'Copy').");
        string source = (string?)creation["sourceResourceId"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'sourceResourceId' is missing (null).");
        // Snapshot_Create_FromAnExistingSnapshot.json writes the id without its leading '/'.
        string sourceId = source.StartsWith('/') ? source : "/" + source;
        if (!DiskId().IsMatch(sourceId))
            throw new BadRequest(400, "InvalidParameter", $"The fake snapshots managed disks only; '{source}' is not the id of a Microsoft.Compute/disks resource.");

        var fault = _faults.TakeLro("PUT", ctx.Request.Path.Value!);
        bool async = fault is not null || _mode == LroMode.Async;
        FakeSnapshot snapshot;
        FakeDisk? disk;
        bool created;
        lock (_lock)
        {
            if (!_disks.TryGetValue(sourceId, out disk))
                throw new BadRequest(404, "NotFound", $"Disk {sourceId} is not found.");
            if (disk.DiskState is "ReadyToUpload" or "ActiveUpload")
                throw new BadRequest(409, "OperationNotAllowed", $"A snapshot cannot be taken of disk '{disk.Name}' in state {disk.DiskState}: finish the upload (endGetAccess) first.");
            if (!SameLocation(disk.Location, location))
                throw new BadRequest(400, "InvalidParameter", $"Disk '{disk.Name}' is in '{disk.Location}', the snapshot in '{location}': a snapshot is made in its source's region.");
            created = !_snapshots.TryGetValue(id, out var existing);
            if (!created)
            {
                if (!JsonNode.DeepEquals(existing!.Properties["creationData"], creation) || existing.Incremental != ((bool?)properties["incremental"] ?? false))
                    throw new BadRequest(409, "PropertyChangeNotAllowed", "Changing property 'creationData' or 'incremental' is not allowed.");
                existing.Tags = body["tags"]?.DeepClone() as JsonObject;
                snapshot = existing;
            }
            else
            {
                var writable = (JsonObject)properties.DeepClone();
                snapshot = new FakeSnapshot
                {
                    Id = id,
                    Name = name,
                    ResourceGroup = rg,
                    Location = location,
                    Tags = body["tags"]?.DeepClone() as JsonObject,
                    Properties = writable,
                    SourceUniqueId = disk.UniqueId,
                    OsType = disk.Properties["osType"]?.DeepClone(),
                    HyperVGeneration = disk.Properties["hyperVGeneration"]?.DeepClone(),
                    DiskSizeBytes = Math.Max(0, disk.UploadSizeBytes - 512),
                    ProvisioningState = async ? "Updating" : "Succeeded",
                    BlobName = $"{name}-snapshot-{Guid.NewGuid().ToString("N")[..8]}",
                };
            }
        }
        if (created)
        {
            // The point in time is now: the disk's page blob (which a VM may be writing) is copied before the answer.
            if (_blobs is null)
                throw new BadRequest(500, "InternalServerError", "The fake was started without --azurite-connection-string: it has no blob to copy.");
            if (disk.BlobName is { } diskBlob) await _blobs.CopyPageBlobAsync(diskBlob, snapshot.BlobName, CancellationToken.None);
            else await _blobs.CreatePageBlobAsync(snapshot.BlobName, disk.UploadSizeBytes, CancellationToken.None);
            lock (_lock) _snapshots[id] = snapshot;
        }
        if (!async)
        {
            await JsonAsync(ctx, 200, Snapshot(snapshot));
            return;
        }
        // As the disks (and Snapshot_Create_FromAnExistingSnapshot.json): 202 with the snapshot (Updating) and both headers.
        StartOperation(ctx, snapshot.Location, fault, asyncOperation: true, locationHeader: true, complete: () =>
        {
            lock (_lock) snapshot.ProvisioningState = fault is null ? "Succeeded" : "Failed";
            return Task.FromResult<(int, JsonNode?)>((200, Snapshot(snapshot)));
        });
        await JsonAsync(ctx, 202, Snapshot(snapshot));
    }

    private async Task GrantSnapshotAccessAsync(HttpContext ctx, string id, JsonObject body)
    {
        string access = (string?)body["access"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'access' is missing (null).");
        int seconds = (int?)body["durationInSeconds"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'durationInSeconds' is missing (null).");
        if (!string.Equals(access, "Read", StringComparison.OrdinalIgnoreCase))
            throw new BadRequest(409, "OperationNotAllowed", $"The fake grants Read access to snapshots only, not '{access}'.");
        FakeSnapshot? snapshot;
        lock (_lock) _snapshots.TryGetValue(id, out snapshot);
        if (snapshot is null)
        {
            await NotFoundAsync(ctx, "Microsoft.Compute/snapshots", id);
            return;
        }
        if (_blobs is null)
            throw new BadRequest(500, "InternalServerError", "The fake was started without --azurite-connection-string: it has no blob for the SAS.");
        Task<(int, JsonNode?)> Grant()
        {
            lock (_lock) snapshot.DiskState = "ActiveSAS";
            // Snapshot_BeginGetAccess.json: a blob SAS with sp=r.
            var sas = _blobs.BlobSas(snapshot.BlobName, "r", TimeSpan.FromSeconds(seconds));
            return Task.FromResult<(int, JsonNode?)>((200, new JsonObject { ["accessSAS"] = sas.ToString() }));
        }
        await AnswerLroAsync(ctx, snapshot.Location, asyncOperationHeader: true, locationHeader: true, Grant);
    }

    private async Task RevokeSnapshotAccessAsync(HttpContext ctx, string id)
    {
        FakeSnapshot? snapshot;
        lock (_lock) _snapshots.TryGetValue(id, out snapshot);
        if (snapshot is null)
        {
            await NotFoundAsync(ctx, "Microsoft.Compute/snapshots", id);
            return;
        }
        // The SAS itself stays valid until it expires (a service SAS cannot be revoked): only the state is kept.
        Task<(int, JsonNode?)> Revoke()
        {
            lock (_lock) snapshot.DiskState = "Unattached";
            return Task.FromResult<(int, JsonNode?)>((200, null));
        }
        await AnswerLroAsync(ctx, snapshot.Location, asyncOperationHeader: true, locationHeader: true, Revoke);
    }

    private async Task DeleteSnapshotAsync(HttpContext ctx, string id)
    {
        FakeSnapshot? snapshot;
        lock (_lock) _snapshots.TryGetValue(id, out snapshot);
        if (snapshot is null)
        {
            ctx.Response.StatusCode = 204;
            return;
        }
        async Task<(int, JsonNode?)> Delete()
        {
            lock (_lock) _snapshots.Remove(id);
            if (_blobs is not null) await _blobs.DeleteBlobAsync(snapshot.BlobName, CancellationToken.None);
            return (200, null);
        }
        // Snapshot_Delete.json: 202 with Location only.
        await AnswerLroAsync(ctx, snapshot.Location, asyncOperationHeader: false, locationHeader: true, Delete);
    }
}
