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

/// Trains one student per method with the same settings; returns the trained students with their wall times.
let trainStudents (settings: StudentSettings) (architecture: Nfm.Descriptions.Architecture) (data: Nfm.Data.Dataset) (outDir: string) (methods: Method list) =
    [ for m in methods do
        let spec0 = Student.spec settings m.CouplingText data
        let net = Nfm.Descriptions.VelocityNetSpec(spec0.Net.InputShape, spec0.Net.Width, spec0.Net.Depth, spec0.Net.Activation,
                                                    spec0.Net.TimeFeatures, spec0.Net.Classes, architecture)
        let spec = Nfm.Descriptions.StudentSpec(net, spec0.Path, spec0.Training, spec0.Coupling, spec0.Data, spec0.Device, spec0.LabelDropout).Validate()
        let bar = Progress.Bar(sprintf "%-12s" m.Name, int64 settings.Steps)
        let mutable last = nan
        let watch = Diagnostics.Stopwatch.StartNew()
        let st =
            StudentTraining.Run(Student.Create spec, data.X, null, m.Coupling, Path.Combine(outDir, m.Name + ".ckpt"),
                                Action<_>(fun p -> last <- p.Loss; bar.Update(p.Step, sprintf "loss %.4f" p.Loss)), cancellation)
        if cancellation.IsCancellationRequested then fail "interrupted; trained students so far are saved in the output folder"
        eprintfn "%s: final loss %.4f, %.1fs" m.Name last watch.Elapsed.TotalSeconds
        yield m, st, last, watch.Elapsed.TotalSeconds ]

/// Samples each student at each step count (the paper's solver choice: Euler up to 4 steps, Heun above) and scores them.
let evaluate (quality: torch.Tensor -> torch.Tensor -> float) (metric: string) (students: (Method * Student * float * float) list)
             (stepCounts: int list) (grid: Grid) (count: int) (reference: torch.Tensor) (seed: int64) (outDir: string) =
    [ for (m, st, _, _) in students do
        for steps in stepCounts do
            let solver = Spec.paperSolver steps
            let x, nfe, secs = StudentCommands.sampleStudent st count solver grid seed 0.0 None
            let value = quality x reference
            if steps = List.max stepCounts || steps = 1 then
                StudentCommands.savePng (Path.Combine(outDir, sprintf "samples-%s-%dstep.png" m.Name steps))
                    (sprintf "%s, %d %s steps, %s %.3f" m.Name steps (Spec.solverName solver) metric value) x
            yield { Method = m.Name; Solver = Spec.solverName solver; Grid = Spec.gridName grid; Steps = steps; Nfe = nfe
                    Value = value; SecondsPer1000 = secs * 1000.0 / float count } ]

/// A markdown table: one row per method, one column per step count.
let markdown (rows: Row list) (metric: string) =
    let rows = rows |> List.filter (fun r -> r.Method <> "teacher")
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
    let students = rows |> List.filter (fun r -> r.Method <> "teacher")
    let lo, hi = students |> List.map (fun r -> float r.Steps) |> List.min, students |> List.map (fun r -> float r.Steps) |> List.max
    let series =
        students |> List.groupBy (fun r -> r.Method)
        |> List.map (fun (m, rs) ->
            let rs = rs |> List.sortBy (fun r -> r.Steps)
            Nfm.Plots.LineSeries(m, rs |> List.map (fun r -> float r.Steps) |> Array.ofList, rs |> List.map (fun r -> r.Value) |> Array.ofList))
    // The teacher samples autoregressively, not in solver steps: drawn as a level line for reference.
    let series =
        series @ (rows |> List.filter (fun r -> r.Method = "teacher")
                  |> List.map (fun r -> Nfm.Plots.LineSeries(sprintf "teacher (%d sequential steps)" r.Nfe, [| lo; hi |], [| r.Value; r.Value |])))
    Nfm.Plots.LinePlot.Save(Path.Combine(outDir, "quality.png"), sprintf "%s: %s against sampling steps" dataName metric,
                            "sampling steps", metric, ResizeArray series, true, true)
    md

/// Training budgets: teacher and student steps and batches for 2-D data and for images.
type Budget = { TeacherSteps: int; StudentSteps: int; TeacherBatch: int; StudentBatch: int; EvalCount: int; Steps: int list }

let budgetFor (name: string) (isImage: bool) =
    match name.ToLowerInvariant(), isImage with
    | "quick", false -> { TeacherSteps = 1500; StudentSteps = 2000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = [ 1; 2; 4; 8; 16; 32 ] }
    | "standard", false -> { TeacherSteps = 10000; StudentSteps = 10000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = [ 1; 2; 4; 8; 16; 32 ] }
    | "quick", true -> { TeacherSteps = 300; StudentSteps = 300; TeacherBatch = 64; StudentBatch = 64; EvalCount = 500; Steps = [ 1; 2; 4; 8; 16 ] }
    | "standard", true -> { TeacherSteps = 12500; StudentSteps = 10000; TeacherBatch = 64; StudentBatch = 64; EvalCount = 2000; Steps = [ 1; 2; 4; 8; 16 ] }
    | n, img ->
        match Int32.TryParse n with
        | true, v when v > 0 ->
            let b = if img then 64 else 256
            { TeacherSteps = v; StudentSteps = v; TeacherBatch = b; StudentBatch = b; EvalCount = (if img then 1000 else 2000)
              Steps = (if img then [ 1; 2; 4; 8; 16 ] else [ 1; 2; 4; 8; 16; 32 ]) }
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

/// The whole experiment: teacher, NFM coupling, three students, quality against steps. Returns the markdown table.
let run (dataSpec: string) (labels: string option) (outDir: string) (budgetName: string) (seed: int64) (grid: Grid) (eta: float option)
        (featureClassifier: unit -> Nfm.Metrics.FeatureClassifier) =
    let probe = Nfm.Data.DataSource.Load(dataSpec, 16L, seed, Nfm.Data.DataSplit.Train, Option.toObj labels)
    let isImage = probe.X.dim() = 4L
    let budget = budgetFor budgetName isImage
    let data, reference = splitData dataSpec labels seed budget.EvalCount
    let reference = if reference.shape[0] > int64 budget.EvalCount then reference.narrow(0L, 0L, int64 budget.EvalCount) else reference
    let evalCount = int reference.shape[0]
    let rowShape = data.X.shape |> Array.skip 1
    eprintfn "compare on %s: %d training rows, %d held-out, budget %s (teacher %d steps, students %d steps)"
        dataSpec data.X.shape[0] evalCount budgetName budget.TeacherSteps budget.StudentSteps
    // 1. The teacher.
    let tshape = { TeacherCommands.defaultShape rowShape with Batch = budget.TeacherBatch }
    let tshape = if isImage && budgetName = "quick" then { tshape with Width = 64; Layers = 2 } else tshape
    let tspec =
        Nfm.Invert.TeacherRunSpec(TeacherCommands.modelSpec rowShape tshape true 0,
                                  Nfm.Invert.TeacherRunSpec.DefaultTraining(budget.TeacherSteps, budget.TeacherBatch, (if isImage then 2e-3 else 1e-3), seed, 0),
                                  dataSpec, Nfm.Descriptions.DeviceSpec("cpu")).Validate()
    let bar = Progress.Bar("teacher     ", int64 budget.TeacherSteps)
    let mutable teacherLoss = nan
    let tw = Diagnostics.Stopwatch.StartNew()
    let teacher =
        Nfm.Invert.TeacherTraining.Run(Nfm.Invert.TrainedTeacher.Create tspec, data.X, null, Path.Combine(outDir, "teacher.ckpt"),
                                       Action<_>(fun p -> teacherLoss <- p.Loss; bar.Update(p.Step, sprintf "loss %.4f" p.Loss)), cancellation)
    if cancellation.IsCancellationRequested then fail "interrupted; the teacher trained so far is saved in the output folder"
    let teacherSeconds = tw.Elapsed.TotalSeconds
    let model = teacher.InferenceModel()
    let teacherNll, teacherBpd = TeacherCommands.nllOf teacher reference null
    // The teacher's own samples, timed.
    use g = new torch.Generator(uint64 (seed + 3L))
    let sw = Diagnostics.Stopwatch.StartNew()
    let teacherSamples = Nfm.Invert.Teacher.Sample(model, int64 evalCount, g)
    let teacherSampleSecs = sw.Elapsed.TotalSeconds
    // Images are scored by FD-MNIST (Frechet distance of the feature classifier's features), vectors by exact W2.
    let metric, quality, extraMetric =
        if isImage && dataSpec.StartsWith("mnist:", StringComparison.OrdinalIgnoreCase) then
            let clf = featureClassifier ()
            "fd", (fun (x: torch.Tensor) (r: torch.Tensor) -> Nfm.Metrics.FeatureClassifier.FdMnist(clf, x, r)), [ "feature_network", jstr (clf.Identity()) ]
        else "w2", quality, []
    let teacherValue = quality teacherSamples reference
    let teacherNfe = int (int64 tspec.Model.Blocks * (tspec.Model.Tokens - 1L))
    StudentCommands.savePng (Path.Combine(outDir, "samples-teacher.png")) (sprintf "teacher, %s %.3f" metric teacherValue) teacherSamples
    // 2. The NFM coupling.
    let eta = defaultArg eta tspec.Model.NoiseSigma
    // Precomputed pairs, four noise draws per row: one encode pass over the data instead of one per training batch.
    let pairsPath = Path.Combine(outDir, "nfm.pairs")
    let pbar = Progress.Bar("nfm pairs   ", 1L)
    let mutable pbarRef = pbar
    let pairs =
        Nfm.Couple.TeacherPairs.Compute(teacher, data.X, null, eta, 4, seed, progress = Action<int64, int64>(fun d total ->
            if d = 1L then pbarRef <- Progress.Bar("nfm pairs   ", total)
            pbarRef.Update(d, "blocks")), cancel = cancellation)
    pairs.Save pairsPath
    let sigmaF = pairs.Spec.SigmaF
    let nfmCoupling = pairs.ToCoupling(data.X, null)
    // 3. Students with equal budgets.
    let settings =
        { Student.settings with
            Steps = budget.StudentSteps; Batch = budget.StudentBatch; Seed = seed
            Width = (if isImage then (let struct (w, _) = Nfm.Nets.VelocityUNet.MnistCpu in w) else 256); Depth = 3
            Times = (if isImage then LogitNormal(0.0, 1.0) else UniformTimes) }
    let architecture = if isImage then Nfm.Descriptions.Architecture.UNet else Nfm.Descriptions.Architecture.Mlp
    let methods : Method list =
        [ { Name = "independent"; CouplingText = "independent"; Coupling = Couple.independent }
          { Name = "ot"; CouplingText = "ot"; Coupling = Couple.ot }
          { Name = "nfm"; CouplingText = "teacher:" + pairsPath; Coupling = nfmCoupling } ]
    // Diagnostics of the coupling the students will get: how Gaussian the teacher's scaled encodings are, and the mean
    // pair cost E||x1 - x0||^2 per dimension of each coupling on one batch of up to 2,000 rows.
    let gap =
        let z = pairs.X0[0L]
        let z = z.reshape(z.shape[0], -1L)
        Nfm.Metrics.Frechet.ToStandardNormal(z.narrow(0L, 0L, min z.shape[0] 2000L))
    let pairCosts =
        let rows = min data.X.shape[0] 2000L
        let idx = torch.arange(rows, dtype = torch.int64)
        let batch = Nfm.Couple.Batch(data.X.narrow(0L, 0L, rows), null, idx)
        [ for m in methods ->
            use g = new torch.Generator(uint64 (seed + 5L))
            let p = m.Coupling.Invoke(batch, g)
            m.Name, jnum ((p.X1 - p.X0).square().mean().item<float32>() |> float) ]
    eprintfn "teacher encodings: Frechet distance to N(0, I) %.3f (covariance eigenvalues %.3f..%.3f); pair cost per dimension: %s"
        gap.Distance gap.MinEigenvalue gap.MaxEigenvalue
        (pairCosts |> List.map (fun (k, v) -> sprintf "%s %s" k (v.ToString())) |> String.concat ", ")
    let students = trainStudents settings architecture data outDir methods
    let rows = evaluate quality metric students budget.Steps grid evalCount reference (seed + 2L) outDir
    let teacherRow =
        { Method = "teacher"; Solver = "autoregressive"; Grid = "-"; Steps = teacherNfe; Nfe = teacherNfe; Value = teacherValue
          SecondsPer1000 = teacherSampleSecs * 1000.0 / float evalCount }
    if not isImage then
        Plot.scatter (Path.Combine(outDir, "data.png")) (sprintf "%s: %d held-out points" dataSpec evalCount) [ "data", reference ]
    let finalLosses = students |> List.map (fun (m, _, loss, secs) -> m.Name, jobj [ "final_loss", jnum loss; "train_seconds", jnum secs ] :> JsonNode)
    let extra =
        [ "budget", jstr budgetName; "seed", jint seed; "student_steps", jint (int64 budget.StudentSteps)
          "teacher", jobj [ "steps", jint (int64 budget.TeacherSteps); "final_loss", jnum teacherLoss; "train_seconds", jnum teacherSeconds
                            "test_nll_nats", jnum teacherNll; "test_bpd", (if isImage then jnum teacherBpd else jstr "n/a")
                            "value", jnum teacherValue; "nfe", jint (int64 teacherNfe); "id", jstr (teacher.Identity()) ]
          "nfm", jobj [ "eta", jnum eta; "sigma_f", jnum sigmaF ]
          "diagnostics", jobj [ "encodings_frechet_to_standard_normal", jnum gap.Distance
                                "encodings_covariance_min_eigenvalue", jnum gap.MinEigenvalue
                                "encodings_covariance_max_eigenvalue", jnum gap.MaxEigenvalue
                                "pair_cost_per_dimension", jobj pairCosts ]
          "students", jobj finalLosses
          "n_reference", jint (int64 evalCount) ] @ extraMetric
    let md = writeResults outDir dataSpec metric (rows @ [ teacherRow ]) extra
    let md = md + sprintf "\nteacher (autoregressive, %d sequential steps): %s %.4f, %.3f s per 1,000 samples; held-out NLL %.3f nats%s\n"
                       teacherNfe metric teacherValue (teacherSampleSecs * 1000.0 / float evalCount) teacherNll
                       (if isImage then sprintf ", %.3f bits/dim" teacherBpd else "")
    Nfm.Data.AtomicFile.WriteAllBytes(Path.Combine(outDir, "results.md"), ReadOnlyMemory(Text.Encoding.UTF8.GetBytes md))
    md
