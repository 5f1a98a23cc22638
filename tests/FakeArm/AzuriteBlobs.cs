using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// The page blobs behind the fake's upload disks, in a real Azurite (or any blob endpoint of a connection string
/// with an account key). Written against the REST API with Shared Key signing and a service SAS, so that the fake
/// needs no package: create the container, create a page blob of the disk's uploadSizeBytes, copy one (a snapshot), delete it, and sign a
/// SAS for it (what DiskRP's beginGetAccess hands out as accessSAS: read-write for a Write grant, read for a Read grant).
/// </summary>
internal sealed class AzuriteBlobs : IDisposable
{
    private const string Version = "2021-08-06";
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly string _account;
    private readonly byte[] _key;
    private readonly Uri _endpoint;
    private readonly string _container;
    private readonly object _containerLock = new();
    /// <summary>The creation of the container: every blob creation awaits this one task; a failed one is started again by the next caller.</summary>
    private Task? _containerCreated;

    public AzuriteBlobs(string connectionString, string container)
    {
        var parts = connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
        _account = parts["AccountName"];
        _key = Convert.FromBase64String(parts["AccountKey"]);
        _endpoint = new Uri(parts["BlobEndpoint"].TrimEnd('/') + "/");
        _container = container;
    }

    public string Container => _container;

    /// <summary>Creates (or replaces) an empty page blob of <paramref name="size"/> bytes, in the container made first.</summary>
    public async Task CreatePageBlobAsync(string blob, long size, CancellationToken ct)
    {
        await ContainerCreatedAsync().WaitAsync(ct);
        using var request = Signed(HttpMethod.Put, $"{_container}/{blob}",
            [("x-ms-blob-type", "PageBlob"), ("x-ms-blob-content-length", size.ToString(CultureInfo.InvariantCulture))]);
        using var response = await _http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"Azurite refused to create page blob '{blob}' ({size} bytes): {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    /// <summary>
    /// The one creation of the container that concurrent grants all wait for (a grant must not create its blob before
    /// the container exists). Started by the first caller, without its token (the others share it); when it failed,
    /// the next caller starts it again.
    /// </summary>
    private Task ContainerCreatedAsync()
    {
        lock (_containerLock)
        {
            if (_containerCreated is null || _containerCreated.IsFaulted || _containerCreated.IsCanceled)
                _containerCreated = CreateContainerAsync();
            return _containerCreated;
        }
    }

    private async Task CreateContainerAsync()
    {
        using var request = Signed(HttpMethod.Put, $"{_container}?restype=container", []);
        using var response = await _http.SendAsync(request, CancellationToken.None);
        if (!response.IsSuccessStatusCode && response.StatusCode != HttpStatusCode.Conflict)
            throw new InvalidOperationException($"Azurite refused to create container '{_container}': {(int)response.StatusCode}.");
    }

    /// <summary>
    /// Copies page blob <paramref name="source"/> to a new page blob <paramref name="target"/> of the same length, as it
    /// is at this moment: its valid page ranges (Get Page Ranges) are read and written (Put Page, up to 4 MiB each), so
    /// the copy has the same valid ranges and later writes to the source do not reach it. (Azurite's Copy Blob is not
    /// used: its copy of a page blob shares the source's page ranges, so later writes to the source show in the copy.)
    /// </summary>
    public async Task CopyPageBlobAsync(string source, string target, CancellationToken ct)
    {
        long length;
        using (var head = Signed(HttpMethod.Head, $"{_container}/{source}", []))
        using (var properties = await _http.SendAsync(head, ct))
        {
            if (!properties.IsSuccessStatusCode)
                throw new InvalidOperationException($"Azurite could not read page blob '{source}': {(int)properties.StatusCode}.");
            length = properties.Content.Headers.ContentLength ?? throw new InvalidOperationException($"Azurite gave no length for '{source}'.");
        }
        var ranges = new List<(long Start, long End)>();
        using (var list = Signed(HttpMethod.Get, $"{_container}/{source}?comp=pagelist", []))
        using (var answer = await _http.SendAsync(list, ct))
        {
            string xml = await answer.Content.ReadAsStringAsync(ct);
            if (!answer.IsSuccessStatusCode)
                throw new InvalidOperationException($"Azurite refused Get Page Ranges of '{source}': {(int)answer.StatusCode} {xml}");
            foreach (var range in System.Xml.Linq.XDocument.Parse(xml).Descendants("PageRange"))
                ranges.Add((long.Parse(range.Element("Start")!.Value, CultureInfo.InvariantCulture), long.Parse(range.Element("End")!.Value, CultureInfo.InvariantCulture)));
        }
        await CreatePageBlobAsync(target, length, ct);
        const long maxPut = 4 << 20;
        foreach (var (start, end) in ranges)
            for (long from = start; from <= end; from += maxPut)
            {
                long to = Math.Min(end, from + maxPut - 1);
                string range = $"bytes={from}-{to}";
                byte[] data;
                using (var get = Signed(HttpMethod.Get, $"{_container}/{source}", [("x-ms-range", range)]))
                using (var got = await _http.SendAsync(get, ct))
                {
                    if (!got.IsSuccessStatusCode)
                        throw new InvalidOperationException($"Azurite refused to read {range} of '{source}': {(int)got.StatusCode}.");
                    data = await got.Content.ReadAsByteArrayAsync(ct);
                }
                using var put = Signed(HttpMethod.Put, $"{_container}/{target}?comp=page", [("x-ms-page-write", "update"), ("x-ms-range", range)], data);
                using var written = await _http.SendAsync(put, ct);
                if (!written.IsSuccessStatusCode)
                    throw new InvalidOperationException($"Azurite refused to write {range} of '{target}': {(int)written.StatusCode} {await written.Content.ReadAsStringAsync(ct)}");
            }
    }

    public async Task DeleteBlobAsync(string blob, CancellationToken ct)
    {
        using var request = Signed(HttpMethod.Delete, $"{_container}/{blob}", []);
        using var response = await _http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode && response.StatusCode != HttpStatusCode.NotFound)
            throw new InvalidOperationException($"Azurite refused to delete page blob '{blob}': {(int)response.StatusCode}.");
    }

    /// <summary>A service SAS for one blob (sr=b) with the given permissions, valid from a minute ago for <paramref name="duration"/>.</summary>
    public Uri BlobSas(string blob, string permissions, TimeSpan duration)
    {
        string start = Format(DateTimeOffset.UtcNow.AddMinutes(-1)), expiry = Format(DateTimeOffset.UtcNow.Add(duration));
        // Service SAS string-to-sign, versions 2020-12-06 and later (learn.microsoft.com "Create a service SAS").
        string canonical = $"/blob/{_account}/{_container}/{blob}";
        string toSign = string.Join('\n',
            permissions, start, expiry, canonical,
            "", "", "",             // signedIdentifier, signedIP, signedProtocol
            Version, "b",           // signedVersion, signedResource
            "", "",                 // signedSnapshotTime, signedEncryptionScope
            "", "", "", "", "");    // rscc, rscd, rsce, rscl, rsct
        string sig = Sign(toSign);
        string query = $"sv={Version}&st={Uri.EscapeDataString(start)}&se={Uri.EscapeDataString(expiry)}&sr=b&sp={permissions}&sig={Uri.EscapeDataString(sig)}";
        return new Uri(_endpoint, $"{_container}/{blob}?{query}");
    }

    private static string Format(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    /// <summary>A request signed with Shared Key (learn.microsoft.com "Authorize with Shared Key").</summary>
    private HttpRequestMessage Signed(HttpMethod method, string relative, (string Name, string Value)[] headers, byte[]? content = null)
    {
        var uri = new Uri(_endpoint, relative);
        var request = new HttpRequestMessage(method, uri);
        var all = new List<(string Name, string Value)>(headers)
        {
            ("x-ms-date", DateTimeOffset.UtcNow.ToString("R", CultureInfo.InvariantCulture)),
            ("x-ms-version", Version),
        };
        foreach (var (name, value) in all) request.Headers.TryAddWithoutValidation(name, value);
        if (method == HttpMethod.Put) request.Content = new ByteArrayContent(content ?? []);

        var canonicalHeaders = new StringBuilder();
        foreach (var (name, value) in all.OrderBy(h => h.Name.ToLowerInvariant(), StringComparer.Ordinal))
            canonicalHeaders.Append(name.ToLowerInvariant()).Append(':').Append(value.Trim()).Append('\n');
        // The path already starts with the account on a path-style (emulator) endpoint; the resource adds it again.
        var canonicalResource = new StringBuilder("/").Append(_account).Append(uri.AbsolutePath);
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
                     .Select(p => p.Split('=', 2))
                     .OrderBy(p => p[0].ToLowerInvariant(), StringComparer.Ordinal))
            canonicalResource.Append('\n').Append(Uri.UnescapeDataString(pair[0]).ToLowerInvariant()).Append(':')
                .Append(pair.Length > 1 ? Uri.UnescapeDataString(pair[1]) : "");
        string toSign = string.Join('\n',
            method.Method,
            "", "", content is { Length: > 0 } ? content.Length.ToString(CultureInfo.InvariantCulture) : "", // Content-Encoding, Content-Language, Content-Length (empty when 0)
            "", "", "",             // Content-MD5, Content-Type, Date (x-ms-date is used)
            "", "", "", "", "")     // If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range
            + "\n" + canonicalHeaders + canonicalResource;
        request.Headers.TryAddWithoutValidation("Authorization", $"SharedKey {_account}:{Sign(toSign)}");
        return request;
    }

    private string Sign(string toSign)
    {
        using var hmac = new HMACSHA256(_key);
        return Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes(toSign)));
    }

    public void Dispose() => _http.Dispose();
}
