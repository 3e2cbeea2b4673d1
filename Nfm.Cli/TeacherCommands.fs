/// `nfm teacher train` and `nfm teacher nll`.
module Nfm.Cli.TeacherCommands

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

let train (args: ParseResults<TeacherTrainArgs>) =
    let out = outputPath (args.GetResult TeacherTrainArgs.Out)
    let dataSpec = args.GetResult TeacherTrainArgs.Data
    // Checked before training, so that a mistyped --json folder does not cost the whole run.
    let json = args.TryGetResult TeacherTrainArgs.Json |> Option.map outputPath
    let lossPng = args.TryGetResult TeacherTrainArgs.Loss_Png |> Option.map outputPath
    let seed = args.GetResult(TeacherTrainArgs.Seed, 0)
    let data = loadTraining dataSpec (args.TryGetResult TeacherTrainArgs.N) (int64 seed) (args.TryGetResult TeacherTrainArgs.Labels)
    let isImage = data.X.dim() = 4L
    let opt name (v: int option) = v |> Option.map (positive name)
    let conditional = args.Contains TeacherTrainArgs.Conditional
    if conditional && isNull data.Labels then fail "--conditional needs labels with the data"
    let steps = positive "steps" (args.GetResult(TeacherTrainArgs.Steps, 2000))
    let settings =
        { Teacher.settings with
            TokenSize = opt "token-size" (args.TryGetResult TeacherTrainArgs.Token_Size)
            Width = opt "width" (args.TryGetResult TeacherTrainArgs.Width)
            Blocks = opt "blocks" (args.TryGetResult TeacherTrainArgs.Blocks)
            Layers = opt "layers" (args.TryGetResult TeacherTrainArgs.Layers)
            HeadDim = opt "head-dim" (args.TryGetResult TeacherTrainArgs.Head_Dim)
            Noise = args.TryGetResult TeacherTrainArgs.Noise |> Option.map (nonNegative "noise")
            Batch = opt "batch" (args.TryGetResult TeacherTrainArgs.Batch)
            Affine = not (args.Contains TeacherTrainArgs.Shift_Only)
            Conditional = conditional
            Steps = steps
            LearningRate = args.GetResult(TeacherTrainArgs.Lr, 1e-3)
            Seed = int64 seed
            SaveEvery = args.GetResult(TeacherTrainArgs.Save_Every, 500)
            Ema = args.GetResult(TeacherTrainArgs.Ema, 0.0)
            Device = args.GetResult(TeacherTrainArgs.Device, "cpu") }
    let settings = { settings with Precision = precision (args.TryGetResult TeacherTrainArgs.Precision) }
    let spec = Teacher.spec settings data
    if File.Exists out && not (args.Contains TeacherTrainArgs.Resume) then
        fail (sprintf "'%s' exists; pass --resume to continue it, or choose another --out" out)
    let teacher = Teacher.start Reporter.silent (Some out) spec
    let startStep = teacher.State.Step
    if File.Exists out then eprintfn "resuming %s at step %d of %d" out startStep steps
    let test = Data.heldOut dataSpec (int64 seed) 2000
    let evalEvery = args.GetResult(TeacherTrainArgs.Eval_Every, 0)
    let log = tensorBoard (args.TryGetResult TeacherTrainArgs.Logdir)
    let logStep = log |> Option.map (fun l -> l.Training("teacher"))
    let losses = Collections.Generic.List<float>()
    let watch = Diagnostics.Stopwatch.StartNew()
    let heldOut (t: Nfm.Invert.TeacherModel) (step: int64) =
        test |> Option.map (fun ds ->
            let struct (nll, bpd) = Nfm.Invert.Teacher.MeanNll(t, ds.X, ds.Labels)
            log |> Option.iter (fun l ->
                l.Scalar("teacher/heldout_nll_nats", nll, step)
                if isImage then l.Scalar("teacher/heldout_bits_per_dim", bpd, step))
            nll, bpd)
    let describeNll (nll, bpd) = sprintf "held-out NLL %.4f nats%s" nll (if isImage then sprintf ", %.3f bits/dim" bpd else "")
    // The model and EMA are updated in place while the teacher trains: the started teacher sees the current weights.
    let onStep (p: Nfm.Training.TrainingProgress) =
        logStep |> Option.iter (fun f -> f.Invoke p)
        losses.Add p.Loss
        if evalEvery > 0 && p.Step % int64 evalEvery = 0L && p.Step < int64 steps then
            heldOut (teacher.InferenceModel()) p.Step |> Option.iter (fun r -> eprintfn "\nstep %d: %s" p.Step (describeNll r))
            teacher.Model.train()
    let trained = Teacher.continueIn { Checkpoint = Some out; Reporter = Progress.reporter; Cancel = cancellation; OnStep = onStep } data teacher
    let secs = watch.Elapsed.TotalSeconds
    let ran = trained.State.Step - startStep
    let last = if losses.Count > 0 then losses[losses.Count - 1] else nan
    printfn "teacher: %d steps in %.1fs (%.2f steps/s), final loss %.5f; saved %s" ran secs (float ran / max secs 1e-9) last out
    lossPng |> Option.iter (fun p -> saveLosses p "teacher training loss" "teacher" (startStep + 1L) losses)
    let figures = Collections.Generic.List<string * Text.Json.Nodes.JsonNode>()
    figures.AddRange [ "checkpoint", jstr out; "steps", jint trained.State.Step; "final_loss", jnum last
                       "steps_per_second", jnum (float ran / max secs 1e-9); "teacher_id", jstr (trained.Identity()) ]
    heldOut (trained.InferenceModel()) trained.State.Step
    |> Option.iter (fun (nll, bpd) ->
        printfn "%s" (describeNll (nll, bpd))
        figures.Add(("test_nll", jnum nll))
        if isImage then figures.Add(("test_bpd", jnum bpd)))
    if isImage then
        let x = Teacher.sample 64L (int64 seed) trained
        let png = Path.ChangeExtension(out, ".samples.png")
        Nfm.FSharp.Plot.grid png 8 (x.cpu())
        log |> Option.iter (fun l -> l.Image("teacher/samples", png, trained.State.Step))
        printfn "sample grid: %s" png
    json |> Option.iter (fun p -> writeJson p (jobj (List.ofSeq figures)))
    0

let nll (args: ParseResults<TeacherNllArgs>) =
    let teacher = TrainedTeacher.Load(existing "teacher checkpoint" (args.GetResult TeacherNllArgs.Teacher))
    let spec = args.GetResult TeacherNllArgs.Data
    let json = args.TryGetResult TeacherNllArgs.Json |> Option.map outputPath
    let data = Nfm.Data.DataSource.Load(spec, dataRows spec (args.TryGetResult TeacherNllArgs.N) 2000, int64 (args.GetResult(TeacherNllArgs.Seed, 1)),
                                        Nfm.Descriptions.DataSplit.Test, args.TryGetResult TeacherNllArgs.Labels |> Option.toObj)
    if (data.X.shape |> Array.skip 1) <> teacher.Spec.Model.InputShape then
        fail (sprintf "data rows have shape %s; the teacher expects %s" (Nfm.Shapes.Show(data.X.shape |> Array.skip 1)) (Nfm.Shapes.Show teacher.Spec.Model.InputShape))
    if teacher.Spec.Model.IsConditional && isNull data.Labels then fail "this teacher is class-conditional: the data needs labels"
    let struct (nll, bpd) = Nfm.Invert.Teacher.MeanNll(teacher.InferenceModel(), data.X, data.Labels)
    let isImage = teacher.Spec.Model.InputShape.Length = 3
    printfn "NLL %.5f nats per sample%s over %d rows" nll (if isImage then sprintf ", %.4f bits/dim" bpd else "") data.X.shape[0]
    json
    |> Option.iter (fun p ->
        writeJson p (jobj ([ "nll_nats", jnum nll; "n", jint data.X.shape[0]; "teacher_id", jstr (teacher.Identity()) ]
                           @ (if isImage then [ "bpd", jnum bpd ] else []))))
    0
