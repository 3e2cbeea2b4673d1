/// Image folders as data (`images:FOLDER`): MNIST written out as PNG files reads back as the IDX files' tensors,
/// colour and grey folders, crops and resizes, JPEG, the bad inputs, and a teacher, students and a comparison on
/// 3-channel images.
module Nfm.Tests.ImageFolderTests

open System
open System.IO
open Expecto
open SkiaSharp
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.FSharp
open Nfm.Tests.DataTests

/// Comparisons in these tests run silently on one worker.
let private quiet = Nfm.FSharp.RunEnvironment.silent

/// One JPEG quantisation step is at most a few levels on a flat colour: 3 levels of 255, in [-1, 1] units.
let jpegTolerance = 3.0 / 127.5

/// Writes a W x H image whose pixel (x, y) has the colour `colour x y`, as PNG or JPEG.
let writeImage (path: string) (format: SKEncodedImageFormat) (w: int) (h: int) (colour: int -> int -> SKColor) =
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    use bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque)
    for y in 0 .. h - 1 do
        for x in 0 .. w - 1 do bitmap.SetPixel(x, y, colour x y)
    use data = bitmap.Encode(format, 95)
    File.WriteAllBytes(path, data.ToArray())

let private png path w h colour = writeImage path SKEncodedImageFormat.Png w h colour

/// A colour folder: three classes (red, green, blue) of `perClass` flat images of w x h, names out of order.
let colourFolder (root: string) (perClass: int) (w: int) (h: int) =
    let colours = [ "a-red", SKColor(255uy, 0uy, 0uy); "b-green", SKColor(0uy, 255uy, 0uy); "c-blue", SKColor(0uy, 0uy, 255uy) ]
    for name, c in colours do
        for i in 0 .. perClass - 1 do
            // Each image a little different, so that a teacher has something to fit.
            let shade (x: int) (y: int) = SKColor(byte (int c.Red * (x + y + i) / (w + h + perClass)), byte (int c.Green * (x + 2 * i) / (w + 2 * perClass)), c.Blue)
            png (Path.Combine(root, name, sprintf "img%03d.png" (perClass - i))) w h shade

/// MNIST digits written as grey PNG files in one folder per label, named by their row.
let writeMnistPngs (root: string) (data: Dataset) =
    let bytes = (data.X + 1.0).mul(torch.tensor 127.5).round().to_type(torch.ScalarType.Byte).contiguous().data<byte>().ToArray()
    let labels = longs data.Labels
    let side = int data.X.shape[3]
    for i in 0 .. labels.Length - 1 do
        png (Path.Combine(root, string labels[i], sprintf "%05d.png" i)) side side (fun x y ->
            let v = bytes[i * side * side + y * side + x]
            SKColor(v, v, v))

[<Tests>]
let tests =
    testList "data.images" [
        test "MNIST written out as PNG files in label folders reads back as the IDX files' images and labels" {
            use dir = new TempDir()
            let idx =
                match realMnistFolder () with
                | Some folder -> Mnist.Load(folder, DataSplit.Train).Take(300L)
                | None ->
                    writeFakeMnist dir.Path "train" 300 300 false
                    Mnist.Load(dir.Path, DataSplit.Train)
            let root = Path.Combine(dir.Path, "pngs")
            writeMnistPngs root idx
            let read = Data.load (sprintf "images:%s?size=28&channels=1" root) 0L 0L
            // The folder reads class by class, then by name (the row): the IDX rows in that order.
            let order = longs idx.Labels |> Array.mapi (fun i l -> l, i) |> Array.sort |> Array.map (snd >> int64)
            let expected = idx.X.index_select(0L, torch.tensor order)
            Expect.isTrue (same read.X expected) "the same float32 tensor as the IDX images"
            Expect.isTrue (same read.Labels (idx.Labels.index_select(0L, torch.tensor order))) "the same labels"
        }

        test "a colour folder: classes in sorted order, flat colours kept exactly at 3 channels, ITU-R 601 grey at 1" {
            use dir = new TempDir()
            for name, c in [ "b", SKColor(10uy, 200uy, 30uy); "a", SKColor(250uy, 5uy, 100uy) ] do
                for i in 0 .. 1 do png (Path.Combine(dir.Path, name, sprintf "%d.png" i)) 8 8 (fun _ _ -> c)
            let rgb = Data.load (sprintf "images:%s?size=8" dir.Path) 0L 0L
            Expect.equal rgb.X.shape [| 4L; 3L; 8L; 8L |] "[N, 3, S, S]"
            Expect.equal (longs rgb.Labels) [| 0L; 0L; 1L; 1L |] "labels from the sorted folder names (a before b)"
            let level (v: int) = float v / 127.5 - 1.0
            let px (t: torch.Tensor) (n: int64) (ch: int64) = t[n, ch, 3L, 5L].item<float32>() |> float
            Expect.floatClose Accuracy.high (px rgb.X 0L 0L) (level 250) "class a's red"
            Expect.floatClose Accuracy.high (px rgb.X 2L 1L) (level 200) "class b's green"
            let grey = Data.load (sprintf "images:%s?channels=1&size=8" dir.Path) 0L 0L
            Expect.equal grey.X.shape [| 4L; 1L; 8L; 8L |] "[N, 1, S, S]"
            Expect.floatClose Accuracy.high (px grey.X 2L 0L) (level (int (Math.Round(0.299 * 10.0 + 0.587 * 200.0 + 0.114 * 30.0)))) "ITU-R 601 grey"
            Expect.equal (Data.load (sprintf "images:%s?size=8" dir.Path) 0L 0L).Name (Path.GetFileName dir.Path) "the data set is named by its folder"
        }

        test "a wide image is centre-cropped to a square and resized; JPEG reads within a few levels" {
            use dir = new TempDir()
            // 12 x 8: two black columns each side of an 8 x 8 white square.
            png (Path.Combine(dir.Path, "x", "wide.png")) 12 8 (fun x _ -> if x < 2 || x >= 10 then SKColors.Black else SKColors.White)
            let same8 = Data.load (sprintf "images:%s?size=8&channels=1" dir.Path) 0L 0L
            Expect.floatClose Accuracy.high (same8.X.min().item<float32>() |> float) 1.0 "the crop keeps only the white centre"
            let small = Data.load (sprintf "images:%s?size=4&channels=1" dir.Path) 0L 0L
            Expect.equal small.X.shape [| 1L; 1L; 4L; 4L |] "resized to 4 x 4"
            Expect.isGreaterThan (small.X.min().item<float32>() |> float) 0.95 "a flat white square stays white when resized"
            use jdir = new TempDir()
            writeImage (Path.Combine(jdir.Path, "k", "flat.jpg")) SKEncodedImageFormat.Jpeg 16 16 (fun _ _ -> SKColor(40uy, 120uy, 220uy))
            let j = Data.load (sprintf "images:%s?size=16" jdir.Path) 0L 0L
            for ch, v in [ 0L, 40; 1L, 120; 2L, 220 ] do
                Expect.floatClose { absolute = jpegTolerance; relative = 0.0 } (j.X[0L, ch, 8L, 8L].item<float32>() |> float) (float v / 127.5 - 1.0) "JPEG within a few levels"
        }

        test "train/ and test/ folders are splits; the held-out set is drawn from every class of test/" {
            use dir = new TempDir()
            colourFolder (Path.Combine(dir.Path, "train")) 4 8 8
            colourFolder (Path.Combine(dir.Path, "test")) 5 8 8
            let spec = sprintf "images:%s?size=8" dir.Path
            Expect.equal (DataSource.Load(spec, split = DataSplit.Train)).X.shape[0] 12L "train/"
            Expect.equal (DataSource.Load(spec, split = DataSplit.Test)).X.shape[0] 15L "test/"
            let held = Expect.wantSome (Data.heldOut spec 0L 9) "a held-out set from test/"
            Expect.equal held.X.shape[0] 9L "9 rows"
            Expect.isGreaterThan (longs held.Labels |> Array.distinct |> Array.length) 1 "from more than one class"
            // Without splits, a comparison holds out rows in an order drawn from the seed (the folder reads class by class).
            use flat = new TempDir()
            colourFolder flat.Path 20 8 8
            let train, reference = Experiment.split (DataSpec(sprintf "images:%s?size=8" flat.Path)) 100
            Expect.equal (train.X.shape[0], reference.X.shape[0]) (48L, 12L) "the last 20% held out"
            Expect.isGreaterThan (longs reference.Labels |> Array.distinct |> Array.length) 1 "held-out rows from more than one class"
        }

        test "bad image folders: a corrupt file, an unsupported file, an image beside class folders, an empty or missing folder, bad options; each one line naming it" {
            use dir = new TempDir()
            colourFolder dir.Path 2 8 8
            let bad = Path.Combine(dir.Path, "a-red", "broken.png")
            File.WriteAllBytes(bad, [| 1uy; 2uy; 3uy; 4uy |])
            expectError<InvalidDataException> [ bad; "not a readable PNG or JPEG" ] (fun () -> box (Data.load ("images:" + dir.Path) 0L 0L))
            File.Delete bad
            let gif = Path.Combine(dir.Path, "b-green", "anim.gif")
            File.WriteAllText(gif, "GIF89a")
            expectError<InvalidDataException> [ gif; "not a PNG or JPEG file" ] (fun () -> box (Data.load ("images:" + dir.Path) 0L 0L))
            File.Delete gif
            let loose = Path.Combine(dir.Path, "loose.png")
            png loose 8 8 (fun _ _ -> SKColors.Gray)
            expectError<InvalidDataException> [ loose; "beside the class folders" ] (fun () -> box (Data.load ("images:" + dir.Path) 0L 0L))
            use empty = new TempDir()
            expectError<InvalidDataException> [ empty.Path; "no PNG or JPEG images" ] (fun () -> box (Data.load ("images:" + empty.Path) 0L 0L))
            let missing = Path.Combine(empty.Path, "nope")
            expectError<DirectoryNotFoundException> [ missing; "no such image folder" ] (fun () -> box (Data.load ("images:" + missing) 0L 0L))
            expectError<ArgumentException> [ "size must be in [2, 1024]" ] (fun () -> box (Data.load (sprintf "images:%s?size=0" dir.Path) 0L 0L))
            expectError<ArgumentException> [ "channels must be 1 or 3" ] (fun () -> box (Data.load (sprintf "images:%s?channels=2" dir.Path) 0L 0L))
            expectError<ArgumentException> [ "unknown option 'depth'" ] (fun () -> box (Data.load (sprintf "images:%s?depth=2" dir.Path) 0L 0L))
            expectError<ArgumentException> [ "names no folder" ] (fun () -> box (Data.load "images:" 0L 0L))
        }

        test "a teacher, an NFM student and a comparison (W2) on 3-channel images" {
            use dir = new TempDir()
            colourFolder (Path.Combine(dir.Path, "data")) 20 8 8
            let spec = sprintf "images:%s?size=8" (Path.Combine(dir.Path, "data"))
            let data = Data.load spec 0L 0L
            let teacher = Teacher.trainIn RunOptions.silent { Teacher.settings with Width = Some 16; Blocks = Some 2; Layers = Some 1; HeadDim = Some 8; Steps = 20
                                                                                    Batch = Some 16 } data
            let z, _ = Teacher.encode teacher data.X
            Expect.equal z.shape data.X.shape "encodings keep [N, 3, 8, 8]"
            let student = Student.train (Couple.teacher 0.05 data teacher) "nfm" { Student.imageSettings with Steps = 10; Batch = 16 } data
            let x = Student.sample (Solver.Euler 2) Grid.Uniform 6L 0L student
            Expect.equal x.shape [| 6L; 3L; 8L; 8L |] "the student samples 3-channel images"
            let e = Experiment.create (DataSpec spec) "4" (Path.Combine(dir.Path, "compare"))
            let e = { e with Budget = { e.Budget with EvalCount = 12; Steps = [ 1; 2 ] }; Methods = [ { Name = "independent"; Coupling = Independent }; { Name = "nfm"; Coupling = Nfm(None, None) } ] }
            let r = Experiment.run quiet e
            Experiment.write r |> ignore
            Expect.equal r.Metric "w2" "no classifier for this data: W2"
            Expect.isTrue (r.Rows |> List.forall (fun row -> Double.IsFinite row.Value)) "every row scored"
            Expect.isTrue (File.Exists(Path.Combine(dir.Path, "compare", "samples-nfm-2step.png"))) "a colour sample grid"
            // The same comparison with the SiT transformer students, recorded in experiment.json.
            let es = { e with OutDir = Path.Combine(dir.Path, "compare-sit"); StudentNet = Architecture.Sit; StudentWidth = Some 32; StudentDepth = Some 1 }
            let rs = Experiment.run quiet es
            for st in rs.Students do
                Expect.equal st.Student.Spec.Net.Architecture Architecture.Sit (st.Method.Name + " is a SiT student")
                Expect.equal (st.Student.Spec.Net.Width, st.Student.Spec.Net.Depth) (32, 1) "at the width and depth asked"
            Expect.isTrue (rs.Rows |> List.forall (fun row -> Double.IsFinite row.Value)) "every SiT row scored"
            let described = File.ReadAllText(Path.Combine(dir.Path, "compare-sit", "experiment.json"))
            Expect.stringContains described "\"architecture\": \"sit\"" "experiment.json records the students' network"
        }
    ]
