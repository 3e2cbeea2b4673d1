using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// The two parts of the safetensors format that TorchSharp.PyBridge does not cover: writing a file with a
/// <c>__metadata__</c> entry, and reading that entry back. Layout: a little-endian uint64 header length, a UTF-8
/// JSON header (per tensor its dtype, shape and [begin, end) byte offsets into the data, plus the optional
/// string-to-string <c>__metadata__</c>), padded with spaces to a multiple of 8, then the tensors' raw little-endian
/// bytes, contiguous and in header order. Tensors are read with <c>TorchSharp.PyBridge.Safetensors.LoadStateDict</c>.
/// </summary>
public static class SafetensorsFile
{
    /// <summary>The safetensors name of a dtype; throws <see cref="NotSupportedException"/> for one the format lacks.</summary>
    public static string DTypeCode(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"safetensors has no code for dtype {dtype}"),
    };

    /// <summary>
    /// Writes <paramref name="tensors"/> (in the dictionary's order) and <paramref name="metadata"/> to
    /// <paramref name="stream"/> as a safetensors file. Tensors are copied to the CPU as they are written.
    /// </summary>
    public static void Write(Stream stream, IReadOnlyList<KeyValuePair<string, Tensor>> tensors,
                             IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            if (name == "__metadata__") throw new ArgumentException("a tensor cannot be named __metadata__", nameof(tensors));
            long bytes = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeCode(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes)),
            };
            offset += bytes;
        }
        var text = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padding = (8 - text.Length % 8) % 8;
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)(text.Length + padding));
        stream.Write(length);
        stream.Write(text);
        for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
        if (!BitConverter.IsLittleEndian) throw new NotSupportedException("writing safetensors needs a little-endian machine");
        foreach (var (_, t) in tensors)
        {
            using var cpu = t.detach().cpu().contiguous();
            stream.Write(cpu.bytes);
        }
    }

    /// <summary>
    /// The <c>__metadata__</c> entry of a safetensors file (empty when it has none). Throws
    /// <see cref="InvalidDataException"/> naming the file when its header cannot be read.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var fs = File.OpenRead(path);
        Span<byte> length = stackalloc byte[8];
        if (fs.Read(length) != 8) throw new InvalidDataException($"'{path}' is too short to be a safetensors file");
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(length);
        if (size > 100_000_000 || (long)size > fs.Length - 8)
            throw new InvalidDataException($"'{path}' is not a safetensors file (header length {size} does not fit the file)");
        var text = new byte[size];
        fs.ReadExactly(text);
        JsonNode? header;
        try { header = JsonNode.Parse(text); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' has a malformed safetensors header: {e.Message}", e); }
        var result = new Dictionary<string, string>();
        if (header is JsonObject o && o["__metadata__"] is JsonObject meta)
            foreach (var (k, v) in meta)
                if (v is JsonValue value && value.TryGetValue<string>(out var s)) result[k] = s;
        return result;
    }
}
