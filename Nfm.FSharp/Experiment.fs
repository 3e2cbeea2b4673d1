namespace Nfm.FSharp

open System
open System.IO
open System.Text.Json.Nodes
open System.Threading
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Regress
open Nfm.Training
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Experiment =
    /// The step counts sampled: up to 32 for vectors, up to 16 for images.
    let private stepsFor isImage = if isImage then [ 1; 2; 4; 8; 16 ] else [ 1; 2; 4; 8; 16; 32 ]

    // The quick 2-D teacher trains 3,000 steps: chosen by the held-out NLL (on rows held out of the training data) of
    // the recipe study in results/teacher-recipes (scripts/teacher-recipes.fsx, five seeds each). At 1,500 steps the
    // teacher depended on its seed (held-out NLL 3.046..3.096); learning rate, warm-up, EMA and batch 1,024 did not
    // narrow the spread, twice the steps did (3.023..3.045).
    /// A named budget (quick, standard, or a number of steps for teacher and students) for vectors or images.
    let budget (name: string) (isImage: bool) : Budget =
        let steps = stepsFor isImage
        let kind = BudgetKind.Parse name
        match kind, isImage with
        | BudgetKind.Quick, false -> { Kind = kind; TeacherSteps = 3000; StudentSteps = 2000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = steps; SmallTeacherSteps = None; TeacherEma = 0.0; TeacherHeldOut = 0; Draws = 3 }
        | BudgetKind.Standard, false -> { Kind = kind; TeacherSteps = 10000; StudentSteps = 10000; TeacherBatch = 256; StudentBatch = 256; EvalCount = 2000; Steps = steps; SmallTeacherSteps = None; TeacherEma = 0.0; TeacherHeldOut = 0; Draws = 3 }
        | BudgetKind.Quick, true -> { Kind = kind; TeacherSteps = 300; StudentSteps = 300; TeacherBatch = 64; StudentBatch = 64; EvalCount = 500; Steps = steps; SmallTeacherSteps = Some 100; TeacherEma = 0.0; TeacherHeldOut = 0; Draws = 3 }
        // The standard image teacher: 4,000 steps at batch 256 (1,024,000 samples, four times the budget before it),
        // EMA 0.999, and the checkpoint (every 250 steps) with the best NLL on 500 training digits held out of its data.
        | BudgetKind.Standard, true -> { Kind = kind; TeacherSteps = 4000; StudentSteps = 2000; TeacherBatch = 256; StudentBatch = 64; EvalCount = 2000; Steps = steps
                                         SmallTeacherSteps = None; TeacherEma = 0.999; TeacherHeldOut = 500; Draws = 3 }
        | BudgetKind.Steps v, img ->
            let b = if img then 64 else 256
            { Kind = kind; TeacherSteps = v; StudentSteps = v; TeacherBatch = b; StudentBatch = b
              EvalCount = (if img then 1000 else 2000); Steps = steps; SmallTeacherSteps = None; TeacherEma = 0.0; TeacherHeldOut = 0; Draws = 3 }

    /// True when the data's rows are images [C, H, W].
    let isImageData (data: DataSpec) =
        let probe = DataSource.Load(data.Source, 16L, data.Seed, DataSplit.Train, data.Labels)
        probe.X.dim() = 4L

    /// The training data of a comparison and its held-out reference set: 20,000 rows (or the spec's N) and a fresh draw
    /// (seed + 1) for built-in sets, the train and test splits for MNIST (and image folders with train/ and test/), the
    /// first rows and the last 20% (at most 2,000 rows) of a user's .npy or (in an order drawn from the seed) of an image folder. The reference has at most `evalCount` rows.
    let split (data: DataSpec) (evalCount: int) : Dataset * Dataset =
        match Data.heldOut data.Source data.Seed evalCount with
        | Some held ->
            let n = if Toy2D.IsName data.Source && data.N = 0L then 20000L else data.N
            DataSource.Load(data.Source, n, data.Seed, DataSplit.Train), held
        | None ->
                let all = DataSource.Load(data.Source, 0L, data.Seed, DataSplit.Train, data.Labels)
                // An image folder comes sorted by class: the held-out rows are drawn from every class.
                let all = if DataSource.KindOf data.Source = DataSourceKind.Images then Data.shuffled data.Seed all else all
                let n = all.X.shape[0]
                let held = min 2000L (n / 5L)
                if held < 10L then invalidArg "data" (sprintf "%s has %d rows; a comparison needs at least 50 to hold out a reference set" data.Source n)
                let labels = if isNull all.Labels then null else all.Labels.narrow(0L, 0L, n - held)
                let m = min held (int64 evalCount)
                Dataset(all.X.narrow(0L, 0L, n - held), labels, all.Name),
                Dataset(all.X.narrow(0L, n - held, m), (if isNull all.Labels then null else all.Labels.narrow(0L, n - held, m)), all.Name)

    /// The students compared by default: independent, OT, NFM at the experiment's eta, and (when the budget has a
    /// smaller teacher) the NFM student of that teacher, named nfm-tSTEPS.
    let defaultMethods (budget: Budget) : Method list =
        [ { Name = "independent"; Coupling = Independent }
          { Name = "ot"; Coupling = Ot }
          { Name = "nfm"; Coupling = Nfm(None, None) } ]
        @ (budget.SmallTeacherSteps |> Option.map (fun s -> { Name = sprintf "nfm-t%d" s; Coupling = Nfm(None, Some s) }) |> Option.toList)

    /// One NFM student per eta, named nfm-eta<eta> (the paper's trade-off: small eta at very few steps, larger at more).
    let etaMethods (etas: float list) : Method list =
        [ for e in etas -> { Name = sprintf "nfm-eta%g" e; Coupling = Nfm(Some e, None) } ]

    /// Workers for a comparison on this machine: 2 (the students that need no teacher train beside it, one libtorch
    /// thread each) when it has two cores or more, else 1. The figures do not depend on it.
    let defaultWorkers () = if Environment.ProcessorCount >= 2 then 2 else 1

    /// The precision of the comparison already in `outDir` (read from its experiment.json, which writes "precision"
    /// only when it is not float32), or None when the folder holds none.
    let savedPrecision (outDir: string) : Precision option =
        let path = Path.Combine(outDir, "experiment.json")
        if not (File.Exists path) then None
        else
            match (try JsonNode.Parse(File.ReadAllText path) with _ -> null) with
            | :? JsonObject as o ->
                match o["precision"] with
                | null -> Some Precision.Float32
                | p -> (try Some (Precisions.Parse(p.GetValue<string>())) with _ -> None)
            | _ -> None

    /// A comparison on `data` at a named budget with the default methods, one worker, seed 0, the quadratic grid.
    let create (data: DataSpec) (budgetName: string) (outDir: string) : Experiment =
        let image = isImageData data
        let b = budget budgetName image
        // float32 for vectors: the 2-D teacher's step is 0.9x in bfloat16 (its matrices are too small). For images,
        // bfloat16 where this machine has bfloat16 matrix units (with AMX the MNIST teacher's step is 2.4x faster, its
        // held-out NLL within 0.5%), float32 where it would be emulated (an AVX2-only CPU ran its matmul 100x slower):
        // PrecisionProbe measures which, once per process. A folder that already holds a comparison keeps its
        // precision, so that the run continues as it started wherever it resumes.
        let precision =
            if not image then Precision.Float32
            else match savedPrecision outDir with Some p -> p | None -> (Nfm.PrecisionProbe.Of "cpu").Preferred
        { Data = data; Budget = b; Methods = defaultMethods b; Eta = None; Seed = data.Seed; Grid = Quadratic
          Conditional = false; Guidance = [ 0.0 ]; GuidancePerSteps = false; ChosenGuidance = Map.empty; Precision = precision; StudentNet = Architecture.UNet; StudentWidth = None; StudentDepth = None; Validation = false; Teacher = None; OutDir = outDir; Classifier = Path.Combine(outDir, "fd-classifier.ckpt") }

    /// The guidance weights of another comparison's rows (its results.json), by method and step count, with the
    /// teacher's under "teacher": run a comparison on validation digits (`Validation = true`) to choose them, then
    /// give them to the run on the test digits as `ChosenGuidance`, which samples each row at that one weight.
    let guidanceFrom (results: string) : Map<string, Map<int, float>> =
        let r = Report.read results
        r.Rows
        |> List.filter (fun row -> row.Kind = RowKind.Student || (row.Kind = RowKind.Teacher && row.Method.StartsWith "teacher" && not (row.Method.Contains "denoised")))
        |> List.groupBy (fun row -> row.Method)
        |> List.map (fun (m, rows) -> m, rows |> List.map (fun row -> row.Steps, row.Guidance) |> Map.ofList)
        |> Map.ofList

    /// Every student trains `steps` steps instead of the budget's (the same for every coupling).
    let withStudentSteps (steps: int) (e: Experiment) : Experiment =
        if steps < 1 then invalidArg "steps" (sprintf "student steps must be positive, got %d" steps)
        { e with Budget = { e.Budget with StudentSteps = steps } }

    /// The comparison distilling a pretrained teacher (a teacher checkpoint or ml-tarflow weights) instead of training
    /// one: the smaller teacher's NFM student is dropped (there is no budget to halve).
    let withTeacher (path: string) (e: Experiment) : Experiment =
        if not (File.Exists path) then raise (FileNotFoundException(sprintf "teacher '%s' not found" path, path))
        { e with Teacher = Some path
                 Methods = e.Methods |> List.filter (fun m -> match m.Coupling with Nfm (_, Some _) -> false | _ -> true) }

    /// The comparison at the etas given: one value sets the experiment's eta; several replace the NFM student of the
    /// main teacher ("nfm") by one per eta (`etaMethods`), the first being the experiment's eta (the claims use it).
    let withEtas (etas: float list) (e: Experiment) : Experiment =
        match etas with
        | [] -> e
        | [ eta ] -> { e with Eta = Some eta }
        | first :: _ ->
            let nfm = etaMethods etas
            { e with Eta = Some first; Methods = e.Methods |> List.collect (fun m -> if m.Name = "nfm" then nfm else [ m ]) }

    /// The guidance weights a conditional comparison sweeps by default.
    let defaultGuidance = [ 0.0; 0.5; 1.0; 2.0; 3.0 ]

    /// The class-conditional comparison (the paper's setting): a conditional teacher and students with label dropout
    /// 0.1, each method sampled at every guidance weight and reported at its best one. The OT baseline "ot" pairs
    /// noise and data within each label (label-blind OT would pair one class's noise with another class's digits); the
    /// label-blind one stays beside it as "ot-label-blind".
    let conditional (weights: float list) (e: Experiment) : Experiment =
        let methods =
            e.Methods |> List.collect (fun m ->
                match m.Coupling with
                | Ot -> [ { m with Coupling = OtPerLabel }; { Name = m.Name + "-label-blind"; Coupling = Ot } ]
                | _ -> [ m ])
        { e with Conditional = true; Guidance = weights; Methods = methods }

    /// The evaluation cache file of a comparison's second process (merged into evaluation-cache.json when it ends).
    let private secondProcessCache = "evaluation-cache-second-process.json"

    /// The coupling of a method that needs no teacher (independent, OT, OT within each label); None for the others.
    let private baselineCoupling (m: Method) =
        match m.Coupling with
        | Independent -> Some Couple.independent
        | Ot -> Some Couple.ot
        | OtPerLabel -> Some (Couple.perLabel (fun _ -> Couple.ot))
        | _ -> None

    /// The coupling's spelling recorded in a student's description.
    let private couplingText (m: Method) (pairsPath: string) =
        match m.Coupling with
        | Independent -> "independent"
        | Ot -> "ot"
        | OtPerLabel -> "ot-per-label"
        | Nfm _ -> "teacher:" + pairsPath
        | Custom (d, _) -> "custom:" + d

    /// The teacher trained by a comparison at `steps`: the data's default shape (a smaller one for images at the quick
    /// budget), the budget's batch, lr 1e-3 (2e-3 for images), checkpoints every 250 steps for images.
    let teacherSpec (e: Experiment) (data: Dataset) (isImage: bool) (steps: int) : TeacherRunSpec =
        let classes = if e.Conditional then Teacher.classesOf data else 0
        let rowShape = data.X.shape |> Array.skip 1
        let s =
            { Teacher.settings with
                Steps = steps; Batch = Some e.Budget.TeacherBatch; Seed = e.Seed
                LearningRate = (if isImage then 2e-3 else 1e-3); SaveEvery = (if isImage then 250 elif e.Budget.TeacherHeldOut > 0 then max 1 (steps / 4) else 0)
                Width = (if isImage && e.Budget.Kind = BudgetKind.Quick then Some 64 else None)
                Layers = (if isImage && e.Budget.Kind = BudgetKind.Quick then Some 2 else None) }
        TeacherRunSpec(Teacher.model s rowShape classes,
                       TeacherRunSpec.DefaultTraining(steps, e.Budget.TeacherBatch, s.LearningRate, e.Seed, s.SaveEvery, e.Budget.TeacherEma, e.Precision),
                       e.Data.Source, DeviceSpec("cpu")).Validate()

    /// The students' settings: MLP 256 x 3 for vectors, the small U-Net with logit-normal times for images.
    let studentSettings (e: Experiment) (isImage: bool) : StudentSettings =
        let b =
            if not isImage then Student.settings
            elif e.StudentNet = Architecture.Sit then Student.sitSettings
            else Student.imageSettings
        let b = { b with Width = defaultArg e.StudentWidth b.Width; Depth = defaultArg e.StudentDepth b.Depth }
        { b with Steps = e.Budget.StudentSteps; Batch = e.Budget.StudentBatch; Seed = e.Seed; Conditional = e.Conditional
                 Precision = e.Precision }

    /// What makes two comparisons the same run (saved as experiment.json in the output folder): data, budget, methods,
    /// eta, seed and grid. Workers, logging and reporting do not change the figures.
    let describe (e: Experiment) : JsonNode =
        let coupling (m: Method) =
            match m.Coupling with
            | Independent -> "independent"
            | Ot -> "ot"
            | OtPerLabel -> "ot per label"
            | Nfm (eta, steps) ->
                sprintf "nfm(eta %s, teacher %s)" (eta |> Option.map string |> Option.defaultValue "default")
                    (steps |> Option.map string |> Option.defaultValue "main")
            | Custom (d, _) -> "custom: " + d
        let b = e.Budget
        JsonFile.obj
           ([ "data", JsonNode.Parse(e.Data.ToJson())
              "budget", JsonFile.obj [ "name", JsonFile.str b.Name; "teacher_steps", JsonFile.int (int64 b.TeacherSteps)
                                       "student_steps", JsonFile.int (int64 b.StudentSteps); "teacher_batch", JsonFile.int (int64 b.TeacherBatch)
                                       "student_batch", JsonFile.int (int64 b.StudentBatch); "eval_count", JsonFile.int (int64 b.EvalCount)
                                       "steps", JsonFile.arr [ for s in b.Steps -> JsonFile.int (int64 s) ]
                                       "small_teacher_steps", (match b.SmallTeacherSteps with Some s -> JsonFile.int (int64 s) | None -> null) ]
                          |> fun o ->
                              if b.TeacherEma > 0.0 then o["teacher_ema"] <- JsonFile.num b.TeacherEma
                              if b.TeacherHeldOut > 0 then o["teacher_held_out"] <- JsonFile.int (int64 b.TeacherHeldOut)
                              o
              "methods", JsonFile.arr [ for m in e.Methods -> JsonFile.obj [ "name", JsonFile.str m.Name; "coupling", JsonFile.str (coupling m) ] ]
              "eta", (match e.Eta with Some v -> JsonFile.num v | None -> JsonFile.str "default")
              "teacher", (match e.Teacher with Some f -> JsonFile.str (Path.GetFullPath f) | None -> JsonFile.str "trained")
              "seed", JsonFile.int e.Seed; "grid", JsonFile.str (Spec.gridName e.Grid) ]
            @ (if e.Conditional then [ "conditional", JsonFile.bool true; "guidance", JsonFile.arr [ for w in e.Guidance -> JsonFile.num w ] ] else [])
            @ (if e.GuidancePerSteps then [ "guidance_per_steps", JsonFile.bool true ] else [])
            @ (if e.ChosenGuidance.IsEmpty then []
               else [ "chosen_guidance",
                      JsonFile.obj [ for KeyValue(m, bySteps) in e.ChosenGuidance ->
                                       m, JsonFile.obj [ for KeyValue(steps, w) in bySteps -> string steps, JsonFile.num w ] ] ])
            @ (if e.Precision <> Precision.Float32 then [ "precision", JsonFile.str (e.Precision.Name()) ] else [])
            @ (if e.Validation then [ "reference", JsonFile.str "validation: the last eval_count training rows" ] else [])
            @ (if e.StudentNet <> Architecture.UNet || e.StudentWidth.IsSome || e.StudentDepth.IsSome then
                   [ "student_net", JsonFile.obj [ "architecture", JsonFile.str (e.StudentNet.ToString().ToLowerInvariant())
                                                   "width", (match e.StudentWidth with Some w -> JsonFile.int (int64 w) | None -> null)
                                                   "depth", (match e.StudentDepth with Some d -> JsonFile.int (int64 d) | None -> null) ] ]
               else []))

    /// The roles of a comparison's methods: under test, the first NFM method of the main teacher; the independent
    /// baseline, the first Independent method; the OT baseline, the first per-label OT method of a class-conditional
    /// comparison (label-blind OT is no fair baseline there) or the first OT method of an unconditional one.
    let roles (e: Experiment) : Roles =
        let first pick = e.Methods |> List.tryFind (fun m -> pick m.Coupling) |> Option.map (fun m -> m.Name)
        { UnderTest = first (function Nfm (_, None) -> true | Nfm (_, Some s) -> s = e.Budget.TeacherSteps | _ -> false)
          Independent = first (function Independent -> true | _ -> false)
          Ot = first (if e.Conditional then (function OtPerLabel -> true | _ -> false) else (function Ot -> true | _ -> false)) }

    /// The stages of a comparison, each a function of the shared `Setup` and typed inputs (see `Stages`).
    [<RequireQualifiedAccess>]
    module Stage =
        /// Checks the plan, claims the output folder for it (experiment.json: a rerun of the same comparison continues,
        /// another is refused), splits the data into training rows and the reference, and picks the metric.
        let setup (env: RunEnvironment) (e: Experiment) : Setup =
            if env.Workers < 1 || env.Workers > 2 then invalidArg "workers" (sprintf "workers %d: expected 1 or 2" env.Workers)
            if List.isEmpty e.Methods then invalidArg "methods" "a comparison needs at least one method"
            match e.Methods |> List.countBy (fun m -> m.Name) |> List.tryFind (fun (_, c) -> c > 1) with
            | Some (n, _) -> invalidArg "methods" (sprintf "two methods are named '%s'" n)
            | None -> ()
            if List.isEmpty e.Guidance || e.Guidance |> List.exists (fun w -> not (Double.IsFinite w)) then
                invalidArg "guidance" "guidance weights must be a non-empty list of finite numbers"
            if not e.Conditional && e.Guidance <> [ 0.0 ] then invalidArg "guidance" "guidance weights need a conditional comparison"
            if e.GuidancePerSteps && not e.Conditional then invalidArg "guidance" "guidance chosen per step count needs a conditional comparison"
            if not e.ChosenGuidance.IsEmpty && not e.Conditional then invalidArg "guidance" "chosen guidance weights need a conditional comparison"
            for KeyValue(m, bySteps) in e.ChosenGuidance do
                for KeyValue(steps, w) in bySteps do
                    if not (Double.IsFinite w) then invalidArg "guidance" (sprintf "the chosen weight of %s at %d steps is %g, not a finite number" m steps w)
            let outDir = Directory.CreateDirectory(e.OutDir).FullName
            // A checkpoint alone may be continued to more steps; a comparison at another budget is not the same run.
            let described = describe e
            let descriptionPath = Path.Combine(outDir, "experiment.json")
            if File.Exists descriptionPath then
                let saved = (JsonNode.Parse(File.ReadAllText descriptionPath)).ToJsonString()
                if saved <> described.ToJsonString() then
                    raise (InvalidDataException(sprintf "%s holds a comparison made with other settings than this run; use another output folder or remove it" outDir))
            else JsonFile.write descriptionPath described
            let budget = e.Budget
            let data, referenceSet =
                let data, test = split e.Data budget.EvalCount
                if not e.Validation then data, test
                else
                    let n, m = data.X.shape[0], int64 budget.EvalCount
                    if n < 2L * m then invalidArg "data" (sprintf "%d training rows: validation holds out %d and needs at least twice that" n m)
                    let part (start: int64) (len: int64) (x: torch.Tensor) = if isNull x then null else x.narrow(0L, start, len)
                    Dataset(part 0L (n - m) data.X, part 0L (n - m) data.Labels, data.Name),
                    Dataset(part (n - m) m data.X, part (n - m) m data.Labels, data.Name)
            if e.Conditional && (isNull data.Labels || isNull referenceSet.Labels) then
                invalidArg "data" (sprintf "a conditional comparison needs labels with the data (%s has none)" e.Data.Source)
            let evalCount = int referenceSet.X.shape[0]
            let rowShape = data.X.shape |> Array.skip 1
            let isImage = data.X.dim() = 4L
            env.Reporter.Message(
                sprintf "compare on %s: %d training rows, %d held-out, budget %s (teacher %d steps%s, students %d steps), %d worker(s), %s"
                    e.Data.Source data.X.shape[0] evalCount budget.Name budget.TeacherSteps
                    (match budget.SmallTeacherSteps with Some s -> sprintf " and %d" s | None -> "") budget.StudentSteps env.Workers
                    (e.Precision.Name()))
            // Images from MNIST are scored by FD-MNIST (Frechet distance of the feature classifier's features), the rest
            // by exact W2 on flattened rows.
            let isMnist = isImage && DataSource.KindOf e.Data.Source = DataSourceKind.Mnist
            let classifier = lazy (Metrics.classifier env.Reporter e.Classifier e.Data.Source)
            let metric, quality =
                if isMnist then "fd", (fun (x: torch.Tensor) (r: torch.Tensor) -> Metrics.fd (classifier.Force()) x r)
                else "w2", Metrics.w2
            { Plan = e; Env = env; OutDir = outDir; Data = data; Reference = referenceSet
              TrainLabels = (if e.Conditional then data.Labels else null)
              ReferenceLabels = (if e.Conditional then referenceSet.Labels else null)
              EvalCount = evalCount; RowShape = rowShape; IsImage = isImage; IsMnist = isMnist; Metric = metric; Quality = quality
              Classifier = classifier; Eta = defaultArg e.Eta (TeacherSpec.ForData rowShape).NoiseSigma
              Settings = studentSettings e isImage
              Cache = EvaluationCache.Open(Path.Combine(outDir, "evaluation-cache.json")) }

        /// The weight a method's rows use: the lowest mean log metric over the step counts.
        let bestOf (name: string) (points: (float * int * float) list) =
            let score w = points |> List.filter (fun (x, _, _) -> x = w) |> List.averageBy (fun (_, _, v) -> log (max v 1e-12))
            let best = points |> List.map (fun (w, _, _) -> w) |> List.distinct |> List.minBy score
            { Method = name; Best = best; Points = points }

        /// Samples a student at each step count and guidance weight from fresh noise (the same noise for every method and
        /// weight: the stream "evaluation noise, draw K"), or from given starting points at their weight, and scores
        /// them. The rows are at the best weight, each the mean over the budget's draws with their standard deviation.
        /// Figures found in the cache are not measured again (sample grids are drawn again only when their file is missing).
        let evaluate (s: Setup) (name: string) (st: Student) (start: EvaluationStart option) : GuidanceCurve * ResultRow list =
            let e, budget, report = s.Plan, s.Plan.Budget, s.Env.Reporter
            let labels = Student.labels (int64 s.EvalCount) None st
            let identity = st.Identity()
            let noiseSeed (k: int) = s.Seed(sprintf "evaluation noise, draw %d" k)
            let startId (k: int) =
                match start with
                | None -> sprintf "noise seed %d" (noiseSeed k)
                | Some z -> "from " + Nfm.Checkpoints.Identity.OfTensors z.X0
            let draw (k: int) (w: float) (steps: int) =
                let solver = Spec.paperSolver steps
                match start with
                | None -> Student.draw { Student.request steps (int64 s.EvalCount) (noiseSeed k) with Labels = labels; Guidance = w; Grid = e.Grid } st
                | Some z ->
                    let r = Nfm.Sampling.StudentSampler.FromNoise(st.SamplingNet(), z.X0[int64 k], Spec.solver e.Grid solver, z.Labels, w)
                    r.X, r.Nfe
            let kept = Collections.Generic.Dictionary<float * int, torch.Tensor>()
            /// Draw k at weight w and a step count: the metric, network passes per sample and seconds per sample pass.
            let measure (k: int) (w: float) (steps: int) =
                let key = s.Key [ name; identity; startId k; sprintf "guidance %g" w; sprintf "%d steps" steps; sprintf "draw %d" k ]
                let figures, fresh =
                    s.Cache.GetOrMeasure(key, fun () ->
                        let watch = Diagnostics.Stopwatch.StartNew()
                        let x, nfe = draw k w steps
                        let secs = watch.Elapsed.TotalSeconds
                        let value = s.Quality x s.Reference.X
                        if k = 0 then kept[(w, steps)] <- x.detach().MoveToOuterDisposeScope() else x.Dispose()
                        [| value; float nfe; secs |])
                if not fresh then report.Message(sprintf "%s, %d steps, guidance %g, draw %d: %s %.4f (measured before)" name steps w k s.Metric figures[0])
                figures[0], int figures[1], figures[2]
            let weights = match start with Some z -> [ z.Guidance ] | None -> e.Guidance
            // Weights chosen elsewhere (on validation digits) replace the sweep where they name this method and step count.
            let chosenHere = if start.IsNone then e.ChosenGuidance |> Map.tryFind name else None
            let weightsAt (steps: int) =
                match chosenHere |> Option.bind (Map.tryFind steps) with
                | Some w -> [ w ]
                | None -> weights
            let allWeights = budget.Steps |> List.collect weightsAt |> List.distinct
            // Given starting points hold one set per draw; fresh noise is drawn the budget's number of times.
            let draws = match start with Some z -> int z.X0.shape[0] | None -> budget.Draws
            let sampled =
                [ for w in allWeights do
                    for steps in budget.Steps |> List.filter (fun n -> List.contains w (weightsAt n)) do
                        use _ = torch.NewDisposeScope()
                        let value, nfe, secs = measure 0 w steps
                        if (weightsAt steps).Length > 1 then report.Message(sprintf "%s, %d steps, guidance %g: %s %.4f" name steps w s.Metric value)
                        yield w, steps, nfe, secs, value ]
            let curve = bestOf name [ for (w, steps, _, _, v) in sampled -> w, steps, v ]
            // The rows: at the method's one best weight, or at each step count's best weight (by the first draw).
            let chosen =
                if (e.GuidancePerSteps || chosenHere.IsSome) && start.IsNone then
                    [ for steps in budget.Steps -> sampled |> List.filter (fun (_, s, _, _, _) -> s = steps) |> List.minBy (fun (_, _, _, _, v) -> v) ]
                else sampled |> List.filter (fun (w, _, _, _, _) -> w = curve.Best)
            curve,
            [ for (w, steps, nfe, secs, value) in chosen do
                let solver = Spec.paperSolver steps
                let values =
                    value :: [ for k in 1 .. draws - 1 ->
                                 use _ = torch.NewDisposeScope()
                                 let v, _, _ = measure k w steps
                                 v ]
                let mean, spread = Report.meanSd values
                s.Env.Log |> Option.iter (fun l -> l.Scalar(sprintf "%s/%s_by_sampling_steps" name s.Metric, mean, int64 steps))
                if steps = List.max budget.Steps || steps = 1 then
                    let png = Path.Combine(s.OutDir, sprintf "samples-%s-%dstep.png" name steps)
                    let x =
                        match kept.TryGetValue((w, steps)) with
                        | true, x -> Some x
                        | _ when not (File.Exists png) -> Some (fst (draw 0 w steps))
                        | _ -> None
                    x |> Option.iter (fun x ->
                        Plot.samples png (sprintf "%s, %d %s steps, %s %.3f" name steps (Spec.solverName solver) s.Metric value) x
                        s.Env.Log |> Option.iter (fun l -> l.Image(sprintf "%s/samples_%dstep" name steps, png, int64 steps)))
                report.Message(sprintf "%s, %d steps: %s %.4f ± %.4f over %d draws%s" name steps s.Metric mean spread values.Length
                                   (if e.Conditional then sprintf " (guidance %g)" w else ""))
                yield { Method = name; Kind = RowKind.Student; Solver = Spec.solverName solver; Grid = Spec.gridName e.Grid; Steps = steps; Nfe = nfe
                        Value = mean; Spread = spread; Draws = values.Length; SecondsPer1000 = secs * 1000.0 / float s.EvalCount; Guidance = w } ]

        /// Path curvature (rectified-flow sense: 256 noise rows, 16 Heun steps, uniform grid) and the student's held-out
        /// negative log-likelihood per dimension by integrating the divergence (8 RK4 steps; exact for vectors,
        /// Hutchinson with 4 Rademacher probes per evaluation on 64 rows for images).
        let diagnostics (s: Setup) (name: string) (st: Student) : float * float =
            let seed = s.Seed "curvature and likelihood"
            let measure () =
                let field = Student.field st
                use g = new torch.Generator(uint64 seed)
                let x0 = torch.randn(Array.append [| 256L |] s.RowShape, generator = g)
                let curvature = Nfm.Metrics.PathCurvature.Measure(field, x0, Spec.solver Uniform (Heun 16))
                let rows = min s.Reference.X.shape[0] (if s.IsImage then 64L else 2000L)
                let x1 = s.Reference.X.narrow(0L, 0L, rows)
                let estimator = if s.IsImage then Nfm.Metrics.DivergenceEstimator.HutchinsonRademacher else Nfm.Metrics.DivergenceEstimator.Exact
                let logp = Nfm.Metrics.Divergence.StudentLogLikelihood(field, x1, 8, estimator, 4, g)
                let d = float (x1.numel() / rows)
                [| curvature.PerDimension; -(logp.mean().item<float32>() |> float) / d |]
            let figures, fresh = s.Cache.GetOrMeasure(s.Key [ name; st.Identity(); sprintf "curvature and held-out NLL, seed %d" seed ], measure)
            if not fresh then s.Env.Reporter.Message(sprintf "%s: curvature and held-out NLL measured before" name)
            figures[0], figures[1]

        /// Trains (or continues) one student from its checkpoint in the folder (METHOD.ckpt); `couplingText` is the
        /// coupling's description recorded in it.
        let train (s: Setup) (m: Method) (coupling: Nfm.Couple.Coupling) (couplingText: string) : TrainedStudent =
            let path = Path.Combine(s.OutDir, m.Name + ".ckpt")
            let logStep = s.Env.Log |> Option.map (fun l -> l.Training(m.Name))
            let options = { Checkpoint = Some path; Cancel = s.Env.Cancel; Reporter = Reporter.labelled (sprintf "%-12s" m.Name) s.Env.Reporter
                            OnStep = fun p -> logStep |> Option.iter (fun f -> f.Invoke p) }
            let st = Student.trainIn options coupling couplingText s.Settings s.Data
            // From the checkpoint, so that a student trained by an earlier process reports its own loss and time.
            let last, secs = st.State.LastLoss, st.State.TrainSeconds
            s.Env.Reporter.Message(sprintf "%s: final loss %.4f, %.1fs of training" m.Name last secs)
            { Method = m; Student = st; Coupling = coupling; FinalLoss = last; TrainSeconds = secs }

        /// Sequential network passes of the teacher's autoregressive sampling: one per block and token after the first.
        let private nfeOf (t: TrainedTeacher) = int (int64 t.Spec.Model.Blocks * (t.Spec.Model.Tokens - 1L))

        /// NFM pairs of a teacher at an eta (four noise draws per row: one encode pass over the data instead of one per
        /// training batch), reused from the output folder when they match, else computed (resuming a partial file).
        /// Returns the pairs, their file and the encodes per second (NaN when reused).
        let pairs (s: Setup) (t: TrainedTeacher) (suffix: string) (pairEta: float) =
            let seed, report = s.Plan.Seed, s.Env.Reporter
            let pairsPath =
                if pairEta = s.Eta then Path.Combine(s.OutDir, sprintf "nfm%s.pairs" suffix)
                else Path.Combine(s.OutDir, sprintf "nfm%s-eta%g.pairs" suffix pairEta)
            let id = t.Identity()
            let existing =
                if not (File.Exists pairsPath) then None
                else
                    let p = Nfm.Couple.TeacherPairs.Load pairsPath
                    if p.Spec.TeacherId = id && p.Spec.Draws = 4 && p.Spec.Eta = pairEta && p.Spec.Seed = seed then Some p else None
            let watch = Diagnostics.Stopwatch.StartNew()
            match existing with
            | Some p -> report.Message(sprintf "pairs: reusing %s" pairsPath); p, pairsPath, nan
            | None ->
                let progress = Reporter.blocks report (sprintf "%-12s" ("pairs" + suffix))
                let p = Nfm.Couple.TeacherPairs.Compute(t, s.Data.X, s.TrainLabels, pairEta, 4, seed, partialPath = pairsPath + ".partial",
                                                        progress = progress, cancel = s.Env.Cancel)
                if s.Env.Cancel.IsCancellationRequested then
                    raise (OperationCanceledException "interrupted; the pairs so far are saved in the output folder")
                p.Save pairsPath
                if File.Exists(pairsPath + ".partial") then File.Delete(pairsPath + ".partial")
                p, pairsPath, float (s.Data.X.shape[0] * 4L) / watch.Elapsed.TotalSeconds

        /// The teacher at a budget: trained (or continued; the pretrained one for the main teacher of `withTeacher`).
        /// Returns it, its checkpoint selection, its last loss and its training seconds.
        let trainTeacher (s: Setup) (steps: int) (suffix: string) =
            let e, report = s.Plan, s.Env.Reporter
            match e.Teacher with
            | Some file when suffix = "" ->
                let t = Teacher.read file
                if t.Spec.Model.InputShape <> s.RowShape then
                    invalidArg "teacher" (sprintf "%s is a teacher of rows %s; the data's rows are %s" file (Nfm.Shapes.Show t.Spec.Model.InputShape) (Nfm.Shapes.Show s.RowShape))
                if t.Spec.Model.IsConditional <> e.Conditional then
                    invalidArg "teacher" (sprintf "%s is %s; this comparison is %s" file (if t.Spec.Model.IsConditional then "class-conditional" else "unconditional")
                                              (if e.Conditional then "class-conditional" else "unconditional"))
                report.Message(sprintf "teacher: pretrained %s (%d steps, identity %s)" file t.State.Step (t.Identity()))
                t, None, nan, 0.0
            | _ ->
                let budget, data = e.Budget, s.Data
                let tspec = teacherSpec e data s.IsImage steps
                let path = Path.Combine(s.OutDir, sprintf "teacher%s.ckpt" suffix)
                let logStep = s.Env.Log |> Option.map (fun l -> l.Training("teacher" + suffix))
                let options = { Checkpoint = Some path; Cancel = s.Env.Cancel; Reporter = Reporter.labelled (sprintf "%-12s" ("teacher" + suffix)) report
                                OnStep = fun p -> logStep |> Option.iter (fun f -> f.Invoke p) }
                let started = Teacher.start report (Some path) tspec
                if budget.TeacherHeldOut > 0 then
                    let n, h = data.X.shape[0], int64 budget.TeacherHeldOut
                    if n < 2L * h then invalidArg "data" (sprintf "%d training rows: the budget holds %d out of the teacher's data and needs at least twice that" n h)
                    let part (start: int64) (len: int64) (x: torch.Tensor) = if isNull x then null else x.narrow(0L, start, len)
                    let fit = Dataset(part 0L (n - h) data.X, part 0L (n - h) data.Labels, data.Name)
                    let heldOut = Dataset(part (n - h) h data.X, part (n - h) h data.Labels, data.Name)
                    let t, sel = Teacher.continueSelecting heldOut (Path.Combine(s.OutDir, sprintf "teacher%s-best.ckpt" suffix)) options fit started
                    report.Message(sprintf "teacher%s: the checkpoint at step %d has the best held-out NLL (%.4f nats on %d training rows kept out)" suffix sel.Step sel.HeldOutNll h)
                    // The run's last loss and seconds as its checkpoints record them (summed over the processes).
                    t, Some sel, sel.FinalLoss, sel.TrainSeconds
                else
                    let t = Teacher.continueIn options data started
                    t, None, t.State.LastLoss, t.State.TrainSeconds

        /// A teacher at a budget: trained (or continued), scored on the reference (held-out NLL; its samples at every
        /// guidance weight, the stream "teacher samples"; denoised at the best weight), its NFM pairs at eta and how
        /// Gaussian its encodings of the reference rows are.
        let teacher (s: Setup) (steps: int) (suffix: string) : TeacherResult =
            let e, report, metric = s.Plan, s.Env.Reporter, s.Metric
            let evalCount, reference = s.EvalCount, s.Reference.X
            let teacher, selection, loss, trainSeconds = trainTeacher s steps suffix
            let steps = if e.Teacher.IsSome && suffix = "" then int teacher.State.Step else steps
            let model = teacher.InferenceModel()
            let teacherKey (parts: string list) = s.Key(("teacher" + suffix) :: teacher.Identity() :: parts)
            let nllFigures, _ =
                s.Cache.GetOrMeasure(teacherKey [ "held-out NLL" ], fun () ->
                    let struct (nll, bpd) = Nfm.Invert.Teacher.MeanNll(model, reference, s.ReferenceLabels)
                    [| nll; bpd |])
            let nll, bpd = nllFigures[0], nllFigures[1]
            // The teacher's own samples (at every guidance weight of a conditional run, the same noise each time),
            // timed, then scored as they are and, at the best weight, after one denoising step.
            let labels = Data.samplingLabels model.Spec.Classes (int64 evalCount) None torch.CPU |> Option.toObj
            let sampleSeed = s.Seed "teacher samples"
            let sampleAt (w: float) =
                use g = new torch.Generator(uint64 sampleSeed)
                Nfm.Invert.Teacher.Sample(model, int64 evalCount, g, labels, (if e.Conditional then Nullable w else Nullable()))
            let kept = Collections.Generic.Dictionary<float, torch.Tensor>()
            let teacherWeights =
                match e.ChosenGuidance |> Map.tryFind ("teacher" + suffix) with
                | Some bySteps when not bySteps.IsEmpty -> [ Seq.head bySteps.Values ]
                | _ -> e.Guidance
            let sampled =
                [ for w in teacherWeights ->
                    let figures, fresh =
                        s.Cache.GetOrMeasure(teacherKey [ sprintf "samples seed %d" sampleSeed; sprintf "guidance %g" w ], fun () ->
                            let sw = Diagnostics.Stopwatch.StartNew()
                            let x = sampleAt w
                            let secs = sw.Elapsed.TotalSeconds / float evalCount
                            kept[w] <- x
                            [| s.Quality x reference; secs |])
                    let v = figures[0]
                    if teacherWeights.Length > 1 || not fresh then
                        report.Message(sprintf "teacher%s, guidance %g: %s %.4f%s" suffix w metric v (if fresh then "" else " (measured before)"))
                    w, figures[1], v ]
            let curve = bestOf ("teacher" + suffix) [ for (w, _, v) in sampled -> w, nfeOf teacher, v ]
            let _, sampleSecs, first = sampled |> List.find (fun (w, _, _) -> w = curve.Best)
            // At the best weight, more draws of fresh noise (the streams "teacher samples, draw K"), so that the teacher's
            // row carries a spread as the students' rows do.
            let values =
                first :: [ for k in 1 .. e.Budget.Draws - 1 ->
                             let drawSeed = s.Seed(sprintf "teacher samples, draw %d" k)
                             let figures, fresh =
                                 s.Cache.GetOrMeasure(teacherKey [ sprintf "samples seed %d" drawSeed; sprintf "guidance %g" curve.Best ], fun () ->
                                     use _ = torch.NewDisposeScope()
                                     use g = new torch.Generator(uint64 drawSeed)
                                     let x = Nfm.Invert.Teacher.Sample(model, int64 evalCount, g, labels, (if e.Conditional then Nullable curve.Best else Nullable()))
                                     [| s.Quality x reference |])
                             if not fresh then report.Message(sprintf "teacher%s, draw %d: %s %.4f (measured before)" suffix k metric figures[0])
                             figures[0] ]
            let value, spread = Report.meanSd values
            let samples = lazy (match kept.TryGetValue curve.Best with | true, x -> x | _ -> sampleAt curve.Best)
            let denoised =
                lazy (let samples = samples.Force()
                      torch.cat([| for i in 0L .. 250L .. int64 evalCount - 1L ->
                                    let len = min 250L (int64 evalCount - i)
                                    let chunk = samples.narrow(0L, i, len)
                                    let y = if isNull labels then null else labels.narrow(0L, i, len)
                                    Nfm.Invert.Teacher.Denoise(model, chunk, model.Spec.NoiseSigma, y).detach() |], 0L))
            let denoisedFigures, _ =
                s.Cache.GetOrMeasure(teacherKey [ sprintf "samples seed %d" sampleSeed; sprintf "guidance %g" curve.Best; "denoised" ],
                                     fun () -> [| s.Quality (denoised.Force()) reference |])
            let valueDenoised = denoisedFigures[0]
            // Grids are drawn when their samples were drawn in this process, or when the file is missing.
            let samplesPng = Path.Combine(s.OutDir, sprintf "samples-teacher%s.png" suffix)
            let denoisedPng = Path.Combine(s.OutDir, sprintf "samples-teacher%s-denoised.png" suffix)
            let drawNow (png: string) = kept.ContainsKey curve.Best || not (File.Exists png)
            if drawNow samplesPng then Plot.samples samplesPng (sprintf "teacher%s, %s %.3f" suffix metric first) (samples.Force())
            s.Env.Log |> Option.iter (fun l ->
                let step = int64 teacher.State.Step
                l.Scalar(sprintf "teacher%s/heldout_nll_nats" suffix, nll, step)
                if s.IsImage then l.Scalar(sprintf "teacher%s/heldout_bits_per_dim" suffix, bpd, step)
                l.Scalar(sprintf "teacher%s/%s" suffix metric, value, step)
                l.Image(sprintf "teacher%s/samples" suffix, samplesPng, step))
            if drawNow denoisedPng then
                Plot.samples denoisedPng (sprintf "teacher%s denoised, %s %.3f" suffix metric valueDenoised) (denoised.Force())
            report.Message(sprintf "teacher%s: %s %.4f ± %.4f over %d draws (denoised %.4f), held-out NLL %.4f nats%s" suffix metric value spread values.Length valueDenoised nll
                               (if s.IsImage then sprintf ", %.4f bits/dim" bpd else ""))
            let pairs, pairsPath, encodes = pairs s teacher suffix s.Eta
            // How Gaussian the teacher's NFM encodings of rows it never trained on (the reference) are, as an excess
            // over what exact N(0, I) samples of the same size give.
            let gaussianity = Teacher.encodingsGaussianity s.Eta pairs.Spec.SigmaF (s.Seed "encodings gaussianity") s.Reference teacher
            report.Message(sprintf "teacher%s encodings of the %d reference rows: Frechet distance to N(0, I) %.3f; exact N(0, I) of that size %.3f ± %.3f; excess %.3f ± %.3f (eigenvalues %.3f..%.3f, exact %.3f..%.3f)"
                               suffix gaussianity.Count gaussianity.Statistic gaussianity.FloorMean gaussianity.FloorSpread gaussianity.Excess gaussianity.Spread
                               gaussianity.Gap.MinEigenvalue gaussianity.Gap.MaxEigenvalue gaussianity.FloorGap.MinEigenvalue gaussianity.FloorGap.MaxEigenvalue)
            { Steps = steps; Teacher = teacher; Loss = loss; TrainSeconds = trainSeconds; Nll = nll; Bpd = bpd; Value = value
              Spread = spread; Draws = values.Length; ValueDenoised = valueDenoised; SampleSeconds = sampleSecs; Nfe = nfeOf teacher; Pairs = pairs; PairsPath = pairsPath
              EncodesPerSecond = encodes; Gaussianity = gaussianity; Curve = (if e.Conditional then Some curve else None); Selection = selection }

        /// A teacher's NFM coupling at any eta, its pairs computed once per eta (the teacher's own at the comparison's eta).
        let nfmCouplings (s: Setup) (t: TeacherResult) (suffix: string) : float -> Nfm.Couple.Coupling * string =
            let computed = Collections.Generic.Dictionary<float, Nfm.Couple.TeacherPairs * string>()
            computed[s.Eta] <- (t.Pairs, t.PairsPath)
            fun (pairEta: float) ->
                let p, path =
                    match computed.TryGetValue pairEta with
                    | true, v -> v
                    | _ ->
                        let p, path, _ = pairs s t.Teacher suffix pairEta
                        computed[pairEta] <- (p, path)
                        p, path
                p.ToCoupling(s.Data.X, s.TrainLabels), path

        /// The mean pair cost E||x1 - x0||^2 per dimension of each student's coupling on one batch of up to 2,000 rows
        /// (the stream "pair costs", the same for every coupling).
        let pairCosts (s: Setup) (couplings: (string * Nfm.Couple.Coupling) list) : (string * float) list =
            let rows = min s.Data.X.shape[0] 2000L
            let idx = torch.arange(rows, dtype = torch.int64)
            let batch = Nfm.Couple.Batch(s.Data.X.narrow(0L, 0L, rows), (if isNull s.TrainLabels then null else s.TrainLabels.narrow(0L, 0L, rows)), idx)
            let costs =
                [ for name, coupling in couplings ->
                    use g = new torch.Generator(uint64 (s.Seed "pair costs"))
                    let p = coupling.Invoke(batch, g)
                    name, ((p.X1 - p.X0).square().mean().item<float32>() |> float) ]
            s.Env.Reporter.Message(sprintf "pair cost per dimension: %s" (costs |> List.map (fun (k, v) -> sprintf "%s %s" k ((JsonFile.num v).ToString())) |> String.concat ", "))
            costs

        /// The data floor: as many training rows as the reference has, scored against it (real data against real data).
        let dataFloor (s: Setup) : float =
            let rows = min s.Data.X.shape[0] (int64 s.EvalCount)
            let v = s.Quality (s.Data.X.narrow(0L, 0L, rows)) s.Reference.X
            s.Env.Reporter.Message(sprintf "data floor: %d training rows against the reference: %s %.4f" rows s.Metric v)
            v

        /// Where the NFM student under test starts to show what the starting noise costs: the teacher's encodings
        /// (at the student's eta, one set per draw, the stream "from-encodings") of as many training rows as the
        /// reference has (never of the reference, which would pair samples with the rows they are scored against),
        /// at the student's best guidance weight.
        let encodedStart (s: Setup) (teacher: TeacherResult) (eta: float) (guidance: float) : EvaluationStart =
            let rows = min s.Data.X.shape[0] (int64 s.EvalCount)
            let x = s.Data.X.narrow(0L, 0L, rows)
            let y = if isNull s.TrainLabels then null else s.TrainLabels.narrow(0L, 0L, rows)
            let enc = Nfm.Couple.TeacherPairs.Compute(teacher.Teacher, x, y, eta, s.Plan.Budget.Draws, s.Seed "from-encodings",
                                                      sigmaF = Nullable teacher.Pairs.Spec.SigmaF)
            { X0 = enc.X0; Labels = y; Guidance = guidance }

        /// Latency of one sample (median of 9) and throughput at batch 64 (median of 3), per student at 4 steps or fewer
        /// at its best guidance weight, and of the KV-cached teacher (median of 5 and of 1); sampling only: every
        /// network is built before the clock starts.
        let latency (s: Setup) (teacher: TeacherResult) (students: StudentResult list) : Latency list =
            let seed = s.Seed "latency"
            let latencySteps = s.Plan.Budget.Steps |> List.filter (fun n -> n <= 4)
            let studentLatency =
                [ for st in students do
                    for steps in latencySteps do
                        st.Student.SamplingNet() |> ignore
                        let mutable nfe = 0
                        let once n () =
                            use _ = torch.NewDisposeScope()
                            let request = { Student.request steps n seed with Labels = Student.labels n None st.Student; Guidance = st.Curve.Best; Grid = s.Plan.Grid }
                            nfe <- snd (Student.draw request st.Student)
                        let single = Nfm.Timing.MedianSeconds(Action(once 1L), 9, 2)
                        let batch = Nfm.Timing.MedianSeconds(Action(once 64L), 3, 2)
                        yield { Method = st.Method.Name; Steps = steps; Nfe = nfe; SingleSeconds = single; SecondsPer1000AtBatch64 = batch * 1000.0 / 64.0 } ]
            let model = teacher.Teacher.InferenceModel()
            let teacherLatency =
                use g = new torch.Generator(uint64 seed)
                let guidance = match teacher.Curve with Some c -> Nullable c.Best | None -> Nullable()
                let once n () =
                    let labels = Data.samplingLabels model.Spec.Classes n None torch.CPU |> Option.toObj
                    Nfm.Invert.Teacher.Sample(model, n, g, labels, guidance).Dispose()
                let single = Nfm.Timing.MedianSeconds(Action(once 1L), 5, 2)
                let batch = Nfm.Timing.MedianSeconds(Action(once 64L), 1, 2)
                { Method = "teacher"; Steps = teacher.Nfe; Nfe = (if guidance.HasValue then 2 else 1) * teacher.Nfe
                  SingleSeconds = single; SecondsPer1000AtBatch64 = batch * 1000.0 / 64.0 }
            let all = studentLatency @ [ teacherLatency ]
            for l in all do
                s.Env.Reporter.Message(sprintf "latency %s%s: %.2f ms per sample alone, %.3f s per 1,000 at batch 64"
                                           l.Method (if l.Method = "teacher" then " (KV cache)" else sprintf " %d steps" l.Steps)
                                           (l.SingleSeconds * 1000.0) l.SecondsPer1000AtBatch64)
            all

        /// The teachers' rows (autoregressive sampling): the teacher (its mean over the draws, with their spread), its
        /// denoised samples (the first draw), the smaller teacher.
        let teacherRows (teacher: TeacherResult) (small: TeacherResult option) : ResultRow list =
            let rowOf name value spread draws (t: TeacherResult) =
                { Method = name; Kind = RowKind.Teacher; Solver = "autoregressive"; Grid = "-"; Steps = t.Nfe; Nfe = t.Nfe; Value = value; Spread = spread; Draws = draws
                  SecondsPer1000 = t.SampleSeconds * 1000.0
                  Guidance = (match t.Curve with Some c -> c.Best | None -> 0.0) }
            [ rowOf "teacher" teacher.Value teacher.Spread teacher.Draws teacher; rowOf "teacher-denoised" teacher.ValueDenoised 0.0 1 teacher ]
            @ (small |> Option.map (fun t -> [ rowOf (sprintf "teacher-t%d" t.Steps) t.Value t.Spread t.Draws t ]) |> Option.defaultValue [])

        /// The paper's claims at this scale, as measured: ratios of the NFM student under test to the baselines (by role),
        /// to its teacher, and the teacher's latency over its own, each with its standard error from the rows' spreads
        /// over their draws (latency has none).
        let claims (s: Setup) (teacher: TeacherResult) (studentRows: ResultRow list) (latency: Latency list) : (string * (float * float)) list =
            let budget, roles = s.Plan.Budget, roles s.Plan
            let primaryName = roles.UnderTest |> Option.defaultValue "nfm"
            let rowOf name steps = studentRows |> List.tryFind (fun r -> r.Method = name && r.Steps = steps)
            let relativeVariance (r: ResultRow) = if r.Draws > 1 && r.Value <> 0.0 then (r.Spread / r.Value) ** 2.0 / float r.Draws else 0.0
            let ratio (a: ResultRow) (b: ResultRow) = let q = a.Value / b.Value in q, q * sqrt (relativeVariance a + relativeVariance b)
            [ for steps in budget.Steps do
                let baseline (name: string option) = name |> Option.bind (fun n -> rowOf n steps)
                match rowOf primaryName steps with
                | Some n ->
                    match baseline roles.Independent with Some i -> yield sprintf "nfm_over_independent_%dstep" steps, ratio n i | None -> ()
                    match baseline roles.Ot with Some o -> yield sprintf "nfm_over_ot_%dstep" steps, ratio n o | None -> ()
                | None -> ()
              match budget.Steps |> List.filter (fun n -> n <= 16) |> List.choose (rowOf primaryName) with
              | [] -> ()
              | rows ->
                  let best = rows |> List.minBy (fun r -> r.Value)
                  let q = best.Value / teacher.Value
                  let teacherVariance = if teacher.Draws > 1 && teacher.Value <> 0.0 then (teacher.Spread / teacher.Value) ** 2.0 / float teacher.Draws else 0.0
                  yield "nfm_best_at_most_16_steps_over_teacher", (q, q * sqrt (relativeVariance best + teacherVariance))
              let teacherLatency = latency |> List.tryFind (fun l -> l.Method = "teacher")
              let longest = latency |> List.filter (fun l -> l.Method = primaryName) |> List.sortBy (fun l -> l.Steps) |> List.tryLast
              match teacherLatency, longest with
              | Some t, Some l -> yield sprintf "teacher_latency_over_nfm_%dstep" l.Steps, (t.SingleSeconds / l.SingleSeconds, 0.0)
              | _ -> () ]

    /// The standard stages (`Stage.teacher`, `train`, `evaluate`, `diagnostics`, `latency`).
    let stages : Stages =
        { Teacher = Stage.teacher; Train = Stage.train; Evaluate = Stage.evaluate; Diagnostics = Stage.diagnostics; Latency = Stage.latency }

    /// Runs a comparison with the given stages: the teachers, each method's coupling and student (the students that
    /// need no teacher on a second worker when the environment has two), their evaluation, the diagnostics, latency and
    /// claims. It holds its output folder (FolderLock): a second process on the same folder stops with one line naming
    /// the holder, and a lock left by a process that is no longer running is taken over.
    let runWith (stages: Stages) (env: RunEnvironment) (e: Experiment) : ExperimentResult =
        use _ = FolderLock.Acquire(e.OutDir, env.Reporter)
        let s = Stage.setup env e
        let mainSteps = e.Budget.TeacherSteps
        let smallSteps = e.Methods |> List.choose (fun m -> match m.Coupling with Nfm (_, Some n) when n <> mainSteps -> Some n | _ -> None) |> List.distinct
        if smallSteps.Length > 1 then invalidArg "methods" "NFM methods may use the main teacher and at most one smaller one"
        let small = lazy (smallSteps |> List.tryHead |> Option.map (fun n -> stages.Teacher s n (sprintf "-t%d" n)))
        let needsMainTeacher (m: Method) = match m.Coupling with Nfm (_, None) | Custom _ -> true | Nfm (_, Some n) -> n = mainSteps | _ -> false
        let student (m: Method) (coupling: Nfm.Couple.Coupling) (pairsPath: string) =
            let t = stages.Train s m coupling (couplingText m pairsPath)
            let curve, rows = stages.Evaluate s m.Name t.Student None
            { Method = m; Student = t.Student; Coupling = coupling; FinalLoss = t.FinalLoss; TrainSeconds = t.TrainSeconds; Rows = rows; Curve = curve; Curvature = nan; Nll = nan }
        let nfmStudent (m: Method) (t: TeacherResult) (suffix: string) (methodEta: float option) =
            let c, p = Stage.nfmCouplings s t suffix (defaultArg methodEta s.Eta) in student m c p
        // The chain that needs no main teacher: the feature classifier, the baselines, the smaller teacher's students.
        let side () =
            if s.IsMnist then s.Classifier.Force() |> ignore
            [ for m in e.Methods |> List.filter (needsMainTeacher >> not) ->
                m.Name, match baselineCoupling m, m.Coupling with
                        | Some c, _ -> student m c ""
                        | None, Nfm (methodEta, _) -> let t = small.Force().Value in nfmStudent m t (sprintf "-t%d" t.Steps) methodEta
                        | None, _ -> failwith "a custom coupling needs the main teacher" ]
        // The main chain: the teacher, its NFM and custom students.
        let main () =
            let t = stages.Teacher s mainSteps ""
            let ctx = { Data = s.Data; Teacher = t.Teacher; Nfm = fun pairEta -> fst (Stage.nfmCouplings s t "" pairEta) }
            t, [ for m in e.Methods |> List.filter needsMainTeacher ->
                   m.Name, match m.Coupling with
                           | Custom (_, make) -> student m (make ctx) ""
                           | Nfm (methodEta, _) -> nfmStudent m t "" methodEta
                           | _ -> failwith "a baseline needs no teacher" ]
        let sideRuns, (teacher, mainRuns) =
            if env.Workers = 1 then let mainResult = main () in side (), mainResult
            elif env.SideProcess.IsSome then
                // The baselines' students train in the other process while this one trains the teacher; side () then
                // finds their checkpoints finished (or continues what the other left) and evaluates them here.
                let names = e.Methods |> List.filter (fun m -> (baselineCoupling m).IsSome) |> List.map (fun m -> m.Name)
                if not names.IsEmpty then env.Reporter.Message(sprintf "%s: trained and evaluated in a second process" (String.concat ", " names))
                let other = if names.IsEmpty then Threading.Tasks.Task.CompletedTask else env.SideProcess.Value names
                let mainResult = main ()
                try other.Wait()
                with ex ->
                    let inner = match ex with :? AggregateException as a -> a.InnerException | _ -> ex
                    env.Reporter.Message(sprintf "the second process stopped (%s); its students continue here" inner.Message)
                // Its figures, measured into its own cache file, join this process's cache (side () finds them there).
                let secondCache = Path.Combine(s.OutDir, secondProcessCache)
                s.Cache.Merge secondCache |> ignore
                if File.Exists secondCache then File.Delete secondCache
                side (), mainResult
            else
                let sideTask = Threading.Tasks.Task.Run(Func<_>(side))
                let mainResult = main ()
                try sideTask.Result, mainResult
                with :? AggregateException as ex -> Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerException).Throw(); failwith "unreachable"
        let byName = dict (sideRuns @ mainRuns)
        let students = [ for m in e.Methods -> byName[m.Name] ]
        let pairCosts = Stage.pairCosts s [ for st in students -> st.Method.Name, st.Coupling ]
        let dataFloor = Stage.dataFloor s
        let encodedRows =
            match (roles e).UnderTest |> Option.map (fun n -> students |> List.find (fun st -> st.Method.Name = n)) with
            | None -> []
            | Some p ->
                let eta = match p.Method.Coupling with Nfm (Some x, _) -> x | _ -> s.Eta
                snd (stages.Evaluate s (p.Method.Name + "-from-train-encodings") p.Student (Some (Stage.encodedStart s teacher eta p.Curve.Best)))
        let latency = stages.Latency s teacher students
        let studentRows = (students |> List.collect (fun st -> st.Rows)) @ encodedRows
        if not s.IsImage then
            Plot.scatter (Path.Combine(s.OutDir, "data.png")) (sprintf "%s: %d held-out points" (DataSources.DisplayName e.Data.Source) s.EvalCount) [ "data", s.Reference.X ]
        let claims = Stage.claims s teacher studentRows latency
        let students =
            [ for st in students ->
                let curvature, nll = stages.Diagnostics s st.Method.Name st.Student
                env.Reporter.Message(sprintf "%s: path curvature %.4f per dimension, held-out NLL %.4f nats per dimension" st.Method.Name curvature nll)
                { st with Curvature = curvature; Nll = nll } ]
        let small = small.Force()
        { Experiment = e; Environment = env; Metric = s.Metric; IsImage = s.IsImage; Eta = s.Eta; Rows = studentRows @ Stage.teacherRows teacher small
          Teacher = teacher; SmallTeacher = small; Students = students; PairCosts = pairCosts; DataFloor = dataFloor
          Latency = latency; Claims = claims |> List.map (fun (k, (q, _)) -> k, q); ClaimErrors = claims |> List.map (fun (k, (_, se)) -> k, se)
          ClaimChecks = Claims.checkAllWith (claims |> List.map (fun (k, (_, se)) -> k, se)) (claims |> List.map (fun (k, (q, _)) -> k, q))
          Guidance = (if e.Conditional then (students |> List.map (fun st -> st.Curve)) @ (teacher.Curve |> Option.toList) else [])
          NReference = s.EvalCount; FeatureNetwork = (if s.IsMnist then Some (s.Classifier.Force().Identity()) else None) }

    /// Trains (or continues) and evaluates the students of the named methods that need no teacher (independent and OT
    /// couplings), and nothing else: the work a comparison on two workers gives its second process
    /// (`RunEnvironment.SideProcess`). Its figures go to a cache file of its own (evaluation-cache-second-process.json,
    /// which the comparison merges when this ends). It takes no folder lock: it runs for the comparison that holds the
    /// folder. An MNIST comparison's students are evaluated here only when the feature classifier is already saved
    /// (two processes must not train it at once).
    let runBaselines (env: RunEnvironment) (e: Experiment) (names: string list) =
        // The comparison has said what it compares: the setup's own line would repeat it.
        let s = { Stage.setup { env with Reporter = { env.Reporter with Message = ignore } } e with Env = env }
        let cache = EvaluationCache.Open(Path.Combine(s.OutDir, secondProcessCache))
        cache.Merge(Path.Combine(s.OutDir, "evaluation-cache.json")) |> ignore
        let s = { s with Cache = cache }
        let evaluate = not s.IsMnist || File.Exists e.Classifier
        for name in names do
            match e.Methods |> List.tryFind (fun m -> m.Name = name) with
            | None -> invalidArg "names" (sprintf "the comparison has no method '%s'" name)
            | Some m ->
                match baselineCoupling m with
                | Some c ->
                    let t = stages.Train s m c (couplingText m "")
                    if evaluate && not env.Cancel.IsCancellationRequested then stages.Evaluate s m.Name t.Student None |> ignore
                | None -> invalidArg "names" (sprintf "method '%s' needs a teacher: it trains in the comparison's own process" name)

    /// Runs a comparison with the standard stages (`runWith stages`): trains (or continues) the teachers and students,
    /// samples and scores them (resuming the evaluation from the folder's evaluation-cache.json), measures the
    /// diagnostics, latency and claims, and writes the sample PNGs; `Experiment.write` saves results.json, results.md
    /// and the plots.
    let run (env: RunEnvironment) (e: Experiment) : ExperimentResult = runWith stages env e

    /// Rows of the teacher (autoregressive sampling, not solver steps) are reported beside the table and drawn as levels.
    let isTeacherRow (r: ResultRow) = r.Kind = RowKind.Teacher

    /// A markdown table: one row per student method, one column per step count.
    let table (r: ExperimentResult) =
        let rows = r.Rows |> List.filter (isTeacherRow >> not)
        let steps = rows |> List.map (fun r -> r.Steps) |> List.distinct |> List.sort
        let methods = rows |> List.map (fun r -> r.Method) |> List.distinct
        let header = sprintf "| method | %s |" (steps |> List.map (sprintf "%d steps") |> String.concat " | ")
        let sep = sprintf "|---|%s" (steps |> List.map (fun _ -> "---:|") |> String.concat "")
        let line m =
            let cells = steps |> List.map (fun s -> match rows |> List.tryFind (fun r -> r.Method = m && r.Steps = s) with
                                                    | Some r when r.Draws > 1 -> sprintf "%.4f ± %.4f" r.Value r.Spread
                                                    | Some r -> sprintf "%.4f" r.Value
                                                    | None -> "")
            sprintf "| %s | %s |" m (String.concat " | " cells)
        String.concat "\n" ([ sprintf "%s (lower is better; mean ± standard deviation over noise draws)" r.Metric; ""; header; sep ] @ (methods |> List.map line))
        + sprintf "\n\ndata floor (%d training rows against the reference): %s %.4f\n" r.NReference r.Metric r.DataFloor

    /// The summary: the table, each teacher's figures, latency and the claims as measured.
    let markdown (r: ExperimentResult) =
        let teacherLine (name: string) (t: TeacherResult) =
            let g = t.Gaussianity
            sprintf "%s (%d training steps; autoregressive, %d sequential steps): %s %.4f, denoised %.4f; %.3f s per 1,000 samples; held-out NLL %.3f nats%s; encodings of %d held-out rows: Frechet distance to N(0, I) %.3f against %.3f ± %.3f for exact N(0, I) of that size, excess %.3f ± %.3f\n"
                (name + (match t.Selection with Some sel -> sprintf ", checkpoint %d by held-out NLL" sel.Step | None -> "")) t.Steps t.Nfe r.Metric t.Value t.ValueDenoised (t.SampleSeconds * 1000.0) t.Nll
                (if r.IsImage then sprintf ", %.3f bits/dim" t.Bpd else "") g.Count g.Statistic g.FloorMean g.FloorSpread g.Excess g.Spread
        table r + "\n" + teacherLine "teacher" r.Teacher
        + (r.SmallTeacher |> Option.map (fun t -> teacherLine (sprintf "teacher-t%d" t.Steps) t) |> Option.defaultValue "")
        + "\nlatency of one sample (ms): "
        + String.concat ", " [ for l in r.Latency ->
                                  if l.Method = "teacher" then sprintf "teacher %.2f" (l.SingleSeconds * 1000.0)
                                  else sprintf "%s %d steps %.2f" l.Method l.Steps (l.SingleSeconds * 1000.0) ] + "\n"
        + "\nclaims as measured:\n" + String.concat "" [ for c in r.ClaimChecks -> "- " + Claims.describe c + "\n" ]
        + (if List.isEmpty r.Guidance then ""
           else "\nclassifier-free guidance (rows at each method's best weight):\n"
                + String.concat "" [ for c in r.Guidance -> sprintf "- %s: best weight %g\n" c.Method c.Best ])

    /// The metric against sampling steps, one line per student method, the teachers as dashed levels.
    let qualityPlot (path: string) (r: ExperimentResult) =
        let students = r.Rows |> List.filter (isTeacherRow >> not)
        let lo, hi = students |> List.map (fun x -> float x.Steps) |> List.min, students |> List.map (fun x -> float x.Steps) |> List.max
        let series =
            students |> List.groupBy (fun x -> x.Method)
            |> List.map (fun (m, rs) ->
                let rs = rs |> List.sortBy (fun x -> x.Steps)
                Nfm.Plots.LineSeries(m, rs |> List.map (fun x -> float x.Steps) |> Array.ofList, rs |> List.map (fun x -> x.Value) |> Array.ofList))
        // The teacher samples autoregressively, not in solver steps: drawn as a dashed level for reference.
        let levels =
            r.Rows |> List.filter isTeacherRow
            |> List.map (fun x -> Nfm.Plots.LineSeries(sprintf "%s (%d sequential steps)" x.Method x.Nfe, [| lo; hi |], [| x.Value; x.Value |], Reference = true))
        Plot.lines path (sprintf "%s: %s against sampling steps" (DataSources.DisplayName r.Experiment.Data.Source) r.Metric) "sampling steps" r.Metric true true (series @ levels)

    /// Writes results.json, results.md and quality.png into the experiment's output folder; returns the summary.
    let write (r: ExperimentResult) =
        let dir = r.Experiment.OutDir
        JsonFile.write (Path.Combine(dir, "results.json")) (Report.toJson r)
        qualityPlot (Path.Combine(dir, "quality.png")) r
        let md = markdown r
        AtomicFile.WriteAllBytes(Path.Combine(dir, "results.md"), ReadOnlyMemory(Text.Encoding.UTF8.GetBytes md))
        md
