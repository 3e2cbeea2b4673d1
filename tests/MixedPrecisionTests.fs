/// Mixed precision (TrainingSpec.Precision = BFloat16, Nfm.MixedPrecision): the setting's JSON, the helpers' float32
/// path unchanged, bfloat16 steps close to float32 ones, and checkpoints, exact resume, the non-finite-step guard and
/// flat memory in bfloat16 training.
module Nfm.Tests.MixedPrecisionTests

open System
open System.IO
open System.Threading
open Expecto
open TorchSharp
open Nfm
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Regress
open Nfm.Training
open Nfm.Checkpoints
open Nfm.Tests.Cli
open Nfm.Tests.ReliabilityTests

/// Named tolerances for bfloat16 against float32 (bfloat16 keeps 8 significant bits: one rounding is up to 2^-9 = 0.2%).
module Tolerance =
    /// One product's result, relative to the largest value.
    let product = 1e-2
    /// A loss after a whole bfloat16 forward pass, relative.
    let loss = 1e-2
    /// Cosine similarity of the bfloat16 and float32 gradients (over all parameters) at least this.
    let gradientCosine = 0.99

let relative (a: torch.Tensor) (e: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    let a, e = a.to_type(torch.float64), e.to_type(torch.float64)
    (a - e).abs().max().item<float>() / max 1e-30 (e.abs().max().item<float>())

/// A tiny teacher (2 tokens of 1 value for vectors, or 16 tokens of 4 values for a 1 x 8 x 8 image) with non-zero
/// output projections, so that every layer shapes the loss.
let teacherModel (image: bool) (seed: int) =
    let spec =
        if image then TeacherSpec([| 1L; 8L; 8L |], 2, 32, 2, 2, HeadDim = 16)
        else TeacherSpec([| 2L |], 1, 32, 2, 2, HeadDim = 16)
    use g = new torch.Generator(uint64 seed)
    let m = new TeacherModel(spec, g)
    using (torch.no_grad ()) (fun _ ->
        for struct (name, p) in m.named_parameters () do
            if name.Contains "proj_out." then p.copy_ (torch.randn (p.shape, generator = g) * 0.05) |> ignore)
    m

let data (model: TeacherModel) (rows: int64) (seed: int) =
    use g = new torch.Generator(uint64 seed)
    torch.rand (Array.append [| rows |] model.Spec.InputShape, generator = g) * 2.0 - 1.0

let gradients (model: TeacherModel) (loss: torch.Tensor) =
    model.zero_grad ()
    loss.backward ()
    torch.cat ([| for p in model.parameters () -> p.grad.flatten () |], 0L)

let cosine (a: torch.Tensor) (b: torch.Tensor) =
    (a * b).sum().item<float32> () / (a.norm().item<float32> () * b.norm().item<float32> ()) |> float

let bitsOf (t: torch.Tensor) = t.detach().contiguous().bytes.ToArray()

[<Tests>]
let setting =
    testList "mixed precision: the setting" [
        test "TrainingSpec writes precision as float32 / bfloat16 and reads it back" {
            let spec = TrainingSpec(Steps = 3, Precision = Precision.BFloat16)
            let json = Json.Write spec
            Expect.stringContains json "\"precision\": \"bfloat16\"" "spelled as on the command line"
            Expect.equal (Json.Read<TrainingSpec> json) spec "round trip"
            Expect.stringContains (Json.Write(TrainingSpec())) "\"precision\": \"float32\"" "the default"
        }
        test "a description written before the setting existed reads as float32" {
            let json = Json.Write(TrainingSpec(Steps = 7)).Replace(",\n  \"precision\": \"float32\"", "")
            Expect.isFalse (json.Contains "precision") "the field is gone"
            let spec = Json.Read<TrainingSpec> json
            Expect.equal spec.Precision Precision.Float32 "float32"
            Expect.equal spec.Steps 7 "the rest as written"
        }
        test "Precisions.Parse takes the CLI's names and rejects others naming the value" {
            Expect.equal (Precisions.Parse "bfloat16") Precision.BFloat16 "bfloat16"
            Expect.equal (Precisions.Parse "BF16") Precision.BFloat16 "bf16, any case"
            Expect.equal (Precisions.Parse "float32") Precision.Float32 "float32"
            let e = Expect.throwsT<ArgumentException> (fun () -> Precisions.Parse "fp8" |> ignore) "fp8 is not a precision"
            ()
        }
        test "--precision foo: one line naming the problem, non-zero exit" {
            let r = run [ "teacher"; "train"; "--data"; "moons"; "--n"; "100"; "--steps"; "1"; "--out"; "t.ckpt"; "--precision"; "foo" ]
            Expect.notEqual r.Code 0 "non-zero exit"
            let lines = r.Err.Trim().Split('\n')
            Expect.equal lines.Length 1 (sprintf "one line: %s" r.Err)
            Expect.stringContains r.Err "--precision" "names the option"
            Expect.stringContains r.Err "'foo'" "names the value"
            Expect.stringContains r.Err "bfloat16" "names the valid values"
        }
        test "PrecisionProbe prefers bfloat16 exactly from a 2x matmul speed-up" {
            let probe bf16 = PrecisionProbe("cpu", 512, 100.0, bf16)
            Expect.equal (probe 199.9).Preferred Precision.Float32 "1.999x: float32"
            Expect.equal (probe 200.0).Preferred Precision.BFloat16 "2x: bfloat16"
            Expect.equal (probe 1.3).Preferred Precision.Float32 "emulated bfloat16: float32"
            Expect.stringContains (string (probe 450.0)) "bfloat16 (matmul 512^3 on cpu: bfloat16 450.0 GFLOP/s, float32 100.0, 4.50x" "the log line"
        }
        test "PrecisionProbe.Of measures once per process; image comparisons follow it, vector ones stay float32" {
            let probe = PrecisionProbe.Of "cpu"
            Expect.isTrue (Double.IsFinite probe.Float32Gflops && probe.Float32Gflops > 0.0) "float32 GFLOP/s measured"
            Expect.isTrue (Double.IsFinite probe.BFloat16Gflops && probe.BFloat16Gflops > 0.0) "bfloat16 GFLOP/s measured"
            Expect.isTrue (obj.ReferenceEquals(PrecisionProbe.Of "cpu", probe)) "measured once"
            let dir = tempDir ()
            let images = Nfm.Tests.CliTests.writeNpy dir "images.npy" (torch.rand ([| 20L; 1L; 8L; 8L |]))
            let e = Nfm.FSharp.Experiment.create (DataSpec(images)) "2" (Path.Combine(dir, "c"))
            Expect.equal e.Precision probe.Preferred (sprintf "images: the probe's choice, %O" probe)
            let v = Nfm.FSharp.Experiment.create (DataSpec("moons")) "2" (Path.Combine(dir, "v"))
            Expect.equal v.Precision Precision.Float32 "vectors: float32"
        }
        test "a folder's comparison keeps its precision: Experiment.create reads it back from experiment.json" {
            let dir = tempDir ()
            let images = Nfm.Tests.CliTests.writeNpy dir "images.npy" (torch.rand ([| 20L; 1L; 8L; 8L |]))
            for saved in [ Precision.Float32; Precision.BFloat16 ] do
                let out = Path.Combine(dir, saved.Name())
                Directory.CreateDirectory out |> ignore
                let e = { Nfm.FSharp.Experiment.create (DataSpec(images)) "2" out with Precision = saved }
                File.WriteAllText(Path.Combine(out, "experiment.json"), (Nfm.FSharp.Experiment.describe e).ToJsonString())
                Expect.equal (Nfm.FSharp.Experiment.create (DataSpec(images)) "2" out).Precision saved (sprintf "%s read back" (saved.Name()))
        }
        test "--precision foo on student train and bench too" {
            for args in [ [ "student"; "train"; "--data"; "moons"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--precision"; "foo" ]
                          [ "bench"; "matmul"; "--precision"; "foo" ] ] do
                let r = run args
                Expect.notEqual r.Code 0 "non-zero exit"
                Expect.equal (r.Err.Trim().Split('\n').Length) 1 (sprintf "one line: %s" r.Err)
                Expect.stringContains r.Err "'foo'" "names the value"
        }
    ]

[<Tests>]
let helpers =
    testList "mixed precision: the helpers" [
        test "outside a scope every helper is the plain float32 call, bit for bit" {
            torch.manual_seed 1L |> ignore
            let layer = torch.nn.Linear(16L, 8L)
            let conv = torch.nn.Conv2d(3L, 4L, 3L, padding = 1L)
            let x = torch.randn (5L, 16L)
            let img = torch.randn (2L, 3L, 6L, 6L)
            Expect.isFalse MixedPrecision.Active "off by default"
            Expect.equal (bitsOf (MixedPrecision.Linear(layer, x))) (bitsOf (layer.call x)) "linear"
            Expect.equal (bitsOf (MixedPrecision.Conv2d(conv, img))) (bitsOf (conv.call img)) "conv"
            let q, k, v = torch.randn (2L, 2L, 5L, 4L), torch.randn (2L, 2L, 5L, 4L), torch.randn (2L, 2L, 5L, 4L)
            Expect.equal (bitsOf (MixedPrecision.CausalAttention(q, k, v)))
                         (bitsOf (torch.nn.functional.scaled_dot_product_attention(q, k, v, is_casual = true))) "attention"
        }
        test "inside a bfloat16 scope: products in bfloat16, results float32 and close" {
            torch.manual_seed 2L |> ignore
            let layer = torch.nn.Linear(64L, 32L)
            let conv = torch.nn.Conv2d(3L, 8L, 3L, stride = 2L, padding = 1L)
            let x = torch.randn (10L, 64L)
            let img = torch.randn (2L, 3L, 8L, 8L)
            use _ = MixedPrecision.Scope Precision.BFloat16
            Expect.isTrue MixedPrecision.Active "on"
            let y = MixedPrecision.Linear(layer, x)
            Expect.equal y.dtype torch.float32 "linear result back in float32"
            Expect.equal (MixedPrecision.Linear(layer, x, keepLow = true)).dtype torch.bfloat16 "kept low on request"
            Expect.isLessThan (relative y (layer.call x)) Tolerance.product "linear close to float32"
            let c = MixedPrecision.Conv2d(conv, img)
            Expect.equal c.dtype torch.float32 "conv result float32"
            Expect.equal c.shape (conv.call img).shape "stride and padding honoured"
            Expect.isLessThan (relative c (conv.call img)) Tolerance.product "conv close to float32"
        }
        test "bfloat16 attention: causal, close to the fused float32 kernel, and one query over a longer context" {
            torch.manual_seed 3L |> ignore
            let q, k, v = torch.randn (2L, 2L, 7L, 8L), torch.randn (2L, 2L, 7L, 8L), torch.randn (2L, 2L, 7L, 8L)
            let exact = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_casual = true)
            use _ = MixedPrecision.Scope Precision.BFloat16
            let mixed = MixedPrecision.CausalAttention(q, k, v)
            Expect.isLessThan (relative mixed exact) Tolerance.product "close to float32"
            // The last query alone against all keys sees every key, as the last row of the full pass.
            let last = MixedPrecision.CausalAttention(q.narrow(2, 6L, 1L), k, v)
            Expect.isLessThan (relative last (exact.narrow(2, 6L, 1L))) Tolerance.product "aligned with the last key"
        }
        test "scopes nest, restore, and belong to their thread" {
            let check () =
                let outer = MixedPrecision.Scope Precision.BFloat16
                let inner = MixedPrecision.Scope Precision.Float32
                Expect.isFalse MixedPrecision.Active "inner float32"
                inner.Dispose()
                Expect.isTrue MixedPrecision.Active "outer restored"
                let other = ref true
                let thread = Thread(fun () -> other.Value <- MixedPrecision.Active)
                thread.Start()
                thread.Join()
                Expect.isFalse other.Value "another thread is unaffected"
                outer.Dispose()
            check ()
            Expect.isFalse MixedPrecision.Active "off again"
        }
    ]

[<Tests>]
let steps =
    testList "mixed precision: training steps" [
        test "teacher: float32 is the default and unchanged; bfloat16 loss and gradients close to float32's" {
            for image in [ false; true ] do
                use model = teacherModel image 4
                let x = data model 32L 5
                let plain = Teacher.Loss(model, x)
                let f32 = Teacher.Loss(model, x, null, Precision.Float32)
                Expect.equal (bitsOf f32) (bitsOf plain) "float32 by default, bit for bit"
                let gf = gradients model f32
                let bf = Teacher.Loss(model, x, null, Precision.BFloat16)
                Expect.equal bf.dtype torch.float32 "the loss is float32"
                let lf, lb = f32.item<float32> () |> float, bf.item<float32> () |> float
                Expect.isLessThan (abs (lb - lf) / max 1e-3 (abs lf)) Tolerance.loss (sprintf "loss %g against %g (image %b)" lb lf image)
                let gb = gradients model bf
                for p in model.parameters () do Expect.equal p.grad.dtype torch.float32 "gradients reach float32 master weights"
                let c = cosine gb gf
                Expect.isGreaterThan c Tolerance.gradientCosine (sprintf "gradient cosine %g (image %b)" c image)
        }
        test "U-Net and MLP students: bfloat16 loss close to float32's" {
            for arch, shape in [ Architecture.UNet, [| 1L; 8L; 8L |]; Architecture.Mlp, [| 2L |] ] do
                torch.manual_seed 6L |> ignore
                let net = Nfm.Nets.VelocityNets.Create(VelocityNetSpec(shape, 8, 2, Architecture = arch))
                // Non-zero output layers, so that the velocity is not identically zero.
                using (torch.no_grad ()) (fun _ -> for p in net.parameters () do if p.abs().sum().item<float32> () = 0.0f then p.normal_(0.0, 0.05) |> ignore)
                use g1 = new torch.Generator(7UL)
                use g2 = new torch.Generator(7UL)
                let x1 = torch.randn (Array.append [| 16L |] shape, generator = g1)
                let pairs = Nfm.Couple.CoupledBatch(torch.randn (x1.shape), x1, null)
                let f = FlowMatching.Loss(net, pairs, PathSpec(), g1).item<float32> () |> float
                let b = FlowMatching.Loss(net, pairs, PathSpec(), g2, precision = Precision.BFloat16).item<float32> () |> float
                Expect.isLessThan (abs (b - f) / abs f) Tolerance.loss (sprintf "%A: loss %g against %g" arch b f)
        }
    ]

/// Trains `steps` steps of a tiny 2-D teacher in bfloat16 into `path`; with `stopAt`, stops (saving) after that step.
let trainTeacher (path: string) (steps: int) (stopAt: int option) =
    let data = (Nfm.Data.DataSource.Load("moons", 500L, 0L)).X
    let spec =
        TeacherRunSpec(TeacherSpec([| 2L |], 1, 32, 2, 1, HeadDim = 16),
                       TeacherRunSpec.DefaultTraining(steps, 32, 1e-3, 3L, 0, 0.99, Precision.BFloat16), "moons", DeviceSpec())
    use cancel = new CancellationTokenSource()
    let progress = Action<TrainingProgress>(fun p -> if Some (int p.Step) = stopAt then cancel.Cancel())
    let teacher = if File.Exists path then TrainedTeacher.Load path else TrainedTeacher.Create spec
    TeacherTraining.Run(teacher, data, null, path, progress, cancel.Token) |> ignore

/// The same for a tiny 2-D MLP student on the OT coupling.
let trainStudent (path: string) (steps: int) (stopAt: int option) =
    let data = (Nfm.Data.DataSource.Load("moons", 500L, 0L)).X
    let spec =
        StudentSpec(VelocityNetSpec([| 2L |], 32, 2), PathSpec(), TrainingSpec(steps, 32, Seed = 4L, Precision = Precision.BFloat16),
                    CouplingSpec.Ot, "moons", DeviceSpec())
    use cancel = new CancellationTokenSource()
    let progress = Action<TrainingProgress>(fun p -> if Some (int p.Step) = stopAt then cancel.Cancel())
    let student = if File.Exists path then Student.Load path else Student.Create spec
    StudentTraining.Run(student, data, null, Nfm.Couple.Couplings.From(CouplingSpec.Parse "ot"), path, progress, cancel.Token) |> ignore

let exactlyResumes (kind: string) (train: string -> int -> int option -> unit) =
    let dir = tempDir ()
    let straight, resumed = Path.Combine(dir, "straight.ckpt"), Path.Combine(dir, "resumed.ckpt")
    train straight 30 None
    train resumed 30 (Some 12)
    let left = Checkpoint.Load(resumed, kind)
    Expect.equal (checkpointStep left) 12L "stopped at step 12, saved"
    Expect.stringContains (left.Description.ToJsonString()) "\"precision\":\"bfloat16\""
        "the checkpoint's description records bfloat16"
    train resumed 30 None
    let a, b = Checkpoint.Load straight, Checkpoint.Load resumed
    Expect.equal (checkpointStep b) 30L "resumed to the end"
    Expect.isEmpty (differences a b) "bit for bit equal to the uninterrupted run (weights, EMA, optimiser, RNG)"

[<Tests>]
let reliability =
    testSequenced <| testList "mixed precision: reliability" [
        test "teacher: bfloat16 checkpoint records its precision, exact resume bit for bit" {
            exactlyResumes TrainedTeacher.Kind trainTeacher
            let dir = tempDir ()
            let path = Path.Combine(dir, "t.ckpt")
            trainTeacher path 3 None
            Expect.equal (TrainedTeacher.Load path).Spec.Training.Precision Precision.BFloat16 "loads as bfloat16"
        }
        test "student: bfloat16 exact resume bit for bit" {
            exactlyResumes Student.Kind trainStudent
        }
        test "a bfloat16 step on non-finite data is skipped, weights untouched; MaxBadSteps in a row stop the run" {
            use model = teacherModel false 8
            let spec = TrainingSpec(Steps = 10, Batch = 4, EmaDecay = 0.0, MaxBadSteps = 2, Precision = Precision.BFloat16)
            let s = TrainingState.Start(model, spec, torch.CPU)
            let before = [ for p in model.parameters () -> bitsOf p ]
            let bad = data model 4L 9
            bad.[0L, 0L] <- torch.tensor nan
            let o = Optimisation.Apply(s, Teacher.Loss(model, bad, null, Precision.BFloat16))
            Expect.isTrue o.Skipped "skipped"
            Expect.equal [ for p in model.parameters () -> bitsOf p ] before "weights untouched"
            Expect.equal s.Optimizer.Steps 0L "no optimiser update"
            Expect.throwsT<NonFiniteTrainingException>
                (fun () -> Optimisation.Apply(o.State, Teacher.Loss(model, bad, null, Precision.BFloat16)) |> ignore)
                "the second bad step in a row stops training"
        }
        test "live tensors stay flat over 300 bfloat16 steps (student benchmark loop and teacher loop)" {
            let f = Nfm.Bench.MemoryBenchmark.Run(steps = 300, sampleEvery = 50, warmupSteps = 100, batch = 64, width = 32, depth = 2,
                                                  precision = Precision.BFloat16)
            Expect.equal f.Precision Precision.BFloat16 "ran in bfloat16"
            Expect.isLessThanOrEqual (f.LiveTensorsAtEnd - f.LiveTensorsAfterWarmup) 0L
                (sprintf "student: %d live after warm-up, %d at the end" f.LiveTensorsAfterWarmup f.LiveTensorsAtEnd)
            Expect.isLessThanOrEqual (f.ScopeLiveAtEnd - f.ScopeLiveAfterWarmup) 0L "student: dispose-scope statistics flat"
            let counts = Collections.Generic.Dictionary<int64, int64>()
            let data = (Nfm.Data.DataSource.Load("moons", 500L, 0L)).X
            let spec =
                TeacherRunSpec(TeacherSpec([| 2L |], 1, 32, 2, 2, HeadDim = 16),
                               TeacherRunSpec.DefaultTraining(300, 32, 1e-3, 0L, 0, 0.0, Precision.BFloat16), "moons", DeviceSpec())
            TeacherTraining.Run(TrainedTeacher.Create spec, data, null,
                                progress = Action<_>(fun p -> if p.Step % 100L = 0L then counts[p.Step] <- torch.Tensor.TotalCount)) |> ignore
            Expect.isLessThanOrEqual (counts[300L] - counts[100L]) 0L
                (sprintf "teacher: %d live tensors at step 100, %d at step 300" counts[100L] counts[300L])
        }
    ]
