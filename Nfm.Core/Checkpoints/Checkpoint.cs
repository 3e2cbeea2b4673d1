using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Checkpoints;

/// <summary>
/// One checkpoint format for every kind of artefact (teacher, student, classifier, coupling pairs):
/// a kind, a description (JSON), string metadata and named tensors (weights, optimiser and EMA state, RNG state).
/// </summary>
/// <remarks>
/// Layout: the 8 bytes <c>NFMCKPT1</c>, a little-endian int32 header length, the UTF-8 JSON header
/// (<c>format</c>, <c>kind</c>, <c>description</c>, <c>meta</c>, and per tensor its name, dtype, shape and byte count),
/// the tensors' raw little-endian bytes in header order, then the SHA-256 of everything before it.
/// Saving goes through <see cref="Data.AtomicFile"/>, so a crash at any moment leaves the previous checkpoint intact.
/// </remarks>
public sealed record Checkpoint(string Kind, JsonNode Description, IReadOnlyDictionary<string, string> Meta,
    IReadOnlyDictionary<string, Tensor> Tensors)
{
    /// <summary>The format version this build writes and reads.</summary>
    public const int FormatVersion = 1;
    private static readonly byte[] Magic = "NFMCKPT1"u8.ToArray();

    /// <summary>Tensors whose names start with <paramref name="prefix"/>, with the prefix removed.</summary>
    public IReadOnlyDictionary<string, Tensor> WithPrefix(string prefix) =>
        Tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
               .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>The description deserialised as <typeparamref name="T"/>.</summary>
    public T DescriptionAs<T>() => Descriptions.Json.Read<T>(Description.ToJsonString());

    /// <summary>Writes the checkpoint atomically (temporary file, then rename).</summary>
    public static void Save(string path, Checkpoint c)
    {
        var entries = new JsonArray();
        var blobs = new List<byte[]>();
        foreach (var (name, t) in c.Tensors)
        {
            using var cpu = t.detach().cpu().contiguous();
            var bytes = cpu.bytes.ToArray();
            blobs.Add(bytes);
            entries.Add(new JsonObject
            {
                ["name"] = name,
                ["dtype"] = DTypeName(cpu.dtype),
                ["shape"] = new JsonArray(cpu.shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["bytes"] = bytes.LongLength,
            });
        }
        var header = new JsonObject
        {
            ["format"] = FormatVersion,
            ["kind"] = c.Kind,
            ["description"] = c.Description.DeepClone(),
            ["meta"] = new JsonObject(c.Meta.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["tensors"] = entries,
        };
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        Data.AtomicFile.Write(path, fs =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            void Put(byte[] b) { fs.Write(b); sha.AppendData(b); }
            Put(Magic);
            Put(BitConverter.GetBytes(headerBytes.Length));
            Put(headerBytes);
            foreach (var b in blobs) Put(b);
            fs.Write(sha.GetHashAndReset());
        });
    }

    /// <summary>
    /// Reads and verifies a checkpoint. Throws <see cref="InvalidDataException"/> naming the file and the problem:
    /// not a checkpoint, another format version, truncated or altered (checksum), or of another kind than
    /// <paramref name="expectedKind"/> (when given).
    /// </summary>
    public static Checkpoint Load(string path, string? expectedKind = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: checkpoint file not found", path);
        byte[] all;
        try { all = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"{path}: cannot read checkpoint ({e.Message})", e); }
        if (all.Length < Magic.Length + 4 + 32 || !all.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            if (all.Length >= 7 && Encoding.ASCII.GetString(all, 0, 7) == "NFMCKPT")
                throw new InvalidDataException($"{path}: checkpoint format '{Encoding.ASCII.GetString(all, 0, 8)}' is not supported (this build reads NFMCKPT{FormatVersion})");
            throw new InvalidDataException($"{path}: not an nfm checkpoint (bad magic number)");
        }
        var body = all.AsSpan(0, all.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(all.AsSpan(all.Length - 32)))
            throw new InvalidDataException($"{path}: checkpoint is truncated or altered (SHA-256 mismatch)");
        int hlen = BitConverter.ToInt32(all, Magic.Length);
        int at = Magic.Length + 4;
        if (hlen <= 0 || at + hlen > body.Length) throw new InvalidDataException($"{path}: checkpoint header is corrupt");
        var header = JsonNode.Parse(Encoding.UTF8.GetString(all, at, hlen))!.AsObject();
        at += hlen;
        int format = header["format"]!.GetValue<int>();
        if (format != FormatVersion) throw new InvalidDataException($"{path}: checkpoint format version {format} is not supported (this build reads {FormatVersion})");
        var kind = header["kind"]!.GetValue<string>();
        if (expectedKind is not null && kind != expectedKind)
            throw new InvalidDataException($"{path}: is a {kind} checkpoint, expected a {expectedKind}");
        var meta = header["meta"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var tensors = new Dictionary<string, Tensor>();
        foreach (var e in header["tensors"]!.AsArray())
        {
            var name = e!["name"]!.GetValue<string>();
            var dtype = ParseDType(e["dtype"]!.GetValue<string>(), path);
            var shape = e["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            long n = e["bytes"]!.GetValue<long>();
            if (at + n > body.Length) throw new InvalidDataException($"{path}: tensor '{name}' runs past the end of the file");
            var t = empty(shape, dtype: dtype);
            if (t.numel() * t.ElementSize != n) throw new InvalidDataException($"{path}: tensor '{name}' byte count {n} does not match its shape");
            t.bytes = all.AsSpan(at, (int)n);
            tensors[name] = t.DetachFromDisposeScope();
            at += (int)n;
        }
        return new Checkpoint(kind, header["description"]!.DeepClone(), meta, tensors);
    }

    private static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32", ScalarType.Float64 => "float64", ScalarType.Int64 => "int64",
        ScalarType.Int32 => "int32", ScalarType.Byte => "uint8", ScalarType.Bool => "bool",
        _ => throw new ArgumentException($"checkpoints do not store dtype {t}"),
    };

    private static ScalarType ParseDType(string s, string path) => s switch
    {
        "float32" => ScalarType.Float32, "float64" => ScalarType.Float64, "int64" => ScalarType.Int64,
        "int32" => ScalarType.Int32, "uint8" => ScalarType.Byte, "bool" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: unknown tensor dtype '{s}'"),
    };
}
