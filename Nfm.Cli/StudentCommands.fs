/// `nfm student train` and `nfm student sample`.
module Nfm.Cli.StudentCommands

open System
open System.IO
open Argu
open TorchSharp
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.Descriptions
open Nfm.FSharp
open Nfm.Regress
open Nfm.Training
open Nfm.Sampling

/// The CLI's time-sampling spelling: uniform | logit-normal[:MEAN:STD].
let parseTimes (s: string) =
    match s.Trim().ToLowerInvariant().Split(':') with
    | [| "uniform" |] -> UniformTimes
    | [| "logit-normal" |] -> LogitNormal(0.0, 1.0)
    | [| "logit-normal"; m; sd |] ->
        match Double.TryParse m, Double.TryParse sd with
        | (true, m), (true, sd) when sd > 0.0 -> LogitNormal(m, sd)
        | _ -> fail (sprintf "--time-sampling '%s': expected logit-normal:MEAN:STD with STD > 0" s)
    | _ -> fail (sprintf "unknown --time-sampling '%s'; valid: uniform, logit-normal[:MEAN:STD]" s)

let train (args: ParseResults<StudentTrainArgs>) =
    let out = outputPath (args.GetResult StudentTrainArgs.Out)
    // The library's defaults (Student.settings) are the command line's: one place says what they are.
    let defaults = Student.settings
    let steps = positive "steps" (args.GetResult(StudentTrainArgs.Steps, defaults.Steps))
    let batch = positive "batch" (args.GetResult(StudentTrainArgs.Batch, defaults.Batch))
    let saveEvery = args.GetResult(StudentTrainArgs.Save_Every, defaults.SaveEvery)
    if saveEvery < 0 then fail (sprintf "--save-every must be >= 0, got %d" saveEvery)
    // Checked before training, so that a mistyped --json folder does not cost the whole run.
    let json = args.TryGetResult StudentTrainArgs.Json |> Option.map outputPath
    let lossPng = args.TryGetResult StudentTrainArgs.Loss_Png |> Option.map outputPath
    let seed = args.GetResult(StudentTrainArgs.Seed, 0)
    let couplingText = args.GetResult StudentTrainArgs.Coupling
    let dataSpec = args.GetResult StudentTrainArgs.Data
    let data = loadTraining dataSpec (args.TryGetResult StudentTrainArgs.N) (int64 seed) (args.TryGetResult StudentTrainArgs.Labels)
    let couplingSpec = CouplingSpec.Parse couplingText
    for path in [ couplingSpec.StudentPath; couplingSpec.TeacherPath ] do
        if not (isNull path) then existing "coupling's checkpoint" path |> ignore
    let coupling = Couple.ofSpec couplingSpec data
    let settings =
        { defaults with
            Width = positive "width" (args.GetResult(StudentTrainArgs.Width, defaults.Width))
            Depth = positive "depth" (args.GetResult(StudentTrainArgs.Depth, defaults.Depth))
            Steps = steps; Batch = batch; SaveEvery = saveEvery
            LearningRate = args.GetResult(StudentTrainArgs.Lr, defaults.LearningRate)
            Warmup = args.GetResult(StudentTrainArgs.Warmup, defaults.Warmup)
            Ema = args.GetResult(StudentTrainArgs.Ema, defaults.Ema)
            Seed = int64 seed
            Times = parseTimes (args.GetResult(StudentTrainArgs.Time_Sampling, "uniform"))
            Device = args.GetResult(StudentTrainArgs.Device, "cpu")
            Conditional = args.Contains StudentTrainArgs.Conditional
            Architecture =
                match args.GetResult(StudentTrainArgs.Net, "mlp").ToLowerInvariant() with
                | "mlp" -> Architecture.Mlp
                | "unet" | "u-net" -> Architecture.UNet
                | "sit" -> Architecture.Sit
                | other -> fail (sprintf "--net '%s': expected mlp, unet or sit" other) }
    let settings = { settings with Precision = precision (args.TryGetResult StudentTrainArgs.Precision) }
    let spec = Student.spec settings couplingText data
    if File.Exists out && not (args.Contains StudentTrainArgs.Resume) then
        fail (sprintf "'%s' exists; pass --resume to continue it, or choose another --out" out)
    let student = Student.start Reporter.silent (Some out) spec
    let startStep = student.State.Step
    if File.Exists out then eprintfn "resuming %s at step %d of %d" out startStep steps
    let log = tensorBoard (args.TryGetResult StudentTrainArgs.Logdir)
    let logStep = log |> Option.map (fun l -> l.Training("student"))
    let mutable lastLoss = nan
    let losses = Collections.Generic.List<float>()
    let watch = Diagnostics.Stopwatch.StartNew()
    let observe (p: Nfm.Training.TrainingProgress) =
        lastLoss <- p.Loss
        logStep |> Option.iter (fun f -> f.Invoke p)
        losses.Add p.Loss
    // The library's trainer (which also refuses a coupling text that misstates the coupling), continuing `out`; Ctrl+C
    // saves what was trained and stops with exit code 130 (Common.fs).
    let trained =
        Student.trainIn { Checkpoint = Some out; Reporter = Reporter.labelled "student" Progress.reporter; Cancel = cancellation; OnStep = observe }
                        coupling couplingText settings data
    let secs = watch.Elapsed.TotalSeconds
    let ran = trained.State.Step - startStep
    printfn "student: %d steps in %.1fs (%.1f steps/s), final loss %.5f, skipped %d; saved %s"
        ran secs (float ran / max secs 1e-9) lastLoss trained.State.SkippedSteps out
    lossPng |> Option.iter (fun p -> saveLosses p (sprintf "student training loss, %s coupling" couplingText) "student" (startStep + 1L) losses)
    json
    |> Option.iter (fun path ->
        writeJson path (jobj [ "checkpoint", jstr out; "steps", jint trained.State.Step; "final_loss", jnum lastLoss
                               "steps_per_second", jnum (float ran / max secs 1e-9); "skipped_steps", jint (int64 trained.State.SkippedSteps)
                               "coupling", jstr couplingText; "data", jstr dataSpec ]))
    if cancellation.IsCancellationRequested then 130 else 0

/// Samples of a loaded student (EMA weights), with the solver and grid asked for; returns samples, NFE and seconds.
let sampleStudent (student: Student) (count: int) (solver: Solver) (grid: Grid) (seed: int64) (cfg: float) (label: int option) =
    let labels = Student.labels (int64 count) label student
    let watch = Diagnostics.Stopwatch.StartNew()
    let x, nfe = Student.draw { Count = int64 count; Seed = seed; Solver = solver; Grid = grid; Labels = labels; Guidance = cfg } student
    x, nfe, watch.Elapsed.TotalSeconds

/// Writes a PNG of samples: a scatter for 2-D points, a grid for images.
let savePng (path: string) (title: string) (x: torch.Tensor) =
    if not (Plot.canDraw x) then fail (sprintf "--png: can only draw 2-D points or images, samples have shape %s" (Nfm.Shapes.Show x))
    Plot.samples (outputPath path) title x

let sample (args: ParseResults<StudentSampleArgs>) =
    let path = existing "student checkpoint" (args.GetResult StudentSampleArgs.Student)
    let out = outputPath (args.GetResult StudentSampleArgs.Out)
    let count = positive "count" (args.GetResult StudentSampleArgs.Count)
    let solverName = args.GetResult(StudentSampleArgs.Solver, "euler")
    let steps = args.GetResult(StudentSampleArgs.Nfe, 4)
    if SolverMethods.Parse solverName <> SolverMethod.Dopri5 then positive "nfe" steps |> ignore
    let solver = Spec.parseSolver solverName steps (args.GetResult(StudentSampleArgs.Rtol, 1e-5)) (args.GetResult(StudentSampleArgs.Atol, 1e-5))
    let grid = Spec.parseGrid (args.GetResult(StudentSampleArgs.Grid, "quadratic"))
    let cfg = args.GetResult(StudentSampleArgs.Cfg, 0.0)
    if not (Double.IsFinite cfg) then fail (sprintf "--cfg must be a finite number, got %g" cfg)
    // Every output path is checked before the work, so that a failing command writes nothing.
    let png = args.TryGetResult StudentSampleArgs.Png |> Option.map outputPath
    let json = args.TryGetResult StudentSampleArgs.Json |> Option.map outputPath
    let student = Student.Load path
    let x, nfe, secs = sampleStudent student count solver grid (int64 (args.GetResult(StudentSampleArgs.Seed, 0))) cfg (args.TryGetResult StudentSampleArgs.Label)
    Nfm.Data.Npy.Write(out, x)
    printfn "sampled %d with %s (%s grid), NFE %d, %.3fs; wrote %s" count (Spec.solverName solver) (Spec.gridName grid) nfe secs out
    png |> Option.iter (fun p -> savePng p (sprintf "%s, NFE %d" (Path.GetFileName path) nfe) x)
    json
    |> Option.iter (fun p ->
        writeJson p (jobj [ "samples", jstr out; "count", jint (int64 count); "solver", jstr (Spec.solverName solver)
                            "grid", jstr (Spec.gridName grid); "nfe", jint (int64 nfe); "seconds", jnum secs
                            "seconds_per_1000", jnum (secs * 1000.0 / float count) ]))
    0
