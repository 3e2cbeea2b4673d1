/// The trained teacher's maps: `nfm teacher encode | decode | sample` and `nfm couple` (NFM pairs, sharded).
module Nfm.Cli.TeacherMapCommands

open Nfm
open System
open System.IO
open Argu
open TorchSharp
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.FSharp
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Couple

/// Reads an input .npy for a teacher: float32, finite, rows of the teacher's input shape.
let readInput (teacher: TrainedTeacher) (path: string) =
    let x = Nfm.Data.Npy.ReadFloat32(existing "input file" path)
    Nfm.Data.DataSource.CheckFinite(x, path)
    let expected = teacher.Spec.Model.InputShape
    if x.dim() < 1L || (x.shape |> Array.skip 1) <> expected then
        fail (sprintf "%s has shape %s; the teacher expects [N, %s]" path (Nfm.Shapes.Show x) (String.Join(", ", expected)))
    x.``to``(teacher.Spec.Device.ToDevice())

/// Reads labels for a conditional teacher (ignored, with a check, for an unconditional one).
let readLabels (teacher: TrainedTeacher) (rows: int64) (path: string option) =
    match path with
    | None when teacher.Spec.Model.IsConditional -> fail "this teacher is class-conditional: pass --labels"
    | None -> null
    | Some p ->
        let l = Nfm.Data.Npy.Read(existing "labels file" p).``to``(torch.int64)
        if l.dim() <> 1L || l.shape[0] <> rows then fail (sprintf "%s has shape %s; expected [%d] labels" p (Nfm.Shapes.Show l) rows)
        if teacher.Spec.Model.IsConditional then l.``to``(teacher.Spec.Device.ToDevice()) else null

let encode (args: ParseResults<TeacherEncodeArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherEncodeArgs.Teacher))
    let out = outputPath (args.GetResult TeacherEncodeArgs.Out)
    let logdetOut = args.TryGetResult TeacherEncodeArgs.Logdet |> Option.map outputPath
    let x = readInput teacher (args.GetResult TeacherEncodeArgs.Input)
    let labels = readLabels teacher x.shape[0] (args.TryGetResult TeacherEncodeArgs.Labels)
    use _ = torch.no_grad()
    let struct (z, logdet) = Nfm.Invert.Teacher.Encode(teacher.InferenceModel(), x, labels)
    Nfm.Data.Npy.Write(out, z.cpu())
    logdetOut |> Option.iter (fun p -> Nfm.Data.Npy.Write(p, logdet.cpu()))
    printfn "encoded %d rows; wrote %s" x.shape[0] out
    0

let decode (args: ParseResults<TeacherDecodeArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherDecodeArgs.Teacher))
    let out = outputPath (args.GetResult TeacherDecodeArgs.Out)
    let z = readInput teacher (args.GetResult TeacherDecodeArgs.Input)
    let labels = readLabels teacher z.shape[0] (args.TryGetResult TeacherDecodeArgs.Labels)
    let guidance = args.TryGetResult TeacherDecodeArgs.Guidance |> Option.toNullable
    let model = teacher.InferenceModel()
    let x =
        use _ = torch.no_grad()
        Nfm.Invert.Teacher.Decode(model, z, labels, guidance, not (args.Contains TeacherDecodeArgs.Uncached))
    let x = if args.Contains TeacherDecodeArgs.Denoise then Nfm.Invert.Teacher.Denoise(model, x, teacher.Spec.Model.NoiseSigma, labels) else x
    Nfm.Data.Npy.Write(out, x.cpu())
    printfn "decoded %d rows; wrote %s" z.shape[0] out
    0

let sample (args: ParseResults<TeacherSampleArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherSampleArgs.Teacher))
    let out = outputPath (args.GetResult TeacherSampleArgs.Out)
    let count = positive "count" (args.GetResult TeacherSampleArgs.Count)
    let png = args.TryGetResult TeacherSampleArgs.Png |> Option.map outputPath
    let device = teacher.Spec.Device.ToDevice()
    let labels = Data.samplingLabels teacher.Spec.Model.Classes (int64 count) (args.TryGetResult TeacherSampleArgs.Label) device |> Option.toObj
    use g = new torch.Generator(uint64 (args.GetResult(TeacherSampleArgs.Seed, 0)), device)
    let watch = Diagnostics.Stopwatch.StartNew()
    let x = Nfm.Invert.Teacher.Sample(teacher.InferenceModel(), int64 count, g, labels, args.TryGetResult TeacherSampleArgs.Guidance |> Option.toNullable,
                           args.Contains TeacherSampleArgs.Denoise)
    let secs = watch.Elapsed.TotalSeconds
    Nfm.Data.Npy.Write(out, x.cpu())
    printfn "sampled %d in %.2fs; wrote %s" count secs out
    png |> Option.iter (fun p -> StudentCommands.savePng p "teacher samples" (x.cpu()))
    0

/// Parses a shard spec I/N with 0 <= I < N.
let parseShard (s: string) =
    match s.Split('/') with
    | [| i; n |] ->
        match Int32.TryParse i, Int32.TryParse n with
        | (true, i), (true, n) when n >= 1 && i >= 0 && i < n -> i, n
        | _ -> fail (sprintf "--shard '%s': expected I/N with 0 <= I < N" s)
    | _ -> fail (sprintf "--shard '%s': expected I/N with 0 <= I < N" s)

let couple (args: ParseResults<CoupleArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult CoupleArgs.Teacher))
    let out = outputPath (args.GetResult CoupleArgs.Out)
    let shard, shards = args.TryGetResult CoupleArgs.Shard |> Option.map parseShard |> Option.defaultValue (0, 1)
    let seed = int64 (args.GetResult(CoupleArgs.Seed, 0))
    let dataSpec = args.GetResult CoupleArgs.Data
    let data = loadTraining dataSpec (args.TryGetResult CoupleArgs.N) seed (args.TryGetResult CoupleArgs.Labels)
    let eta = nonNegative "eta" (args.GetResult(CoupleArgs.Eta, teacher.Spec.Model.NoiseSigma))
    let draws = positive "draws" (args.GetResult(CoupleArgs.Draws, 1))
    let partial = out + ".partial"
    let pairs =
        TeacherPairs.Compute(teacher, data.X, data.Labels, eta, draws, seed, shard, shards, partialPath = partial,
                             progress = Progress.blocks "couple", cancel = cancellation)
    pairs.Save out
    if File.Exists partial then File.Delete partial
    let s = pairs.Spec
    printfn "pairs: rows %d..%d of %d, %d draw(s), eta %g, sigma_f %.4f, teacher %s, data %s; wrote %s"
        s.RowStart (s.RowEnd - 1L) s.Rows s.Draws s.Eta s.SigmaF s.TeacherId s.DataId out
    0
