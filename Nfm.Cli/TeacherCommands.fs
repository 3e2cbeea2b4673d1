/// `nfm teacher train | encode | decode | sample | nll` and `nfm couple`.
module Nfm.Cli.TeacherCommands

open System
open System.IO
open Argu
open TorchSharp
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Couple

/// Sizes that suit the data: 2-D vectors get a small, deep flow; images the ml-tarflow MNIST shape.
type TeacherShape =
    { TokenSize: int; Width: int; Blocks: int; Layers: int; HeadDim: int; Noise: float; Batch: int }

let defaultShape (rowShape: int64[]) =
    if rowShape.Length = 3 then { TokenSize = 4; Width = 128; Blocks = 4; Layers = 4; HeadDim = 64; Noise = 0.1; Batch = 64 }
    else { TokenSize = 1; Width = 64; Blocks = 8; Layers = 2; HeadDim = 32; Noise = 0.05; Batch = 256 }

/// The teacher's model description for data rows of a shape.
let modelSpec (rowShape: int64[]) (s: TeacherShape) (affine: bool) (classes: int) =
    TeacherSpec(rowShape, s.TokenSize, s.Width, s.Blocks, s.Layers, s.HeadDim, 4, affine, classes, s.Noise,
                (if rowShape.Length = 3 then Dequantisation.Uniform else Dequantisation.Gaussian)).Validate()

/// Mean NLL (nats) and, for images, bits per dimension of a teacher on data, in batches under no_grad.
let nllOf (teacher: TrainedTeacher) (x: torch.Tensor) (labels: torch.Tensor) =
    let model = teacher.InferenceModel()
    let device = teacher.Spec.Device.ToDevice()
    use _ = torch.no_grad()
    let mutable total = 0.0
    let n = x.shape[0]
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope()
        let len = min 256L (n - start)
        let xb = x.narrow(0L, start, len).``to``(device)
        let yb = if teacher.Spec.Model.IsConditional && not (isNull labels) then labels.narrow(0L, start, len).``to``(device) else null
        total <- total - (Teacher.LogLikelihood(model, xb, yb).sum().item<float32>() |> float)
        start <- start + len
    let nll = total / float n
    nll, nll / (float teacher.Spec.Model.Dimension * log 2.0) + Teacher.EightBitOffset

let train (args: ParseResults<TeacherTrainArgs>) =
    let out = outputPath (args.GetResult TeacherTrainArgs.Out)
    let dataSpec = args.GetResult TeacherTrainArgs.Data
    // Checked before training, so that a mistyped --json folder does not cost the whole run.
    let json = args.TryGetResult TeacherTrainArgs.Json |> Option.map outputPath
    let lossPng = args.TryGetResult TeacherTrainArgs.Loss_Png |> Option.map outputPath
    let seed = args.GetResult(TeacherTrainArgs.Seed, 0)
    let data = loadTraining dataSpec (args.TryGetResult TeacherTrainArgs.N) (int64 seed) (args.TryGetResult TeacherTrainArgs.Labels)
    let rowShape = data.X.shape |> Array.skip 1
    let d = defaultShape rowShape
    let shape =
        { TokenSize = positive "token-size" (args.GetResult(TeacherTrainArgs.Token_Size, d.TokenSize))
          Width = positive "width" (args.GetResult(TeacherTrainArgs.Width, d.Width))
          Blocks = positive "blocks" (args.GetResult(TeacherTrainArgs.Blocks, d.Blocks))
          Layers = positive "layers" (args.GetResult(TeacherTrainArgs.Layers, d.Layers))
          HeadDim = positive "head-dim" (args.GetResult(TeacherTrainArgs.Head_Dim, d.HeadDim))
          Noise = nonNegative "noise" (args.GetResult(TeacherTrainArgs.Noise, d.Noise))
          Batch = positive "batch" (args.GetResult(TeacherTrainArgs.Batch, d.Batch)) }
    let conditional = args.Contains TeacherTrainArgs.Conditional
    let classes =
        if not conditional then 0
        elif isNull data.Labels then fail "--conditional needs labels with the data"
        else int (data.Labels.max().item<int64>()) + 1
    let steps = positive "steps" (args.GetResult(TeacherTrainArgs.Steps, 2000))
    let training =
        TeacherRunSpec.DefaultTraining(steps, shape.Batch, args.GetResult(TeacherTrainArgs.Lr, 1e-3), int64 seed,
                                       args.GetResult(TeacherTrainArgs.Save_Every, 500), args.GetResult(TeacherTrainArgs.Ema, 0.0),
                                       precision (args.TryGetResult TeacherTrainArgs.Precision))
    let spec = TeacherRunSpec(modelSpec rowShape shape (not (args.Contains TeacherTrainArgs.Shift_Only)) classes, training, dataSpec,
                              DeviceSpec(args.GetResult(TeacherTrainArgs.Device, "cpu"))).Validate()
    let teacher =
        if args.Contains TeacherTrainArgs.Resume && File.Exists out then
            let c = Nfm.Checkpoints.Checkpoint.Load(out, TrainedTeacher.Kind)
            let saved = c.DescriptionAs<TeacherRunSpec>()
            if Json.Write saved.Model <> Json.Write spec.Model || saved.Data <> spec.Data then
                fail (sprintf "--resume: '%s' was trained with another model or data" out)
            let t = TrainedTeacher.FromCheckpoint(spec, c)
            eprintfn "resuming %s at step %d of %d" out t.State.Step steps
            t
        elif File.Exists out then fail (sprintf "'%s' exists; pass --resume to continue it, or choose another --out" out)
        else TrainedTeacher.Create spec
    let test =
        if rowShape.Length = 3 && dataSpec.StartsWith("mnist:", StringComparison.OrdinalIgnoreCase) then
            Some (Nfm.Data.DataSource.Load(dataSpec, 0L, 0L, Nfm.Data.DataSplit.Test))
        elif Nfm.Data.Toy2D.IsName dataSpec then Some (Nfm.Data.DataSource.Load(dataSpec, 2000L, int64 seed + 1L))
        else None
    let evalEvery = args.GetResult(TeacherTrainArgs.Eval_Every, 0)
    let log = tensorBoard (args.TryGetResult TeacherTrainArgs.Logdir)
    let logStep = log |> Option.map (fun l -> l.Training("teacher"))
    let bar = Progress.Bar("teacher", int64 steps)
    let mutable last = nan
    let losses = Collections.Generic.List<float>()
    let start = teacher.State.Step
    let watch = Diagnostics.Stopwatch.StartNew()
    let logHeldOut (step: int64) (nll: float) (bpd: float) =
        log |> Option.iter (fun l ->
            l.Scalar("teacher/heldout_nll_nats", nll, step)
            if rowShape.Length = 3 then l.Scalar("teacher/heldout_bits_per_dim", bpd, step))
    // The record's State is the one training started from (the model and EMA are updated in place): the step comes
    // from the progress report.
    let report (t: TrainedTeacher) (step: int64) =
        test |> Option.iter (fun ds ->
            let x = ds.X.narrow(0L, 0L, min ds.X.shape[0] 2000L)
            let nll, bpd = nllOf t x ds.Labels
            logHeldOut step nll bpd
            eprintfn "\nstep %d: held-out NLL %.4f nats%s" step nll (if rowShape.Length = 3 then sprintf ", %.3f bits/dim" bpd else ""))
    let trained =
        TeacherTraining.Run(teacher, data.X, (if conditional then data.Labels else null), out,
                            Action<_>(fun p ->
                                last <- p.Loss
                                logStep |> Option.iter (fun f -> f.Invoke p)
                                losses.Add p.Loss
                                bar.Update(p.Step, sprintf "loss %.4f" p.Loss)
                                if evalEvery > 0 && p.Step % int64 evalEvery = 0L && p.Step < int64 steps then
                                    // The model and EMA are updated in place: the initial value sees the current weights.
                                    report teacher p.Step
                                    teacher.Model.train()), cancellation)
    let secs = watch.Elapsed.TotalSeconds
    let ran = trained.State.Step - start
    printfn "teacher: %d steps in %.1fs (%.2f steps/s), final loss %.5f; saved %s" ran secs (float ran / max secs 1e-9) last out
    lossPng |> Option.iter (fun p -> saveLosses p "teacher training loss" "teacher" (start + 1L) losses)
    let figures = Collections.Generic.List<string * Text.Json.Nodes.JsonNode>()
    figures.AddRange [ "checkpoint", jstr out; "steps", jint trained.State.Step; "final_loss", jnum last
                       "steps_per_second", jnum (float ran / max secs 1e-9); "teacher_id", jstr (trained.Identity()) ]
    test |> Option.iter (fun ds ->
        let nll, bpd = nllOf trained (ds.X.narrow(0L, 0L, min ds.X.shape[0] 2000L)) ds.Labels
        logHeldOut trained.State.Step nll bpd
        printfn "held-out NLL %.4f nats%s" nll (if rowShape.Length = 3 then sprintf ", %.3f bits/dim" bpd else "")
        figures.Add(("test_nll", jnum nll))
        if rowShape.Length = 3 then figures.Add(("test_bpd", jnum bpd)))
    if rowShape.Length = 3 && not cancellation.IsCancellationRequested then
        use g = new torch.Generator(uint64 seed)
        let labels = sampleLabels classes 64 None (spec.Device.ToDevice())
        let x = Teacher.Sample(trained.InferenceModel(), 64L, g, labels)
        let png = Path.ChangeExtension(out, ".samples.png")
        Nfm.FSharp.Plot.grid png 8 (x.cpu())
        log |> Option.iter (fun l -> l.Image("teacher/samples", png, trained.State.Step))
        printfn "sample grid: %s" png
    json |> Option.iter (fun p -> writeJson p (jobj (List.ofSeq figures)))
    if cancellation.IsCancellationRequested then 130 else 0

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
    let struct (z, logdet) = Teacher.Encode(teacher.InferenceModel(), x, labels)
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
        Teacher.Decode(model, z, labels, guidance, not (args.Contains TeacherDecodeArgs.Uncached))
    let x = if args.Contains TeacherDecodeArgs.Denoise then Teacher.Denoise(model, x, teacher.Spec.Model.NoiseSigma, labels) else x
    Nfm.Data.Npy.Write(out, x.cpu())
    printfn "decoded %d rows; wrote %s" z.shape[0] out
    0

let sample (args: ParseResults<TeacherSampleArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherSampleArgs.Teacher))
    let out = outputPath (args.GetResult TeacherSampleArgs.Out)
    let count = positive "count" (args.GetResult TeacherSampleArgs.Count)
    let png = args.TryGetResult TeacherSampleArgs.Png |> Option.map outputPath
    let device = teacher.Spec.Device.ToDevice()
    let labels = sampleLabels teacher.Spec.Model.Classes count (args.TryGetResult TeacherSampleArgs.Label) device
    use g = new torch.Generator(uint64 (args.GetResult(TeacherSampleArgs.Seed, 0)), device)
    let watch = Diagnostics.Stopwatch.StartNew()
    let x = Teacher.Sample(teacher.InferenceModel(), int64 count, g, labels, args.TryGetResult TeacherSampleArgs.Guidance |> Option.toNullable,
                           args.Contains TeacherSampleArgs.Denoise)
    let secs = watch.Elapsed.TotalSeconds
    Nfm.Data.Npy.Write(out, x.cpu())
    printfn "sampled %d in %.2fs; wrote %s" count secs out
    png |> Option.iter (fun p -> StudentCommands.savePng p "teacher samples" (x.cpu()))
    0

let nll (args: ParseResults<TeacherNllArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherNllArgs.Teacher))
    let spec = args.GetResult TeacherNllArgs.Data
    let json = args.TryGetResult TeacherNllArgs.Json |> Option.map outputPath
    let data = Nfm.Data.DataSource.Load(spec, dataRows spec (args.TryGetResult TeacherNllArgs.N) 2000, int64 (args.GetResult(TeacherNllArgs.Seed, 1)),
                                        Nfm.Data.DataSplit.Test, args.TryGetResult TeacherNllArgs.Labels |> Option.toObj)
    if (data.X.shape |> Array.skip 1) <> teacher.Spec.Model.InputShape then
        fail (sprintf "data rows have shape %s; the teacher expects %s" (Nfm.Shapes.Show(data.X.shape |> Array.skip 1)) (Nfm.Shapes.Show teacher.Spec.Model.InputShape))
    if teacher.Spec.Model.IsConditional && isNull data.Labels then fail "this teacher is class-conditional: the data needs labels"
    let nll, bpd = nllOf teacher data.X data.Labels
    let isImage = teacher.Spec.Model.InputShape.Length = 3
    printfn "NLL %.5f nats per sample%s over %d rows" nll (if isImage then sprintf ", %.4f bits/dim" bpd else "") data.X.shape[0]
    json
    |> Option.iter (fun p ->
        writeJson p (jobj ([ "nll_nats", jnum nll; "n", jint data.X.shape[0]; "teacher_id", jstr (teacher.Identity()) ]
                           @ (if isImage then [ "bpd", jnum bpd ] else []))))
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
    let eta = nonNegative "eta" (args.GetResult(CoupleArgs.Eta, TeacherCouplings.defaultEta teacher))
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
