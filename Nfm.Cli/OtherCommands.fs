/// `nfm demo`, `nfm eval` and `nfm bench`.
module Nfm.Cli.OtherCommands

open System
open System.IO
open Argu
open TorchSharp
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.FSharp

/// Draws at most m rows of x without replacement (seeded), or all rows when there are fewer.
let subsample (m: int) (seed: int64) (x: torch.Tensor) =
    let n = x.shape[0]
    if n <= int64 m then x
    else
        use g = new torch.Generator(uint64 seed)
        use idx = torch.randperm(n, generator = g).narrow(0L, 0L, int64 m)
        x.index_select(0L, idx.``to``(x.device))

let eval (args: ParseResults<EvalArgs>) =
    let samplesPath = existing "samples file" (args.GetResult EvalArgs.Samples)
    let metric = args.GetResult(EvalArgs.Metric, "w2").ToLowerInvariant()
    if metric <> "w2" && metric <> "mmd" && metric <> "fd" then fail (sprintf "unknown --metric '%s'; valid: w2, mmd, fd" metric)
    let maxN = positive "max-n" (args.GetResult(EvalArgs.Max_N, 2000))
    let seed = int64 (args.GetResult(EvalArgs.Seed, 0))
    let samples = Nfm.Data.Npy.ReadFloat32 samplesPath
    Nfm.Data.DataSource.CheckFinite(samples, samplesPath)
    let refSpec = args.GetResult EvalArgs.Reference
    // A built-in reference set is drawn fresh (seed + 1 so that it is not the training draw of seed 0).
    let reference = (Nfm.Data.DataSource.Load(refSpec, int64 maxN, seed + 1L, Nfm.Descriptions.DataSplit.Test)).X
    if samples.shape.[1..] <> reference.shape.[1..] then
        fail (sprintf "samples have rows of shape %s, the reference has %s" (Nfm.Shapes.Show samples.shape.[1..]) (Nfm.Shapes.Show reference.shape.[1..]))
    let m = min maxN (int (min samples.shape[0] reference.shape[0]))
    let a = subsample m seed samples
    let b = subsample m (seed + 7L) reference
    let value, extra =
        match metric with
        | "w2" -> Metrics.w2 a b, []
        | "mmd" -> Metrics.mmd a b, []
        | _ ->
            if not (refSpec.StartsWith("mnist:", StringComparison.OrdinalIgnoreCase)) then fail "--metric fd needs --reference mnist:DIR"
            let path = outputPath (args.GetResult(EvalArgs.Classifier, "fd-classifier.ckpt"))
            let classifier = Metrics.classifier Progress.reporter path refSpec
            Nfm.Metrics.FeatureClassifier.FdMnist(classifier, a, b), [ "feature_network", jstr (classifier.Identity()) ]
    printfn "%s = %.6f (n_samples %d, n_reference %d)%s" metric value m m
        (extra |> List.map (fun (k, v) -> sprintf ", %s %s" k (v.ToString())) |> String.concat "")
    args.TryGetResult EvalArgs.Json
    |> Option.iter (fun p ->
        writeJson p (jobj ([ "metric", jstr metric; "value", jnum value; "n_samples", jint (int64 m); "n_reference", jint (int64 m)
                             "samples", jstr samplesPath; "reference", jstr refSpec ] @ extra)))
    0

/// Student training throughput on 2-D data at batch 256 (MLP 256 x 3), steps per second.
let trainTwoD () =
    let data = Data.toy "checkerboard" 20000L 0L
    let settings = { Student.settings with Steps = 300 }
    let st = Nfm.Regress.Student.Create(Student.spec settings "independent" data)
    let warm = { settings with Steps = 30 }
    Nfm.Regress.StudentTraining.Run(Nfm.Regress.Student.Create(Student.spec warm "independent" data), data.X, null, Couple.independent) |> ignore
    let watch = Diagnostics.Stopwatch.StartNew()
    Nfm.Regress.StudentTraining.Run(st, data.X, null, Couple.independent) |> ignore
    float settings.Steps / watch.Elapsed.TotalSeconds

/// A benchmark's figures record as JSON, in the descriptions' naming convention.
let toNode (r: 'T) = Text.Json.Nodes.JsonNode.Parse(Text.Json.JsonSerializer.Serialize(r, Nfm.Descriptions.Json.Options))

let bench (args: ParseResults<BenchArgs>) =
    let name = args.GetResult BenchArgs.Name
    let valid = [ "ot"; "train-2d"; "matmul"; "student-nets"; "teacher-train"; "teacher-sample"; "teacher-profile"; "latency"; "memory"; "mnist-compare"; "all" ]
    if not (List.contains name valid) then fail (sprintf "unknown benchmark '%s'; valid: %s" name (String.concat ", " valid))
    let out = outputPath (args.GetResult(BenchArgs.Json, sprintf "bench-%s.json" name))
    let figures = Collections.Generic.List<string * Text.Json.Nodes.JsonNode>()
    let add k v = figures.Add((k, v))
    let run n = name = n || name = "all"
    let precision = precision (args.TryGetResult BenchArgs.Precision)
    let precisionName = Nfm.Descriptions.Precisions.Name precision
    printfn "threads: %d" (torch.get_num_threads ())
    add "threads" (jint (int64 (torch.get_num_threads ())))
    add "processor" (jstr (Provenance.processor ()))
    // mnist-compare records its precision in results.json (bfloat16 by default for images).
    if name <> "mnist-compare" then add "precision" (jstr precisionName)
    if run "matmul" || run "train-2d" then
        let g = Nfm.Bench.MatmulBenchmark.GflopsPerSecond(dtype = Nfm.Bench.MatmulBenchmark.DtypeOf precision)
        printfn "matmul %s 1024^3: %.1f GFLOP/s" precisionName g
        add "matmul_gflops" (jnum g)
    if run "train-2d" then
        let sps = trainTwoD ()
        printfn "train-2d: %.1f student steps/s at batch 256 (MLP 256 x 3)" sps
        add "train_2d_steps_per_second" (jnum sps)
    if run "student-nets" then
        let r = Nfm.Bench.StudentNetBenchmark.Run(precision = precision)
        let node = toNode r
        for t in r.Timings do
            printfn "student-nets: %-6s width %d depth %d, %d params, %d thread(s), batch %d: %.2f train steps/s, %.1f passes/s, %.1f GFLOP/s, MFU %.0f%% of the %.1f GFLOP/s %s matmul rate"
                t.Net t.Width t.Depth t.Parameters t.Threads t.Batch t.TrainStepsPerSecond t.ForwardPassesPerSecond t.TrainGflopsPerSecond
                (100.0 * t.TrainGflopsPerSecond / t.MatmulGflopsPerSecond) t.MatmulGflopsPerSecond precisionName
        add "student_nets" node
    if run "teacher-train" || run "teacher-sample" then
        let r = Nfm.Bench.TeacherBenchmark.Run(torch.get_num_threads (), training = run "teacher-train", sampling = run "teacher-sample",
                                               precision = precision)
        let show (t: Nfm.Bench.TeacherTrainingFigures) =
            if not (isNull (box t)) then
                printfn "teacher-train %s (%s): %.2f steps/s at batch %d, %.2f GFLOP/step, %.1f GFLOP/s, MFU %.0f%% of the %.1f GFLOP/s matmul peak; forward + backward %.2f/s"
                    t.Name precisionName t.StepsPerSecond t.Batch (t.ModelFlopsPerStep / 1e9) t.AchievedGflopsPerSecond (100.0 * t.Mfu)
                    r.MatmulPeakGflopsPerSecond t.ForwardBackwardPerSecond
        show r.MnistTraining
        show r.ToyTraining
        if not (isNull (box r.MnistSampling)) then
            let s = r.MnistSampling
            printfn "teacher-sample: encode %.0f samples/s; a batch of %d decoded in %.2fs cached, %.2fs uncached (%.1fx)"
                s.EncodeSamplesPerSecond s.Batch s.CachedSeconds s.UncachedSeconds s.CacheSpeedup
        add "teacher" (toNode r)
    if name = "teacher-profile" then
        let one (label: string) (spec: Nfm.Descriptions.TeacherSpec) (batch: int) =
            let r = Nfm.Bench.TeacherProfile.Run(label, spec, batch, precision)
            printfn "teacher-profile %s (%s, %d threads, batch %d): step %.1f ms" r.Name precisionName r.Threads r.Batch r.StepMs
            for l in r.Phases do printfn "  phase %-50s %8.2f ms" l.Part l.MillisecondsPerStep
            for l in r.Operations do printfn "  op    %-40s x%-4d %8.2f ms" l.Part l.PerStep l.MillisecondsPerStep
            printfn "  the same step updating tensor by tensor: %.1f ms (one buffer %.2fx faster)" r.PerTensorStepMs (r.PerTensorStepMs / r.StepMs)
            for l in r.PerTensorPhases do printfn "  phase %-50s %8.2f ms" l.Part l.MillisecondsPerStep
            toNode r
        add "profile" (jarr [ one "mnist" Nfm.Bench.TeacherBenchmark.Mnist Nfm.Bench.TeacherBenchmark.MnistBatch
                              one "2d" Nfm.Bench.TeacherBenchmark.Toy Nfm.Bench.TeacherBenchmark.ToyBatch ])
    if name = "latency" then
        let files =
            match args.GetResults BenchArgs.Teacher with
            | [] -> [ "models/mnist-teacher-conditional/teacher.safetensors"; "models/mnist-teacher/teacher.safetensors" ]
            | given -> given
        let teachers = Collections.Generic.Dictionary<string, Nfm.Invert.TrainedTeacher>()
        for f in files do
            if not (File.Exists f) then fail (sprintf "teacher file not found: %s" f)
            teachers[f] <- Teacher.read f
        let rounds = args.GetResult(BenchArgs.Rounds, 5)
        if rounds < 1 then fail (sprintf "--rounds must be at least 1, got %d" rounds)
        let r = Nfm.Bench.LatencyBenchmark.Run(teachers, rounds = rounds)
        for s in r.Settings do
            let students = s.Students |> Seq.map (fun x -> sprintf "%d steps %.2f ms (%d passes)" x.Steps (1000.0 * x.MedianSeconds) x.Nfe) |> String.concat ", "
            printfn "latency %s, %s student, %d thread(s): teacher %.1f ms (KV cache, %d sequential passes); student %s; teacher/student at %d steps %.1fx..%.1fx over %d rounds"
                s.Setting s.StudentNet s.Threads (1000.0 * s.TeacherMedianSeconds) s.TeacherNfe students (s.Students |> Seq.map (fun x -> x.Steps) |> Seq.max)
                s.MinRatio (Seq.max s.RatioByRound) s.RatioByRound.Count
        add "latency" (toNode r)
    if name = "memory" then
        let r = Nfm.Bench.MemoryBenchmark.Run(precision = precision)
        printfn "memory: %d steps, resident %.1f MiB after warm-up (step %d) -> %.1f MiB at the end (%+.1f%%); live tensors %d -> %d"
            r.Steps (float r.ResidentAfterWarmup / 1048576.0) r.WarmupStep (float r.ResidentAtEnd / 1048576.0) r.GrowthPercent
            r.LiveTensorsAfterWarmup r.LiveTensorsAtEnd
        add "memory" (toNode r)
    if name = "mnist-compare" then
        let json =
            ExperimentCommands.mnistCompare (args.GetResult(BenchArgs.Data, "mnist:../shared/data/mnist")) (args.GetResult(BenchArgs.Budget, "standard"))
                                            (outputFolder (args.GetResult(BenchArgs.Out, Path.Combine("results", "mnist-compare"))))
                                            (args.GetResult(BenchArgs.Workers, 1)) (args.TryGetResult BenchArgs.Precision)
        add "results" (jstr json)
    if run "ot" then
        let r = Nfm.Bench.OtBenchmark.Run()
        let node = toNode r
        for t in r.Assignment do
            printfn "ot: %-24s n %4d, %s points: median %8.2f ms, fastest %8.2f ms" t.Solver t.N t.Case t.MedianMs t.MinMs
        let time solver n case = r.Assignment |> Seq.find (fun t -> t.Solver = solver && t.N = n && t.Case = case)
        for n in Nfm.Bench.OtBenchmark.AssignmentSizes do
            for case in [ "near"; "far" ] do
                printfn "ot: n %4d, %s points: the initial reductions make the solve %.1fx faster; from the standardised points %.1fx"
                    n case ((time "assignment, search only" n case).MedianMs / (time "assignment" n case).MedianMs)
                    ((time "assignment, search only" n case).MedianMs / (time "assignment from points" n case).MedianMs)
        printfn "ot: sinkhorn n %d: median %.2f ms (%d iterations, converged %b)" r.Sinkhorn.N r.Sinkhorn.MedianMs r.SinkhornIterations r.SinkhornConverged
        add "ot" node
    writeJson out (jobj (List.ofSeq figures))
    printfn "wrote %s" out
    0
