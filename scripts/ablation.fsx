// The student ablation of issue #21 (why NFM loses at 8 and 16 steps): class-conditional MNIST distilled from the
// released teacher, every cell the same comparison (independent, OT within each label, NFM; guidance 0, 0.5 or 1 chosen per step count; 3 noise draws
// per row) with one setting changed, scored on 2,000 held-out TRAINING digits (never the test digits: choices are made
// here). Each cell is a folder under the output folder; a cell that is finished (results.json) is skipped, an
// unfinished one continues from its checkpoints and its evaluation cache. At the end, OUT/ablation.md and
// OUT/ablation.json gather every finished cell.
//
//   dotnet fsi scripts/ablation.fsx [out=results/ablation] [cells=NAME,NAME] [mnist=DIR] [teacher=FILE] [classifier=FILE] [small=1]
//
// small=1 runs every cell at a toy budget (CI's check that the script works).
#load "../examples/_load.fsx"
open _load

open System
open System.IO
open System.Text.Json.Nodes
open Nfm.Descriptions
open Nfm.FSharp

let argv = fsi.CommandLineArgs |> Array.skip 1
let kv = argv |> Array.map (fun a -> let i = a.IndexOf '=' in if i < 0 then failwithf "expected key=value, got '%s'" a else a[.. i - 1], a[i + 1 ..]) |> Map.ofArray
let get k d = Map.tryFind k kv |> Option.defaultValue d
let outDir = get "out" (exampleOut "results/ablation")
let small = get "small" (if exampleSmall then "1" else "0") = "1"
let mnist = get "mnist" (mnistFolder.Substring "mnist:".Length)
let teacher = get "teacher" "models/mnist-teacher-conditional/teacher.safetensors"
// The FD-MNIST classifier of the class-conditional comparison, so that the cells' figures compare with that run's.
let classifier =
    let shared = "results/mnist-compare-conditional/fd-classifier.ckpt"
    get "classifier" (if File.Exists shared then shared else Path.Combine(outDir, "fd-classifier.ckpt"))

/// One cell: a name and what it changes from the base comparison.
type Cell = { Name: string; What: string; Change: Experiment -> Experiment }

let withNet (net: Architecture) (width: int) (depth: int) (e: Experiment) =
    { e with StudentNet = net; StudentWidth = Some width; StudentDepth = Some depth }

/// eta changes only the teacher's pairs, so the independent and OT students of an eta cell would be the base cell's
/// (same settings, same seeds): an eta cell trains and scores the NFM student alone, against the base cell's baselines.
let withEta (eta: float) (e: Experiment) =
    { e with Eta = Some eta; Methods = e.Methods |> List.filter (fun m -> m.Name = "nfm") }

/// Cells in the order they run, cheapest first (student size and eta before longer training).
let cells =
    [ { Name = "base"; What = "U-Net width 16, 3 levels, 2,000 steps, eta 0.1 (the teacher's noise)"; Change = id }
      { Name = "sit128x4"; What = "SiT student, width 128, 4 blocks"; Change = withNet Architecture.Sit 128 4 }
      { Name = "eta0.05"; What = "eta 0.05"; Change = withEta 0.05 }
      { Name = "eta0.2"; What = "eta 0.2"; Change = withEta 0.2 }
      { Name = "eta0.4"; What = "eta 0.4"; Change = withEta 0.4 }
      { Name = "unet32"; What = "U-Net width 32"; Change = withNet Architecture.UNet 32 3 }
      { Name = "unet64"; What = "U-Net width 64"; Change = withNet Architecture.UNet 64 3 }
      { Name = "sit256x6"; What = "SiT student, width 256, 6 blocks"; Change = withNet Architecture.Sit 256 6 }
      { Name = "steps8k"; What = "8,000 student steps"; Change = Experiment.withStudentSteps 8000 } ]

let chosen =
    match Map.tryFind "cells" kv with
    | None -> cells
    | Some names ->
        let wanted = names.Split ',' |> Set.ofArray
        let unknown = wanted - (cells |> List.map (fun c -> c.Name) |> Set.ofList)
        if not unknown.IsEmpty then failwithf "unknown cells: %s (known: %s)" (String.concat ", " unknown) (cells |> List.map (fun c -> c.Name) |> String.concat ", ")
        cells |> List.filter (fun c -> wanted.Contains c.Name)

/// The base comparison of a cell folder.
let baseExperiment (dir: string) =
    let e = Experiment.create (DataSpec("mnist:" + mnist)) "standard" dir |> Experiment.withTeacher teacher |> Experiment.conditional [ 0.0; 0.5; 1.0 ]
    let e = { e with Methods = [ { Name = "independent"; Coupling = Independent }; { Name = "ot"; Coupling = OtPerLabel }; { Name = "nfm"; Coupling = Nfm(None, None) } ]
                     // Guidance at each step count's best weight (on the validation rows): one weight for every step
                     // count favoured NFM's few-step rows and cost it at 8 and 16 steps, and a fixed 0.5 doubled the
                     // independent student's FD there (docs/results.md).
                     GuidancePerSteps = true
                     Validation = true; Classifier = classifier
                     // float32 in every cell on every machine: bfloat16 is chosen only where it pays, which would make
                     // cells run on different machine kinds differ in more than their setting.
                     Precision = Precision.Float32 }
    if small then { e with Budget = { e.Budget with StudentSteps = 4; EvalCount = 64; Steps = [ 1; 4 ] } } else e

Directory.CreateDirectory outDir |> ignore
for cell in chosen do
    let dir = Path.Combine(outDir, cell.Name)
    if File.Exists(Path.Combine(dir, "results.json")) then printfn "%s: finished, skipped" cell.Name
    else
        let e = cell.Change (baseExperiment dir)
        let e = if small then { e with Budget = { e.Budget with StudentSteps = min e.Budget.StudentSteps 4 } } else e
        printfn "%s: %s" cell.Name cell.What
        // The teacher's pairs at an eta are the same in every cell of that eta: computed once, kept beside the cells
        // (pair files are not committed) and lent to each cell's folder, which checks them against its data.
        let shared = Path.Combine(outDir, sprintf "pairs-eta-%s.pairs" (e.Eta |> Option.map string |> Option.defaultValue "default"))
        let lent = Path.Combine(dir, "nfm.pairs")
        Directory.CreateDirectory dir |> ignore
        if File.Exists shared && not (File.Exists lent) then File.Copy(shared, lent)
        // Every cell scores the same teacher on the same digits: the base cell's cached figures (keyed by the models'
        // identities, so a student of another setting is never read from it) spare each cell the teacher's sampling.
        let baseCache = Path.Combine(outDir, "base", "evaluation-cache.json")
        let cache = Path.Combine(dir, "evaluation-cache.json")
        if cell.Name <> "base" && File.Exists baseCache && not (File.Exists cache) then File.Copy(baseCache, cache)
        let watch = Diagnostics.Stopwatch.StartNew()
        let r = Experiment.run { RunEnvironment.lines with Command = sprintf "dotnet fsi scripts/ablation.fsx cells=%s" cell.Name } e
        Experiment.write r |> ignore
        File.WriteAllText(Path.Combine(dir, "cell.json"),
                          (JsonFile.obj [ "cell", JsonFile.str cell.Name; "what", JsonFile.str cell.What
                                          "seconds", JsonFile.num watch.Elapsed.TotalSeconds ]).ToJsonString())
        // A finished cell keeps its JSON, tables and plots; its checkpoints leave the folder and its pairs go back.
        if File.Exists lent && not (File.Exists shared) then File.Move(lent, shared)
        for f in Directory.GetFiles(dir) do
            if f.EndsWith ".ckpt" || f.EndsWith ".pairs" then File.Delete f

// Every finished cell: FD per method and step count with its spread, path curvature, and the cell's time.
let finished =
    [ for cell in cells do
        let dir = Path.Combine(outDir, cell.Name)
        if File.Exists(Path.Combine(dir, "results.json")) then
            let r = Report.read (Path.Combine(dir, "results.json"))
            let seconds =
                try
                    let node = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "cell.json")))
                    node["seconds"].GetValue<float>()
                with _ -> nan
            yield cell, r, seconds ]
let steps = [ 1; 2; 4; 8; 16 ]
let lines =
    [ yield "| cell | what | method | " + (steps |> List.map (sprintf "%d steps") |> String.concat " | ") + " | curvature | time (min) |"
      yield "|---|---|---|" + (steps |> List.map (fun _ -> "---:") |> String.concat "|") + "|---:|---:|"
      for (cell, r, seconds) in finished do
        // An eta cell has the NFM row alone (its baselines are the base cell's rows).
        for m in [ "independent"; "ot"; "nfm" ] |> List.filter (fun m -> r.Rows |> List.exists (fun x -> x.Method = m)) do
            let cellsOf = [ for s in steps -> match r.Rows |> List.tryFind (fun x -> x.Method = m && x.Steps = s) with
                                              | Some x -> sprintf "%.2f ± %.2f (w %g)" x.Value x.Spread x.Guidance
                                              | None -> "" ]
            let curvature =
                try
                    let node = r.Json["students"].[m].["path_curvature_per_dim"]
                    node.GetValue<float>()
                with _ -> nan
            yield sprintf "| %s | %s | %s | %s | %.4f | %.0f |" cell.Name cell.What m (String.concat " | " cellsOf) curvature (seconds / 60.0) ]
let table = String.concat "\n" lines
File.WriteAllText(Path.Combine(outDir, "ablation.md"),
                  "# Student ablation (class-conditional MNIST, the released teacher, FD-MNIST on 2,000 held-out training digits)\n\n"
                  + "Made by `dotnet fsi scripts/ablation.fsx`; mean ± standard deviation over 3 noise draws, each row at the guidance weight (0, 0.5 or 1) best at its step count on these digits. "
                  + "The eta cells train the NFM student alone: their baselines are the base cell's.\n\n" + table + "\n")
File.WriteAllText(Path.Combine(outDir, "ablation.json"),
                  (JsonFile.arr [ for (cell, r, seconds) in finished ->
                                    JsonFile.obj [ "cell", JsonFile.str cell.Name; "what", JsonFile.str cell.What; "seconds", JsonFile.num seconds
                                                   "rows", JsonFile.arr [ for x in r.Rows -> Report.rowJson true x ] ] ]).ToJsonString())
printfn "%s" table
