/// Reliability: exact resume after SIGKILL and SIGINT (real processes), determinism of sampling and evaluation,
/// the non-finite guard of the optimisation step, and flat live-tensor counts over many training steps.
module Nfm.Tests.ReliabilityTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Threading
open Expecto
open TorchSharp
open Nfm.Checkpoints
open Nfm.Descriptions
open Nfm.Regress
open Nfm.Training
open Nfm.Tests.Cli

module private Native =
    /// POSIX kill(2): .NET can send SIGKILL (Process.Kill) but not SIGINT.
    [<DllImport("libc", SetLastError = true)>]
    extern int kill(int pid, int signal)

let SIGINT = 2

/// An nfm process started in the background; its output is drained so that it never blocks on a full pipe.
type Child = { Process: Process; Out: Tasks.Task<string>; Err: Tasks.Task<string>; Args: string list }

/// Starts nfm in a folder with libtorch on one thread. Why one: on this loaded 2-core machine two intra-op threads
/// made a tiny run about 20 times slower, and one thread gives the same figures whatever the core count.
let start (dir: string) (args: string list) =
    let psi = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir)
    psi.Environment["OMP_NUM_THREADS"] <- "1"
    psi.ArgumentList.Add nfmDll
    for a in args do psi.ArgumentList.Add a
    let p = Process.Start psi
    { Process = p; Out = p.StandardOutput.ReadToEndAsync(); Err = p.StandardError.ReadToEndAsync(); Args = args }

/// Waits for a child to end (killing it after timeoutSeconds) and returns its exit code and output.
let finish (timeoutSeconds: int) (c: Child) =
    use p = c.Process
    if not (p.WaitForExit(timeoutSeconds * 1000)) then
        p.Kill true
        failwithf "nfm %s did not finish in %d s" (String.Join(" ", c.Args)) timeoutSeconds
    p.WaitForExit()
    { Code = p.ExitCode; Out = c.Out.Result; Err = c.Err.Result }

/// Runs nfm to the end (single-threaded libtorch, see start).
let runNfm (dir: string) (timeoutSeconds: int) (args: string list) = start dir args |> finish timeoutSeconds

/// Names of tensors whose bytes differ between two checkpoints, with the largest absolute difference of each.
let differences (a: Checkpoint) (b: Checkpoint) =
    [ for KeyValue(name, t) in a.Tensors do
        match b.Tensors.TryGetValue name with
        | false, _ -> yield name, infinity
        | true, u when not (t.shape = u.shape) || t.dtype <> u.dtype -> yield name, infinity
        | true, u ->
            if t.bytes.ToArray() <> u.bytes.ToArray() then
                let d = if t.is_floating_point() then (t.to_type(torch.float64) - u.to_type(torch.float64)).abs().max().item<float>() else nan
                yield name, d
      for KeyValue(name, _) in b.Tensors do
        if not (a.Tensors.ContainsKey name) then yield name, infinity ]

/// A tiny run of each trainer that saves often; the same arguments in every folder. The runs are long enough after
/// their first checkpoint (step 10) that a signal sent then lands partway even on a loaded machine, where acting on a
/// SIGINT can lag by seconds (400- and 240-step runs, about two seconds each on an AVX-512 machine, finished first
/// beside a two-thread training job). The suite must not run as a background job of a shell without job control:
/// bash starts those with SIGINT ignored, and the runs here inherit that (scripts/test.sh turns job control on).
type Trainer =
    { Name: string; Steps: int64; Args: string list }

let studentRun =
    { Name = "student"; Steps = 2000L
      Args = [ "student"; "train"; "--data"; "moons"; "--n"; "2000"; "--coupling"; "ot"; "--steps"; "2000"; "--batch"; "64"
               "--width"; "32"; "--depth"; "2"; "--save-every"; "10"; "--out"; "m.ckpt" ] }

let teacherRun =
    { Name = "teacher"; Steps = 1200L
      Args = [ "teacher"; "train"; "--data"; "moons"; "--n"; "2000"; "--steps"; "1200"; "--batch"; "64"; "--width"; "32"
               "--blocks"; "2"; "--layers"; "1"; "--head-dim"; "16"; "--save-every"; "10"; "--out"; "m.ckpt" ] }

/// The uninterrupted run of a trainer, made once: its folder (holding m.ckpt).
let uninterrupted =
    let make (t: Trainer) =
        lazy (
            let dir = tempDir ()
            let r = runNfm dir 300 t.Args
            if r.Code <> 0 then failwithf "uninterrupted %s run failed: %s" t.Name r.Err
            dir)
    dict [ "student", make studentRun; "teacher", make teacherRun ]

let checkpointStep (c: Checkpoint) = int64 c.Meta["step"]

/// How a run is stopped partway.
type Stop =
    | Sigkill
    | Sigint

/// Starts a run, stops it once a checkpoint exists, checks what it left, resumes it with --resume, and compares
/// every tensor of the final checkpoint (weights, EMA, optimiser moments, RNG state) with the uninterrupted run's.
let interruptAndResume (t: Trainer) (stop: Stop) =
    let reference = Checkpoint.Load(Path.Combine(uninterrupted[t.Name].Force(), "m.ckpt"))
    let dir = tempDir ()
    let ckpt = Path.Combine(dir, "m.ckpt")
    let child = start dir t.Args
    let watch = Stopwatch.StartNew()
    while not (File.Exists ckpt) && not child.Process.HasExited && watch.Elapsed.TotalSeconds < 120.0 do
        Thread.Sleep 5
    if child.Process.HasExited then
        failtestf "the %s run ended (code %d) before it could be stopped: %s" t.Name child.Process.ExitCode child.Err.Result
    match stop with
    | Sigkill -> child.Process.Kill()
    | Sigint -> Expect.equal (Native.kill(child.Process.Id, SIGINT)) 0 "kill -INT delivered"
    let stopped = finish 120 child
    // Never half-written: the checkpoint a kill leaves behind loads and verifies.
    let left = Checkpoint.Load ckpt
    let leftStep = checkpointStep left
    Expect.isLessThan leftStep t.Steps (sprintf "stopped partway (checkpoint at step %d of %d)" leftStep t.Steps)
    Expect.isGreaterThan leftStep 0L "a checkpoint of some progress"
    match stop with
    | Sigkill -> Expect.notEqual stopped.Code 0 "a killed run has a non-zero exit"
    | Sigint ->
        Expect.equal stopped.Code 130 (sprintf "Ctrl-C exits with 130 after saving: %s" stopped.Err)
        Expect.stringContains stopped.Err "interrupted" "says it was interrupted"
        Expect.isFalse (stopped.Err.Contains "   at ") "no stack trace"
    let resumed = runNfm dir 300 (t.Args @ [ "--resume" ])
    Expect.equal resumed.Code 0 (sprintf "resume succeeds: %s" resumed.Err)
    Expect.stringContains resumed.Err (sprintf "at step %d" leftStep) "resumes where the checkpoint left off"
    let final = Checkpoint.Load ckpt
    Expect.equal (checkpointStep final) t.Steps "the resumed run ends at the last step"
    let model = final.Tensors.Keys |> Seq.filter (fun k -> k.StartsWith "model.") |> Seq.length
    Expect.isGreaterThan model 0 "the checkpoint holds model.* weights"
    let diffs = differences reference final
    Expect.isEmpty diffs (sprintf "bit-for-bit equal to the uninterrupted run (stopped at step %d); differing tensors: %A" leftStep diffs)
    // The checkpoint carries the run's last loss (the same as the uninterrupted run's) and its training time summed over
    // both processes.
    let meta (c: Checkpoint) key = Double.Parse(c.Meta[key], Globalization.CultureInfo.InvariantCulture)
    Expect.equal (meta final "lastLoss") (meta reference "lastLoss") "the last loss, as the uninterrupted run recorded it"
    Expect.isTrue (Double.IsFinite(meta final "lastLoss")) "a finite last loss"
    Expect.isGreaterThan (meta final "trainSeconds") (meta left "trainSeconds") "training seconds add up across the resume"
    Expect.isGreaterThan (meta left "trainSeconds") 0.0 "the interrupted process recorded its own seconds"
    printfn "%s, %A: checkpoint left at step %d of %d; after --resume all %d tensors equal the uninterrupted run's bit for bit"
        t.Name stop leftStep t.Steps final.Tensors.Count

[<Tests>]
let exactResume =
    testSequenced <| testList "reliability exact resume" [
        test "student: SIGKILL partway, --resume, same weights bit for bit" { interruptAndResume studentRun Sigkill }
        test "student: SIGINT partway saves and exits 130, --resume, same weights bit for bit" { interruptAndResume studentRun Sigint }
        test "teacher: SIGKILL partway, --resume, same weights bit for bit" { interruptAndResume teacherRun Sigkill }
        test "teacher: SIGINT partway saves and exits 130, --resume, same weights bit for bit" { interruptAndResume teacherRun Sigint }
    ]

/// Runs a command that writes `out` in the given folder and returns the file's bytes.
let outputOf (dir: string) (out: string) (args: string list) =
    let r = runNfm dir 180 args
    Expect.equal r.Code 0 (sprintf "nfm %s succeeds: %s" (String.Join(" ", args)) r.Err)
    File.ReadAllBytes(Path.Combine(dir, out))

[<Tests>]
let determinism =
    testSequenced <| testList "reliability determinism" [
        test "student sample: same seed, same bytes; another seed, other samples" {
            let dir = uninterrupted["student"].Force()
            let args out seed = [ "student"; "sample"; "--student"; "m.ckpt"; "--count"; "500"; "--nfe"; "4"; "--solver"; "heun"
                                  "--seed"; seed; "--out"; out ]
            let a = outputOf dir "a.npy" (args "a.npy" "3")
            let b = outputOf dir "b.npy" (args "b.npy" "3")
            let c = outputOf dir "c.npy" (args "c.npy" "4")
            Expect.sequenceEqual b a "two runs with seed 3 write identical files"
            Expect.notEqual c a "seed 4 draws other samples"
        }
        test "teacher sample: same seed, same bytes" {
            let dir = uninterrupted["teacher"].Force()
            let args out = [ "teacher"; "sample"; "--teacher"; "m.ckpt"; "--count"; "300"; "--seed"; "5"; "--out"; out ]
            let a = outputOf dir "ta.npy" (args "ta.npy")
            let b = outputOf dir "tb.npy" (args "tb.npy")
            Expect.sequenceEqual b a "two runs with seed 5 write identical files"
        }
        test "eval: same inputs, same figures" {
            let dir = uninterrupted["student"].Force()
            outputOf dir "e.npy" [ "student"; "sample"; "--student"; "m.ckpt"; "--count"; "400"; "--out"; "e.npy" ] |> ignore
            let figure json metric =
                outputOf dir json [ "eval"; "--samples"; "e.npy"; "--reference"; "moons"; "--metric"; metric; "--json"; json ] |> ignore
                use doc = Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, json)))
                doc.RootElement.GetProperty("value").GetDouble()
            for metric in [ "w2"; "mmd" ] do
                let a = figure "e1.json" metric
                let b = figure "e2.json" metric
                Expect.isTrue (Double.IsFinite a) (sprintf "%s is a number" metric)
                Expect.equal (BitConverter.DoubleToInt64Bits b) (BitConverter.DoubleToInt64Bits a) (sprintf "%s: %.17g twice" metric a)
        }
    ]

/// A tiny model and training state for driving Optimisation.Apply directly.
let tinyState (maxBadSteps: int) =
    torch.manual_seed 0L |> ignore
    let model = torch.nn.Linear(2L, 1L)
    let spec = TrainingSpec(Steps = 100, Batch = 4, EmaDecay = 0.0, MaxBadSteps = maxBadSteps)
    model, TrainingState.Start(model, spec, torch.CPU)

let weightsOf (m: torch.nn.Module) = [ for KeyValue(_, p) in m.state_dict() -> p.clone().bytes.ToArray() ]

let input () = torch.ones(4L, 2L)

[<Tests>]
let nonFinite =
    testSequenced <| testList "reliability non-finite steps" [
        test "a NaN loss skips the update and says so" {
            let model, s = tinyState 3
            let before = weightsOf model
            let o = Optimisation.Apply(s, model.forward(input ()).sum().mul(torch.tensor nan))
            Expect.isTrue o.Skipped "reported as skipped"
            Expect.isTrue (Double.IsNaN o.Loss) "the NaN loss is reported"
            Expect.equal o.State.Step 1L "the step counts"
            Expect.equal o.State.SkippedSteps 1 "one skipped step"
            Expect.equal o.State.BadStepsInARow 1 "one bad step in a row"
            Expect.equal s.Optimizer.Steps 0L "no optimiser update"
            Expect.equal (weightsOf model) before "weights untouched"
        }
        test "a finite loss with a NaN gradient is skipped too" {
            let model, s = tinyState 3
            let before = weightsOf model
            // sqrt has an infinite slope at 0 and abs a zero one: the loss is 0, the gradient inf * 0 = NaN.
            let loss = model.forward(input ()).mul(torch.tensor 0.0f).abs().sqrt().sum()
            let o = Optimisation.Apply(s, loss)
            Expect.equal o.Loss 0.0 "finite loss"
            Expect.isTrue o.Skipped "skipped for its gradient"
            Expect.isFalse (Double.IsFinite o.GradNorm) "the non-finite gradient norm is reported"
            Expect.equal (weightsOf model) before "weights untouched"
        }
        test "a finite step in between resets the count" {
            let model, s = tinyState 2
            let nanLoss () = model.forward(input ()).sum().mul(torch.tensor nan)
            let o1 = Optimisation.Apply(s, nanLoss ())
            let o2 = Optimisation.Apply(o1.State, model.forward(input ()).square().mean())
            Expect.isFalse o2.Skipped "a finite step is applied"
            Expect.equal o2.State.BadStepsInARow 0 "the run of bad steps is over"
            let o3 = Optimisation.Apply(o2.State, nanLoss ())
            Expect.equal o3.State.BadStepsInARow 1 "counting starts again"
            Expect.equal o3.State.SkippedSteps 2 "two skipped in total"
        }
        test "MaxBadSteps non-finite steps in a row stop training with a clear message" {
            let model, s = tinyState 3
            let nanLoss () = model.forward(input ()).sum().mul(torch.tensor nan)
            let o2 = Optimisation.Apply(Optimisation.Apply(s, nanLoss ()).State, nanLoss ())
            Expect.equal o2.State.BadStepsInARow 2 "two tolerated"
            try
                Optimisation.Apply(o2.State, nanLoss ()) |> ignore
                failtest "expected NonFiniteTrainingException"
            with :? NonFiniteTrainingException as e ->
                Expect.stringContains e.Message "training stopped at step 2" "names the step"
                Expect.stringContains e.Message "3 non-finite losses or gradients in a row" "names the count"
        }
        test "TrainingLoop reports each skipped step, then stops" {
            let model, s = tinyState 4
            let reported = Collections.Generic.List<TrainingProgress>()
            let run () =
                TrainingLoop.Run(s, (fun _ -> model.forward(input ()).sum().mul(torch.tensor nan)),
                                 progress = Action<_>(reported.Add)) |> ignore
            Expect.throwsT<NonFiniteTrainingException> run "stops with NonFiniteTrainingException"
            Expect.equal reported.Count 3 "three steps reported before the fourth stops the run"
            Expect.isTrue (reported |> Seq.forall (fun p -> p.Skipped && Double.IsNaN p.Loss)) "each reported as skipped with its NaN loss"
        }
    ]

[<Tests>]
let memory =
    testSequenced <| testList "reliability memory" [
        test "live tensors stay flat over 400 training steps" {
            let f = Nfm.Bench.MemoryBenchmark.Run(steps = 400, sampleEvery = 50, warmupSteps = 100, batch = 64, width = 32, depth = 2)
            Expect.equal f.Series.Count 8 "a sample every 50 steps"
            Expect.isGreaterThan f.LiveTensorsAfterWarmup 0L "tensors are counted"
            Expect.isLessThanOrEqual (f.LiveTensorsAtEnd - f.LiveTensorsAfterWarmup) 0L
                (sprintf "no tensors accumulate: %d after warm-up, %d at the end" f.LiveTensorsAfterWarmup f.LiveTensorsAtEnd)
            Expect.isLessThanOrEqual (f.ScopeLiveAtEnd - f.ScopeLiveAfterWarmup) 0L
                (sprintf "dispose-scope statistics: %d live after warm-up, %d at the end" f.ScopeLiveAfterWarmup f.ScopeLiveAtEnd)
            Expect.isGreaterThan f.ResidentAtEnd 0L "resident set size measured"
        }
    ]
