/// Checkpoints as safetensors files: the layout read back by independent readers (System.Text.Json here, PyBridge,
/// the standard-library Python script), exact round trips, 64-bit sizes and offsets, every kind of damage refused
/// with the file's name, and the old NFMCKPT1 layout still read.
module Nfm.Tests.CheckpointTests

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Security.Cryptography
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Nfm.Checkpoints

/// Lowercase hex SHA-256.
let sha256Hex (bytes: ReadOnlySpan<byte>) = Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()

/// The header length N and the N header bytes of a safetensors file's bytes.
let headerOf (bytes: byte[]) =
    let n = int (BitConverter.ToUInt64(bytes, 0))
    n, bytes[8 .. 8 + n - 1]

/// The NFMCKPT1 layout that earlier versions wrote; the product only reads it now, so it is written here as a fixture.
module OldLayout =
    let private dtypeName (t: torch.ScalarType) =
        match t with
        | torch.ScalarType.Float32 -> "float32" | torch.ScalarType.Float64 -> "float64" | torch.ScalarType.Int64 -> "int64"
        | torch.ScalarType.Int32 -> "int32" | torch.ScalarType.Byte -> "uint8" | torch.ScalarType.Bool -> "bool"
        | other -> failwithf "NFMCKPT1 had no dtype %A" other

    /// The bytes of an NFMCKPT1 file: magic, int32 header length, JSON header, raw tensors, SHA-256 of all before.
    let bytesOf (c: Checkpoint) =
        let entries = JsonArray()
        let blobs =
            [ for KeyValue(name, t) in c.Tensors do
                use cpu = t.detach().cpu().contiguous()
                let bytes = cpu.bytes.ToArray()
                let e = JsonObject()
                e["name"] <- JsonValue.Create name
                e["dtype"] <- JsonValue.Create(dtypeName cpu.dtype)
                e["shape"] <- JsonArray([| for s in cpu.shape -> JsonValue.Create s :> JsonNode |])
                e["bytes"] <- JsonValue.Create bytes.LongLength
                entries.Add e
                yield bytes ]
        let meta = JsonObject()
        for KeyValue(k, v) in c.Meta do meta[k] <- JsonValue.Create v
        let header = JsonObject()
        header["format"] <- JsonValue.Create 1
        header["kind"] <- JsonValue.Create c.Kind
        header["description"] <- c.Description.DeepClone()
        header["meta"] <- meta
        header["tensors"] <- entries
        let h = Encoding.UTF8.GetBytes(header.ToJsonString())
        let body = Array.concat [ yield "NFMCKPT1"B; yield BitConverter.GetBytes h.Length; yield h; yield! blobs ]
        Array.append body (SHA256.HashData body)

    /// Writes a checkpoint in the NFMCKPT1 layout.
    let write (path: string) (c: Checkpoint) = File.WriteAllBytes(path, bytesOf c)

/// A checkpoint's bytes with its header's metadata edited and both the layout and the header checksum made right
/// again (computed here, independently of the product): a well-formed file of another content.
let rewriteHeader (bytes: byte[]) (edit: JsonObject -> unit) =
    let n, raw = headerOf bytes
    let header = JsonNode.Parse(raw).AsObject()
    let meta = header["__metadata__"].AsObject()
    edit meta
    let zeros = String('0', 64)
    if meta.ContainsKey "nfm.header_sha256" then meta["nfm.header_sha256"] <- JsonValue.Create zeros
    let text = header.ToJsonString()
    let padded = Encoding.UTF8.GetBytes(text + String(' ', (8 - Encoding.UTF8.GetByteCount text % 8) % 8))
    let sealedText =
        if meta.ContainsKey "nfm.header_sha256" then
            Encoding.UTF8.GetString(padded).Replace(zeros, sha256Hex (ReadOnlySpan padded)) |> Encoding.UTF8.GetBytes
        else padded
    Array.concat [ BitConverter.GetBytes(uint64 sealedText.Length); sealedText; bytes[8 + n ..] ]

/// A checkpoint holding one tensor of every dtype the project stores, a scalar, an empty tensor and a description
/// with quotes and non-ASCII text.
let sample () =
    use g = new torch.Generator(7UL)
    let tensors =
        readOnlyDict [
            ("model.w", torch.randn([| 3L; 4L |], generator = g))
            ("model.double", torch.randn([| 5L |], dtype = torch.float64, generator = g))
            ("opt.step", torch.tensor 1234L)
            ("ints", torch.arange(6L, dtype = torch.int32).reshape(2L, 3L))
            ("rng.state", torch.randint(0L, 256L, [| 40L |], dtype = torch.uint8, generator = g))
            ("mask", torch.tensor([| true; false; true |]))
            ("empty", torch.zeros([| 0L; 3L |])) ]
    let description = JsonNode.Parse """{"name": "a \"quoted\" name", "note": "σ_f ≥ 0", "steps": 10}"""
    Checkpoint("test", description, readOnlyDict [ "step", "10"; "teacher_id", "0123456789abcdef" ], tensors)

/// The tensor's bytes (CPU, contiguous).
let bytesOfTensor (t: torch.Tensor) =
    use c = t.detach().cpu().contiguous()
    c.bytes.ToArray()

/// Expects InvalidDataException whose message names the file and contains every fragment.
let expectRefused (path: string) (fragments: string list) (f: unit -> unit) =
    let e = Expect.throwsC f id
    match e with
    | :? InvalidDataException as e ->
        Expect.stringContains e.Message path "the message names the file"
        for fragment in fragments do Expect.stringContains e.Message fragment "the message names the problem"
    | e -> failtestf "expected InvalidDataException, got %s: %s" (e.GetType().Name) e.Message

/// A read-only stream of `length` bytes: `prefix`, then zeros, with `tail` as its last bytes; nothing in between is
/// stored, so it stands for a file of many GiB.
type SyntheticStream(prefix: byte[], tail: byte[], length: int64) =
    inherit Stream()
    let mutable position = 0L
    let tailStart = length - int64 tail.Length
    override _.CanRead = true
    override _.CanSeek = true
    override _.CanWrite = false
    override _.Length = length
    override _.Position with get () = position and set v = position <- v
    override _.Flush() = ()
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_: byte[], _: int, _: int) = raise (NotSupportedException())
    override _.Seek(offset, origin) =
        position <-
            match origin with
            | SeekOrigin.Begin -> offset
            | SeekOrigin.Current -> position + offset
            | _ -> length + offset
        position
    override _.Read(buffer: byte[], offset: int, count: int) =
        let n = int (min (int64 count) (max 0L (length - position)))
        for i in 0 .. n - 1 do
            let p = position + int64 i
            buffer[offset + i] <-
                if p < int64 prefix.Length then prefix[int p]
                elif p >= tailStart then tail[int (p - tailStart)]
                else 0uy
        position <- position + int64 n
        n

/// A write-only stream that counts the bytes written and keeps only the first `keep` of them.
type CountingStream(keep: int) =
    inherit Stream()
    let kept = new MemoryStream()
    let mutable count = 0L
    member _.Kept = kept.ToArray()
    override _.CanRead = false
    override _.CanSeek = false
    override _.CanWrite = true
    override _.Length = count
    override _.Position with get () = count and set _ = raise (NotSupportedException())
    override _.Flush() = ()
    override _.SetLength _ = raise (NotSupportedException())
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.Read(_: byte[], _: int, _: int) = raise (NotSupportedException())
    override this.Write(buffer: byte[], offset: int, n: int) = this.Write(ReadOnlySpan<byte>(buffer, offset, n))
    override _.Write(span: ReadOnlySpan<byte>) =
        let room = int (max 0L (int64 keep - kept.Length))
        if room > 0 then kept.Write(span.Slice(0, min room span.Length))
        count <- count + int64 span.Length

/// python3 on the PATH, or None.
let python3 () =
    Environment.GetEnvironmentVariable("PATH").Split(':')
    |> Array.map (fun d -> Path.Combine(d, "python3"))
    |> Array.tryFind File.Exists

[<Tests>]
let layout =
    testList "checkpoints: safetensors layout" [
        test "an independent System.Text.Json reading of the header finds every tensor, its bytes and both checksums" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let c = sample ()
            let path = dir.File "c.ckpt"
            Checkpoint.Save(path, c)
            let bytes = File.ReadAllBytes path
            let n, raw = headerOf bytes
            Expect.equal (n % 8) 0 "header padded to a multiple of 8"
            use doc = JsonDocument.Parse(ReadOnlyMemory raw)
            let root = doc.RootElement
            let meta = root.GetProperty "__metadata__"
            for p in meta.EnumerateObject() do Expect.equal p.Value.ValueKind JsonValueKind.String (sprintf "metadata %s is a string" p.Name)
            let m key = meta.GetProperty(key: string).GetString()
            Expect.equal (m "nfm.kind") "test" "kind"
            Expect.equal (m "nfm.format_version") "2" "format version"
            Expect.equal (m "format") "pt" "framework, as safetensors tools expect it"
            Expect.equal (m "step") "10" "the artefact's own metadata"
            Expect.equal (m "teacher_id") "0123456789abcdef" "identity"
            Expect.equal (JsonNode.Parse(m "nfm.description").ToJsonString()) (c.Description.ToJsonString()) "description, quotes and non-ASCII included"
            let data = bytes[8 + n ..]
            Expect.equal (m "nfm.data_sha256") (sha256Hex (ReadOnlySpan data)) "SHA-256 of the data buffer"
            let sealedHash = m "nfm.header_sha256"
            let zeroed = Encoding.UTF8.GetString(raw).Replace(sealedHash, String('0', 64)) |> Encoding.UTF8.GetBytes
            Expect.equal (sha256Hex (ReadOnlySpan zeroed)) sealedHash "SHA-256 of the header with its own value as zeros"
            let codes = dict [ "model.w", "F32"; "model.double", "F64"; "opt.step", "I64"; "ints", "I32"; "rng.state", "U8"; "mask", "BOOL"; "empty", "F32" ]
            let entries =
                [ for p in root.EnumerateObject() do
                    if p.Name <> "__metadata__" then
                        let offsets = [ for o in p.Value.GetProperty("data_offsets").EnumerateArray() -> o.GetInt64() ]
                        yield p.Name, p.Value.GetProperty("dtype").GetString(),
                              [ for s in p.Value.GetProperty("shape").EnumerateArray() -> s.GetInt64() ], offsets[0], offsets[1] ]
                |> List.sortBy (fun (_, _, _, b, _) -> b)
            Expect.equal (entries |> List.map (fun (name, _, _, _, _) -> name) |> set) (set c.Tensors.Keys) "every tensor listed"
            let mutable at = 0L
            for name, dtype, shape, b, e in entries do
                Expect.equal b at (sprintf "%s starts where the previous ended" name)
                Expect.equal dtype codes[name] (sprintf "%s dtype" name)
                Expect.equal shape (List.ofArray c.Tensors[name].shape) (sprintf "%s shape" name)
                Expect.equal data[int b .. int e - 1] (bytesOfTensor c.Tensors[name]) (sprintf "%s bytes" name)
                at <- e
            Expect.equal at data.LongLength "the data buffer ends with the last tensor"
        }

        test "Load gives back kind, description, metadata and every tensor bit for bit" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let c = sample ()
            let path = dir.File "c.ckpt"
            Checkpoint.Save(path, c)
            let back = Checkpoint.Load(path, "test")
            Expect.equal back.Kind "test" "kind"
            Expect.equal back.SourceFormatVersion 2 "read from the safetensors layout"
            Expect.equal (back.Description.ToJsonString()) (c.Description.ToJsonString()) "description"
            Expect.equal (Map.ofSeq [ for KeyValue(k, v) in back.Meta -> k, v ]) (Map.ofSeq [ for KeyValue(k, v) in c.Meta -> k, v ]) "only the artefact's own metadata"
            Expect.sequenceEqual back.Tensors.Keys c.Tensors.Keys "tensors in the order saved"
            for KeyValue(name, t) in c.Tensors do
                let u = back.Tensors[name]
                Expect.equal (u.dtype, List.ofArray u.shape) (t.dtype, List.ofArray t.shape) (sprintf "%s dtype and shape" name)
                Expect.equal (bytesOfTensor u) (bytesOfTensor t) (sprintf "%s bytes" name)
        }

        test "TorchSharp.PyBridge's safetensors reader loads a checkpoint with the same values" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let c = sample ()
            let path = dir.File "c.safetensors"
            Checkpoint.Save(path, c)
            let theirs = TorchSharp.PyBridge.Safetensors.LoadStateDict path
            Expect.equal (set theirs.Keys) (set c.Tensors.Keys) "same names"
            for KeyValue(name, t) in c.Tensors do
                Expect.equal (bytesOfTensor theirs[name]) (bytesOfTensor t) (sprintf "%s bytes" name)
        }

        test "read-checkpoint.py of the scripts folder (standard library only) lists a checkpoint and checks its checksums" {
            match python3 () with
            | None -> skiptest "python3 is not installed"
            | Some python ->
                use dir = new Nfm.Tests.DataTests.TempDir()
                let c = sample ()
                let path = dir.File "c.ckpt"
                Checkpoint.Save(path, c)
                let script = Path.Combine(Nfm.Tests.Cli.repoRoot, "scripts", "read-checkpoint.py")
                let read (file: string) =
                    let psi = ProcessStartInfo(python, RedirectStandardOutput = true, RedirectStandardError = true)
                    for a in [ script; file; "--json" ] do psi.ArgumentList.Add a
                    use p = Process.Start psi
                    let out = p.StandardOutput.ReadToEnd()
                    p.WaitForExit()
                    p.ExitCode, JsonNode.Parse(out)
                let code, listing = read path
                Expect.equal code 0 "no problems"
                let kind = listing.Item("metadata").Item("nfm.kind").GetValue<string>()
                Expect.equal kind "test" "kind"
                let tensors = listing["tensors"].AsObject()
                Expect.equal (set [ for KeyValue(k, _) in tensors -> k ]) (set c.Tensors.Keys) "every tensor"
                let shape = [ for s in tensors.Item("model.w").Item("shape").AsArray() -> s.GetValue<int64>() ]
                Expect.equal shape [ 3L; 4L ] "shape"
                let bytes = File.ReadAllBytes path
                bytes[bytes.Length - 1] <- bytes[bytes.Length - 1] ^^^ 1uy
                File.WriteAllBytes(dir.File "bad.ckpt", bytes)
                let code, listing = read (dir.File "bad.ckpt")
                Expect.equal code 1 "a flipped data byte is a problem"
                Expect.stringContains (listing["problems"].ToJsonString()) "tensor data" "names the data checksum"
        }

        test "a tensor larger than one chunk round-trips bit for bit" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            use g = new torch.Generator(3UL)
            let big = torch.randn([| 5_000_001L |], generator = g)
            Expect.isGreaterThan (big.NumberOfElements * 4L) (int64 SafetensorsFile.ChunkBytes * 2L) "spans three chunks"
            let path = dir.File "big.ckpt"
            Checkpoint.Save(path, Checkpoint("test", JsonValue.Create 1, readOnlyDict [], readOnlyDict [ "big", big ]))
            Expect.equal (bytesOfTensor (Checkpoint.Load(path).Tensors["big"])) (bytesOfTensor big) "same bytes"
        }

        test "metadata may not use the format's own keys" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let c = Checkpoint("test", JsonValue.Create 1, readOnlyDict [ "nfm.kind", "other" ], readOnlyDict [])
            Expect.throwsT<ArgumentException> (fun () -> Checkpoint.Save(dir.File "c.ckpt", c)) "nfm.kind is the format's"
            Expect.isFalse (File.Exists(dir.File "c.ckpt")) "nothing written"
        }
    ]

[<Tests>]
let largeFiles =
    testList "checkpoints: beyond 2 GiB" [
        test "the reader seeks to a tensor 7 GB into a synthetic file and reads it (64-bit offsets)" {
            let entries =
                SafetensorsFile.Layout(
                    [ struct ("a", torch.ScalarType.Float32, [| 1_000_000_000L |])
                      struct ("b", torch.ScalarType.Byte, [| 3_000_000_000L |])
                      struct ("tail", torch.ScalarType.Float32, [| 4L |]) ])
            let header = SafetensorsFile.HeaderBytes(entries, readOnlyDict [ "nfm.kind", "test" ])
            let prefix = Array.append (BitConverter.GetBytes(uint64 header.Length)) header
            let tail = [| 1.5f; -2.0f; 3.25f; 1e30f |] |> Array.collect BitConverter.GetBytes
            let length = int64 prefix.Length + 7_000_000_016L
            use stream = new SyntheticStream(prefix, tail, length)
            let parsed = SafetensorsFile.ReadHeader(stream, "synthetic.safetensors")
            let last = parsed.Tensors |> Seq.last
            Expect.equal (last.Name, last.Begin, last.End) ("tail", 7_000_000_000L, 7_000_000_016L) "offsets beyond int.MaxValue survive the header"
            Expect.equal parsed.FileLength length "file length"
            let read = SafetensorsFile.ReadTensors(stream, parsed, "synthetic.safetensors", select = Func<_, _>((=) "tail"))
            Expect.sequenceEqual read.Keys [ "tail" ] "only the selected tensor"
            Expect.equal (read["tail"].data<float32>().ToArray()) [| 1.5f; -2.0f; 3.25f; 1e30f |] "its values, read past 7 GB"
            Expect.equal stream.Position length "the stream ends after it"
        }

        test "the writer streams 2.5 GiB of tensors with 64-bit offsets (counted, not stored)" {
            let chunk = torch.zeros([| 64L * 1024L * 1024L |], dtype = torch.uint8)
            let tensors = ResizeArray [ for i in 0 .. 39 -> KeyValuePair(sprintf "t%02d" i, chunk) ]
            use sink = new CountingStream(1 <<< 16)
            SafetensorsFile.Write(sink, tensors)
            let n, raw = headerOf sink.Kept
            use doc = JsonDocument.Parse(ReadOnlyMemory raw)
            let offsets = [ for o in doc.RootElement.GetProperty("t39").GetProperty("data_offsets").EnumerateArray() -> o.GetInt64() ]
            let total = 40L * 64L * 1024L * 1024L
            Expect.equal offsets [ total - 64L * 1024L * 1024L; total ] "the last tensor's offsets, past int.MaxValue"
            Expect.isGreaterThan total (int64 Int32.MaxValue) "more than 2 GiB"
            Expect.equal sink.Length (8L + int64 n + total) "every byte written once"
        }
    ]

[<Tests>]
let damage =
    testList "checkpoints: damage is refused naming the file" [
        let saved () =
            let dir = new Nfm.Tests.DataTests.TempDir()
            let path = dir.File "c.ckpt"
            Checkpoint.Save(path, sample ())
            dir, path, File.ReadAllBytes path
        let variant (dir: Nfm.Tests.DataTests.TempDir) (bytes: byte[]) =
            let p = dir.File "v.ckpt"
            File.WriteAllBytes(p, bytes)
            p
        test "a byte flipped in the description" {
            let dir, _, bytes = saved ()
            use _ = dir
            let at = Encoding.UTF8.GetString(bytes).IndexOf("quoted")
            bytes[at] <- bytes[at] ^^^ 0x01uy
            let p = variant dir bytes
            expectRefused p [ "truncated or altered"; "SHA-256 mismatch in the header" ] (fun () -> Checkpoint.Load p |> ignore)
        }
        test "a byte flipped in the tensor data" {
            let dir, _, bytes = saved ()
            use _ = dir
            bytes[bytes.Length - 10] <- bytes[bytes.Length - 10] ^^^ 0x40uy
            let p = variant dir bytes
            expectRefused p [ "SHA-256 mismatch in the tensor data" ] (fun () -> Checkpoint.Load p |> ignore)
        }
        test "truncated inside the data, inside the header, and one byte appended" {
            let dir, _, bytes = saved ()
            use _ = dir
            let n, _ = headerOf bytes
            for cut in [ bytes[.. bytes.Length - 2]; bytes[.. 8 + n / 2]; Array.append bytes [| 0uy |] ] do
                let p = variant dir cut
                expectRefused p [ "truncated or altered" ] (fun () -> Checkpoint.Load p |> ignore)
        }
        test "another format version (well-formed, checksums right)" {
            let dir, _, bytes = saved ()
            use _ = dir
            let p = variant dir (rewriteHeader bytes (fun m -> m["nfm.format_version"] <- JsonValue.Create "3"))
            expectRefused p [ "format version 3 is not supported" ] (fun () -> Checkpoint.Load p |> ignore)
        }
        test "the independent resealing in these tests is accepted when nothing else changes" {
            let dir, _, bytes = saved ()
            use _ = dir
            let p = variant dir (rewriteHeader bytes (fun m -> m["step"] <- JsonValue.Create "11"))
            Expect.equal (Checkpoint.Load(p).Meta["step"]) "11" "edited and resealed"
        }
        test "a safetensors file without nfm metadata (ml-tarflow weights)" {
            let p = Path.Combine(Nfm.Tests.Cli.repoRoot, "tests", "fixtures", "tarflow", "shift", "model.safetensors")
            expectRefused p [ "not an nfm checkpoint"; "nfm teacher import" ] (fun () -> Checkpoint.Load p |> ignore)
        }
        test "another kind" {
            let dir, path, _ = saved ()
            use _ = dir
            expectRefused path [ "is a test checkpoint, expected a teacher" ] (fun () -> Checkpoint.Load(path, "teacher") |> ignore)
        }
        test "not a checkpoint at all" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let p = dir.File "x.npy"
            File.WriteAllText(p, "\u0093NUMPY this is not a checkpoint")
            expectRefused p [ "not an nfm checkpoint" ] (fun () -> Checkpoint.Load p |> ignore)
            expectRefused p [ "not a safetensors file" ] (fun () -> SafetensorsFile.ReadMetadata p |> ignore)
        }
        test "teacher import refuses an nfm checkpoint" {
            let dir, path, _ = saved ()
            use _ = dir
            let p = Path.ChangeExtension(path, ".safetensors")
            File.Copy(path, p)
            expectRefused p [ "nfm test checkpoint" ] (fun () -> Nfm.Invert.TarFlowStateDict.Import(p, Nfm.Invert.ImportOptions()) |> ignore)
        }
    ]

[<Tests>]
let oldLayout =
    testList "checkpoints: the old NFMCKPT1 layout" [
        test "still loads, bit for bit, with a one-line notice naming the file" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let c = sample ()
            let p = dir.File "old.ckpt"
            OldLayout.write p c
            let notices = ResizeArray<string>()
            let handler = Action<string>(notices.Add)
            Checkpoint.add_OldFormatRead handler
            let back =
                try Checkpoint.Load(p, "test")
                finally Checkpoint.remove_OldFormatRead handler
            Expect.equal back.SourceFormatVersion 1 "read from the old layout"
            Expect.equal notices.Count 1 "one notice"
            Expect.stringContains notices[0] p "the notice names the file"
            Expect.stringContains notices[0] "NFMCKPT1" "and the old layout"
            Expect.equal (back.Description.ToJsonString()) (c.Description.ToJsonString()) "description"
            Expect.equal back.Meta["step"] "10" "metadata"
            for KeyValue(name, t) in c.Tensors do
                Expect.equal (bytesOfTensor back.Tensors[name]) (bytesOfTensor t) (sprintf "%s bytes" name)
            let resaved = dir.File "new.ckpt"
            Checkpoint.Save(resaved, back)
            Expect.equal (Checkpoint.Load(resaved).SourceFormatVersion) 2 "saved again: safetensors"
        }
        test "an altered old file, another kind, another NFMCKPT version" {
            use dir = new Nfm.Tests.DataTests.TempDir()
            let bytes = OldLayout.bytesOf (sample ())
            let p = dir.File "old.ckpt"
            File.WriteAllBytes(p, bytes)
            expectRefused p [ "is a test checkpoint, expected a student" ] (fun () -> Checkpoint.Load(p, "student") |> ignore)
            let flipped = Array.copy bytes
            flipped[flipped.Length / 2] <- flipped[flipped.Length / 2] ^^^ 0x10uy
            File.WriteAllBytes(p, flipped)
            expectRefused p [ "truncated or altered" ] (fun () -> Checkpoint.Load p |> ignore)
            let other = Array.copy bytes
            other[7] <- byte '2'
            File.WriteAllBytes(p, other)
            expectRefused p [ "'NFMCKPT2' is not supported" ] (fun () -> Checkpoint.Load p |> ignore)
        }
    ]
