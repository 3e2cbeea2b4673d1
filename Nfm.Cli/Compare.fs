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
let trainStudents (settings: StudentSettings) (data: Nfm.Data.Dataset) (outDir: string) (methods: Method list) =
    [ for m in methods do
        let spec = (Student.spec settings m.CouplingText data).Validate()
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
let evaluate (students: (Method * Student * float * float) list) (stepCounts: int list) (grid: Grid) (count: int)
             (reference: torch.Tensor) (seed: int64) (outDir: string) =
    [ for (m, st, _, _) in students do
        for steps in stepCounts do
            let solver = Spec.paperSolver steps
            let x, nfe, secs = StudentCommands.sampleStudent st count solver grid seed 0.0 None
            let value = quality x reference
            if steps = List.max stepCounts || steps = 1 then
                StudentCommands.savePng (Path.Combine(outDir, sprintf "samples-%s-%dstep.png" m.Name steps))
                    (sprintf "%s, %d %s steps, W2 %.3f" m.Name steps (Spec.solverName solver) value) x
            yield { Method = m.Name; Solver = Spec.solverName solver; Grid = Spec.gridName grid; Steps = steps; Nfe = nfe
                    Value = value; SecondsPer1000 = secs * 1000.0 / float count } ]

/// A markdown table: one row per method, one column per step count.
let markdown (rows: Row list) (metric: string) =
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
    let series =
        rows |> List.groupBy (fun r -> r.Method)
        |> List.mapi (fun i (m, rs) ->
            let rs = rs |> List.sortBy (fun r -> r.Steps)
            Nfm.Plots.LineSeries(m, rs |> List.map (fun r -> float r.Steps) |> Array.ofList, rs |> List.map (fun r -> r.Value) |> Array.ofList))
    Nfm.Plots.LinePlot.Save(Path.Combine(outDir, "quality.png"), sprintf "%s: %s against sampling steps" dataName metric,
                            "sampling steps", metric, ResizeArray series, true, true)
    md
