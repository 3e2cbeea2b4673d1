/// Laws of the data files: what Nfm.Data writes, it reads back unchanged.
module Nfm.Properties.DataProperties

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Data
open Nfm.Properties.Generators

type Tensor = torch.Tensor
type ScalarType = torch.ScalarType

/// Identity is exact: files hold the bytes themselves, so not one byte may differ (NaN payloads and -0 included).
let differingBytesAllowed = 0

/// One temporary folder for the suite; each case writes its own file and removes it.
let folder =
    let d = Path.Combine(Path.GetTempPath(), "nfm-data-properties-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try Directory.Delete(d, true) with _ -> ())
    d

let withFile (name: string) (f: string -> 'a) =
    let path = Path.Combine(folder, $"{Guid.NewGuid():N}-{name}")
    try f path finally (try File.Delete path with _ -> ())

let bytesOf (t: Tensor) =
    use c = t.contiguous()
    let span = c.bytes
    span.ToArray()

let differing (a: byte[]) (b: byte[]) =
    if a.Length <> b.Length then Int32.MaxValue
    else Array.fold2 (fun n x y -> if x = y then n else n + 1) 0 a b

/// An array as generated: element type, shape, and raw values (doubles for float types, int64 otherwise).
type NpyCase =
    { DType: ScalarType
      Shape: int64[]
      Floats: float[]
      Ints: int64[] }

    member c.Tensor =
        let flat =
            if c.Floats.Length > 0 || (c.DType = ScalarType.Float32 || c.DType = ScalarType.Float64 || c.DType = ScalarType.Float16)
            then torch.tensor(c.Floats)
            else torch.tensor(c.Ints)
        flat.to_type(c.DType).reshape(c.Shape)

let floatTypes = [ ScalarType.Float32; ScalarType.Float64; ScalarType.Float16 ]
let intTypes = [ ScalarType.Int64; ScalarType.Int32; ScalarType.Int16; ScalarType.Int8; ScalarType.Byte; ScalarType.Bool ]

/// Rank 0 to 4, each dimension 0 to 4 (so empty arrays and scalars come up), any supported type, any values
/// FsCheck draws (NaN, infinities, -0 and subnormals included for floats; full-range integers, wrapped by the cast).
let npyCase =
    gen {
        let! dtype = Gen.elements (floatTypes @ intTypes)
        let! rank = Gen.choose (0, 4)
        let! dims = Gen.arrayOfLength rank (Gen.choose (0, 4))
        let shape = dims |> Array.map int64
        let count = shape |> Array.fold (*) 1L |> int
        let isFloat = List.contains dtype floatTypes
        let! floats = if isFloat then Gen.arrayOfLength count (ArbMap.defaults |> ArbMap.generate<float>) else Gen.constant [||]
        let! ints = if isFloat then Gen.constant [||] else Gen.arrayOfLength count (ArbMap.defaults |> ArbMap.generate<int64>)
        return { DType = dtype; Shape = shape; Floats = floats; Ints = ints }
    }

/// Small unsigned-byte images as IDX holds them.
let idxCase =
    gen {
        let! count = Gen.choose (0, 5)
        let! rows = Gen.choose (1, 6)
        let! cols = Gen.choose (1, 6)
        let! pixels = Gen.arrayOfLength (count * rows * cols) (ArbMap.defaults |> ArbMap.generate<byte>)
        let! labels = Gen.arrayOfLength count (ArbMap.defaults |> ArbMap.generate<byte>)
        let! gzip = Gen.elements [ false; true ]
        return IdxImages(count, rows, cols, pixels), labels, gzip
    }

[<Tests>]
let properties =
    testList "data.properties" [
        testPropertyWithConfig config "npy: write then read is the identity (type, shape, bytes)" (
            Prop.forAll (Arb.fromGen npyCase) (fun c ->
                use t = c.Tensor
                withFile "a.npy" (fun path ->
                    Npy.Write(path, t)
                    use back = Npy.Read path
                    back.dtype = t.dtype && back.shape = t.shape
                    && differing (bytesOf back) (bytesOf t) <= differingBytesAllowed)))

        testPropertyWithConfig config "npy: data starts at a multiple of 64 and fills the file exactly" (
            Prop.forAll (Arb.fromGen npyCase) (fun c ->
                use t = c.Tensor
                withFile "h.npy" (fun path ->
                    Npy.Write(path, t)
                    let h = Npy.ReadHeader path
                    h.DataOffset % 64L = 0L && h.Version = "1.0"
                    && FileInfo(path).Length = h.DataOffset + h.Count * int64 h.ItemSize)))

        testPropertyWithConfig config "npy: a second write replaces the first, nothing else is left" (
            Prop.forAll (Arb.fromGen (Gen.two npyCase)) (fun (c1, c2) ->
                use t1 = c1.Tensor
                use t2 = c2.Tensor
                withFile "twice.npy" (fun path ->
                    Npy.Write(path, t1)
                    Npy.Write(path, t2)
                    use back = Npy.Read path
                    let leftovers = Directory.GetFiles(folder, "*twice.npy*") |> Array.filter (fun f -> f <> path)
                    back.dtype = t2.dtype && back.shape = t2.shape && differing (bytesOf back) (bytesOf t2) = 0
                    && leftovers.Length = 0)))

        testPropertyWithConfig config "idx: write then read is the identity, gzipped or not" (
            Prop.forAll (Arb.fromGen idxCase) (fun (images, labels, gzip) ->
                withFile "i" (fun ip ->
                    withFile "l" (fun lp ->
                        Idx.WriteImages(ip, images, gzip)
                        Idx.WriteLabels(lp, labels, gzip)
                        let back = Idx.ReadImages ip
                        (back.Count, back.Rows, back.Columns) = (images.Count, images.Rows, images.Columns)
                        && back.Pixels = images.Pixels && Idx.ReadLabels lp = labels))))
    ]
