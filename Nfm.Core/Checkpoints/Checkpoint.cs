using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Checkpoints;

/// <summary>
/// One checkpoint format for every kind of artefact (teacher, student, classifier, coupling pairs):
/// a kind, a description (JSON), string metadata and named tensors (weights, optimiser and EMA state, RNG state).
/// </summary>
/// <remarks>
/// A checkpoint is a plain <c>.safetensors</c> file (<see cref="SafetensorsFile"/>), so Python's
/// <c>safetensors.safe_open</c> lists and loads it. Its <c>__metadata__</c> holds the format's own keys
/// (<see cref="VersionKey"/>, <see cref="KindKey"/>, <see cref="DescriptionKey"/>, the checksums
/// <see cref="DataHashKey"/> and <see cref="HeaderHashKey"/>, and <c>format: pt</c>) next to the artefact's
/// <see cref="Meta"/> (step counters, identities). Saving goes through <see cref="Data.AtomicFile"/>, so a crash at
/// any moment leaves the previous checkpoint intact. Files of the previous layout (<c>NFMCKPT1</c>) are still read,
/// see <see cref="LegacyCheckpoint"/>.
/// </remarks>
public sealed record Checkpoint(string Kind, JsonNode Description, IReadOnlyDictionary<string, string> Meta,
    IReadOnlyDictionary<string, Tensor> Tensors)
{
    /// <summary>The format version this build writes (1 was the <c>NFMCKPT1</c> layout).</summary>
    public const int FormatVersion = 2;

    /// <summary>Metadata key: the format version, "2".</summary>
    public const string VersionKey = "nfm.format_version";
    /// <summary>Metadata key: the kind ("teacher", "student", "pairs", "pairs-partial", "classifier").</summary>
    public const string KindKey = "nfm.kind";
    /// <summary>Metadata key: the artefact's description (the run's JSON).</summary>
    public const string DescriptionKey = "nfm.description";
    /// <summary>Metadata key: SHA-256 (64 lowercase hex digits) of the data buffer, every byte after the header.</summary>
    public const string DataHashKey = "nfm.data_sha256";
    /// <summary>
    /// Metadata key: SHA-256 of the header's N bytes in which this value itself is written as 64 zeros
    /// (so it seals the description, the metadata and the tensor layout).
    /// </summary>
    public const string HeaderHashKey = "nfm.header_sha256";
    /// <summary>Metadata key of the pair files: the identity of the teacher whose encodings they hold.</summary>
    public const string TeacherIdKey = "teacher_id";
    /// <summary>Metadata key of the pair files: the identity of the data they were computed for.</summary>
    public const string DataIdKey = "data_id";

    /// <summary>The metadata key safetensors tools read for the tensors' framework; always "pt".</summary>
    const string FrameworkKey = "format";
    static readonly string[] ReservedKeys = [FrameworkKey, VersionKey, KindKey, DescriptionKey, DataHashKey, HeaderHashKey];
    static readonly string ZeroHash = new('0', 64);

    /// <summary>The format version of the file this checkpoint was read from: 1 for the old <c>NFMCKPT1</c> layout.</summary>
    public int SourceFormatVersion { get; init; } = FormatVersion;

    /// <summary>
    /// Raised with a one-line notice when <see cref="Load"/> reads a file of the old <c>NFMCKPT1</c> layout (read by
    /// this version only). The command line prints it on stderr.
    /// </summary>
    public static event Action<string>? OldFormatRead;

    /// <summary>Tensors whose names start with <paramref name="prefix"/>, with the prefix removed.</summary>
    public IReadOnlyDictionary<string, Tensor> WithPrefix(string prefix) =>
        Tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
               .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>The description deserialised as <typeparamref name="T"/>.</summary>
    public T DescriptionAs<T>() => Descriptions.Json.Read<T>(Description.ToJsonString());

    /// <summary>
    /// Writes the checkpoint as a safetensors file, atomically (temporary file, then rename). Throws
    /// <see cref="ArgumentException"/> when <see cref="Meta"/> uses one of the format's own keys.
    /// </summary>
    public static void Save(string path, Checkpoint c)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [FrameworkKey] = "pt",
            [VersionKey] = FormatVersion.ToString(),
            [KindKey] = c.Kind,
            [DescriptionKey] = c.Description.ToJsonString(),
        };
        foreach (var (k, v) in c.Meta)
        {
            if (ReservedKeys.Contains(k)) throw new ArgumentException($"checkpoint metadata cannot use the format's own key '{k}'", nameof(c));
            metadata[k] = v;
        }
        // CPU copies first (no copy for CPU tensors): the header carries the data's checksum, so it is hashed before writing.
        var cpu = c.Tensors.Select(kv => KeyValuePair.Create(kv.Key, kv.Value.detach().cpu().contiguous())).ToList();
        try
        {
            using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                foreach (var (_, t) in cpu) SafetensorsFile.ForEachChunk(t, b => sha.AppendData(b));
                metadata[DataHashKey] = Hex(sha.GetHashAndReset());
            }
            metadata[HeaderHashKey] = ZeroHash;
            var header = SafetensorsFile.HeaderBytes(SafetensorsFile.Layout(cpu.Select(kv => (kv.Key, kv.Value.dtype, kv.Value.shape))), metadata);
            Seal(header);
            Data.AtomicFile.Write(path, fs =>
            {
                SafetensorsFile.WriteHeader(fs, header);
                SafetensorsFile.WriteData(fs, cpu.Select(kv => kv.Value));
            });
        }
        finally
        {
            foreach (var (_, t) in cpu) t.Dispose();
        }
    }

    /// <summary>True when <paramref name="path"/> is a checkpoint of this project (either layout), false for any other
    /// file (e.g. ml-tarflow weights as safetensors); reads the header only.</summary>
    public static bool IsCheckpoint(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        if (LegacyCheckpoint.IsLegacy(fs, path)) return true;
        if (!SafetensorsFile.LooksLikeSafetensors(fs)) return false;
        return SafetensorsFile.ReadHeader(fs, path).Metadata.ContainsKey(KindKey);
    }

    /// <summary>
    /// Reads and verifies a checkpoint. Throws <see cref="InvalidDataException"/> naming the file and the problem:
    /// not a checkpoint, another format version, truncated or altered (length or checksum), or of another kind than
    /// <paramref name="expectedKind"/> (when given). Reads the old <c>NFMCKPT1</c> layout too, raising
    /// <see cref="OldFormatRead"/>.
    /// </summary>
    public static Checkpoint Load(string path, string? expectedKind = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: checkpoint file not found", path);
        FileStream fs;
        try { fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"{path}: cannot read checkpoint ({e.Message})", e); }
        using (fs)
        {
            if (LegacyCheckpoint.IsLegacy(fs, path))
            {
                var old = LegacyCheckpoint.Read(fs, path, expectedKind);
                OldFormatRead?.Invoke($"{path}: checkpoint in the old NFMCKPT1 layout, read by this version only; save it again to write safetensors (docs/interop.md)");
                return old;
            }
            if (!SafetensorsFile.LooksLikeSafetensors(fs))
                throw new InvalidDataException($"{path}: not an nfm checkpoint (neither a safetensors file nor the old NFMCKPT1 layout)");
            var header = SafetensorsFile.ReadHeader(fs, path);
            var meta = header.Metadata;
            if (!meta.TryGetValue(KindKey, out var kind))
                throw new InvalidDataException(
                    $"{path}: a safetensors file but not an nfm checkpoint (its metadata has no '{KindKey}'); ml-tarflow weights are read with 'nfm teacher import'");
            var version = meta.GetValueOrDefault(VersionKey, "(none)");
            if (version != FormatVersion.ToString())
                throw new InvalidDataException($"{path}: checkpoint format version {version} is not supported (this build reads {FormatVersion}, and 1 in the NFMCKPT1 layout)");
            if (!meta.TryGetValue(HeaderHashKey, out var headerHash) || !HeaderHashMatches(header.Raw, headerHash))
                throw new InvalidDataException($"{path}: checkpoint is truncated or altered (SHA-256 mismatch in the header)");
            if (expectedKind is not null && kind != expectedKind)
                throw new InvalidDataException($"{path}: is a {kind} checkpoint, expected a {expectedKind}");
            JsonNode description;
            try { description = JsonNode.Parse(meta.GetValueOrDefault(DescriptionKey, "null")) ?? throw new InvalidDataException("null"); }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException)
            {
                throw new InvalidDataException($"{path}: checkpoint description ('{DescriptionKey}') is not a JSON value", e);
            }
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var tensors = SafetensorsFile.ReadTensors(fs, header, path, observe: b => sha.AppendData(b));
            if (Hex(sha.GetHashAndReset()) != meta.GetValueOrDefault(DataHashKey))
            {
                foreach (var t in tensors.Values) t.Dispose();
                throw new InvalidDataException($"{path}: checkpoint is truncated or altered (SHA-256 mismatch in the tensor data)");
            }
            var own = meta.Where(kv => !ReservedKeys.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            return new Checkpoint(kind, description, own, tensors);
        }
    }

    /// <summary>Writes the header's SHA-256 over the zero placeholder of <see cref="HeaderHashKey"/>.</summary>
    static void Seal(byte[] header)
    {
        var placeholder = Encoding.UTF8.GetBytes($"\"{HeaderHashKey}\":\"{ZeroHash}\"");
        int at = header.AsSpan().IndexOf(placeholder);
        if (at < 0) throw new InvalidOperationException("the checkpoint header lacks its checksum placeholder");
        var hash = Encoding.ASCII.GetBytes(Hex(SHA256.HashData(header)));
        hash.CopyTo(header, at + placeholder.Length - 1 - ZeroHash.Length);
    }

    /// <summary>True when the header, with every occurrence of <paramref name="hash"/> written as zeros, hashes to it.</summary>
    static bool HeaderHashMatches(byte[] header, string hash)
    {
        if (hash.Length != 64 || !hash.All(Uri.IsHexDigit)) return false;
        var value = Encoding.ASCII.GetBytes(hash);
        var zeroed = (byte[])header.Clone();
        for (int at = 0, i; (i = zeroed.AsSpan(at).IndexOf(value)) >= 0; at += i + value.Length)
            zeroed.AsSpan(at + i, value.Length).Fill((byte)'0');
        return Hex(SHA256.HashData(zeroed)) == hash;
    }

    static string Hex(byte[] hash) => Convert.ToHexString(hash).ToLowerInvariant();
}
