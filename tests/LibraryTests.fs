/// The method as a library, in-process and at tiny budgets: the F# Teacher, Couple, Student and Metrics modules, and
/// the comparison (Experiment) with custom couplings and an eta list.
module Nfm.Tests.LibraryTests

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Nfm.FSharp

/// Comparisons in these tests run silently on one worker.
let private quiet = Nfm.FSharp.RunEnvironment.silent

let private tempDir () =
    let d = Path.Combine(Path.GetTempPath(), "nfm-lib-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    d

/// A small 2-D teacher, trained for a few dozen steps (seconds).
let private tinyTeacher =
    lazy (
        let data = Data.toy "moons" 2000L 0L
        let s = { Teacher.settings with Width = Some 16; Blocks = Some 2; Layers = Some 1; HeadDim = Some 8; Steps = 40
                                        Batch = Some 128 }
        data, Teacher.trainIn RunOptions.silent s data)

/// A comparison on moons at a tiny budget: 12 teacher and student steps, 200 reference points, 1 and 4 steps.
let private tinyExperiment (outDir: string) =
    let e = Experiment.create (Nfm.Descriptions.DataSpec("moons")) "12" outDir
    { e with Budget = { e.Budget with EvalCount = 200; Steps = [ 1; 4 ] } }

/// Expects an InvalidDataException whose message mentions `mentions`.
let private refused (mentions: string) (f: unit -> unit) =
    Expect.throwsC f (fun e ->
        Expect.isTrue (e :? InvalidDataException) (sprintf "InvalidDataException, got %s" (e.GetType().Name))
        Expect.stringContains e.Message mentions "names the problem")

let private messages () =
    let lines = Collections.Concurrent.ConcurrentQueue<string>()
    { Reporter.silent with Message = lines.Enqueue }, lines

[<Tests>]
let tests =
    testSequenced <| testList "library" [
        test "a teacher trained from F# inverts: decode (encode x) = x within 1e-4, and its NLL is finite" {
            let data, teacher = tinyTeacher.Force()
            let x = data.X.narrow(0L, 0L, 64L)
            let z, logdet = Teacher.encode teacher x
            Expect.equal (z.shape |> List.ofArray) [ 64L; 2L ] "z has the data's shape"
            Expect.equal (logdet.shape |> List.ofArray) [ 64L ] "one log-determinant per row"
            let back = Teacher.decode teacher z
            let err = (back - x).abs().max().item<float32>()
            Expect.isLessThan err 1e-4f "decode (encode x) = x"
            let nats, _ = Teacher.nll teacher (Data.toy "moons" 500L 1L)
            Expect.isTrue (Double.IsFinite nats) (sprintf "NLL %f is finite" nats)
        }

        test "a teacher run saved to a checkpoint continues from it, and another run in the same file is refused" {
            let dir = tempDir ()
            let path = Path.Combine(dir, "t.ckpt")
            let data = Data.toy "moons" 1000L 0L
            let s = { Teacher.settings with Width = Some 8; Blocks = Some 2; Layers = Some 1; HeadDim = Some 4; Steps = 6
                                            Batch = Some 64 }
            let first = Teacher.trainIn { RunOptions.silent with Checkpoint = Some path } s data
            Expect.equal first.State.Step 6L "trained 6 steps"
            let reporter, lines = messages ()
            let longer = Teacher.trainIn { RunOptions.silent with Checkpoint = Some path; Reporter = reporter } { s with Steps = 9 } data
            Expect.equal longer.State.Step 9L "continued to 9 steps"
            Expect.exists lines (fun l -> l.Contains "continuing from") "says it continued"
            refused "other settings" (fun () -> Teacher.trainIn { RunOptions.silent with Checkpoint = Some path } { s with Width = Some 16 } data |> ignore)
        }

        test "the NFM coupling on the fly keeps each data row and gives noise of unit scale; a student trains on it" {
            let data, teacher = tinyTeacher.Force()
            let nfm, sigmaF = Couple.teacherWithScale 0.05 data teacher
            Expect.isGreaterThan sigmaF 0.0 "sigma_f > 0"
            use g = new torch.Generator(3UL)
            let batch = Couple.batch (data.X.narrow(0L, 0L, 256L)) None
            let p = Couple.apply g nfm batch
            Expect.isTrue (p.X1.allclose(batch.X1, 0.0, 0.0)) "x1 is the data, in place"
            let scale = p.X0.square().mean().sqrt().item<float32>()
            Expect.isTrue (scale > 0.5f && scale < 2.0f) (sprintf "x0 has about unit scale (%.3f)" scale)
            let st = data |> Student.train nfm "nfm" { Student.settings with Width = 32; Depth = 2; Steps = 20; Batch = 64 }
            let x = st |> Student.sample (Euler 2) Quadratic 100L 1L
            Expect.equal (x.shape |> List.ofArray) [ 100L; 2L ] "samples of the data's shape"
            Expect.isTrue (Double.IsFinite(Metrics.w2 x (data.X.narrow(0L, 0L, 100L)))) "a finite W2"
        }

        test "precomputed pairs give the same coupling as their file, and reflow over a student's field makes data" {
            let data, teacher = tinyTeacher.Force()
            let dir = tempDir ()
            let pairs = teacher |> Couple.precompute 0.05 2 0L data
            let path = Path.Combine(dir, "p.pairs")
            pairs.Save path
            let batch = Nfm.Couple.Batch(data.X.narrow(0L, 0L, 32L), null, torch.arange(32L, dtype = torch.int64))
            let draw c = use g = new torch.Generator(5UL) in (Couple.apply g c batch).X0
            Expect.isTrue ((draw (Couple.ofPairs data pairs)).allclose(draw (Couple.pairsFile path data), 0.0, 0.0)) "same pairs from memory and file"
            let st = data |> Student.train Couple.ot "ot" { Student.settings with Width = 16; Depth = 1; Steps = 5; Batch = 32 }
            let p = Couple.apply (new torch.Generator(1UL)) (Couple.reflowField (Student.field st)) batch
            Expect.equal (p.X1.shape |> List.ofArray) [ 32L; 2L ] "reflow data of the batch's shape"
            Expect.isFalse (p.X1.allclose(batch.X1, 0.0, 0.0)) "reflow makes its own data side"
        }

        test "sampling labels: cycling classes, one class, and clear errors" {
            let l = (Data.samplingLabels 3 7L None (torch.CPU)).Value
            Expect.sequenceEqual (l.data<int64>().ToArray()) [| 0L; 1L; 2L; 0L; 1L; 2L; 0L |] "cycles through the classes"
            Expect.isNone (Data.samplingLabels 0 4L None torch.CPU) "none for an unconditional model"
            Expect.throwsT<ArgumentException> (fun () -> Data.samplingLabels 3 4L (Some 3) torch.CPU |> ignore) "label out of range"
            Expect.throwsT<ArgumentException> (fun () -> Data.samplingLabels 0 4L (Some 1) torch.CPU |> ignore) "label for an unconditional model"
        }

        test "a student's description holds its coupling typed, written as the command-line form in JSON" {
            let data = Data.toy "moons" 100L 0L
            for name, kind in [ "ot", Nfm.Descriptions.CouplingKind.Ot; "teacher:p.pairs", Nfm.Descriptions.CouplingKind.Teacher
                                "sinkhorn:0.05:round", Nfm.Descriptions.CouplingKind.Sinkhorn; "mix of nfm and ot", Nfm.Descriptions.CouplingKind.Custom ] do
                let spec = Student.spec Student.settings name data
                Expect.equal spec.Coupling.Kind kind (name + ": its kind")
                let json = Nfm.Descriptions.Json.Write spec
                let expected = if kind = Nfm.Descriptions.CouplingKind.Custom then "custom:" + name else name
                Expect.stringContains json (sprintf "\"coupling\": \"%s\"" expected) (name + ": written as its command-line form")
                let back = Nfm.Descriptions.Json.Read<Nfm.Descriptions.StudentSpec> json
                Expect.equal back.Coupling spec.Coupling (name + ": read back equal")
            let custom = Nfm.Descriptions.CouplingSpec.Named "mine"
            Expect.throwsT<NotSupportedException> (fun () -> Couple.ofSpec custom data |> ignore) "a custom coupling cannot be rebuilt from its name"
        }

        test "runs are the same up to their step count, and not when anything else differs" {
            let a = """{"model":{"width":8},"training":{"steps":10,"batch":4}}"""
            Expect.isTrue (Runs.same a """{"model":{"width":8},"training":{"steps":20,"batch":4}}""") "more steps: same run"
            Expect.isFalse (Runs.same a """{"model":{"width":8},"training":{"steps":10,"batch":8}}""") "another batch"
            Expect.isFalse (Runs.same a """{"model":{"width":16},"training":{"steps":10,"batch":4}}""") "another model"
        }

        test "a comparison runs in-process with an eta list and a custom coupling, writes its files, and a rerun continues" {
            let dir = tempDir ()
            let e = tinyExperiment dir
            let mix = { Name = "mix"; Coupling = Custom("mix 0.5 of nfm(0.05) and ot", fun ctx -> Couple.mix 0.5 (ctx.Nfm 0.05) Couple.ot) }
            let methods =
                [ { Name = "independent"; Coupling = Independent }; { Name = "ot"; Coupling = Ot } ]
                @ Experiment.etaMethods [ 0.02; 0.1 ] @ [ mix ]
            let e = { e with Methods = methods; Eta = Some 0.02 }
            let r = Experiment.run quiet e
            let md = Experiment.write r
            let names = r.Rows |> List.map (fun x -> x.Method) |> List.distinct
            Expect.equal names [ "independent"; "ot"; "nfm-eta0.02"; "nfm-eta0.1"; "mix"; "nfm-eta0.02-from-train-encodings"; "teacher"; "teacher-denoised" ]
                "every method, the encodings row and the teacher's rows, in order"
            // Every student row and the teacher's row are the mean of three noise draws with their spread; the denoised
            // teacher row is of the first draw.
            for x in r.Rows do
                if x.Method = "teacher-denoised" then Expect.equal (x.Draws, x.Spread) (1, 0.0) (x.Method + ": one draw")
                else Expect.isTrue (x.Draws = 3 && x.Spread > 0.0 && Double.IsFinite x.Spread) (sprintf "%s at %d steps: 3 draws, spread %g" x.Method x.Steps x.Spread)
            // The data floor is the metric of as many training rows as the reference has (rows the encodings row starts
            // from), never of the reference itself (which would read 0).
            let train, reference = Experiment.split e.Data e.Budget.EvalCount
            Expect.floatClose Accuracy.high r.DataFloor (Metrics.w2 (train.X.narrow(0L, 0L, reference.X.shape[0])) reference.X) "the data floor"
            Expect.isGreaterThan r.DataFloor 0.0 "training rows are not the reference"
            // The teacher's encodings are measured on the reference rows against exact N(0, I) samples of that size.
            let g = r.Teacher.Gaussianity
            Expect.equal (g.Count, g.Dimension) (200L, 2L) "the 200 reference rows of 2 values"
            Expect.floatClose Accuracy.veryHigh g.Excess (g.Statistic - g.FloorMean) "excess = statistic - floor"
            // Each claim carries the standard error of its ratio.
            for (k, se) in r.ClaimErrors do
                if k.StartsWith "nfm_over" then Expect.isTrue (se > 0.0 && Double.IsFinite se) (sprintf "%s: standard error %g" k se)
            for m in [ "independent"; "ot"; "nfm-eta0.02"; "nfm-eta0.1"; "mix" ] do
                Expect.equal (r.Rows |> List.filter (fun x -> x.Method = m) |> List.map (fun x -> x.Steps)) [ 1; 4 ] (m + " at 1 and 4 steps")
            Expect.isTrue (r.Rows |> List.forall (fun x -> Double.IsFinite x.Value)) "every value finite"
            Expect.exists r.Claims (fun (k, _) -> k = "nfm_over_ot_1step") "claims use the first NFM student"
            for f in [ "results.json"; "results.md"; "quality.png"; "experiment.json"; "nfm.pairs"; "nfm-eta0.1.pairs"; "nfm-eta0.05.pairs"; "mix.ckpt" ] do
                Expect.isTrue (File.Exists(Path.Combine(dir, f))) (f + " written")
            Expect.stringContains md "| mix |" "the summary has the custom method"
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))
            for field in [ "data"; "metric"; "rows"; "command"; "commit"; "machine"; "budget"; "seed"; "teacher"; "teachers"; "nfm"
                           "diagnostics"; "latency"; "claims"; "claims_standard_error"; "claim_checks"; "students"; "n_reference"; "draws"; "format_version" ] do
                Expect.isTrue (fst (j.RootElement.TryGetProperty field)) (field + " in results.json")
            Expect.equal (j.RootElement.GetProperty("nfm").GetProperty("eta").GetDouble()) 0.02 "the experiment's eta"
            // The same comparison again: every checkpoint is continued (nothing retrained) and the figures agree.
            let reporter, lines = messages ()
            let again = Experiment.run { quiet with Reporter = reporter } e
            Expect.exists lines (fun l -> l.Contains "continuing from") "continues the checkpoints"
            Expect.exists lines (fun l -> l.Contains "pairs: reusing") "reuses the pairs"
            let values (x: ExperimentResult) = x.Rows |> List.filter (Experiment.isTeacherRow >> not) |> List.map (fun x -> x.Method, x.Steps, x.Value)
            Expect.equal (values again) (values r) "the same figures"
            // Loaded, not trained, the students and the teacher still report the loss and time their checkpoints record.
            let training (x: ExperimentResult) =
                ("teacher", x.Teacher.Loss, x.Teacher.TrainSeconds) :: [ for s in x.Students -> s.Method.Name, s.FinalLoss, s.TrainSeconds ]
            for (name, loss, secs) in training r do
                Expect.isTrue (Double.IsFinite loss && secs > 0.0) (sprintf "%s: final loss %g and %g s of training recorded" name loss secs)
            Expect.equal (training again) (training r) "the rerun reports the first run's final losses and training seconds"
            // The evaluation resumes from the folder: the rerun read every figure from evaluation-cache.json, and with
            // half of its entries gone, a third run measures those again, to the same figures.
            Expect.exists lines (fun l -> l.Contains "measured before") "reads the figures measured before"
            let cachePath = Path.Combine(e.OutDir, "evaluation-cache.json")
            let cached = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText cachePath).AsObject()
            let keys = [ for kv in cached -> kv.Key ]
            Expect.isGreaterThan keys.Length 20 "every figure is kept"
            keys |> List.iteri (fun i k -> if i % 2 = 0 then cached.Remove k |> ignore)
            File.WriteAllText(cachePath, cached.ToJsonString())
            let reporter3, lines3 = messages ()
            let third = Experiment.run { quiet with Reporter = reporter3 } e
            Expect.exists lines3 (fun l -> l.Contains "measured before") "reads what is left"
            Expect.equal (values third) (values r) "a half-measured evaluation resumes to the same figures"
            Expect.equal (Text.Json.Nodes.JsonNode.Parse(File.ReadAllText cachePath).AsObject().Count) keys.Length "and keeps them all again"
            // A damaged cache is refused with one line naming it.
            File.WriteAllText(cachePath, "{ \"x\": [ 1, ")
            refused "evaluation-cache.json" (fun () -> Experiment.run quiet e |> ignore)
            // Another comparison in the same folder is refused, naming the folder.
            refused "other settings" (fun () -> Experiment.run quiet { e with Seed = 1L } |> ignore)
        }

        test "the comparison is its stages: one runs alone, a script swaps the evaluation, and seeds are named" {
            let dir = tempDir ()
            let e = { tinyExperiment dir with Methods = [ { Name = "independent"; Coupling = Independent }; { Name = "nfm"; Coupling = Nfm(None, None) } ] }
            // One stage alone: the setup, then the teacher (trained, scored and its pairs written).
            let s = Experiment.Stage.setup quiet e
            Expect.equal (s.EvalCount, s.Metric, s.IsImage) (200, "w2", false) "the setup: 200 reference rows scored by W2"
            let t = Experiment.Stage.teacher s e.Budget.TeacherSteps ""
            Expect.isTrue (Double.IsFinite t.Nll && Double.IsFinite t.Value && File.Exists t.PairsPath) "the teacher stage scores the teacher and writes its pairs"
            // The whole comparison with the script's own evaluation: every student (and the encodings row) is scored by it.
            let called = Collections.Generic.List<string>()
            let mine (s: Setup) (name: string) (_: Nfm.Regress.Student) (start: EvaluationStart option) =
                called.Add name
                let rows : ResultRow list =
                    [ for steps in s.Plan.Budget.Steps ->
                        { Method = name; Kind = RowKind.Student; Solver = "mine"; Grid = "-"; Steps = steps; Nfe = steps
                          Value = float steps + (if start.IsSome then 0.5 else 0.0); Spread = 0.0; Draws = 1; SecondsPer1000 = 0.0; Guidance = 0.0 } ]
                { Method = name; Best = 0.0; Points = [ for r in rows -> 0.0, r.Steps, r.Value ] }, rows
            let r = Experiment.runWith { Experiment.stages with Evaluate = mine } quiet e
            Expect.equal (List.ofSeq called) [ "nfm"; "independent"; "nfm-from-train-encodings" ] "the swapped stage scored every student and the encodings row"
            let students = r.Rows |> List.filter (Experiment.isTeacherRow >> not)
            Expect.equal [ for x in students -> x.Method, x.Steps, x.Value ]
                [ "independent", 1, 1.0; "independent", 4, 4.0; "nfm", 1, 1.0; "nfm", 4, 4.0; "nfm-from-train-encodings", 1, 1.5; "nfm-from-train-encodings", 4, 4.5 ]
                "its rows are the results' rows"
            Expect.equal r.Teacher.Value t.Value "the teacher the stage trained is continued, its figures read back"
            Expect.equal (r.Claims |> List.find (fun (k, _) -> k = "nfm_over_independent_4step") |> snd) 1.0 "the claims are computed on the swapped rows"
            // A student answers a sample request as it answers the positional call.
            let st = (r.Students |> List.find (fun x -> x.Method.Name = "nfm")).Student
            let x, nfe = Student.draw { Student.request 4 10L 7L with Grid = Grid.Uniform } st
            Expect.equal nfe 4 "four Euler steps, no guidance: four network passes per sample"
            Expect.isTrue (x.allclose(Student.sample (Solver.Euler 4) Grid.Uniform 10L 7L st, 0.0, 0.0)) "draw = sample"
            // Seeds by name: one per stream, the same every time, none shared by two names or two comparison seeds.
            let names = [ "evaluation noise, draw 0"; "evaluation noise, draw 1"; "teacher samples"; "pair costs"; "latency"; "from-encodings" ]
            let seeds = [ for seed in [ 0L; 1L; 2L ] do for n in names -> Seeds.derive seed n ]
            Expect.equal (List.distinct seeds).Length seeds.Length "every (seed, name) has its own seed"
            Expect.isTrue (seeds |> List.forall (fun x -> x >= 0L)) "seeds are non-negative"
            Expect.equal (s.Seed "teacher samples") (Seeds.derive e.Seed "teacher samples") "the setup's seeds are the comparison's"
        }

        test "settings are hyperparameters compared by value; where a run is saved and how it reports is apart" {
            Expect.equal { Student.settings with Width = 256 } Student.settings "the same student hyperparameters are equal"
            Expect.notEqual { Student.settings with Width = 128 } Student.settings "others are not"
            Expect.equal { Teacher.settings with Steps = 2000 } Teacher.settings "the same teacher hyperparameters are equal"
            Expect.notEqual { Teacher.settings with Ema = 0.9 } Teacher.settings "others are not"
            // A run's options change nothing it learns: the same settings trained silently and with a checkpoint and a
            // reporter give the same weights.
            let data = Data.toy "moons" 500L 0L
            let s = { Student.settings with Width = 16; Depth = 1; Steps = 5; Batch = 32 }
            let updates = Collections.Concurrent.ConcurrentQueue<int64>()
            let reporter = { Reporter.silent with Stage = fun _ _ -> fun step _ -> updates.Enqueue step }
            let path = Path.Combine(tempDir (), "s.ckpt")
            let a = Student.train Couple.independent "independent" s data
            let b = Student.trainIn { RunOptions.silent with Checkpoint = Some path; Reporter = reporter } Couple.independent "independent" s data
            Expect.equal (a.Identity()) (b.Identity()) "the same student either way"
            Expect.isTrue (File.Exists path) "the options' checkpoint is written"
            Expect.equal (Seq.last updates) 5L "and its reporter hears every step"
        }

        test "budgets are read in any case: --budget Quick on images is the quick teacher, not the full-width one" {
            Expect.equal (Experiment.budget "Quick" true).Kind BudgetKind.Quick "Quick"
            Expect.equal (Experiment.budget "STANDARD" false).Name "standard" "written as standard"
            Expect.equal (Experiment.budget " 40 " false).Kind (BudgetKind.Steps 40) "a number of steps"
            Expect.throwsC (fun () -> Experiment.budget "fast" false |> ignore) (fun e -> Expect.stringContains e.Message "budget 'fast'" "names it")
            let images = Nfm.Data.Dataset(torch.zeros(16L, 1L, 28L, 28L), null, "x")
            let e = tinyExperiment (tempDir ())
            let width (name: string) = (Experiment.teacherSpec { e with Budget = Experiment.budget name true } images true 10).Model.Width
            Expect.equal (width "Quick") (width "quick") "Quick = quick"
            Expect.isLessThan (width "QUICK") (width "standard") "the quick teacher is the narrow one"
        }

        test "the claims find the NFM method and the baselines by coupling, whatever their names; 'teacher-x' is a student" {
            let e = tinyExperiment (tempDir ())
            let methods =
                [ { Name = "indep"; Coupling = Independent }; { Name = "minibatch"; Coupling = Ot }
                  { Name = "ours"; Coupling = Nfm(None, None) }; { Name = "teacher-x"; Coupling = Custom("ot again", fun _ -> Couple.ot) } ]
            let e = { e with Methods = methods; Budget = { e.Budget with Steps = [ 1 ] } }
            Expect.equal (Experiment.roles e) { UnderTest = Some "ours"; Independent = Some "indep"; Ot = Some "minibatch" } "roles by coupling"
            let r = Experiment.run quiet e
            for k in [ "nfm_over_independent_1step"; "nfm_over_ot_1step"; "nfm_best_at_most_16_steps_over_teacher" ] do
                Expect.exists r.Claims (fun (c, _) -> c = k) (k + " is measured")
            let x = r.Rows |> List.find (fun x -> x.Method = "teacher-x")
            Expect.equal x.Kind RowKind.Student "a student's row"
            Expect.isFalse (Experiment.isTeacherRow x) "not a teacher row"
            Expect.stringContains (Experiment.table r) "| teacher-x |" "in the students' table"
            Experiment.write r |> ignore
            let read = Report.read (Path.Combine(e.OutDir, "results.json"))
            Expect.equal (read.Rows |> List.filter (fun x -> x.Kind = RowKind.Teacher) |> List.map (fun x -> x.Method)) [ "teacher"; "teacher-denoised" ]
                "results.json names each row's kind"
        }

        test "a coupling carries its description: a student records it, and a name that misstates a built-in is refused" {
            let data = Data.toy "moons" 512L 0L
            let s = { Student.settings with Steps = 3; Batch = 64; Width = 16; Depth = 1 }
            Expect.equal (Couple.describeText Couple.ot) "ot" "ot"
            Expect.equal (Couple.describe (Couple.sinkhorn 0.1)).Value.Kind Nfm.Descriptions.CouplingKind.Sinkhorn "sinkhorn"
            Expect.equal (Couple.describeText (Couple.mix 0.5 Couple.ot Couple.independent)) "mix 0.5 (ot) (independent)" "a combinator composes"
            Expect.throwsC (fun () -> Student.train Couple.ot "sinkhorn:0.1" s data |> ignore)
                (fun e -> Expect.stringContains e.Message "the coupling is ot, but the student would record it as sinkhorn:0.1" "one line naming both")
            let st = Student.fit (Couple.sinkhorn 0.1) s data
            Expect.equal st.Spec.Coupling (Couple.describe (Couple.sinkhorn 0.1)).Value "records what it was trained on"
            let mine = Student.fit (Couple.mix 0.5 Couple.ot Couple.independent |> Couple.named "half-ot") s data
            Expect.equal mine.Spec.Coupling.Name "half-ot" "a name of one's own"
            Expect.throwsC (fun () -> Student.fit (Couple.ofFunction (fun x _ _ -> torch.zeros_like x)) s data |> ignore)
                (fun e -> Expect.stringContains e.Message "Couple.named" "says how to name it")
        }

        test "validation scores on the last training rows, which nothing trains on, never on the held-out set" {
            let e = tinyExperiment (tempDir ())
            let e = { e with Budget = { e.Budget with Steps = [ 1 ] }; Methods = [ { Name = "independent"; Coupling = Independent } ]; Validation = true }
            let r = Experiment.run quiet e
            Experiment.write r |> ignore
            let train, _ = Experiment.split e.Data e.Budget.EvalCount
            let n = train.X.shape[0]
            let validation = train.X.narrow(0L, n - 200L, 200L)
            Expect.equal r.NReference 200 "EvalCount rows"
            Expect.floatClose Accuracy.high r.DataFloor (Metrics.w2 (train.X.narrow(0L, 0L, 200L)) validation) "the floor is scored against the last training rows"
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(e.OutDir, "results.json")))
            Expect.equal (j.RootElement.GetProperty("reference").GetString()) "validation" "results.json says so"
            Expect.stringContains (File.ReadAllText(Path.Combine(e.OutDir, "experiment.json"))) "validation" "a different comparison from the default one"
        }

        test "one process per output folder: a running holder is named, a dead one's lock is taken over and released" {
            let dir = tempDir ()
            let e = tinyExperiment dir
            let e = { e with Budget = { e.Budget with Steps = [ 1 ] }; Methods = [ { Name = "independent"; Coupling = Independent } ] }
            Directory.CreateDirectory dir |> ignore
            // A lock naming a running process (this one): refused with one line naming it, nothing run.
            FolderLock.Write(dir, FolderLock.Me())
            refused (sprintf "in use by process %d" (FolderLock.Me()).Pid) (fun () -> Experiment.run quiet e |> ignore)
            Expect.isFalse (File.Exists(Path.Combine(dir, "experiment.json"))) "nothing started"
            // A lock left by a process that has exited: taken over, with a message, and released at the end.
            use gone = Diagnostics.Process.Start(Diagnostics.ProcessStartInfo("true", UseShellExecute = false))
            gone.WaitForExit()
            FolderLock.Write(dir, { FolderLock.Me() with Pid = gone.Id; Started = DateTime.UtcNow.AddHours -1.0 })
            let reporter, lines = messages ()
            Experiment.run { quiet with Reporter = reporter } e |> ignore
            Expect.exists lines (fun l -> l.Contains "taking over the lock left by process" && l.Contains "no longer running") "says so"
            Expect.isFalse (File.Exists(Path.Combine(dir, ".nfm-lock"))) "released"
            // Two holders in one process: the second is refused while the first holds the folder.
            use held = FolderLock.Acquire(dir, Reporter.silent)
            refused "in use by process" (fun () -> FolderLock.Acquire(dir, Reporter.silent) |> ignore)
        }

        test "Teacher.read takes a checkpoint or ml-tarflow weights, and a comparison distils a pretrained teacher" {
            let data, teacher = tinyTeacher.Force()
            let dir = tempDir ()
            let ckpt = Path.Combine(dir, "t.ckpt")
            let weights = Path.Combine(dir, "t.safetensors")
            Teacher.save ckpt teacher
            Teacher.exportTarflow weights teacher
            let x = data.X.narrow(0L, 0L, 32L)
            let z0, _ = Teacher.encode teacher x
            for path in [ ckpt; weights ] do
                let z, _ = Teacher.encode (Teacher.read path) x
                Expect.isTrue (z.allclose(z0, 1e-6, 1e-6)) (sprintf "%s encodes like the teacher" (Path.GetFileName path))
            let e = tinyExperiment (Path.Combine(dir, "c")) |> Experiment.withTeacher ckpt
            let e = { e with Methods = e.Methods |> List.filter (fun m -> m.Name <> "independent") }
            let r = Experiment.run quiet e
            Expect.equal r.Teacher.Steps 40 "the pretrained teacher's own step count"
            Expect.equal r.Teacher.TrainSeconds 0.0 "not trained"
            Expect.isFalse (File.Exists(Path.Combine(dir, "c", "teacher.ckpt"))) "no teacher trained in the folder"
            Expect.equal r.Teacher.Pairs.Spec.TeacherId (teacher.Identity()) "its pairs are the pretrained teacher's"
        }

        test "a class-conditional comparison sweeps guidance for every method and reports each at its best weight" {
            let dir = tempDir ()
            let points = Data.toy "moons" 1500L 4L
            let labels = points.X.select(1L, 1L).gt(torch.tensor 0.25f).to_type(torch.int64)
            Data.writeNpy (Path.Combine(dir, "x.npy")) points.X
            Data.writeNpy (Path.Combine(dir, "y.npy")) labels
            let spec = Nfm.Descriptions.DataSpec(Path.Combine(dir, "x.npy"), Labels = Path.Combine(dir, "y.npy"))
            let e = Experiment.create spec "12" (Path.Combine(dir, "c")) |> Experiment.conditional [ 0.0; 1.0 ]
            let e = { e with Budget = { e.Budget with EvalCount = 200; Steps = [ 1; 4 ] }}
            let r = Experiment.run quiet e
            Expect.isTrue (r.Teacher.Teacher.Spec.Model.IsConditional) "a conditional teacher"
            Expect.isTrue (r.Students |> List.forall (fun s -> s.Student.Spec.Net.Classes = 2)) "conditional students of 2 classes"
            Expect.equal (r.Guidance |> List.map (fun c -> c.Method)) [ "independent"; "ot"; "ot-label-blind"; "nfm"; "teacher" ] "a curve per method and the teacher"
            Expect.equal [ for m in e.Methods -> m.Name, m.Coupling.ToString() ]
                [ "independent", "Independent"; "ot", "OtPerLabel"; "ot-label-blind", "Ot"; "nfm", "Nfm (None, None)" ]
                "the OT baseline pairs within each label; the label-blind OT stays as its own method"
            for c in r.Guidance do
                Expect.equal (c.Points |> List.map (fun (w, _, _) -> w) |> List.distinct) [ 0.0; 1.0 ] (c.Method + " at both weights")
                Expect.contains [ 0.0; 1.0 ] c.Best (c.Method + "'s best weight is one of them")
                let rows = r.Rows |> List.filter (fun x -> x.Method = c.Method)
                Expect.isTrue (rows |> List.forall (fun x -> x.Guidance = c.Best)) (c.Method + "'s rows are at its best weight")
                for x in rows do
                    let atBest = c.Points |> List.find (fun (w, st, _) -> w = c.Best && (st = x.Steps || c.Method = "teacher"))
                    let _, _, v = atBest
                    // The curve holds the first draw; the row is the mean over the draws.
                    if x.Draws = 1 then Expect.equal x.Value v (c.Method + ": the row is the curve's value at the best weight")
                    else Expect.isLessThanOrEqual (abs (x.Value - v)) (2.0 * x.Spread + 1e-12) (c.Method + ": the curve's draw lies within the row's spread")
            Experiment.write r |> ignore
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "c", "results.json")))
            Expect.isTrue (j.RootElement.GetProperty("conditional").GetBoolean()) "results.json says conditional"
            Expect.equal (j.RootElement.GetProperty("guidance").GetProperty("methods").GetProperty("nfm").GetProperty("curve").GetArrayLength()) 4
                "nfm's curve: 2 weights x 2 step counts"
            // The weight chosen per step count: every student row is at the weight whose first draw scored lowest at its
            // step count.
            let rp = Experiment.run quiet { e with OutDir = Path.Combine(dir, "per-steps"); GuidancePerSteps = true }
            for c in rp.Guidance |> List.filter (fun c -> c.Method <> "teacher") do
                for x in rp.Rows |> List.filter (fun x -> x.Method = c.Method) do
                    let best, _, _ = c.Points |> List.filter (fun (_, st, _) -> st = x.Steps) |> List.minBy (fun (_, _, v) -> v)
                    Expect.equal x.Guidance best (sprintf "%s at %d steps: the best weight at that step count" c.Method x.Steps)
            Expect.throwsT<ArgumentException> (fun () -> Experiment.run quiet { tinyExperiment (tempDir ()) with GuidancePerSteps = true } |> ignore)
                "a weight per step count needs a conditional comparison"
            // Weights chosen by another run (here the per-step run's rows, as a validation run's would be): each row is
            // sampled at that one weight, no sweep, and the figures are the ones the sweep measured at that weight.
            Experiment.write rp |> ignore
            let chosen = Experiment.guidanceFrom (Path.Combine(dir, "per-steps", "results.json"))
            Expect.equal (chosen |> Map.toList |> List.map fst) [ "independent"; "nfm"; "nfm-from-train-encodings"; "ot"; "ot-label-blind"; "teacher" ] "every method and the teacher"
            let dirC = Path.Combine(dir, "chosen")
            // A fresh folder (the plan differs): the same seeds train the same teacher and students again.
            let rc = Experiment.run quiet { e with OutDir = dirC; GuidancePerSteps = true; ChosenGuidance = chosen }
            for c in rc.Guidance do
                Expect.equal (c.Points |> List.length) (if c.Method = "teacher" then 1 else 2) (c.Method + ": one weight per step count, not a sweep")
            for x in rc.Rows |> List.filter (fun x -> x.Kind = RowKind.Student) do
                let before = rp.Rows |> List.find (fun y -> y.Method = x.Method && y.Steps = x.Steps)
                Expect.equal x.Guidance (chosen[x.Method][x.Steps]) (sprintf "%s at %d steps: the chosen weight" x.Method x.Steps)
                Expect.floatClose Accuracy.high x.Value before.Value (sprintf "%s at %d steps: the figure measured at that weight" x.Method x.Steps)
            use d = JsonDocument.Parse(File.ReadAllText(Path.Combine(dirC, "experiment.json")))
            Expect.equal (d.RootElement.GetProperty("chosen_guidance").GetProperty("nfm").GetProperty("4").GetDouble()) (chosen["nfm"][4])
                "experiment.json records the chosen weights"
        }

        test "a comparison with no methods, or two of one name, is refused before any work" {
            let dir = tempDir ()
            let e = tinyExperiment dir
            Expect.throwsT<ArgumentException> (fun () -> Experiment.run quiet { e with Methods = [] } |> ignore) "no methods"
            Expect.throwsT<ArgumentException> (fun () ->
                Experiment.run quiet { e with Methods = [ { Name = "a"; Coupling = Ot }; { Name = "a"; Coupling = Independent } ] } |> ignore) "two named a"
            Expect.isEmpty (Directory.GetFiles dir) "nothing written"
        }

        test "a teacher selected by held-out NLL keeps its best checkpoint and curve, and a resumed run keeps them" {
            let dir = tempDir ()
            let data = Data.toy "moons" 1200L 0L
            let fit = Nfm.Data.Dataset(data.X.narrow(0L, 0L, 1000L), null, data.Name)
            let heldOut = Nfm.Data.Dataset(data.X.narrow(0L, 1000L, 200L), null, data.Name)
            let best = Path.Combine(dir, "best.ckpt")
            let s = { Teacher.settings with Width = Some 8; Blocks = Some 2; Layers = Some 1; HeadDim = Some 4; Steps = 12; SaveEvery = 4
                                            Ema = 0.9; Batch = Some 64 }
            let o = { RunOptions.silent with Checkpoint = Some(Path.Combine(dir, "t.ckpt")) }
            let t, sel = Teacher.spec s fit |> Teacher.start o.Reporter o.Checkpoint |> Teacher.continueSelecting heldOut best o fit
            Expect.equal (sel.History |> List.map fst) [ 4L; 8L; 12L ] "every checkpoint scored"
            let bestStep, bestNll = sel.History |> List.minBy snd
            Expect.equal sel.Step bestStep "the kept step has the lowest held-out NLL"
            Expect.equal sel.HeldOutNll bestNll "and its NLL"
            Expect.equal t.State.Step bestStep "the teacher returned is the kept checkpoint"
            let nll, _ = Teacher.nll t heldOut
            Expect.floatClose Accuracy.medium nll bestNll "the kept teacher's held-out NLL is the recorded one"
            // Continued to more steps: the earlier curve stays and the best is over the whole run.
            let s2 = { s with Steps = 16 }
            let _, sel2 = Teacher.spec s2 fit |> Teacher.start o.Reporter o.Checkpoint |> Teacher.continueSelecting heldOut best o fit
            Expect.equal (sel2.History |> List.map fst) [ 4L; 8L; 12L; 16L ] "the curve continues"
            Expect.equal (sel2.History |> List.take 3) sel.History "the earlier points are kept"
            Expect.equal sel2.HeldOutNll (sel2.History |> List.map snd |> List.min) "the best over the whole run"
            refused "other settings" (fun () ->
                let s3 = { s2 with Width = Some 16 }
                let o3 = { o with Checkpoint = Some(Path.Combine(dir, "other.ckpt")) }
                Teacher.spec s3 fit |> Teacher.start o3.Reporter o3.Checkpoint |> Teacher.continueSelecting heldOut best o3 fit |> ignore)
        }

        test "a comparison whose budget holds rows out of the teacher's data reports the checkpoint they chose" {
            let dir = tempDir ()
            let e = tinyExperiment dir
            let e = { e with Budget = { e.Budget with TeacherSteps = 8; TeacherEma = 0.9; TeacherHeldOut = 300 }
                             Methods = [ { Name = "nfm"; Coupling = Nfm(None, None) } ] }
            let r = Experiment.run quiet { e with Budget = { e.Budget with Steps = [ 1 ] } }
            let sel = Expect.wantSome r.Teacher.Selection "a selection"
            Expect.equal sel.HeldOutRows 300L "300 rows held out"
            Expect.isNonEmpty sel.History "a curve"
            Experiment.write r |> ignore
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))
            let t = j.RootElement.GetProperty("teacher")
            Expect.equal (t.GetProperty("selected_step").GetInt64()) sel.Step "results.json names the chosen step"
            Expect.equal (t.GetProperty("heldout_train_curve").GetArrayLength()) sel.History.Length "and the curve"
            Expect.isTrue (File.Exists(Path.Combine(dir, "teacher-best.ckpt"))) "the best checkpoint is kept"
        }
]
