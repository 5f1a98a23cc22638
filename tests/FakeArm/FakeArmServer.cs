using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// The FAKE Azure Resource Manager's request handling: the handful of DiskRP (disks, snapshots) and ComputeRP operations the failover
/// to Azure uses, with the status codes, headers and body shapes of the azure-rest-api-specs examples vendored in
/// examples/ (see README.md), plus the control API under /_fake/. State is in memory. Paths match
/// case-insensitively (the SDK sends "resourcegroups" on some calls); operation URLs take any api-version (the SDK
/// rewrites it when polling).
/// </summary>
internal sealed partial class FakeArmServer
{
    private const string DiskApiVersion = "2023-04-02";
    private const string VmApiVersion = "2023-07-01";
    private const string ResourcesApiVersion = "2022-09-01";
    /// <summary>uploadSizeBytes bounds: 20 MiB + 512 and 32 TiB + 512 (the property's description in disk.json).</summary>
    private const long MinUploadBytes = (20L << 20) + 512, MaxUploadBytes = (32L << 40) + 512;

    private readonly FakeArmOptions _startup;
    private readonly AzuriteBlobs? _blobs;
    private readonly RequestLog _log = new();
    private readonly Faults _faults = new();
    private readonly object _lock = new();
    private readonly Dictionary<string, FakeDisk> _disks = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, FakeVm> _vms = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, FakeOperation> _operations = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _subnets = new(StringComparer.OrdinalIgnoreCase);
    private LroMode _mode;
    private int _asyncPolls;
    private int _listPageSize;

    public FakeArmServer(FakeArmOptions options, AzuriteBlobs? blobs)
    {
        _startup = options;
        _blobs = blobs;
        ResetSettings();
    }

    private void ResetSettings()
    {
        _mode = _startup.Mode;
        _asyncPolls = _startup.AsyncPolls;
        _listPageSize = _startup.ListPageSize;
    }

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/resourceGroups/(?<rg>[^/]+)/providers/Microsoft\.Compute/disks/(?<n>[^/]+)(?<action>/beginGetAccess|/endGetAccess)?$", RegexOptions.IgnoreCase)]
    private static partial Regex DiskRoute();

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/resourceGroups/(?<rg>[^/]+)/providers/Microsoft\.Compute/virtualMachines/(?<n>[^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex VmRoute();

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/resourceGroups/(?<rg>[^/]+)/resources$", RegexOptions.IgnoreCase)]
    private static partial Regex ResourcesRoute();

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/resourceGroups/(?<rg>[^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex ResourceGroupRoute();

    [GeneratedRegex(@"^/subscriptions/(?<s>[^/]+)/providers/Microsoft\.Compute/locations/(?<loc>[^/]+)/operations/(?<id>[^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex OperationRoute();

    /// <summary>The shape ARM gives subnet ids (Microsoft.Network/virtualNetworks/subnets).</summary>
    [GeneratedRegex(@"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", RegexOptions.IgnoreCase)]
    private static partial Regex SubnetId();

    [GeneratedRegex(@"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks/[^/]+$", RegexOptions.IgnoreCase)]
    private static partial Regex DiskId();

    [GeneratedRegex(@"^\s*tagName eq '(?<name>(?:[^']|'')*)'(?:\s+and\s+tagValue eq '(?<value>(?:[^']|'')*)')?\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex TagFilter();

    public async Task HandleAsync(HttpContext ctx)
    {
        string path = ctx.Request.Path.Value ?? "/";
        if (path.StartsWith("/_fake/", StringComparison.OrdinalIgnoreCase))
        {
            await ControlAsync(ctx, path["/_fake/".Length..]);
            return;
        }
        string? body = null;
        if (ctx.Request.ContentLength > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            body = await reader.ReadToEndAsync(ctx.RequestAborted);
        }
        string authorization = ctx.Request.Headers.Authorization.ToString();
        var entry = _log.Add(ctx.Request.Method, path, ctx.Request.QueryString.Value ?? "", ctx.Request.Headers.UserAgent.ToString(),
            authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7,
            ctx.Request.ContentType, body);
        try
        {
            await RouteAsync(ctx, path, body, entry.Bearer);
        }
        catch (BadRequest bad)
        {
            await ErrorAsync(ctx, bad.Status, bad.Code, bad.Message);
        }
        finally
        {
            entry.Status = ctx.Response.StatusCode;
        }
    }

    private async Task RouteAsync(HttpContext ctx, string path, string? body, bool bearer)
    {
        string method = ctx.Request.Method;
        if (!bearer)
        {
            await ErrorAsync(ctx, 401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.");
            return;
        }
        if (_faults.TakeImmediate(method, path) is { } fault)
        {
            if (fault.RetryAfter is { } seconds) ctx.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            await ErrorAsync(ctx, fault.Status, fault.Code, fault.Message);
            return;
        }

        Match m;
        if ((m = OperationRoute().Match(path)).Success)
        {
            if (method != "GET") throw MethodNotAllowed(method);
            await PollAsync(ctx, m.Groups["id"].Value);
        }
        else if ((m = DiskRoute().Match(path)).Success)
        {
            RequireApiVersion(ctx, DiskApiVersion);
            string rg = m.Groups["rg"].Value, name = m.Groups["n"].Value;
            string id = $"/subscriptions/{m.Groups["s"].Value}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}";
            switch (m.Groups["action"].Value.ToLowerInvariant(), method)
            {
                case ("", "GET"): await GetDiskAsync(ctx, id); break;
                case ("", "PUT"): await PutDiskAsync(ctx, id, rg, name, Parse(body)); break;
                case ("", "DELETE"): await DeleteDiskAsync(ctx, id); break;
                case ("/begingetaccess", "POST"): await GrantAccessAsync(ctx, id, Parse(body)); break;
                case ("/endgetaccess", "POST"): await RevokeAccessAsync(ctx, id); break;
                default: throw MethodNotAllowed(method);
            }
        }
        else if ((m = SnapshotRoute().Match(path)).Success)
        {
            await RouteSnapshotAsync(ctx, m, body);
        }
        else if ((m = VmRoute().Match(path)).Success)
        {
            RequireApiVersion(ctx, VmApiVersion);
            string rg = m.Groups["rg"].Value, name = m.Groups["n"].Value;
            string id = $"/subscriptions/{m.Groups["s"].Value}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}";
            switch (method)
            {
                case "GET": await GetVmAsync(ctx, id); break;
                case "PUT": await PutVmAsync(ctx, id, rg, name, Parse(body)); break;
                case "DELETE": await DeleteVmAsync(ctx, id); break;
                default: throw MethodNotAllowed(method);
            }
        }
        else if ((m = ResourcesRoute().Match(path)).Success)
        {
            if (method != "GET") throw MethodNotAllowed(method);
            RequireApiVersion(ctx, ResourcesApiVersion);
            await ListResourcesAsync(ctx, m.Groups["s"].Value, m.Groups["rg"].Value);
        }
        else if ((m = ResourceGroupRoute().Match(path)).Success && method == "GET")
        {
            RequireApiVersion(ctx, ResourcesApiVersion);
            string rg = m.Groups["rg"].Value;
            await JsonAsync(ctx, 200, new JsonObject
            {
                ["id"] = $"/subscriptions/{m.Groups["s"].Value}/resourceGroups/{rg}",
                ["name"] = rg,
                ["type"] = "Microsoft.Resources/resourceGroups",
                ["location"] = "westeurope",
                ["properties"] = new JsonObject { ["provisioningState"] = "Succeeded" },
            });
        }
        else
        {
            await ErrorAsync(ctx, 404, "NotFound", $"The fake ARM does not serve '{method} {path}'.");
        }
    }

    // ---- disks (DiskRP 2023-04-02) ----

    private async Task GetDiskAsync(HttpContext ctx, string id)
    {
        JsonObject? json;
        lock (_lock) json = _disks.TryGetValue(id, out var disk) ? disk.ToJson() : null;
        if (json is null) await NotFoundAsync(ctx, "Microsoft.Compute/disks", id);
        else await JsonAsync(ctx, 200, json);
    }

    private async Task PutDiskAsync(HttpContext ctx, string id, string rg, string name, JsonObject body)
    {
        string location = (string?)body["location"] ?? throw new BadRequest(400, "LocationRequired", "The location property is required for this definition.");
        var properties = body["properties"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'properties' is missing (null).");
        var creation = properties["creationData"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'creationData' is missing (null).");
        if (!string.Equals((string?)creation["createOption"], "Upload", StringComparison.OrdinalIgnoreCase))
            throw new BadRequest(400, "InvalidParameter", "The fake creates upload disks only (creationData.createOption 'Upload').");
        long size = (long?)creation["uploadSizeBytes"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'uploadSizeBytes' is missing (null).");
        if (size < MinUploadBytes || size > MaxUploadBytes || (size - 512) % (1L << 20) != 0)
            throw new BadRequest(400, "InvalidParameter",
                $"The value {size} of parameter 'uploadSizeBytes' is not valid: it must be a whole number of MiB plus 512 bytes for the VHD footer, between {MinUploadBytes} and {MaxUploadBytes}.");

        var fault = _faults.TakeLro("PUT", ctx.Request.Path.Value!);
        bool async = fault is not null || _mode == LroMode.Async;
        FakeDisk disk;
        bool created;
        lock (_lock)
        {
            created = !_disks.TryGetValue(id, out var existing);
            if (!created)
            {
                if (!JsonNode.DeepEquals(existing!.Properties["creationData"], creation))
                    throw new BadRequest(409, "PropertyChangeNotAllowed", "Changing property 'creationData' is not allowed.");
                existing.Tags = body["tags"]?.DeepClone() as JsonObject;
                disk = existing;
            }
            else
            {
                disk = new FakeDisk
                {
                    Id = id,
                    Name = name,
                    ResourceGroup = rg,
                    Location = location,
                    Sku = body["sku"]?.DeepClone() as JsonObject,
                    Zones = body["zones"]?.DeepClone() as JsonArray,
                    Tags = body["tags"]?.DeepClone() as JsonObject,
                    Properties = (JsonObject)properties.DeepClone(),
                    DiskState = "ReadyToUpload",
                    ProvisioningState = async ? "Updating" : "Succeeded",
                };
                _disks[id] = disk;
            }
        }
        if (!async)
        {
            await JsonAsync(ctx, 200, Snapshot(disk));
            return;
        }
        // DiskRP: 202 with the disk (provisioningState Updating) and both headers; never 201 (the SDK rejects it).
        StartOperation(ctx, disk.Location, fault, asyncOperation: true, locationHeader: true, complete: () =>
        {
            lock (_lock) disk.ProvisioningState = fault is null ? "Succeeded" : "Failed";
            return Task.FromResult<(int, JsonNode?)>((200, Snapshot(disk)));
        });
        await JsonAsync(ctx, 202, Snapshot(disk));
    }

    private async Task GrantAccessAsync(HttpContext ctx, string id, JsonObject body)
    {
        string access = (string?)body["access"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'access' is missing (null).");
        int seconds = (int?)body["durationInSeconds"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'durationInSeconds' is missing (null).");
        bool write = string.Equals(access, "Write", StringComparison.OrdinalIgnoreCase);
        FakeDisk? disk;
        lock (_lock)
        {
            _disks.TryGetValue(id, out disk);
            if (disk is not null && write && disk.DiskState is not ("ReadyToUpload" or "ActiveUpload"))
                throw new BadRequest(409, "OperationNotAllowed",
                    $"Write access can only be granted to a disk in state ReadyToUpload; disk '{disk.Name}' is {disk.DiskState}.");
            // Read access to an unattached disk only: the fake has no VM power state, and Azure refuses the export of
            // a disk attached to a running VM (snapshot it instead).
            if (disk is not null && !write && disk.DiskState is not ("Unattached" or "ActiveSAS"))
                throw new BadRequest(409, "OperationNotAllowed", $"Read access cannot be granted to disk '{disk.Name}' in state {disk.DiskState}{(disk.ManagedBy is null ? "" : $" (attached to {disk.ManagedBy})")}.");
        }
        if (disk is null)
        {
            await NotFoundAsync(ctx, "Microsoft.Compute/disks", id);
            return;
        }
        if (_blobs is null)
            throw new BadRequest(500, "InternalServerError", "The fake was started without --azurite-connection-string: it has no blob for the SAS.");

        async Task<(int, JsonNode?)> Grant()
        {
            // Every grant awaits the one creation of the disk's blob (a grant made meanwhile must not hand out a SAS
            // to a blob not made yet). A failed creation names no blob: the next grant (the SDK retries) makes it.
            string blob;
            Task created;
            lock (_lock)
            {
                blob = disk.BlobName ??= $"{disk.Name}-{disk.UniqueId[..8]}";
                created = disk.BlobCreated ??= _blobs.CreatePageBlobAsync(blob, disk.UploadSizeBytes, CancellationToken.None);
            }
            try
            {
                await created;
            }
            catch
            {
                lock (_lock)
                    if (ReferenceEquals(disk.BlobCreated, created))
                        (disk.BlobName, disk.BlobCreated) = (null, null);
                throw;
            }
            lock (_lock) disk.DiskState = write ? "ActiveUpload" : "ActiveSAS";
            // A Write grant is read-write: the uploader lists page ranges and reads the disk back to verify it before
            // revoke. Real DiskRP's Write SAS is reported to allow reads too (AzCopy reads properties through it);
            // unconfirmed without a subscription (docs/azure-target-notes.md).
            var sas = _blobs.BlobSas(blob, write ? "rw" : "r", TimeSpan.FromSeconds(seconds));
            return (200, new JsonObject { ["accessSAS"] = sas.ToString() });
        }

        // final-state-via: location (disk.json): the SDK polls Azure-AsyncOperation, then reads the SAS from Location.
        await AnswerLroAsync(ctx, disk.Location, asyncOperationHeader: true, locationHeader: true, Grant);
    }

    private async Task RevokeAccessAsync(HttpContext ctx, string id)
    {
        FakeDisk? disk;
        lock (_lock) _disks.TryGetValue(id, out disk);
        if (disk is null)
        {
            await NotFoundAsync(ctx, "Microsoft.Compute/disks", id);
            return;
        }
        Task<(int, JsonNode?)> Revoke()
        {
            lock (_lock)
                disk.DiskState = disk.DiskState switch
                {
                    "ActiveUpload" => "Unattached",
                    "ActiveSAS" => disk.ManagedBy is null ? "Unattached" : "Attached",
                    var unchanged => unchanged,
                };
            return Task.FromResult<(int, JsonNode?)>((200, null));
        }
        await AnswerLroAsync(ctx, disk.Location, asyncOperationHeader: true, locationHeader: true, Revoke);
    }

    private async Task DeleteDiskAsync(HttpContext ctx, string id)
    {
        FakeDisk? disk;
        lock (_lock)
        {
            _disks.TryGetValue(id, out disk);
            if (disk?.ManagedBy is { } vm)
                throw new BadRequest(409, "OperationNotAllowed", $"Disk {disk.Name} is attached to VM {vm}.");
        }
        if (disk is null)
        {
            ctx.Response.StatusCode = 204;
            return;
        }
        async Task<(int, JsonNode?)> Delete()
        {
            lock (_lock) _disks.Remove(id);
            if (disk.BlobName is { } blob && _blobs is not null) await _blobs.DeleteBlobAsync(blob, CancellationToken.None);
            return (200, null);
        }
        // Disk_Delete.json: 202 with Location only.
        await AnswerLroAsync(ctx, disk.Location, asyncOperationHeader: false, locationHeader: true, Delete);
    }

    // ---- virtual machines (ComputeRP 2023-07-01) ----

    private async Task GetVmAsync(HttpContext ctx, string id)
    {
        JsonObject? json;
        lock (_lock) json = _vms.TryGetValue(id, out var vm) ? vm.ToJson() : null;
        if (json is null) await NotFoundAsync(ctx, "Microsoft.Compute/virtualMachines", id);
        else await JsonAsync(ctx, 200, json);
    }

    private async Task PutVmAsync(HttpContext ctx, string id, string rg, string name, JsonObject body)
    {
        string location = (string?)body["location"] ?? throw new BadRequest(400, "LocationRequired", "The location property is required for this definition.");
        var properties = body["properties"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'properties' is missing (null).");
        if (string.IsNullOrEmpty((string?)properties["hardwareProfile"]?["vmSize"]))
            throw new BadRequest(400, "InvalidParameter", "Required parameter 'hardwareProfile.vmSize' is missing (null).");
        var storage = properties["storageProfile"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'storageProfile' is missing (null).");
        var osDisk = storage["osDisk"] as JsonObject ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'osDisk' is missing (null).");
        if (!string.Equals((string?)osDisk["createOption"], "Attach", StringComparison.OrdinalIgnoreCase))
            throw new BadRequest(400, "InvalidParameter", "The fake creates VMs from specialized disks only (osDisk.createOption 'Attach').");
        var diskIds = new List<string> { (string?)osDisk["managedDisk"]?["id"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'osDisk.managedDisk.id' is missing (null).") };
        var luns = new HashSet<int>();
        foreach (var data in (storage["dataDisks"] as JsonArray ?? []).OfType<JsonObject>())
        {
            int lun = (int?)data["lun"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'dataDisk.lun' is missing (null).");
            if (lun is < 0 or > 63 || !luns.Add(lun))
                throw new BadRequest(400, "InvalidParameter", $"A disk at LUN {lun} already exists or the LUN is not valid (0-63).");
            if (!string.Equals((string?)data["createOption"], "Attach", StringComparison.OrdinalIgnoreCase))
                throw new BadRequest(400, "InvalidParameter", "The fake attaches existing data disks only (createOption 'Attach').");
            diskIds.Add((string?)data["managedDisk"]?["id"] ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'dataDisk.managedDisk.id' is missing (null)."));
        }
        if (diskIds.Distinct(StringComparer.OrdinalIgnoreCase).Count() != diskIds.Count)
            throw new BadRequest(400, "InvalidParameter", "The same disk is attached twice.");
        CheckNetwork(properties["networkProfile"] as JsonObject);

        var fault = _faults.TakeLro("PUT", ctx.Request.Path.Value!);
        bool async = fault is not null || _mode == LroMode.Async;
        FakeVm vm;
        bool created;
        lock (_lock)
        {
            created = !_vms.TryGetValue(id, out var existing);
            var disks = new List<FakeDisk>();
            foreach (string diskId in diskIds)
            {
                if (!DiskId().IsMatch(diskId))
                    throw new BadRequest(400, "LinkedInvalidPropertyId", $"Property id '{diskId}' at path 'managedDisk.id' is invalid. Expect fully qualified resource Id.");
                if (!_disks.TryGetValue(diskId, out var disk))
                    throw new BadRequest(404, "NotFound", $"Disk {diskId} is not found.");
                bool attachedHere = string.Equals(disk.ManagedBy, id, StringComparison.OrdinalIgnoreCase);
                if (disk.DiskState != "Unattached" && !attachedHere)
                    throw new BadRequest(409, "OperationNotAllowed",
                        $"Disk '{disk.Name}' cannot be attached: its state is {disk.DiskState}{(disk.ManagedBy is null ? "" : $" (to {disk.ManagedBy})")}.");
                if (!SameLocation(disk.Location, location))
                    throw new BadRequest(400, "InvalidParameter", $"Disk '{disk.Name}' is in '{disk.Location}', the VM in '{location}'.");
                if (disk.Zones is { Count: > 0 } diskZones && body["zones"] is JsonArray { Count: > 0 } vmZones && !JsonNode.DeepEquals(diskZones, vmZones))
                    throw new BadRequest(400, "InvalidParameter", $"Disk '{disk.Name}' is in zone {diskZones.ToJsonString()}, the VM in zone {vmZones.ToJsonString()}.");
                disks.Add(disk);
            }
            vm = created
                ? new FakeVm { Id = id, Name = name, ResourceGroup = rg, Location = location }
                : existing!;
            foreach (var old in vm.DiskIds.Except(diskIds, StringComparer.OrdinalIgnoreCase).ToList())
                if (_disks.TryGetValue(old, out var detached))
                {
                    detached.ManagedBy = null;
                    detached.DiskState = "Unattached";
                }
            vm.Zones = body["zones"]?.DeepClone() as JsonArray;
            vm.Tags = body["tags"]?.DeepClone() as JsonObject;
            vm.Properties = (JsonObject)properties.DeepClone();
            vm.ProvisioningState = async ? (created ? "Creating" : "Updating") : "Succeeded";
            vm.DiskIds.Clear();
            foreach (var disk in disks)
            {
                disk.ManagedBy = id;
                disk.DiskState = "Attached";
                vm.DiskIds.Add(disk.Id);
            }
            _vms[id] = vm;
        }
        if (!async)
        {
            await JsonAsync(ctx, created ? 201 : 200, Snapshot(vm));
            return;
        }
        // As the SDK trace in the notes: 201 with Azure-AsyncOperation only; a failed create leaves the VM Failed
        // (with its disks attached), as Azure does, for the caller to delete.
        StartOperation(ctx, vm.Location, fault, asyncOperation: true, locationHeader: false, complete: () =>
        {
            lock (_lock) vm.ProvisioningState = fault is null ? "Succeeded" : "Failed";
            return Task.FromResult<(int, JsonNode?)>((200, Snapshot(vm)));
        });
        await JsonAsync(ctx, created ? 201 : 200, Snapshot(vm));
    }

    private void CheckNetwork(JsonObject? network)
    {
        if (network is null) throw new BadRequest(400, "InvalidParameter", "Required parameter 'networkProfile' is missing (null).");
        var configurations = network["networkInterfaceConfigurations"] as JsonArray;
        var references = network["networkInterfaces"] as JsonArray;
        if (configurations is not { Count: > 0 } && references is not { Count: > 0 })
            throw new BadRequest(400, "VMMustHaveOneNic", "Virtual machine must have at least one network interface.");
        if (configurations is not { Count: > 0 }) return;
        if (string.IsNullOrEmpty((string?)network["networkApiVersion"]))
            throw new BadRequest(400, "InvalidParameter", "Required parameter 'networkProfile.networkApiVersion' is missing (null): it is needed with networkInterfaceConfigurations.");
        foreach (var nic in configurations.OfType<JsonObject>())
        {
            if (string.IsNullOrEmpty((string?)nic["name"]))
                throw new BadRequest(400, "InvalidParameter", "Required parameter 'networkInterfaceConfigurations.name' is missing (null).");
            var ipConfigurations = nic["properties"]?["ipConfigurations"] as JsonArray;
            if (ipConfigurations is not { Count: > 0 })
                throw new BadRequest(400, "InvalidParameter", "Required parameter 'ipConfigurations' is missing (null).");
            foreach (var ip in ipConfigurations.OfType<JsonObject>())
            {
                string subnet = (string?)ip["properties"]?["subnet"]?["id"]
                    ?? throw new BadRequest(400, "InvalidParameter", "Required parameter 'ipConfigurations.subnet.id' is missing (null).");
                if (!SubnetId().IsMatch(subnet))
                    throw new BadRequest(400, "LinkedInvalidPropertyId", $"Property id '{subnet}' at path 'subnet.id' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{{subscriptionId}}'.");
                bool known;
                lock (_lock) known = _subnets.Contains(subnet);
                if (!known)
                    throw new BadRequest(400, "InvalidResourceReference",
                        $"Resource {subnet} referenced by resource {(string?)nic["name"]} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.");
            }
        }
    }

    private async Task DeleteVmAsync(HttpContext ctx, string id)
    {
        FakeVm? vm;
        lock (_lock) _vms.TryGetValue(id, out vm);
        if (vm is null)
        {
            ctx.Response.StatusCode = 204;
            return;
        }
        Task<(int, JsonNode?)> Delete()
        {
            lock (_lock)
            {
                _vms.Remove(id);
                // deleteOption Detach (the default of attached disks): the disks stay, unattached.
                foreach (string diskId in vm.DiskIds)
                    if (_disks.TryGetValue(diskId, out var disk) && string.Equals(disk.ManagedBy, id, StringComparison.OrdinalIgnoreCase))
                    {
                        disk.ManagedBy = null;
                        disk.DiskState = "Unattached";
                    }
            }
            return Task.FromResult<(int, JsonNode?)>((200, null));
        }
        await AnswerLroAsync(ctx, vm.Location, asyncOperationHeader: true, locationHeader: false, Delete, beforeAsync: () => { lock (_lock) vm.ProvisioningState = "Deleting"; });
    }

    // ---- resources by tag (Microsoft.Resources 2022-09-01) ----

    private async Task ListResourcesAsync(HttpContext ctx, string subscription, string rg)
    {
        string? filter = ctx.Request.Query["$filter"];
        string? tagName = null, tagValue = null;
        if (!string.IsNullOrEmpty(filter))
        {
            var f = TagFilter().Match(filter);
            if (!f.Success) throw new BadRequest(400, "InvalidFilterInQueryString", $"The fake understands only \"tagName eq '<k>' [and tagValue eq '<v>']\", not '{filter}'.");
            tagName = f.Groups["name"].Value.Replace("''", "'");
            tagValue = f.Groups["value"].Success ? f.Groups["value"].Value.Replace("''", "'") : null;
        }
        bool Matches(JsonObject? tags) =>
            tagName is null
            || (tags is not null && tags.Any(t => string.Equals(t.Key, tagName, StringComparison.OrdinalIgnoreCase)
                                                  && (tagValue is null || string.Equals((string?)t.Value, tagValue, StringComparison.Ordinal))));
        string prefix = $"/subscriptions/{subscription}/resourceGroups/{rg}/";
        List<(string Id, string Name, string Type, string Location, JsonObject? Tags)> all;
        lock (_lock)
            all = _disks.Values.Select(d => (d.Id, d.Name, Type: "Microsoft.Compute/disks", d.Location, d.Tags))
                .Concat(_snapshots.Values.Select(s => (s.Id, s.Name, Type: "Microsoft.Compute/snapshots", s.Location, s.Tags)))
                .Concat(_vms.Values.Select(v => (v.Id, v.Name, Type: "Microsoft.Compute/virtualMachines", v.Location, v.Tags)))
                .Where(r => r.Id.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && Matches(r.Tags))
                .OrderBy(r => r.Id, StringComparer.OrdinalIgnoreCase)
                .ToList();
        int skip = int.TryParse(ctx.Request.Query["$skiptoken"], out int s) ? s : 0;
        var value = new JsonArray();
        foreach (var r in all.Skip(skip).Take(_listPageSize))
        {
            var item = new JsonObject { ["id"] = r.Id, ["name"] = r.Name, ["type"] = r.Type, ["location"] = r.Location };
            // "When you filter by a tag name and value, the tags for each resource are not returned in the results."
            if (tagName is null && r.Tags is not null) item["tags"] = r.Tags.DeepClone();
            value.Add(item);
        }
        var page = new JsonObject { ["value"] = value };
        if (skip + _listPageSize < all.Count)
        {
            string query = $"api-version={ResourcesApiVersion}&$skiptoken={skip + _listPageSize}"
                           + (string.IsNullOrEmpty(filter) ? "" : $"&$filter={Uri.EscapeDataString(filter)}");
            page["nextLink"] = $"{BaseUrl(ctx)}{ctx.Request.Path.Value}?{query}";
        }
        await JsonAsync(ctx, 200, page);
    }
}
