using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Checkpoints;

/// <summary>One tensor of a safetensors header: its dtype, shape and [Begin, End) byte range in the data buffer.</summary>
public sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End)
{
    /// <summary>The tensor's size in bytes.</summary>
    public long ByteCount => End - Begin;
}

/// <summary>
/// A parsed safetensors header: the tensors in data order, the string-to-string <c>__metadata__</c>, and the header's
/// raw bytes (the N bytes after the length, padding included), from which the data's position follows.
/// </summary>
public sealed record SafetensorsHeader(IReadOnlyList<SafetensorsEntry> Tensors, IReadOnlyDictionary<string, string> Metadata, byte[] Raw)
{
    /// <summary>Where the data buffer starts in the file: after the 8-byte length and the header.</summary>
    public long DataStart => 8 + Raw.LongLength;
    /// <summary>The data buffer's size in bytes.</summary>
    public long DataLength => Tensors.Count == 0 ? 0 : Tensors[^1].End;
    /// <summary>The size of a complete file with this header.</summary>
    public long FileLength => DataStart + DataLength;
}

/// <summary>Receives a file's bytes as they are read or written (a checksum, for instance).</summary>
public delegate void ByteSink(ReadOnlySpan<byte> bytes);

/// <summary>
/// The safetensors format, read and written in one place for every file the project handles (checkpoints, ml-tarflow
/// state_dicts). Layout: a little-endian uint64 header length N; N bytes of UTF-8 JSON (per tensor its dtype, shape
/// and [begin, end) byte offsets into the data, plus the optional string-to-string <c>__metadata__</c>), padded with
/// spaces to a multiple of 8; then the tensors' raw little-endian bytes, contiguous and in offset order.
/// </summary>
/// <remarks>
/// Sizes and offsets are 64-bit throughout, and tensor bytes move in chunks of at most <see cref="ChunkBytes"/>
/// between the stream and the tensor's own memory, so files and single tensors beyond 2 GiB work and nothing is
/// held twice in memory.
/// </remarks>
public static class SafetensorsFile
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The most bytes moved between a stream and a tensor at a time.</summary>
    public const int ChunkBytes = 8 << 20;

    const string MetadataKey = "__metadata__";

    // Readable header text: quotes inside metadata values stay \" rather than \u0022, other characters are UTF-8.
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

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

    /// <summary>The dtype of a safetensors code, or null for one TorchSharp cannot hold.</summary>
    public static ScalarType? DTypeOf(string code) => code switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => null,
    };

    /// <summary>Bytes per element of a dtype the format stores.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"safetensors has no code for dtype {dtype}"),
    };

    /// <summary>
    /// Byte ranges for tensors laid out one after another in the given order. Throws <see cref="ArgumentException"/>
    /// for a name used twice or named <c>__metadata__</c>, <see cref="OverflowException"/> for sizes beyond 64 bits.
    /// </summary>
    public static IReadOnlyList<SafetensorsEntry> Layout(IEnumerable<(string Name, ScalarType DType, long[] Shape)> tensors)
    {
        var entries = new List<SafetensorsEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var (name, dtype, shape) in tensors)
        {
            if (name == MetadataKey) throw new ArgumentException($"a tensor cannot be named {MetadataKey}", nameof(tensors));
            if (!names.Add(name)) throw new ArgumentException($"tensor name '{name}' is used twice", nameof(tensors));
            long bytes = checked(ElementCount(shape) * ElementSize(dtype));
            entries.Add(new SafetensorsEntry(name, dtype, shape.ToArray(), offset, checked(offset + bytes)));
            offset += bytes;
        }
        return entries;
    }

    /// <summary>The header's N bytes for these entries and metadata: compact JSON, metadata first, padded with spaces to a multiple of 8.</summary>
    public static byte[] HeaderBytes(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", DTypeCode(e.DType));
                w.WriteStartArray("shape");
                foreach (var s in e.Shape) w.WriteNumberValue(s);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(e.Begin);
                w.WriteNumberValue(e.End);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>Writes the 8-byte length and the header bytes.</summary>
    public static void WriteHeader(Stream stream, byte[] header)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.LongLength);
        stream.Write(length);
        stream.Write(header);
    }

    /// <summary>
    /// Hands the bytes of a CPU, contiguous tensor to <paramref name="sink"/> in chunks of at most
    /// <see cref="ChunkBytes"/>, straight from the tensor's memory.
    /// </summary>
    public static void ForEachChunk(Tensor cpuContiguous, ByteSink sink)
    {
        if (!BitConverter.IsLittleEndian) throw new NotSupportedException("safetensors data is little-endian; this machine is not");
        if (cpuContiguous.device_type != DeviceType.CPU || !cpuContiguous.is_contiguous())
            throw new ArgumentException("the tensor must be on the CPU and contiguous", nameof(cpuContiguous));
        foreach (var part in Chunks(cpuContiguous)) sink(part.bytes);
    }

    /// <summary>A tensor's elements as views of at most <see cref="ChunkBytes"/> bytes each, in order (each view is
    /// disposed when the next one is taken).</summary>
    static IEnumerable<Tensor> Chunks(Tensor t)
    {
        long n = t.NumberOfElements;
        if (n == 0) yield break;
        long step = Math.Max(1, ChunkBytes / t.ElementSize);
        using var flat = t.view(-1);
        for (long at = 0; at < n; at += step)
        {
            using var part = flat.narrow(0, at, Math.Min(step, n - at));
            yield return part;
        }
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> (in the list's order) and <paramref name="metadata"/> to
    /// <paramref name="stream"/> as a safetensors file. Tensors are copied to the CPU one at a time as they are written.
    /// </summary>
    public static void Write(Stream stream, IReadOnlyList<KeyValuePair<string, Tensor>> tensors,
                             IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = Layout(tensors.Select(kv => (kv.Key, kv.Value.dtype, kv.Value.shape)));
        WriteHeader(stream, HeaderBytes(entries, metadata));
        WriteData(stream, tensors.Select(kv => kv.Value));
    }

    /// <summary>Writes the tensors' bytes one after another (the data buffer), each copied to the CPU while it is written.</summary>
    public static void WriteData(Stream stream, IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            using var cpu = t.detach().cpu().contiguous();
            ForEachChunk(cpu, b => stream.Write(b));
        }
    }

    /// <summary>
    /// True when the stream starts as a safetensors file does: a header length within the limit, then <c>{</c>.
    /// Leaves the stream at its start.
    /// </summary>
    public static bool LooksLikeSafetensors(Stream stream)
    {
        stream.Position = 0;
        Span<byte> start = stackalloc byte[9];
        int got = stream.ReadAtLeast(start, 9, throwOnEndOfStream: false);
        stream.Position = 0;
        if (got < 9) return false;
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(start);
        return size is > 0 and <= MaxHeaderBytes && start[8] == (byte)'{';
    }

    /// <summary>
    /// Reads and checks the header at the start of <paramref name="stream"/>. Throws <see cref="InvalidDataException"/>
    /// naming <paramref name="path"/>: not a safetensors file, a malformed entry (named), or a file whose length is
    /// not the one its header describes (truncated or altered).
    /// </summary>
    public static SafetensorsHeader ReadHeader(Stream stream, string path)
    {
        if (stream.CanSeek) stream.Position = 0;
        long? fileLength = stream.CanSeek ? stream.Length : null;
        Span<byte> prefix = stackalloc byte[8];
        int got = stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false);
        if (got < 8) throw new InvalidDataException($"{path}: not a safetensors file (only {got} bytes)");
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (size == 0 || size > MaxHeaderBytes)
            throw new InvalidDataException($"{path}: not a safetensors file (header length {size}, expected 1 to {MaxHeaderBytes})");
        if (fileLength is long len && 8 + (long)size > len)
            throw new InvalidDataException($"{path}: is truncated or altered: its safetensors header of {size} bytes runs past the end of the file ({len} bytes)");
        var raw = new byte[size];
        try { stream.ReadExactly(raw); }
        catch (EndOfStreamException) { throw new InvalidDataException($"{path}: is truncated or altered: the stream ends inside its safetensors header"); }
        if (raw[0] != (byte)'{') throw new InvalidDataException($"{path}: not a safetensors file (the header does not start with '{{')");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(raw) as JsonObject ?? throw new JsonException("the header is not a JSON object");
            _ = header.Count;  // builds the object now, so that a duplicate key fails here
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not a safetensors file, or truncated or altered (malformed header: {e.Message})", e);
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<SafetensorsEntry>();
        foreach (var (name, node) in header)
        {
            if (name == MetadataKey)
            {
                if (node is not JsonObject meta) throw new InvalidDataException($"{path}: safetensors {MetadataKey} is not an object");
                foreach (var (k, v) in meta)
                    metadata[k] = v is JsonValue value && value.TryGetValue<string>(out var s) ? s
                        : throw new InvalidDataException($"{path}: safetensors metadata '{k}' is not a string");
                continue;
            }
            entries.Add(Entry(name, node, path));
        }
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long at = 0;
        foreach (var e in entries)
        {
            if (e.Begin != at)
                throw new InvalidDataException($"{path}: safetensors tensor '{e.Name}' starts at byte {e.Begin} of the data, expected {at} (tensors must be contiguous)");
            at = e.End;
        }
        var result = new SafetensorsHeader(entries, metadata, raw);
        if (fileLength is long total && total != result.FileLength)
            throw new InvalidDataException(
                $"{path}: is truncated or altered: its safetensors header describes {result.FileLength} bytes, the file has {total}");
        return result;
    }

    /// <summary>One header entry, checked: a known dtype, non-negative dimensions, offsets that match the shape.</summary>
    static SafetensorsEntry Entry(string name, JsonNode? node, string path)
    {
        string Bad(string what) => $"{path}: safetensors tensor '{name}' {what}";
        try
        {
            if (node is not JsonObject o) throw new InvalidDataException(Bad("is not an object"));
            var code = o["dtype"]?.GetValue<string>() ?? throw new InvalidDataException(Bad("has no dtype"));
            var dtype = DTypeOf(code) ?? throw new InvalidDataException(Bad($"has dtype '{code}', which this reader does not hold"));
            var shape = (o["shape"] as JsonArray ?? throw new InvalidDataException(Bad("has no shape"))).Select(Number).ToArray();
            if (shape.Any(s => s < 0)) throw new InvalidDataException(Bad($"has a negative dimension in {Shapes.Show(shape)}"));
            var offsets = o["data_offsets"] as JsonArray ?? throw new InvalidDataException(Bad("has no data_offsets"));
            if (offsets.Count != 2) throw new InvalidDataException(Bad("needs data_offsets [begin, end]"));
            long begin = Number(offsets[0]), end = Number(offsets[1]);
            long expected = checked(ElementCount(shape) * ElementSize(dtype));
            if (begin < 0 || end - begin != expected)
                throw new InvalidDataException(Bad($"has data_offsets [{begin}, {end}], but {code} {Shapes.Show(shape)} takes {expected} bytes"));
            return new SafetensorsEntry(name, dtype, shape, begin, end);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            throw new InvalidDataException(Bad($"has a malformed entry ({e.Message})"), e);
        }
    }

    /// <summary>
    /// Reads the tensors of a parsed header (those <paramref name="select"/> accepts, all when null) onto the CPU,
    /// in data order. <paramref name="observe"/> sees every data byte in order (then nothing is skipped). The tensors
    /// are detached from any dispose scope: the caller owns them.
    /// </summary>
    public static Dictionary<string, Tensor> ReadTensors(Stream stream, SafetensorsHeader header, string path,
        Func<string, bool>? select = null, ByteSink? observe = null) =>
        ReadTensors(stream, header.DataStart, header.Tensors, path, select, observe);

    /// <summary>
    /// Reads tensors laid out by <paramref name="entries"/> (contiguous, in offset order) from a data buffer that starts
    /// at byte <paramref name="dataStart"/> of <paramref name="stream"/>. Throws <see cref="InvalidDataException"/>
    /// naming the file and the tensor when the stream ends early.
    /// </summary>
    public static Dictionary<string, Tensor> ReadTensors(Stream stream, long dataStart, IReadOnlyList<SafetensorsEntry> entries,
        string path, Func<string, bool>? select = null, ByteSink? observe = null)
    {
        if (!BitConverter.IsLittleEndian) throw new NotSupportedException("safetensors data is little-endian; this machine is not");
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        byte[]? scratch = null;
        try
        {
            if (stream.CanSeek) stream.Position = dataStart;
            foreach (var e in entries)
            {
                bool wanted = select?.Invoke(e.Name) ?? true;
                if (!wanted && observe is null && stream.CanSeek)
                {
                    stream.Position = checked(dataStart + e.End);
                    continue;
                }
                try
                {
                    if (wanted)
                    {
                        var t = empty(e.Shape, dtype: e.DType).DetachFromDisposeScope();
                        tensors[e.Name] = t;
                        Fill(stream, t, observe);
                    }
                    else
                    {
                        scratch ??= new byte[ChunkBytes];
                        for (long left = e.ByteCount; left > 0;)
                        {
                            int n = (int)Math.Min(left, scratch.Length);
                            stream.ReadExactly(scratch, 0, n);
                            observe?.Invoke(scratch.AsSpan(0, n));
                            left -= n;
                        }
                    }
                }
                catch (EndOfStreamException)
                {
                    throw new InvalidDataException($"{path}: is truncated or altered: the file ends inside tensor '{e.Name}'");
                }
            }
            return tensors;
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Reads a tensor's bytes from the stream into its own memory, chunk by chunk.</summary>
    static void Fill(Stream stream, Tensor t, ByteSink? observe)
    {
        foreach (var part in Chunks(t))
        {
            var span = part.bytes;
            stream.ReadExactly(span);
            observe?.Invoke(span);
        }
    }

    /// <summary>Every tensor and the metadata of a safetensors file.</summary>
    public static (SafetensorsHeader Header, Dictionary<string, Tensor> Tensors) Read(string path)
    {
        using var fs = OpenRead(path);
        var header = ReadHeader(fs, path);
        return (header, ReadTensors(fs, header, path));
    }

    /// <summary>
    /// The <c>__metadata__</c> entry of a safetensors file (empty when it has none). Throws
    /// <see cref="InvalidDataException"/> naming the file when its header cannot be read.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var fs = OpenRead(path);
        return ReadHeader(fs, path).Metadata;
    }

    static FileStream OpenRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
    }

    static long Number(JsonNode? n) => n?.GetValue<long>() ?? throw new FormatException("null where a number belongs");

    static long ElementCount(long[] shape)
    {
        long n = 1;
        foreach (var s in shape) n = checked(n * s);
        return n;
    }
}
