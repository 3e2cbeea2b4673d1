/// The comparison experiment behind `nfm demo` and `nfm compare`: students with the same network, steps, batch and
/// seed on different couplings, each sampled at several step counts and scored against held-out data.
module Nfm.Cli.Compare

open System
open System.IO
open System.Text.Json.Nodes
open TorchSharp
open Nfm.Cli.Common
open Nfm.FSharp
open Nfm.Regress

/// One row of results.json (CLI.md fixes these fields).
type Row =
    { Method: string; Solver: string; Grid: string; Steps: int; Nfe: int; Value: float; SecondsPer1000: float }

let rowJson (r: Row) : JsonNode =
    jobj [ "method", jstr r.Method; "solver", jstr r.Solver; "grid", jstr r.Grid; "steps", jint (int64 r.Steps)
           "nfe", jint (int64 r.Nfe); "value", jnum r.Value; "seconds_per_1000", jnum r.SecondsPer1000 ]

/// A student method to compare: its name, the coupling's CLI spelling and the coupling itself.
type Method = { Name: string; CouplingText: string; Coupling: Nfm.Couple.Coupling }

/// The quality of samples against the reference set (W2 on flattened rows).
let quality (samples: torch.Tensor) (reference: torch.Tensor) = Metrics.w2 samples reference

/// A checkpoint that an interrupted run of the same comparison left in the output folder is continued, after checking
/// that it was made with the same description; otherwise a fresh one is made.
let resumable (what: string) (path: string) (wanted: string) (load: string -> 'T) (specOf: 'T -> string) (fresh: unit -> 'T) =
    if File.Exists path then
        let t = load path
        if specOf t <> wanted then
            fail (sprintf "%s holds a %s made with other settings than this run; use another --out or remove the file" path what)
        eprintfn "%s: continuing from %s" what path
        t
    else fresh ()

/// Trains (or continues) one student; returns it with its final loss and the training seconds of this process.
let trainStudent (log: Nfm.Regress.TensorBoardLog option) (settings: StudentSettings) (architecture: Nfm.Descriptions.Architecture) (data: Nfm.Data.Dataset) (outDir: string) (m: Method) =
    let spec0 = Student.spec settings m.CouplingText data
    let net = Nfm.Descriptions.VelocityNetSpec(spec0.Net.InputShape, spec0.Net.Width, spec0.Net.Depth, spec0.Net.Activation,
                                                spec0.Net.TimeFeatures, spec0.Net.Classes, architecture)
    let spec = Nfm.Descriptions.StudentSpec(net, spec0.Path, spec0.Training, spec0.Coupling, spec0.Data, spec0.Device, spec0.LabelDropout).Validate()
    let path = Path.Combine(outDir, m.Name + ".ckpt")
    let start = resumable (m.Name + " student") path (Nfm.Descriptions.Json.Write spec) Student.Load
                          (fun s -> Nfm.Descriptions.Json.Write s.Spec) (fun () -> Student.Create spec)
    let logStep = log |> Option.map (fun l -> l.Training(m.Name))
    let bar = Progress.Bar(sprintf "%-12s" m.Name, int64 settings.Steps)
    let mutable last = nan
    let watch = Diagnostics.Stopwatch.StartNew()
    let st =
        StudentTraining.Run(start, data.X, null, m.Coupling, path,
                            Action<_>(fun p ->
                                last <- p.Loss
                                logStep |> Option.iter (fun f -> f.Invoke p)
                                bar.Update(p.Step, sprintf "loss %.4f" p.Loss)), cancellation)
    if cancellation.IsCancellationRequested then fail "interrupted; trained students so far are saved in the output folder"
    eprintfn "%s: final loss %.4f, %.1fs" m.Name last watch.Elapsed.TotalSeconds
    st, last, watch.Elapsed.TotalSeconds

/// Samples a student at each step count (the paper's solver choice: Euler up to 4 steps, Heun above) from fresh noise,
/// or from the given starting points, and scores the samples.
let evaluateOne (log: Nfm.Regress.TensorBoardLog option) (quality: torch.Tensor -> torch.Tensor -> float) (metric: string) (name: string) (st: Student) (x0: torch.Tensor option)
                (stepCounts: int list) (grid: Grid) (count: int) (reference: torch.Tensor) (seed: int64) (outDir: string) =
    [ for steps in stepCounts do
        let solver = Spec.paperSolver steps
        let x, nfe, secs =
            match x0 with
            | None -> StudentCommands.sampleStudent st count solver grid seed 0.0 None
            | Some z ->
                let watch = Diagnostics.Stopwatch.StartNew()
                let r = Nfm.Sampling.StudentSampler.FromNoise(st.SamplingNet(), z, Spec.solver grid solver)
                r.X, r.Nfe, watch.Elapsed.TotalSeconds
        let value = quality x reference
        log |> Option.iter (fun l -> l.Scalar(sprintf "%s/%s_by_sampling_steps" name metric, value, int64 steps))
        if steps = List.max stepCounts || steps = 1 then
            let png = Path.Combine(outDir, sprintf "samples-%s-%dstep.png" name steps)
            StudentCommands.savePng png (sprintf "%s, %d %s steps, %s %.3f" name steps (Spec.solverName solver) metric value) x
            log |> Option.iter (fun l -> l.Image(sprintf "%s/samples_%dstep" name steps, png, int64 steps))
        eprintfn "%s, %d steps: %s %.4f" name steps metric value
        yield { Method = name; Solver = Spec.solverName solver; Grid = Spec.gridName grid; Steps = steps; Nfe = nfe
                Value = value; SecondsPer1000 = secs * 1000.0 / float count } ]

/// Rows of the teacher (autoregressive sampling, not solver steps) are reported beside the table and drawn as levels.
let isTeacherRow (r: Row) = r.Method.StartsWith "teacher"

/// A markdown table: one row per student method, one column per step count.
let markdown (rows: Row list) (metric: string) =
    let rows = rows |> List.filter (isTeacherRow >> not)
    let steps = rows |> List.map (fun r -> r.Steps) |> List.distinct |> List.sort
    let methods = rows |> List.map (fun r -> r.Method) |> List.distinct
    let header = sprintf "| method | %s |" (steps |> List.map (sprintf "%d steps") |> String.concat " | ")
    let sep = sprintf "|---|%s" (steps |> List.map (fun _ -> "---:|") |> String.concat "")
    let line m =
        let cells = steps |> List.map (fun s -> match rows |> List.tryFind (fun r -> r.Method = m && r.Steps = s) with
                                                | Some r -> sprintf "%.4f" r.Value | None -> "")
        sprintf "| %s | %s |" m (String.concat " | " cells)
    String.concat "\n" ([ sprintf "%s (lower is better)" metric; ""; header; sep ] @ (methods |> List.map line)) + "\n"

/// Writes results.json, results.md and the quality-against-steps plot.
let writeResults (outDir: string) (dataName: string) (metric: string) (rows: Row list) (extra: (string * JsonNode) list) =
    let json = jobj ([ "data", jstr dataName; "metric", jstr metric; "rows", jarr (rows |> List.map rowJson) ] @ extra)
    writeJson (Path.Combine(outDir, "results.json")) json
    let md = markdown rows metric
    Nfm.Data.AtomicFile.WriteAllBytes(Path.Combine(outDir, "results.md"), ReadOnlyMemory(Text.Encoding.UTF8.GetBytes md))
    let students = rows |> List.filter (isTeacherRow >> not)
    let lo, hi = students |> List.map (fun r -> float r.Steps) |> List.min, students |> List.map (fun r -> float r.Steps) |> List.max
    let series =
        students |> List.groupBy (fun r -> r.Method)
        |> List.map (fun (m, rs) ->
            let rs = rs |> List.sortBy (fun r -> r.Steps)
            Nfm.Plots.LineSeries(m, rs |> List.map (fun r -> float r.Steps) |> Array.ofList, rs |> List.map (fun r -> r.Value) |> Array.ofList))
    // The teacher samples autoregressively, not in solver steps: drawn as a dashed level for reference.
    let series =
        series @ (rows |> List.filter isTeacherRow
                  |> List.map (fun r -> Nfm.Plots.LineSeries(sprintf "%s (%d sequential steps)" r.Method r.Nfe, [| lo; hi |], [| r.Value; r.Value |], Reference = true)))
    Plot.lines (Path.Combine(outDir, "quality.png")) (sprintf "%s: %s against sampling steps" dataName metric) "sampling steps" metric true true series
    md

/// Training budgets: teacher and student steps and batches, the reference set's size, the sampling step counts, and
/// optionally a second, smaller teacher budget whose NFM student shows how the students follow the teacher.
type Budget =
    { TeacherSteps: int; StudentSteps: int; TeacherBatch: int; StudentBatch: int; EvalCount: int; Steps: int list
      SmallTeacherSteps: int option }

// The quick 2-D teacher trains 3,000 steps: chosen by the held-out NLL (on rows held out of the training data) of the
// recipe study in results/teacher-recipes (scripts/teacher-recipes.fsx, five seeds each). At 1,500 steps the teacher
// depended on its seed (held-out NLL 3.046..3.096); learning rate, warm-up, EMA and batch 1,024 did not narrow the
// spread, twice the steps did (3.023..3.045).
let budgetFor (name: string) (isImage: bool) =
    let twoD = [ 1; 2; 4; 8; 16; 32 ]
    let images = [ 1; 2; 4; 8; 16 ]
    match name.ToLowerInvariant(), isImage with
    | "quick", false -> { TeacherSteps = 3000; StudentSteps = 2000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = twoD; SmallTeacherSteps = None }
    | "standard", false -> { TeacherSteps = 10000; StudentSteps = 10000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = twoD; SmallTeacherSteps = None }
    | "quick", true -> { TeacherSteps = 300; StudentSteps = 300; TeacherBatch = 64; StudentBatch = 64; EvalCount = 500; Steps = images; SmallTeacherSteps = Some 100 }
    | "standard", true -> { TeacherSteps = 4000; StudentSteps = 2000; TeacherBatch = 64; StudentBatch = 64; EvalCount = 2000; Steps = images; SmallTeacherSteps = Some 1000 }
    | n, img ->
        match Int32.TryParse n with
        | true, v when v > 0 ->
            let b = if img then 64 else 256
            { TeacherSteps = v; StudentSteps = v; TeacherBatch = b; StudentBatch = b; EvalCount = (if img then 1000 else 2000)
              Steps = (if img then images else twoD); SmallTeacherSteps = None }
        | _ -> fail (sprintf "--budget '%s': expected quick, standard or a positive number of steps" name)

/// The data of a comparison and its held-out reference set: a fresh draw for built-in sets, the test split for
/// MNIST, the last 20% (at most 2,000 rows) of a user's .npy.
let splitData (spec: string) (labels: string option) (seed: int64) (evalCount: int) =
    if Nfm.Data.Toy2D.IsName spec then
        Data.toy spec 20000L seed, (Data.toy spec (int64 evalCount) (seed + 1L)).X
    elif spec.StartsWith("mnist:", StringComparison.OrdinalIgnoreCase) then
        let train = Nfm.Data.DataSource.Load(spec, 0L, seed, Nfm.Data.DataSplit.Train)
        let test = Nfm.Data.DataSource.Load(spec, 0L, seed, Nfm.Data.DataSplit.Test)
        train, test.X.narrow(0L, 0L, min test.X.shape[0] (int64 evalCount))
    else
        let all = Nfm.Data.DataSource.Load(spec, 0L, seed, Nfm.Data.DataSplit.Train, Option.toObj labels)
        let n = all.X.shape[0]
        let held = min 2000L (n / 5L)
        if held < 10L then fail (sprintf "%s has %d rows; compare needs at least 50 to hold out a reference set" spec n)
        let train = Nfm.Data.Dataset(all.X.narrow(0L, 0L, n - held), (if isNull all.Labels then null else all.Labels.narrow(0L, 0L, n - held)), all.Name)
        train, all.X.narrow(0L, n - held, held)

/// What one teacher budget produced: the teacher, its figures on the held-out set, and its NFM pairs.
type TeacherResult =
    { Steps: int; Teacher: Nfm.Invert.TrainedTeacher; Loss: float; TrainSeconds: float; Nll: float; Bpd: float
      Value: float; ValueDenoised: float; SampleSeconds: float; Nfe: int; Pairs: Nfm.Couple.TeacherPairs; PairsPath: string
      EncodesPerSecond: float; Gap: Nfm.Metrics.StandardNormalGap }

let teacherJson (isImage: bool) (t: TeacherResult) : JsonNode =
    jobj [ "steps", jint (int64 t.Steps); "final_loss", jnum t.Loss; "train_seconds", jnum t.TrainSeconds
           "test_nll_nats", jnum t.Nll; "test_bpd", (if isImage then jnum t.Bpd else jstr "n/a")
           "value", jnum t.Value; "value_denoised", jnum t.ValueDenoised; "nfe", jint (int64 t.Nfe)
           "seconds_per_1000", jnum (t.SampleSeconds * 1000.0)
           "encodes_per_second", jnum t.EncodesPerSecond; "id", jstr t.Pairs.Spec.TeacherId
           "sigma_f", jnum t.Pairs.Spec.SigmaF
           "encodings_frechet_to_standard_normal", jnum t.Gap.Distance
           "encodings_covariance_min_eigenvalue", jnum t.Gap.MinEigenvalue
           "encodings_covariance_max_eigenvalue", jnum t.Gap.MaxEigenvalue ]

/// The whole experiment: teacher, NFM coupling, three students (and, with a second teacher budget, a fourth NFM
/// student), quality against steps, diagnostics and latency. With two workers the students that need no teacher train
/// on a second thread while the teacher trains (every piece has its own seeded generator, so the figures do not depend
/// on the number of workers). Checkpoints in the output folder are continued when the command is run again.
/// Returns the markdown summary.
let run (command: string) (log: Nfm.Regress.TensorBoardLog option) (dataSpec: string) (labels: string option) (outDir: string) (budgetName: string) (seed: int64) (grid: Grid) (eta: float option)
        (featureClassifier: unit -> Nfm.Metrics.FeatureClassifier) (workers: int) =
    if workers < 1 || workers > 2 then fail (sprintf "--workers %d: expected 1 or 2" workers)
    let probe = Nfm.Data.DataSource.Load(dataSpec, 16L, seed, Nfm.Data.DataSplit.Train, Option.toObj labels)
    let isImage = probe.X.dim() = 4L
    let budget = budgetFor budgetName isImage
    let data, reference = splitData dataSpec labels seed budget.EvalCount
    let reference = if reference.shape[0] > int64 budget.EvalCount then reference.narrow(0L, 0L, int64 budget.EvalCount) else reference
    let evalCount = int reference.shape[0]
    let rowShape = data.X.shape |> Array.skip 1
    eprintfn "compare on %s: %d training rows, %d held-out, budget %s (teacher %d steps%s, students %d steps), %d worker(s)"
        dataSpec data.X.shape[0] evalCount budgetName budget.TeacherSteps
        (match budget.SmallTeacherSteps with Some s -> sprintf " and %d" s | None -> "") budget.StudentSteps workers
    // Images are scored by FD-MNIST (Frechet distance of the feature classifier's features), vectors by exact W2.
    let isMnist = isImage && dataSpec.StartsWith("mnist:", StringComparison.OrdinalIgnoreCase)
    let classifier = lazy (featureClassifier ())
    let metric, quality =
        if isMnist then "fd", (fun (x: torch.Tensor) (r: torch.Tensor) -> Nfm.Metrics.FeatureClassifier.FdMnist(classifier.Force(), x, r))
        else "w2", quality
    let eta = defaultArg eta (TeacherCommands.defaultShape rowShape).Noise
    let settings =
        { Student.settings with
            Steps = budget.StudentSteps; Batch = budget.StudentBatch; Seed = seed
            SaveEvery = (if isImage then 500 else 0)
            Width = (if isImage then (let struct (w, _) = Nfm.Nets.VelocityUNet.MnistCpu in w) else 256); Depth = 3
            Times = (if isImage then LogitNormal(0.0, 1.0) else UniformTimes) }
    let architecture = if isImage then Nfm.Descriptions.Architecture.UNet else Nfm.Descriptions.Architecture.Mlp
    let studentRows (m: Method) =
        let st, loss, secs = trainStudent log settings architecture data outDir m
        st, loss, secs, evaluateOne log quality metric m.Name st None budget.Steps grid evalCount reference (seed + 2L) outDir
    // Path curvature (rectified-flow sense: 256 noise rows, 16 Heun steps, uniform grid) and the student's held-out
    // negative log-likelihood per dimension by integrating the divergence (8 RK4 steps; exact for vectors, Hutchinson
    // with 4 Rademacher probes per evaluation on 64 rows for images).
    let studentDiagnostics (st: Student) =
        let field = Nfm.Sampling.StudentSampler.Field(st.SamplingNet())
        use g = new torch.Generator(uint64 (seed + 9L))
        let x0 = torch.randn(Array.append [| 256L |] rowShape, generator = g)
        let curvature = Nfm.Metrics.PathCurvature.Measure(field, x0, Spec.solver Uniform (Heun 16))
        let rows = if isImage then 64L else min reference.shape[0] 2000L
        let x1 = reference.narrow(0L, 0L, rows)
        let estimator = if isImage then Nfm.Metrics.DivergenceEstimator.HutchinsonRademacher else Nfm.Metrics.DivergenceEstimator.Exact
        let logp = Nfm.Metrics.Divergence.StudentLogLikelihood(field, x1, 8, estimator, 4, g)
        let d = float (x1.numel() / rows)
        curvature.PerDimension, -(logp.mean().item<float32>() |> float) / d

    /// A teacher at a budget: trained (or continued), scored on the held-out set, and its NFM pairs (four noise draws
    /// per row: one encode pass over the data instead of one per training batch).
    let teacherChain (steps: int) (suffix: string) =
        let tshape = { TeacherCommands.defaultShape rowShape with Batch = budget.TeacherBatch }
        let tshape = if isImage && budgetName = "quick" then { tshape with Width = 64; Layers = 2 } else tshape
        let tspec =
            Nfm.Invert.TeacherRunSpec(TeacherCommands.modelSpec rowShape tshape true 0,
                                      Nfm.Invert.TeacherRunSpec.DefaultTraining(steps, budget.TeacherBatch, (if isImage then 2e-3 else 1e-3), seed,
                                                                                (if isImage then 250 else 0)),
                                      dataSpec, Nfm.Descriptions.DeviceSpec("cpu")).Validate()
        let path = Path.Combine(outDir, sprintf "teacher%s.ckpt" suffix)
        let start = resumable "teacher" path (Nfm.Descriptions.Json.Write tspec) Nfm.Invert.TrainedTeacher.Load
                              (fun t -> Nfm.Descriptions.Json.Write t.Spec) (fun () -> Nfm.Invert.TrainedTeacher.Create tspec)
        let logStep = log |> Option.map (fun l -> l.Training("teacher" + suffix))
        let bar = Progress.Bar(sprintf "%-12s" ("teacher" + suffix), int64 steps)
        let mutable loss = nan
        let tw = Diagnostics.Stopwatch.StartNew()
        let teacher =
            Nfm.Invert.TeacherTraining.Run(start, data.X, null, path,
                                           Action<_>(fun p ->
                                               loss <- p.Loss
                                               logStep |> Option.iter (fun f -> f.Invoke p)
                                               bar.Update(p.Step, sprintf "loss %.4f" p.Loss)), cancellation)
        if cancellation.IsCancellationRequested then fail "interrupted; the teacher trained so far is saved in the output folder"
        let trainSeconds = tw.Elapsed.TotalSeconds
        let model = teacher.InferenceModel()
        let nll, bpd = TeacherCommands.nllOf teacher reference null
        // The teacher's own samples, timed, then scored as they are and after one denoising step.
        use g = new torch.Generator(uint64 (seed + 3L))
        let sw = Diagnostics.Stopwatch.StartNew()
        let samples = Nfm.Invert.Teacher.Sample(model, int64 evalCount, g)
        let sampleSecs = sw.Elapsed.TotalSeconds / float evalCount
        let denoised =
            torch.cat([| for i in 0L .. 250L .. int64 evalCount - 1L ->
                          let chunk = samples.narrow(0L, i, min 250L (int64 evalCount - i))
                          Nfm.Invert.Teacher.Denoise(model, chunk, model.Spec.NoiseSigma).detach() |], 0L)
        let value, valueDenoised = quality samples reference, quality denoised reference
        let nfe = int (int64 tspec.Model.Blocks * (tspec.Model.Tokens - 1L))
        StudentCommands.savePng (Path.Combine(outDir, sprintf "samples-teacher%s.png" suffix)) (sprintf "teacher%s, %s %.3f" suffix metric value) samples
        log |> Option.iter (fun l ->
            let step = int64 teacher.State.Step
            l.Scalar(sprintf "teacher%s/heldout_nll_nats" suffix, nll, step)
            if isImage then l.Scalar(sprintf "teacher%s/heldout_bits_per_dim" suffix, bpd, step)
            l.Scalar(sprintf "teacher%s/%s" suffix metric, value, step)
            l.Image(sprintf "teacher%s/samples" suffix, Path.Combine(outDir, sprintf "samples-teacher%s.png" suffix), step))
        StudentCommands.savePng (Path.Combine(outDir, sprintf "samples-teacher%s-denoised.png" suffix))
            (sprintf "teacher%s denoised, %s %.3f" suffix metric valueDenoised) denoised
        eprintfn "teacher%s: %s %.4f (denoised %.4f), held-out NLL %.4f nats%s" suffix metric value valueDenoised nll
            (if isImage then sprintf ", %.4f bits/dim" bpd else "")
        // Its NFM pairs, continued from a partial file when interrupted.
        let pairsPath = Path.Combine(outDir, sprintf "nfm%s.pairs" suffix)
        let id = teacher.Identity()
        let existing =
            if not (File.Exists pairsPath) then None
            else
                let p = Nfm.Couple.TeacherPairs.Load pairsPath
                if p.Spec.TeacherId = id && p.Spec.Draws = 4 && p.Spec.Eta = eta && p.Spec.Seed = seed then Some p else None
        let pw = Diagnostics.Stopwatch.StartNew()
        let pairs =
            match existing with
            | Some p -> eprintfn "pairs: reusing %s" pairsPath; p
            | None ->
                let p =
                    Nfm.Couple.TeacherPairs.Compute(teacher, data.X, null, eta, 4, seed, partialPath = pairsPath + ".partial",
                                                    progress = Progress.blocks (sprintf "%-12s" ("pairs" + suffix)), cancel = cancellation)
                if cancellation.IsCancellationRequested then fail "interrupted; the pairs so far are saved in the output folder"
                p.Save pairsPath
                if File.Exists(pairsPath + ".partial") then File.Delete(pairsPath + ".partial")
                p
        let encodes = if existing.IsSome then nan else float (data.X.shape[0] * 4L) / pw.Elapsed.TotalSeconds
        // How Gaussian the teacher's scaled encodings of the training data are.
        let gap =
            let z = pairs.X0[0L]
            let z = z.reshape(z.shape[0], -1L)
            Nfm.Metrics.Frechet.ToStandardNormal(z.narrow(0L, 0L, min z.shape[0] 2000L))
        eprintfn "teacher%s encodings: Frechet distance to N(0, I) %.3f (covariance eigenvalues %.3f..%.3f)"
            suffix gap.Distance gap.MinEigenvalue gap.MaxEigenvalue
        { Steps = steps; Teacher = teacher; Loss = loss; TrainSeconds = trainSeconds; Nll = nll; Bpd = bpd; Value = value
          ValueDenoised = valueDenoised; SampleSeconds = sampleSecs; Nfe = nfe; Pairs = pairs; PairsPath = pairsPath
          EncodesPerSecond = encodes; Gap = gap }

    let nfmMethod (name: string) (t: TeacherResult) =
        { Name = name; CouplingText = "teacher:" + t.PairsPath; Coupling = t.Pairs.ToCoupling(data.X, null) }
    let baseMethods : Method list =
        [ { Name = "independent"; CouplingText = "independent"; Coupling = Couple.independent }
          { Name = "ot"; CouplingText = "ot"; Coupling = Couple.ot } ]

    // The chain that needs no teacher: the feature classifier, the independent and OT students, and the smaller teacher
    // budget with its NFM student.
    let side () =
        if isMnist then classifier.Force() |> ignore
        let baseRuns = [ for m in baseMethods -> m, studentRows m ]
        let small =
            budget.SmallTeacherSteps
            |> Option.map (fun s ->
                let t = teacherChain s (sprintf "-t%d" s)
                let m = nfmMethod (sprintf "nfm-t%d" s) t
                t, (m, studentRows m))
        baseRuns, small
    // The main chain: the teacher, its NFM student, and what can only be measured with both.
    let main () =
        let t = teacherChain budget.TeacherSteps ""
        let m = nfmMethod "nfm" t
        let run = studentRows m
        t, (m, run)
    let (baseRuns, small), (teacher, nfmRun) =
        if workers = 1 then
            let mainResult = main ()
            side (), mainResult
        else
            let sideTask = Threading.Tasks.Task.Run(Func<_>(side))
            let mainResult = main ()
            let sideResult =
                try sideTask.Result
                with :? AggregateException as e -> Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw(); failwith "unreachable"
            sideResult, mainResult
    let allRuns = baseRuns @ [ nfmRun ] @ (small |> Option.map snd |> Option.toList)
    let nfmStudent = let (_, (st, _, _, _)) = nfmRun in st

    // The mean pair cost E||x1 - x0||^2 per dimension of each coupling on one batch of up to 2,000 rows.
    let pairCosts =
        let rows = min data.X.shape[0] 2000L
        let idx = torch.arange(rows, dtype = torch.int64)
        let batch = Nfm.Couple.Batch(data.X.narrow(0L, 0L, rows), null, idx)
        [ for (m, _) in allRuns ->
            use g = new torch.Generator(uint64 (seed + 5L))
            let p = m.Coupling.Invoke(batch, g)
            m.Name, jnum ((p.X1 - p.X0).square().mean().item<float32>() |> float) ]
    eprintfn "pair cost per dimension: %s" (pairCosts |> List.map (fun (k, v) -> sprintf "%s %s" k (v.ToString())) |> String.concat ", ")
    // The NFM student started from the teacher's encodings of the held-out data instead of fresh noise: what is left
    // is the student's own error, without the mismatch between N(0, I) and the encodings' distribution.
    let encodedRows =
        let enc = Nfm.Couple.TeacherPairs.Compute(teacher.Teacher, reference, null, eta, 1, seed + 7L, sigmaF = Nullable teacher.Pairs.Spec.SigmaF)
        evaluateOne log quality metric "nfm-from-encodings" nfmStudent (Some enc.X0[0L]) budget.Steps grid evalCount reference (seed + 2L) outDir
    // Latency of one sample and throughput at batch 64, per method and step count, and the teacher's (KV-cached).
    let latencySteps = budget.Steps |> List.filter (fun s -> s <= 4)
    let latency =
        [ for (m, (st, _, _, _)) in allRuns do
            for steps in latencySteps do
                let solver = Spec.paperSolver steps
                let single = Nfm.Bench.Timing.MedianSeconds((fun () -> StudentCommands.sampleStudent st 1 solver grid seed 0.0 None |> ignore), 9, 2)
                let batch = Nfm.Bench.Timing.MedianSeconds((fun () -> StudentCommands.sampleStudent st 64 solver grid seed 0.0 None |> ignore), 3, 2)
                yield m.Name, steps, single, batch * 1000.0 / 64.0 ]
    let teacherModel = teacher.Teacher.InferenceModel()
    let teacherSingle, teacherBatch =
        use g = new torch.Generator(uint64 seed)
        Nfm.Bench.Timing.MedianSeconds((fun () -> Nfm.Invert.Teacher.Sample(teacherModel, 1L, g).Dispose()), 5, 2),
        Nfm.Bench.Timing.MedianSeconds((fun () -> Nfm.Invert.Teacher.Sample(teacherModel, 64L, g).Dispose()), 1, 2) * 1000.0 / 64.0
    for (name, steps, single, per1000) in latency do
        eprintfn "latency %s %d steps: %.2f ms per sample alone, %.3f s per 1,000 at batch 64" name steps (single * 1000.0) per1000
    eprintfn "latency teacher (KV cache): %.2f ms per sample alone, %.3f s per 1,000 at batch 64" (teacherSingle * 1000.0) teacherBatch

    let rows = (allRuns |> List.collect (fun (_, (_, _, _, r)) -> r)) @ encodedRows
    let teacherRows =
        let rowOf name value (t: TeacherResult) =
            { Method = name; Solver = "autoregressive"; Grid = "-"; Steps = t.Nfe; Nfe = t.Nfe; Value = value; SecondsPer1000 = t.SampleSeconds * 1000.0 }
        [ rowOf "teacher" teacher.Value teacher; rowOf "teacher-denoised" teacher.ValueDenoised teacher ]
        @ (small |> Option.map (fun (t, _) -> [ rowOf (sprintf "teacher-t%d" t.Steps) t.Value t ]) |> Option.defaultValue [])
    if not isImage then
        Plot.scatter (Path.Combine(outDir, "data.png")) (sprintf "%s: %d held-out points" dataSpec evalCount) [ "data", reference ]
    // The paper's claims at this scale, as measured (ratios of the student's metric to the others').
    let valueOf name steps = rows |> List.tryFind (fun r -> r.Method = name && r.Steps = steps) |> Option.map (fun r -> r.Value)
    let claims =
        [ for steps in budget.Steps do
            match valueOf "nfm" steps, valueOf "independent" steps, valueOf "ot" steps with
            | Some n, Some i, Some o ->
                yield sprintf "nfm_over_independent_%dstep" steps, n / i
                yield sprintf "nfm_over_ot_%dstep" steps, n / o
            | _ -> ()
          let best = budget.Steps |> List.filter (fun s -> s <= 16) |> List.choose (fun s -> valueOf "nfm" s) |> List.min
          yield "nfm_best_at_most_16_steps_over_teacher", best / teacher.Value
          match latency |> List.tryFind (fun (n, s, _, _) -> n = "nfm" && s = List.max latencySteps) with
          | Some (_, s, single, _) -> yield sprintf "teacher_latency_over_nfm_%dstep" s, teacherSingle / single
          | None -> () ]
    let claimChecks = Claims.checkAll claims
    let finalLosses =
        allRuns |> List.map (fun (m, (st, loss, secs, _)) ->
            let curvature, nll = studentDiagnostics st
            eprintfn "%s: path curvature %.4f per dimension, held-out NLL %.4f nats per dimension" m.Name curvature nll
            m.Name, jobj [ "final_loss", jnum loss; "train_seconds", jnum secs; "path_curvature_per_dim", jnum curvature
                           "nll_nats_per_dim", jnum nll ] :> JsonNode)
    let mainTeacherJson = teacherJson isImage teacher
    let extra =
        [ "command", jstr command; "commit", jstr (buildCommit ())
          "machine", jobj [ "processor", jstr (processorName ()); "libtorch_threads", jint (int64 (torch.get_num_threads ())) ]
          "budget", jstr budgetName; "seed", jint seed; "student_steps", jint (int64 budget.StudentSteps); "workers", jint (int64 workers)
          "teacher", mainTeacherJson
          "teachers", jarr ([ mainTeacherJson.DeepClone() ] @ (small |> Option.map (fst >> teacherJson isImage) |> Option.toList))
          "nfm", jobj [ "eta", jnum eta; "sigma_f", jnum teacher.Pairs.Spec.SigmaF ]
          "diagnostics", jobj [ "encodings_frechet_to_standard_normal", jnum teacher.Gap.Distance
                                "encodings_covariance_min_eigenvalue", jnum teacher.Gap.MinEigenvalue
                                "encodings_covariance_max_eigenvalue", jnum teacher.Gap.MaxEigenvalue
                                "pair_cost_per_dimension", jobj pairCosts ]
          "latency", jarr ([ for (name, steps, single, per1000) in latency ->
                               jobj [ "method", jstr name; "steps", jint (int64 steps); "single_sample_seconds", jnum single
                                      "seconds_per_1000_at_batch_64", jnum per1000 ] ]
                           @ [ jobj [ "method", jstr "teacher"; "steps", jint (int64 teacher.Nfe); "single_sample_seconds", jnum teacherSingle
                                      "seconds_per_1000_at_batch_64", jnum teacherBatch ] ])
          "claims", jobj [ for (k, v) in claims -> k, jnum v ]
          "claim_checks", jarr [ for c in claimChecks ->
                                   jobj [ "claim", jstr c.Statement; "ratio", jnum c.Ratio; "target", jstr c.Target; "holds", JsonValue.Create c.Holds ] ]
          "students", jobj finalLosses
          "n_reference", jint (int64 evalCount) ]
        @ (if isMnist then [ "feature_network", jstr (classifier.Force().Identity()) ] else [])
    let md = writeResults outDir dataSpec metric (rows @ teacherRows) extra
    let teacherLine (name: string) (t: TeacherResult) =
        sprintf "%s (%d training steps; autoregressive, %d sequential steps): %s %.4f, denoised %.4f; %.3f s per 1,000 samples; held-out NLL %.3f nats%s; encodings' Frechet distance to N(0, I) %.3f\n"
            name t.Steps t.Nfe metric t.Value t.ValueDenoised (t.SampleSeconds * 1000.0) t.Nll
            (if isImage then sprintf ", %.3f bits/dim" t.Bpd else "") t.Gap.Distance
    let md =
        md + "\n" + teacherLine "teacher" teacher
        + (small |> Option.map (fun (t, _) -> teacherLine (sprintf "teacher-t%d" t.Steps) t) |> Option.defaultValue "")
        + "\nlatency of one sample (ms): "
        + String.concat ", " ([ for (name, steps, single, _) in latency -> sprintf "%s %d steps %.2f" name steps (single * 1000.0) ]
                              @ [ sprintf "teacher %.2f" (teacherSingle * 1000.0) ]) + "\n"
        + "\nclaims as measured:\n" + String.concat "" [ for c in claimChecks -> "- " + Claims.describe c + "\n" ]
    Nfm.Data.AtomicFile.WriteAllBytes(Path.Combine(outDir, "results.md"), ReadOnlyMemory(Text.Encoding.UTF8.GetBytes md))
    md
