using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Storage;

/// <summary>
/// Vault objects as files under a directory. Writes go to a temporary file in the same directory,
/// are flushed to disk, then renamed (or linked) over the final name, and the directory is flushed
/// after the rename, so an object is either whole or absent after a crash or power loss at any moment,
/// and once a write returns it survives one. Deletes flush the directory too (a pruned manifest must not
/// come back after a power loss while the packs it read are gone).
/// </summary>
/// <remarks>
/// File-system faults become the vault's error ids (docs/design.md, "Storage faults"): no space or quota left
/// (ENOSPC, EDQUOT) → <see cref="AsrErrorIds.VaultStorageFull"/>; permission denied or a read-only file system
/// (EACCES, EPERM, EROFS) → <see cref="AsrErrorIds.VaultAccessDenied"/>. A failed write leaves no partial object
/// (its temporary file is removed, or swept later by <see cref="SweepStaleTemporariesAsync"/>).
/// </remarks>
public sealed class LocalDirectoryStore : IVaultStore
{
    private const string TempSuffix = ".tmp-";
    private const int TempIdLength = 8;
    private readonly string _root;

    public LocalDirectoryStore(string root)
    {
        _root = Path.GetFullPath(root);
    }

    public string Location => _root;

    public string Backend => "LocalDirectory";

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.StartsWith('/') || key.Contains("..", StringComparison.Ordinal) || key.Contains('\\'))
            throw new ArgumentException($"Invalid vault key '{key}'.", nameof(key));
        return Path.Combine(_root, key.Replace('/', Path.DirectorySeparatorChar));
    }

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(key)));

    public async Task<byte[]?> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            return await File.ReadAllBytesAsync(PathOf(key), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        catch (Exception ex) when (StorageFault(ex, key, "read") is { } fault) { throw fault; }
    }

    public async Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle opened;
        try { opened = File.OpenHandle(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous); }
        catch (Exception ex) when (StorageFault(ex, key, "read") is { } fault) { throw fault; }
        using var handle = opened;
        int done = 0;
        while (done < destination.Length)
        {
            int n = await RandomAccess.ReadAsync(handle, destination[done..], offset + done, cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new EndOfStreamException($"Vault object '{key}' is shorter than expected.");
            done += n;
        }
    }

    public async Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string path = PathOf(key);
        string temp = await WriteTempAsync(key, path, content, cancellationToken).ConfigureAwait(false);
        try
        {
            StampNewVersion(temp, path);
            File.Move(temp, path, overwrite: true);
            FlushDirectory(Path.GetDirectoryName(path)!);
        }
        catch (Exception ex) when (StorageFault(ex, key, "write") is { } fault)
        {
            TryDelete(temp);
            throw fault;
        }
    }

    public async Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string path = PathOf(key);
        string temp = await WriteTempAsync(key, path, content, cancellationToken).ConfigureAwait(false);
        return PublishCreated(key, temp, path);
    }

    /// <summary>
    /// Streams the parts into a temporary file beside the object (flushed to disk at the commit, then linked to its name
    /// like <see cref="TryCreateAsync"/>): a pack is never held whole in memory.
    /// </summary>
    public IObjectUpload BeginCreate(string key, int expectedLength) => new LocalObjectUpload(this, key, PathOf(key));

    /// <summary>Gives the flushed temporary file <paramref name="temp"/> the name <paramref name="path"/> unless it exists; removes the temporary file either way.</summary>
    private bool PublishCreated(string key, string temp, string path)
    {
        try
        {
            // A hard link fails when the name exists: an atomic create-if-absent on POSIX.
            bool created;
            if (OperatingSystem.IsWindows())
            {
                if (File.Exists(path)) return false;
                File.Move(temp, path, overwrite: false);
                created = true;
            }
            else
            {
                created = Native.TryLink(temp, path);
            }
            if (created) FlushDirectory(Path.GetDirectoryName(path)!);
            return created;
        }
        catch (IOException) when (OperatingSystem.IsWindows() && File.Exists(path))
        {
            return false;
        }
        catch (Exception ex) when (StorageFault(ex, key, "write") is { } fault)
        {
            throw fault;
        }
        finally
        {
            TryDelete(temp);
        }
    }

    /// <summary>The version is a SHA-256 of the content: every write the engine replaces conditionally differs in content (an item id, a random nonce when sealed).</summary>
    public async Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken cancellationToken) =>
        await ReadAllAsync(key, cancellationToken).ConfigureAwait(false) is { } content ? new VersionedObject(content, VersionOf(content)) : null;

    private static string VersionOf(byte[] content) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(content));

    /// <summary>
    /// Compare and rename under an exclusive lock of the key's own (<c>locks/replace/&lt;key&gt;.lock</c>, a flock the kernel
    /// frees if the process dies), so of two processes replacing the same version one wins and the other sees the new one.
    /// </summary>
    public async Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(version);
        PathOf(key);
        string lockKey = "locks/replace/" + key + ".lock";
        IDisposable? held;
        // Held only for a read and a rename: wait for it.
        while ((held = TryAcquireLock(lockKey)) is null) await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        using (held)
        {
            var current = await ReadAllAsync(key, cancellationToken).ConfigureAwait(false);
            if (current is null || VersionOf(current) != version) return false;
            await WriteAsync(key, content, cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>
    /// A listed object's version is its write time and size (<see cref="ListAsync"/>). A new file gets the kernel's coarse
    /// clock (1-10 ms), so two writes of the same size in a row could look alike, and an agent would miss the second
    /// (issue #15: change markers always have the same size). The replacement is stamped with this process's fine clock,
    /// and always later than the object it replaces.
    /// </summary>
    private static void StampNewVersion(string temp, string path)
    {
        var now = DateTime.UtcNow;
        var previous = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : DateTime.MinValue;
        File.SetLastWriteTimeUtc(temp, now > previous ? now : previous.AddTicks(1));
    }

    private async Task<string> WriteTempAsync(string key, string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string temp = TemporaryPathFor(path);
        try
        {
            EnsureDirectory(Path.GetDirectoryName(path)!);
            await using var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
            await fs.WriteAsync(content, cancellationToken).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        catch (Exception ex)
        {
            TryDelete(temp);
            if (StorageFault(ex, key, "write") is { } fault) throw fault;
            throw;
        }
        return temp;
    }

    /// <summary>Creates a directory and its missing parents, flushing each new entry's parent so the path survives a power loss.</summary>
    private void EnsureDirectory(string dir)
    {
        if (Directory.Exists(dir)) return;
        var missing = new Stack<string>();
        for (string? d = dir; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) missing.Push(d);
        Directory.CreateDirectory(dir);
        foreach (var created in missing)
            FlushDirectory(Path.GetDirectoryName(created)!);
    }

    /// <summary>
    /// fsync(2) of a directory, which makes a rename, link, create or unlink in it durable. .NET cannot open a
    /// directory as a file, so open/fsync/close come from libc (as <c>link</c> and <c>statx</c> do elsewhere).
    /// File systems that cannot sync a directory (EINVAL, ENOTSUP) have nothing to flush.
    /// </summary>
    internal static void FlushDirectory(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = Native.open(dir, Native.O_RDONLY | (OperatingSystem.IsLinux() ? Native.O_CLOEXEC : 0));
        if (fd < 0)
        {
            int openErrno = Marshal.GetLastPInvokeError();
            throw Native.ErrnoException(openErrno, $"Cannot open directory '{dir}' to flush it");
        }
        try
        {
            if (Native.fsync(fd) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is Native.EINVAL or Native.ENOTSUP) return;
                throw Native.ErrnoException(errno, $"fsync of directory '{dir}' failed");
            }
        }
        finally
        {
            _ = Native.close(fd);
        }
        DirectoryFlushed?.Invoke(dir);
    }

    /// <summary>Tests observe which directories were flushed (durability cannot be seen without pulling the plug).</summary>
    internal static event Action<string>? DirectoryFlushed;

    private sealed class LocalObjectUpload(LocalDirectoryStore store, string key, string path) : IObjectUpload
    {
        private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;
        private string? _temp;
        private bool _committed;

        public long Length { get; private set; }

        public Task AppendAsync(ReadOnlyMemory<byte> part, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_committed, this);
            try
            {
                _handle ??= Open();
                // A write into the page cache: done here, on the caller's thread, rather than queued to the pool.
                RandomAccess.Write(_handle, part.Span, Length);
                Length += part.Length;
                return Task.CompletedTask;
            }
            catch (Exception ex) when (store.StorageFault(ex, key, "write") is { } fault)
            {
                Discard();
                throw fault;
            }
        }

        public Task<bool> CommitAsync(CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_committed, this);
            _committed = true;
            try
            {
                _handle ??= Open();
                RandomAccess.FlushToDisk(_handle);
                _handle.Dispose();
                _handle = null;
            }
            catch (Exception ex) when (store.StorageFault(ex, key, "write") is { } fault)
            {
                Discard();
                throw fault;
            }
            return Task.FromResult(store.PublishCreated(key, _temp!, path));
        }

        private Microsoft.Win32.SafeHandles.SafeFileHandle Open()
        {
            store.EnsureDirectory(Path.GetDirectoryName(path)!);
            _temp = TemporaryPathFor(path);
            return File.OpenHandle(_temp, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        }

        private void Discard()
        {
            _handle?.Dispose();
            _handle = null;
            if (_temp is not null) TryDelete(_temp);
        }

        public ValueTask DisposeAsync()
        {
            // Committed: PublishCreated removed the temporary file. Otherwise what was written goes.
            if (!_committed || _handle is not null) Discard();
            return ValueTask.CompletedTask;
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        // The prefix is a key prefix; list the deepest existing directory it names and filter.
        int slash = prefix.LastIndexOf('/');
        string dirKey = slash < 0 ? "" : prefix[..slash];
        string dir = dirKey.Length == 0 ? _root : PathOf(dirKey);
        var result = new List<VaultObjectInfo>();
        try
        {
            if (Directory.Exists(dir))
            {
                foreach (var file in new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories))
                {
                    if (file.Name.Contains(TempSuffix, StringComparison.Ordinal)) continue;
                    string key = Path.GetRelativePath(_root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
                    if (key.StartsWith(prefix, StringComparison.Ordinal))
                        result.Add(new VaultObjectInfo(key, file.Length, $"{file.LastWriteTimeUtc.Ticks:x}-{file.Length:x}"));
                }
            }
        }
        catch (Exception ex) when (StorageFault(ex, prefix, "list") is { } fault) { throw fault; }
        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return Task.FromResult<IReadOnlyList<VaultObjectInfo>>(result);
    }

    public Task<IReadOnlyList<string>> ListFoldersAsync(string prefix, CancellationToken cancellationToken)
    {
        if (!prefix.EndsWith('/')) throw new ArgumentException("A folder prefix ends with '/'.", nameof(prefix));
        string dir = PathOf(prefix.TrimEnd('/'));
        try
        {
            var names = Directory.Exists(dir)
                ? new DirectoryInfo(dir).EnumerateDirectories().Select(d => d.Name).Where(n => !n.Contains(TempSuffix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
                : [];
            return Task.FromResult<IReadOnlyList<string>>(names);
        }
        catch (Exception ex) when (StorageFault(ex, prefix, "list") is { } fault) { throw fault; }
    }

    public Task DeleteIncompleteAsync(string prefix, CancellationToken cancellationToken)
    {
        string dir = PathOf(prefix.TrimEnd('/'));
        try
        {
            if (Directory.Exists(dir))
                foreach (var f in Directory.EnumerateFiles(dir, "*" + TempSuffix + "*", SearchOption.AllDirectories))
                    File.Delete(f);
        }
        catch (Exception ex) when (StorageFault(ex, prefix, "delete") is { } fault) { throw fault; }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Deletes temporary files (<c>*.tmp-*</c>) anywhere in the vault whose last write is older than
    /// <paramref name="olderThan"/>: what writes killed mid-way left (item records, names, jobs, events, pins,
    /// points), which <see cref="DeleteIncompleteAsync"/> does not reach. A live writer writes its temporary file and
    /// renames it within seconds, so an age of minutes never takes one in use; were one taken all the same, that
    /// write fails (its rename finds nothing) rather than publish anything partial. Returns how many were deleted.
    /// </summary>
    public Task<int> SweepStaleTemporariesAsync(TimeSpan olderThan, CancellationToken cancellationToken)
    {
        int deleted = 0;
        if (!Directory.Exists(_root)) return Task.FromResult(0);
        var cutoff = DateTime.UtcNow - olderThan;
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        foreach (var file in new DirectoryInfo(_root).EnumerateFiles("*" + TempSuffix + "*", options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!IsTemporaryName(file.Name)) continue;
            if (file.LastWriteTimeUtc > cutoff) continue;
            try
            {
                file.Delete();
                deleted++;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
        return Task.FromResult(deleted);
    }

    /// <summary>
    /// The temporary file a write of <paramref name="path"/> goes to before its rename: &lt;name&gt;.tmp-&lt;8 lower-case hex
    /// digits&gt;. Every write names its temporary here, so the sweep (<see cref="IsTemporaryName"/>) knows them all and
    /// nothing else.
    /// </summary>
    private static string TemporaryPathFor(string path) => path + TempSuffix + Guid.NewGuid().ToString("N")[..TempIdLength];

    /// <summary>Whether a file name has the shape <see cref="TemporaryPathFor"/> gives (and so may be swept when stale).</summary>
    private static bool IsTemporaryName(string name)
    {
        int at = name.LastIndexOf(TempSuffix, StringComparison.Ordinal);
        return at > 0 && name.Length - at - TempSuffix.Length == TempIdLength && name[(at + TempSuffix.Length)..].All(char.IsAsciiHexDigitLower);
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        // Deleting what is not there is not an error (the contract of a blob delete-if-exists).
        string path = PathOf(key);
        try
        {
            if (!File.Exists(path)) return Task.CompletedTask;
            File.Delete(path);
            FlushDirectory(Path.GetDirectoryName(path)!);
        }
        catch (DirectoryNotFoundException) { }
        catch (Exception ex) when (StorageFault(ex, key, "delete") is { } fault) { throw fault; }
        return Task.CompletedTask;
    }

    public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        string trimmed = prefix.TrimEnd('/');
        string path = PathOf(trimmed);
        try
        {
            if (prefix.EndsWith('/') && Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
                FlushDirectory(Path.GetDirectoryName(path)!);
                return Task.CompletedTask;
            }
            var dirs = new HashSet<string>(StringComparer.Ordinal);
            foreach (var o in ListAsync(prefix, cancellationToken).Result)
            {
                string file = PathOf(o.Key);
                File.Delete(file);
                dirs.Add(Path.GetDirectoryName(file)!);
            }
            foreach (var d in dirs) FlushDirectory(d);
        }
        catch (Exception ex) when (StorageFault(ex, prefix, "delete") is { } fault) { throw fault; }
        return Task.CompletedTask;
    }

    public IDisposable? TryAcquireLock(string key)
    {
        string path = PathOf(key);
        try
        {
            EnsureDirectory(Path.GetDirectoryName(path)!);
            // FileShare.None is an advisory flock on Unix: released by the kernel if the process dies.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException ex) when (IsLockHeld(ex))
        {
            return null;
        }
        catch (Exception ex) when (StorageFault(ex, key, "lock") is { } fault)
        {
            throw fault;
        }
    }

    /// <summary>Another holder has the lock (flock's EWOULDBLOCK; a sharing violation on Windows), as opposed to a storage fault.</summary>
    private static bool IsLockHeld(IOException ex) =>
        OperatingSystem.IsWindows() ? (ex.HResult & 0xFFFF) is 32 or 33 : ex.HResult is Native.EWOULDBLOCK or Native.EAGAIN_BSD;

    /// <summary>
    /// The vault error a file-system fault is, or null when it is none of those (it then propagates as it is).
    /// On Unix .NET puts the errno in an IOException's HResult and throws UnauthorizedAccessException for
    /// EACCES, EPERM and EBADF; on Windows the HResult carries the Win32 code.
    /// </summary>
    internal AsrException? StorageFault(Exception ex, string key, string operation)
    {
        if (ex is AsrException) return null;
        int code = ex is IOException io ? (OperatingSystem.IsWindows() ? io.HResult & 0xFFFF : io.HResult) : 0;
        bool full = ex is IOException && (OperatingSystem.IsWindows() ? code is 112 /* ERROR_DISK_FULL */ or 39 /* ERROR_HANDLE_DISK_FULL */ : code is Native.ENOSPC or Native.EDQUOT);
        if (full)
            return new AsrException(AsrErrorIds.VaultStorageFull, AsrErrorKind.ResourceUnavailable,
                $"The file system of the vault at '{_root}' is full (or the quota of this user is used up): cannot {operation} '{key}'. " +
                "Nothing already in the vault was changed. Free space there (or lower the retention of a policy and let its next cycle prune), then run the operation again.",
                key, ex);
        bool readOnly = ex is IOException && !OperatingSystem.IsWindows() && code == Native.EROFS;
        if (ex is UnauthorizedAccessException || readOnly)
            return new AsrException(AsrErrorIds.VaultAccessDenied, AsrErrorKind.SecurityError,
                readOnly
                    ? $"The vault at '{_root}' is on a read-only file system: cannot {operation} '{key}'. Remount it read-write, or connect to a vault this session may write to."
                    : $"Access to the vault at '{_root}' was denied: cannot {operation} '{key}' ({ex.Message}). Check the permissions of the vault directory for user '{Environment.UserName}'.",
                key, ex);
        return null;
    }

    private static class Native
    {
        public const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
        public const int EWOULDBLOCK = 11, EAGAIN_BSD = 35, ENOSPC = 28, EROFS = 30, EDQUOT = 122, EINVAL = 22, ENOTSUP = 95 /* = EOPNOTSUPP */, EEXIST = 17;

        [DllImport("libc", SetLastError = true, EntryPoint = "link")]
        private static extern int link([MarshalAs(UnmanagedType.LPUTF8Str)] string oldpath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newpath);

        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);

        public static bool TryLink(string from, string to)
        {
            if (link(from, to) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EEXIST) return false;
            throw ErrnoException(errno, $"link('{to}') failed");
        }

        /// <summary>An IOException carrying the errno in its HResult, as .NET's own file APIs throw on Unix.</summary>
        public static Exception ErrnoException(int errno, string what) =>
            errno is 13 /* EACCES */ or 1 /* EPERM */
                ? new UnauthorizedAccessException($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).")
                : new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);
    }
}
