/// Data sources: .npy files, IDX/MNIST, the built-in 2-D sets, DATA specs and their description record.
module Nfm.Tests.DataTests

open System
open System.IO
open System.IO.Compression
open System.Text
open Expecto
open TorchSharp
open Nfm.Data
open Nfm.Descriptions

type Tensor = torch.Tensor
type ScalarType = torch.ScalarType

// ---------------------------------------------------------------------------------------------------------
// Helpers

/// A fresh folder under the system temp folder, deleted on Dispose.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), "nfm-data-tests-" + Guid.NewGuid().ToString("N"))
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// The repository root: the first folder above the test assembly that holds Nfm.Functional.sln.
let repoRoot () =
    let rec up (d: DirectoryInfo) =
        if isNull d then None
        elif File.Exists(Path.Combine(d.FullName, "Nfm.Functional.sln")) then Some d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// The shared MNIST subset (../shared/data/mnist next to the repository), when this machine has it.
let realMnistFolder () =
    repoRoot ()
    |> Option.map (fun root -> Path.GetFullPath(Path.Combine(root, "..", "shared", "data", "mnist")))
    |> Option.filter (fun d -> File.Exists(Path.Combine(d, "train-images-idx3-ubyte.gz")))

/// Run f, expect an exception of type 'E whose one-line message contains every part.
let expectError<'E when 'E :> exn> (parts: string list) (f: unit -> obj) =
    let caught =
        try
            f () |> ignore
            None
        with
        | :? 'E as e -> Some(e :> exn)
        | e -> failtestf "expected %s, got %s: %s" typeof<'E>.Name (e.GetType().Name) e.Message
    match caught with
    | None -> failtestf "expected %s, nothing was thrown" typeof<'E>.Name
    | Some e ->
        for p in parts do
            Expect.stringContains e.Message p "the message names the problem"
        Expect.isFalse (e.Message.Contains '\n') $"one-line message: {e.Message}"

let bigEndian (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// The tests' own tiny IDX writer (independent of Nfm.Data.Idx): header bytes, then the body, optionally gzipped.
let idxBytes (magic: int) (dims: int list) (body: byte[]) (gzip: bool) =
    let plain = Array.concat [ yield bigEndian magic; yield! [ for d in dims -> bigEndian d ]; yield body ]
    if not gzip then plain
    else
        use ms = new MemoryStream()
        (use z = new GZipStream(ms, CompressionLevel.Fastest, true)
         z.Write(plain, 0, plain.Length))
        ms.ToArray()

/// Writes MNIST-like files with `count` images of rows x cols: pixel k of image i is (i * 7 + k) mod 256,
/// label i is i mod 10. Names follow the distribution ("train-", and "test-" or "t10k-" for the test split).
let writeFakeMnist (dir: string) (split: string) (count: int) (labelCount: int) (gzip: bool) =
    let rows, cols = 28, 28
    let pixels = Array.init (count * rows * cols) (fun j -> byte ((j / (rows * cols) * 7 + j % (rows * cols)) % 256))
    let labels = Array.init labelCount (fun i -> byte (i % 10))
    let ext = if gzip then ".gz" else ""
    File.WriteAllBytes(Path.Combine(dir, $"{split}-images-idx3-ubyte{ext}"), idxBytes 2051 [ count; rows; cols ] pixels gzip)
    File.WriteAllBytes(Path.Combine(dir, $"{split}-labels-idx1-ubyte{ext}"), idxBytes 2049 [ labelCount ] labels gzip)

/// A .npy file as NumPy lays it out: magic, version, little-endian header length, the dict padded to a multiple of 64.
let npyBytes (major: byte) (dict: string) (data: byte[]) =
    let prefix = if major = 1uy then 10 else 12
    let padded = (prefix + dict.Length + 1 + 63) / 64 * 64
    let headerLength = padded - prefix
    let lengthBytes =
        if major = 1uy then BitConverter.GetBytes(uint16 headerLength) else BitConverter.GetBytes(uint32 headerLength)
    Array.concat
        [ [| 0x93uy |]; "NUMPY"B; [| major; 0uy |]; lengthBytes
          Encoding.UTF8.GetBytes(dict.PadRight(headerLength - 1) + "\n"); data ]

let sc (v: float) : Scalar = v.ToScalar()
let sci (v: int64) : Scalar = v.ToScalar()

/// Same shape, type and elements.
let same (a: Tensor) (b: Tensor) = a.shape = b.shape && a.dtype = b.dtype && a.eq(b).all().item<bool>()

let floatBytes (xs: float32[]) = xs |> Array.collect BitConverter.GetBytes

let values (t: Tensor) = t.cpu().to_type(ScalarType.Float64).contiguous().data<float>().ToArray()
let longs (t: Tensor) = t.cpu().contiguous().data<int64>().ToArray()

/// A tensor of the given element type and shape with varied values.
let sampleTensor (dtype: ScalarType) (shape: int64[]) =
    match dtype with
    | ScalarType.Float32 | ScalarType.Float64 | ScalarType.Float16 -> torch.randn(shape).mul(sc 100.0).to_type(dtype)
    | ScalarType.Bool -> torch.randint(0L, 2L, shape).to_type(dtype)
    | ScalarType.Byte -> torch.randint(0L, 256L, shape).to_type(dtype)
    | ScalarType.Int8 -> torch.randint(-128L, 128L, shape).to_type(dtype)
    | _ -> torch.randint(-1000000L, 1000000L, shape).to_type(dtype)

// ---------------------------------------------------------------------------------------------------------
// .npy

let npyDtypes =
    [ ScalarType.Float32; ScalarType.Float64; ScalarType.Int64; ScalarType.Int32; ScalarType.Byte
      ScalarType.Float16; ScalarType.Int16; ScalarType.Int8; ScalarType.Bool ]

let npyShapes: int64[] list = [ [| 5L; 3L |]; [| 2L; 1L; 4L; 3L |]; [| 7L |]; [||]; [| 0L; 3L |]; [| 2L; 3L; 1L; 2L; 2L |] ]

[<Tests>]
let npyTests =
    testList "data.npy" [
        test "write then read is the identity for every type and rank" {
            use dir = new TempDir()
            for dtype in npyDtypes do
                for shape in npyShapes do
                    let t = sampleTensor dtype shape
                    let path = dir.File "a.npy"
                    Npy.Write(path, t)
                    let back = Npy.Read path
                    Expect.equal back.dtype dtype $"dtype {dtype} {shape}"
                    Expect.equal back.shape shape $"shape {dtype} {shape}"
                    Expect.isTrue (same (back) (t)) $"values {dtype} {shape}"
        }

        test "a transposed (non-contiguous) tensor is written in C order" {
            use dir = new TempDir()
            let t = torch.arange(6L, dtype = ScalarType.Float32).reshape(2L, 3L).t()
            Npy.Write(dir.File "t.npy", t)
            let back = Npy.Read(dir.File "t.npy")
            Expect.equal back.shape [| 3L; 2L |] "shape"
            Expect.equal (values back) [| 0.0; 3.0; 1.0; 4.0; 2.0; 5.0 |] "row-major values of the transpose"
        }

        test "the header is NumPy's layout: magic, version 1.0, dict padded to 64 bytes" {
            use dir = new TempDir()
            Npy.Write(dir.File "h.npy", torch.tensor([| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]).reshape(2L, 3L))
            let expected =
                npyBytes 1uy "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" (floatBytes [| 1.0f .. 6.0f |])
            Expect.equal (File.ReadAllBytes(dir.File "h.npy")) expected "byte for byte"
            Npy.Write(dir.File "v.npy", torch.zeros([| 4L |], dtype = ScalarType.Int64))
            let text = Encoding.ASCII.GetString(File.ReadAllBytes(dir.File "v.npy"), 10, 54)
            Expect.stringContains text "'shape': (4,)" "a 1-tuple keeps its comma"
            Expect.stringContains text "'descr': '<i8'" "int64 descr"
        }

        test "reads files written by NumPy, versions 1.0, 2.0 and 3.0" {
            use dir = new TempDir()
            let data = floatBytes [| 1.5f; -2.0f; 3.25f; 0.0f |]
            // NumPy >= 1.24 leaves room for the shape to grow: extra spaces before the padding.
            let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }" + String(' ', 21)
            for major in [ 1uy; 2uy; 3uy ] do
                let path = dir.File $"v{major}.npy"
                File.WriteAllBytes(path, npyBytes major dict data)
                let t = Npy.Read path
                Expect.equal t.shape [| 2L; 2L |] "shape"
                Expect.equal (values t) [| 1.5; -2.0; 3.25; 0.0 |] "values"
                Expect.equal ((Npy.ReadHeader path).Version) $"{major}.0" "version"
            // Python 2 long literals and double quotes are still a dict NumPy wrote once.
            File.WriteAllBytes(dir.File "old.npy", npyBytes 1uy "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4L,)}" data)
            Expect.equal ((Npy.Read(dir.File "old.npy")).shape) [| 4L |] "old-style header"
            File.WriteAllBytes(dir.File "u8.npy", npyBytes 1uy "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }" [| 0uy; 7uy; 255uy |])
            let u8 = Npy.Read(dir.File "u8.npy")
            Expect.equal u8.dtype ScalarType.Byte "uint8"
            Expect.equal (values u8) [| 0.0; 7.0; 255.0 |] "uint8 values"
        }

        test "ReadFloat32 converts float64 and integers" {
            use dir = new TempDir()
            Npy.Write(dir.File "d.npy", torch.tensor([| 0.5; -1.25 |]))
            let f = Npy.ReadFloat32(dir.File "d.npy")
            Expect.equal f.dtype ScalarType.Float32 "float32"
            Expect.equal (values f) [| 0.5; -1.25 |] "values"
            Npy.Write(dir.File "i.npy", torch.tensor([| 3L; -4L |]))
            Expect.equal (values (Npy.ReadFloat32(dir.File "i.npy"))) [| 3.0; -4.0 |] "ints"
        }

        test "missing file" {
            use dir = new TempDir()
            expectError<FileNotFoundException> [ "nope.npy"; "no such" ] (fun () -> Npy.Read(dir.File "nope.npy"))
        }

        test "bad magic" {
            use dir = new TempDir()
            File.WriteAllText(dir.File "bad.npy", "hello, I am not an array")
            expectError<InvalidDataException> [ "bad.npy"; "bad magic"; "hello," ] (fun () -> Npy.Read(dir.File "bad.npy"))
            File.WriteAllBytes(dir.File "empty.npy", [||])
            expectError<InvalidDataException> [ "empty.npy"; "bad magic" ] (fun () -> Npy.Read(dir.File "empty.npy"))
        }

        test "unsupported dtype is named" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "c.npy", npyBytes 1uy "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }" (Array.zeroCreate 8))
            expectError<InvalidDataException> [ "c.npy"; "unsupported dtype"; "'<c8'" ] (fun () -> Npy.Read(dir.File "c.npy"))
            File.WriteAllBytes(dir.File "s.npy", npyBytes 1uy "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }" (Array.zeroCreate 4))
            expectError<InvalidDataException> [ "s.npy"; "unsupported dtype"; "structured" ] (fun () -> Npy.Read(dir.File "s.npy"))
        }

        test "Fortran order is refused" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "f.npy", npyBytes 1uy "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }" (Array.zeroCreate 16))
            expectError<InvalidDataException> [ "f.npy"; "Fortran" ] (fun () -> Npy.Read(dir.File "f.npy"))
        }

        test "big-endian is refused" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "b.npy", npyBytes 1uy "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }" (Array.zeroCreate 8))
            expectError<InvalidDataException> [ "b.npy"; "big-endian"; "'>f4'" ] (fun () -> Npy.Read(dir.File "b.npy"))
        }

        test "truncated data says expected and actual bytes" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "t.npy", npyBytes 1uy "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" (Array.zeroCreate 20))
            expectError<InvalidDataException> [ "t.npy"; "truncated"; "expected 24 bytes"; "found 20" ] (fun () -> Npy.Read(dir.File "t.npy"))
            File.WriteAllBytes(dir.File "x.npy", npyBytes 1uy "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" (Array.zeroCreate 12))
            expectError<InvalidDataException> [ "x.npy"; "4 unexpected bytes" ] (fun () -> Npy.Read(dir.File "x.npy"))
            let whole = npyBytes 1uy "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" [||]
            File.WriteAllBytes(dir.File "h.npy", whole[.. 40])
            expectError<InvalidDataException> [ "h.npy"; "truncated .npy header" ] (fun () -> Npy.Read(dir.File "h.npy"))
        }

        test "header garbage is malformed" {
            use dir = new TempDir()
            let garbage =
                [ "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }"
                  "not a dict at all"
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }"
                  "{'descr': '<f4', 'fortran_order': False}"
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } trailing" ]
            for g in garbage do
                File.WriteAllBytes(dir.File "g.npy", npyBytes 1uy g (Array.zeroCreate 8))
                expectError<InvalidDataException> [ "g.npy"; "malformed" ] (fun () -> Npy.Read(dir.File "g.npy"))
            File.WriteAllBytes(dir.File "v9.npy", Array.append [| 0x93uy; 78uy; 85uy; 77uy; 80uy; 89uy; 9uy; 0uy |] (Array.zeroCreate 100))
            expectError<InvalidDataException> [ "v9.npy"; "version 9.0" ] (fun () -> Npy.Read(dir.File "v9.npy"))
        }

        test "writing into a missing folder is a clear error" {
            use dir = new TempDir()
            let path = Path.Combine(dir.Path, "no-such-folder", "a.npy")
            expectError<DirectoryNotFoundException> [ "a.npy"; "does not exist" ] (fun () -> Npy.Write(path, torch.zeros(2L)))
        }

        test "writing a type NumPy lacks is refused" {
            use dir = new TempDir()
            expectError<ArgumentException> [ "BFloat16" ] (fun () -> Npy.Write(dir.File "bf.npy", torch.zeros([| 2L |], dtype = ScalarType.BFloat16)))
            Expect.isFalse (File.Exists(dir.File "bf.npy")) "nothing written"
        }

        test "a failed write leaves the old file and no temporary file" {
            use dir = new TempDir()
            let path = dir.File "keep.npy"
            Npy.Write(path, torch.tensor([| 1.0f; 2.0f |]))
            let before = File.ReadAllBytes path
            expectError<InvalidOperationException> [ "disk full" ] (fun () ->
                AtomicFile.Write(path, fun s ->
                    s.Write([| 1uy; 2uy; 3uy |], 0, 3)
                    raise (InvalidOperationException "disk full (simulated)"))
                box ())
            Expect.equal (File.ReadAllBytes path) before "old content intact"
            Expect.equal (Directory.GetFiles dir.Path) [| path |] "no temporary file left"
            Npy.Write(path, torch.tensor([| 3.0f |]))
            Expect.equal (values (Npy.Read path)) [| 3.0 |] "a successful write replaces the file"
            Expect.equal ((Directory.GetFiles dir.Path).Length) 1 "still one file"
        }
    ]

// ---------------------------------------------------------------------------------------------------------
// IDX and MNIST

[<Tests>]
let idxTests =
    testList "data.idx" [
        test "reads hand-made image and label files, gzipped or not" {
            use dir = new TempDir()
            for gzip in [ false; true ] do
                File.WriteAllBytes(dir.File "img", idxBytes 2051 [ 2; 2; 3 ] [| 0uy .. 11uy |] gzip)
                File.WriteAllBytes(dir.File "lab", idxBytes 2049 [ 2 ] [| 7uy; 3uy |] gzip)
                let images = Idx.ReadImages(dir.File "img")
                Expect.equal (images.Count, images.Rows, images.Columns) (2, 2, 3) "sizes"
                Expect.equal images.Pixels [| 0uy .. 11uy |] "pixels"
                Expect.equal (Idx.ReadLabels(dir.File "lab")) [| 7uy; 3uy |] "labels"
        }

        test "write then read round trip" {
            use dir = new TempDir()
            let pixels = Array.init (5 * 4 * 6) (fun i -> byte (i * 37 % 256))
            for gzip in [ false; true ] do
                Idx.WriteImages(dir.File "i", IdxImages(5, 4, 6, pixels), gzip)
                Idx.WriteLabels(dir.File "l", [| 1uy; 2uy; 3uy; 4uy; 9uy |], gzip)
                let back = Idx.ReadImages(dir.File "i")
                Expect.equal (back.Count, back.Rows, back.Columns, back.Pixels) (5, 4, 6, pixels) "images"
                Expect.equal (Idx.ReadLabels(dir.File "l")) [| 1uy; 2uy; 3uy; 4uy; 9uy |] "labels"
                let raw = File.ReadAllBytes(dir.File "i")
                Expect.equal (raw[0] = 0x1fuy && raw[1] = 0x8buy) gzip "gzip exactly when asked"
        }

        test "wrong magic says what was found" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "lab", idxBytes 2049 [ 1 ] [| 1uy |] false)
            expectError<InvalidDataException> [ "lab"; "expected 2051"; "found 2049"; "labels file" ] (fun () -> Idx.ReadImages(dir.File "lab"))
            File.WriteAllBytes(dir.File "junk", [| 1uy; 2uy; 3uy; 4uy; 5uy; 6uy; 7uy; 8uy |])
            expectError<InvalidDataException> [ "junk"; "expected 2049"; "found 16909060" ] (fun () -> Idx.ReadLabels(dir.File "junk"))
        }

        test "truncated files say expected and found bytes" {
            use dir = new TempDir()
            File.WriteAllBytes(dir.File "img", idxBytes 2051 [ 3; 2; 2 ] (Array.zeroCreate 10) true)
            expectError<InvalidDataException> [ "img"; "truncated"; "expected 12 bytes"; "found 10" ] (fun () -> Idx.ReadImages(dir.File "img"))
            File.WriteAllBytes(dir.File "hdr", (idxBytes 2051 [ 3; 2; 2 ] [||] false)[.. 9])
            expectError<InvalidDataException> [ "hdr"; "truncated" ] (fun () -> Idx.ReadImages(dir.File "hdr"))
            let gz = idxBytes 2049 [ 100 ] (Array.zeroCreate 100) true
            File.WriteAllBytes(dir.File "cut.gz", gz[.. gz.Length / 2])
            expectError<InvalidDataException> [ "cut.gz" ] (fun () -> Idx.ReadLabels(dir.File "cut.gz"))
        }

        test "missing file" {
            use dir = new TempDir()
            expectError<FileNotFoundException> [ "none"; "no such IDX file" ] (fun () -> Idx.ReadLabels(dir.File "none"))
        }

        test "Mnist.Load scales to [-1, 1] as float32 [N, 1, 28, 28] with int64 labels" {
            use dir = new TempDir()
            writeFakeMnist dir.Path "train" 40 40 true
            let d = Mnist.Load(dir.Path, DataSplit.Train)
            Expect.equal d.X.shape [| 40L; 1L; 28L; 28L |] "shape"
            Expect.equal d.X.dtype ScalarType.Float32 "float32"
            Expect.equal d.Labels.dtype ScalarType.Int64 "int64 labels"
            Expect.equal (longs d.Labels) (Array.init 40 (fun i -> int64 (i % 10))) "labels"
            let x = values d.X
            // Pixel k of image i is (7 i + k) mod 256: image 0 starts 0, 1, 2 ... (-1, -1 + 2/255, ...).
            Expect.floatClose Accuracy.high x[0] -1.0 "byte 0 is -1"
            Expect.floatClose Accuracy.high x[255] 1.0 "byte 255 is 1"
            Expect.floatClose Accuracy.high x[1] (1.0 / 127.5 - 1.0) "byte 1"
            Expect.equal d.Name "mnist" "name"
        }

        test "the original distribution's t10k names and plain files are found" {
            use dir = new TempDir()
            writeFakeMnist dir.Path "t10k" 12 12 false
            let d = Mnist.Load(dir.Path, DataSplit.Test)
            Expect.equal d.Count 12L "count"
            expectError<FileNotFoundException> [ "train"; "train-images-idx3-ubyte.gz" ] (fun () -> Mnist.Load(dir.Path, DataSplit.Train))
        }

        test "image and label counts that disagree are an error" {
            use dir = new TempDir()
            writeFakeMnist dir.Path "train" 30 29 true
            expectError<InvalidDataException> [ "30 images"; "29 labels"; "disagree" ] (fun () -> Mnist.Load(dir.Path, DataSplit.Train))
        }

        test "a missing folder is an error" {
            use dir = new TempDir()
            expectError<DirectoryNotFoundException> [ "nowhere" ] (fun () -> Mnist.Load(dir.File "nowhere", DataSplit.Train))
        }

        let real = realMnistFolder ()
        let source = if real.IsSome then "the shared MNIST subset" else "generated files (shared MNIST subset absent)"
        test $"MNIST train and test from {source}" {
            use generated = new TempDir()
            let folder, trainCount, testCount =
                match real with
                | Some d -> d, 8000L, 2000L
                | None ->
                    writeFakeMnist generated.Path "train" 80 80 true
                    writeFakeMnist generated.Path "test" 20 20 true
                    generated.Path, 80L, 20L
            for split, count in [ DataSplit.Train, trainCount; DataSplit.Test, testCount ] do
                let d = DataSource.Load($"mnist:{folder}", split = split)
                Expect.equal d.X.shape [| count; 1L; 28L; 28L |] $"{split} shape"
                Expect.equal d.Labels.shape [| count |] $"{split} labels"
                Expect.equal (d.X.min().item<float32>()) -1.0f "min -1"
                Expect.equal (d.X.max().item<float32>()) 1.0f "max 1"
                let labels = longs d.Labels
                Expect.equal (Set.ofArray labels) (Set.ofList [ 0L .. 9L ]) "labels are the ten digits"
                if real.IsSome then
                    // MNIST is mostly background: the mean pixel is about 0.13 of full scale, -0.74 here.
                    let mean = d.X.mean().item<float32>() |> float
                    Expect.isTrue (mean > -0.8 && mean < -0.68) $"mean pixel {mean} is MNIST-like"
        }
    ]

// ---------------------------------------------------------------------------------------------------------
// Built-in 2-D sets

let toyClasses = dict [ "checkerboard", 2L; "moons", 2L; "8gaussians", 8L; "2spirals", 2L; "rings", 3L ]

/// Std bounds that the XML docs promise (roughly 1 to 2 per coordinate).
let stdRange = (0.8, 2.2)

[<Tests>]
let toyTests =
    testList "data.toy2d" [
        for name in Toy2D.Names do
            test $"{name}: same seed same points, another seed other points" {
                let a = Toy2D.Sample(name, 500L, 7L)
                let b = Toy2D.Sample(name, 500L, 7L)
                let c = Toy2D.Sample(name, 500L, 8L)
                Expect.isTrue (same (a.X) (b.X) && same (a.Labels) (b.Labels)) "deterministic"
                Expect.isFalse (same (a.X) (c.X)) "seed matters"
                use g = new torch.Generator(7UL, torch.CPU)
                Expect.isTrue (same (Toy2D.Sample(name, 500L, g).X) (a.X)) "seed overload = generator overload"
            }

            test $"{name}: finite, in [-4, 4], std 1-2, labels cover every class" {
                let d = Toy2D.Sample(name, 4000L, 1L)
                Expect.equal d.X.shape [| 4000L; 2L |] "shape"
                Expect.equal d.X.dtype ScalarType.Float32 "float32 by default"
                Expect.isTrue (d.X.isfinite().all().item<bool>()) "finite"
                Expect.isTrue (d.X.abs().max().item<float32>() < 4.0f) "inside [-4, 4]"
                let std = values (d.X.std(0L))
                let lo, hi = stdRange
                for s in std do Expect.isTrue (s > lo && s < hi) $"std {s}"
                Expect.equal d.Labels.dtype ScalarType.Int64 "int64 labels"
                Expect.equal (Set.ofArray (longs d.Labels)) (Set.ofList [ 0L .. toyClasses[name] - 1L ]) "classes"
                Expect.equal d.Name name "name"
            }

            test $"{name}: float64 draws the same points" {
                let f = Toy2D.Sample(name, 300L, 3L)
                let d = Toy2D.Sample(name, 300L, 3L, ScalarType.Float64)
                Expect.equal d.X.dtype ScalarType.Float64 "float64"
                Expect.isTrue (torch.allclose(d.X.to_type(ScalarType.Float32), f.X, 1e-6, 1e-6)) "same points"
        }

        test "checkerboard: points lie in cells of even parity, label = row parity" {
            let d = Toy2D.Checkerboard(2000L, new torch.Generator(5UL, torch.CPU))
            let cells = d.X.add(sc 3.0).div(sc 1.5).floor().to_type(ScalarType.Int64)
            let col, row = cells.select(1L, 0L), cells.select(1L, 1L)
            Expect.isTrue (col.add(row).remainder(sci 2L).eq(sci 0L).all().item<bool>()) "even cells"
            Expect.isTrue (row.remainder(sci 2L).eq(d.Labels).all().item<bool>()) "label is the row parity"
        }

        test "8gaussians: points within 6 std of their component's centre" {
            let d = Toy2D.EightGaussians(2000L, new torch.Generator(5UL, torch.CPU))
            let angle = d.Labels.to_type(ScalarType.Float32).mul(sc (Math.PI / 4.0))
            let centres = torch.stack([| angle.cos(); angle.sin() |], 1L).mul(sc 2.5)
            let dist = d.X.sub(centres).norm(1)
            Expect.isTrue (dist.max().item<float32>() < 1.5f) "near the centre"
        }

        test "rings: radius is 1 + ring index up to noise" {
            let d = Toy2D.Rings(2000L, new torch.Generator(5UL, torch.CPU))
            let off = d.X.norm(1).sub(d.Labels.to_type(ScalarType.Float32).add(sc 1.0)).abs()
            Expect.isTrue (off.max().item<float32>() < 0.6f) "near the ring"
        }

        test "moons and spirals: each label's points stay on their side" {
            let m = Toy2D.Moons(2000L, new torch.Generator(5UL, torch.CPU))
            // Moon 0 is the upper arc centred left, moon 1 the lower arc centred right.
            let meanY (d: Dataset) (k: int64) = d.X.select(1L, 1L).masked_select(d.Labels.eq(sci k)).mean().item<float32>()
            Expect.isTrue (meanY m 0L > 0.5f && meanY m 1L < -0.5f) "moons apart"
            let s = Toy2D.TwoSpirals(2000L, new torch.Generator(5UL, torch.CPU))
            let r = s.X.norm(1)
            Expect.isTrue (r.max().item<float32>() < 3.5f) "radius up to 3 plus noise"
        }

        test "bad arguments" {
            expectError<ArgumentException> [ "unknown"; "checkerboard"; "rings" ] (fun () -> Toy2D.Sample("circles", 10L, 0L))
            expectError<ArgumentOutOfRangeException> [ "n" ] (fun () -> Toy2D.Sample("moons", 0L, 0L))
            expectError<ArgumentException> [ "floating-point" ] (fun () -> Toy2D.Sample("moons", 10L, 0L, ScalarType.Int64))
        }
    ]

// ---------------------------------------------------------------------------------------------------------
// DATA specs

[<Tests>]
let sourceTests =
    testList "data.source" [
        test "a built-in name gives n points; 0 means the default count" {
            let d = DataSource.Load("moons", n = 123L, seed = 4L)
            Expect.equal d.Count 123L "n"
            Expect.isTrue (same (d.X) (Toy2D.Sample("moons", 123L, 4L).X)) "same as Toy2D"
            Expect.equal (DataSource.Load("RINGS").Count) DataSource.DefaultToyCount "default count, any case"
        }

        test "unknown names list the valid ones" {
            expectError<ArgumentException> [ "unknown data 'spirals'"; "checkerboard"; "moons"; "8gaussians"; "2spirals"; "rings"; "mnist:DIR"; "FILE.npy" ]
                (fun () -> DataSource.Load "spirals")
            expectError<ArgumentException> [ "mnist:DIR" ] (fun () -> DataSource.Load "mnist:")
        }

        test "FILE.npy with labels; first n rows; float64 converted to float32" {
            use dir = new TempDir()
            let x = torch.randn(10L, 3L, dtype = ScalarType.Float64)
            Npy.Write(dir.File "x.npy", x)
            Npy.Write(dir.File "y.npy", torch.arange(10L))
            let d = DataSource.Load(dir.File "x.npy", labels = dir.File "y.npy")
            Expect.equal d.X.dtype ScalarType.Float32 "float32"
            Expect.isTrue (torch.allclose(d.X.to_type(ScalarType.Float64), x, 1e-6, 1e-6)) "values"
            Expect.equal (longs d.Labels) [| 0L .. 9L |] "labels"
            Expect.equal d.Name "x.npy" "name"
            let first = DataSource.Load(dir.File "x.npy", n = 4L, labels = dir.File "y.npy")
            Expect.equal (first.Count, first.Labels.shape[0]) (4L, 4L) "first 4 rows"
            let d64 = DataSource.Load(dir.File "x.npy", dtype = ScalarType.Float64)
            Expect.isTrue (same (d64.X) (x)) "float64 kept when asked"
            expectError<ArgumentOutOfRangeException> [ "11"; "10" ] (fun () -> DataSource.Load(dir.File "x.npy", n = 11L))
        }

        test "images N x C x H x W load as they are" {
            use dir = new TempDir()
            Npy.Write(dir.File "img.npy", torch.rand(6L, 3L, 4L, 4L))
            Expect.equal (DataSource.Load(dir.File "img.npy")).X.shape [| 6L; 3L; 4L; 4L |] "shape"
        }

        test "labels whose length differs are an error" {
            use dir = new TempDir()
            Npy.Write(dir.File "x.npy", torch.randn(10L, 2L))
            Npy.Write(dir.File "y.npy", torch.arange(9L))
            expectError<InvalidDataException> [ "y.npy"; "9 labels"; "10 rows" ] (fun () -> DataSource.Load(dir.File "x.npy", labels = dir.File "y.npy"))
            Npy.Write(dir.File "yf.npy", torch.zeros(10L))
            expectError<InvalidDataException> [ "yf.npy"; "integers" ] (fun () -> DataSource.Load(dir.File "x.npy", labels = dir.File "yf.npy"))
            Npy.Write(dir.File "yn.npy", torch.tensor([| 0L; 1L; -1L; 0L; 0L; 0L; 0L; 0L; 0L; 0L |]))
            expectError<InvalidDataException> [ "yn.npy"; "row 2" ] (fun () -> DataSource.Load(dir.File "x.npy", labels = dir.File "yn.npy"))
            expectError<ArgumentException> [ "labels"; "moons" ] (fun () -> DataSource.Load("moons", labels = dir.File "y.npy"))
        }

        test "NaN or Inf is refused with the first bad row" {
            use dir = new TempDir()
            let x = torch.randn(10L, 2L)
            x[3L, 1L] <- torch.tensor(Single.NaN)
            x[7L, 0L] <- torch.tensor(Single.PositiveInfinity)
            Npy.Write(dir.File "nan.npy", x)
            expectError<InvalidDataException> [ "nan.npy"; "row 3"; "NaN or Inf"; "2 of 10 rows" ] (fun () -> DataSource.Load(dir.File "nan.npy"))
            let big = torch.zeros(4L, 2L, dtype = ScalarType.Float64)
            big[2L, 0L] <- torch.tensor(1e300)
            Npy.Write(dir.File "big.npy", big)
            expectError<InvalidDataException> [ "big.npy"; "row 2"; "float32" ] (fun () -> DataSource.Load(dir.File "big.npy"))
        }

        test "integer or rank-1 data is refused" {
            use dir = new TempDir()
            Npy.Write(dir.File "i.npy", torch.zeros([| 4L; 2L |], dtype = ScalarType.Int64))
            expectError<InvalidDataException> [ "i.npy"; "float32 or float64"; "int64" ] (fun () -> DataSource.Load(dir.File "i.npy"))
            Npy.Write(dir.File "r1.npy", torch.zeros(4L))
            expectError<InvalidDataException> [ "r1.npy"; "N x D" ] (fun () -> DataSource.Load(dir.File "r1.npy"))
            expectError<FileNotFoundException> [ "gone.npy" ] (fun () -> DataSource.Load(dir.File "gone.npy"))
        }

        test "mnist:DIR through a DataSpec, with split and n" {
            use dir = new TempDir()
            writeFakeMnist dir.Path "train" 30 30 true
            writeFakeMnist dir.Path "test" 10 10 false
            let d = DataSource.Load(DataSpec($"mnist:{dir.Path}", N = 5L, Split = DataSplit.Test))
            Expect.equal d.X.shape [| 5L; 1L; 28L; 28L |] "first 5 test images"
        }
    ]

[<Tests>]
let datasetTests =
    testList "data.dataset" [
        test "labels must be int64 [N]" {
            let x = torch.zeros(4L, 2L)
            expectError<ArgumentException> [ "int64"; "Int32" ] (fun () -> Dataset(x, torch.zeros([| 4L |], dtype = ScalarType.Int32), "d"))
            expectError<ArgumentException> [ "[4]"; "[3]" ] (fun () -> Dataset(x, torch.zeros([| 3L |], dtype = ScalarType.Int64), "d"))
            let d = Dataset(x, torch.tensor([| 0L; 2L; 1L; 2L |]), "d")
            Expect.equal (d.Count, d.RowShape, d.ClassCount) (4L, [| 2L |], 3L) "count, row shape, classes"
            Expect.equal (d.Take(2L).Count) 2L "take"
            expectError<ArgumentOutOfRangeException> [ "n must be in [0, 4]" ] (fun () -> d.Take(5L))
        }
    ]

[<Tests>]
let specTests =
    testList "data.spec" [
        test "JSON round trip" {
            let spec = DataSpec("moons", N = 500L, Seed = 3L, Split = DataSplit.Test)
            let json = spec.ToJson()
            Expect.stringContains json "\"source\": \"moons\"" "camelCase"
            Expect.stringContains json "\"split\": \"test\"" "split as a string"
            Expect.equal (DataSpec.FromJson json) spec "round trip"
            let withLabels = DataSpec("x.npy", Labels = "y.npy")
            Expect.equal (DataSpec.FromJson(withLabels.ToJson())) withLabels "labels round trip"
        }

        test "Validate names the field and its range" {
            expectError<ArgumentException> [ "N must be in [0, " ] (fun () -> DataSpec("moons", N = -1L).Validate(); box ())
            expectError<ArgumentException> [ "Seed must be >= 0" ] (fun () -> DataSpec("moons", Seed = -2L).Validate(); box ())
            expectError<ArgumentException> [ "Source"; "checkerboard"; "mnist:DIR" ] (fun () -> DataSpec("nonsense").Validate(); box ())
            expectError<ArgumentException> [ "Labels"; "FILE.npy" ] (fun () -> DataSpec("moons", Labels = "y.npy").Validate(); box ())
            expectError<ArgumentException> [ "Labels must be a .npy" ] (fun () -> DataSpec("x.npy", Labels = "y.txt").Validate(); box ())
            expectError<ArgumentException> [ "Split" ] (fun () -> DataSpec("moons", Split = enum<DataSplit> 7).Validate(); box ())
            DataSpec("checkerboard", N = 100L).Validate()
        }

        test "malformed or invalid JSON" {
            expectError<InvalidDataException> [ "DataSpec" ] (fun () -> DataSpec.FromJson "{ not json")
            expectError<ArgumentException> [ "N must be" ] (fun () -> DataSpec.FromJson """{ "source": "moons", "n": -5 }""")
            expectError<ArgumentException> [ "Source" ] (fun () -> DataSpec.FromJson """{ "n": 5 }""")
        }
    ]
