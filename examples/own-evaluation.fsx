// The comparison as stages: a script swaps one stage (here the evaluation, with 5 noise draws per row instead of the
// budget's 3) and runs another alone (the evaluation again, scored by MMD instead of W2). Every other stage (teacher,
// pairs, students, latency, claims) is the library's, and everything continues from the output folder.
//
//   dotnet fsi examples/own-evaluation.fsx
#load "_load.fsx"
open _load

open Nfm.FSharp

let e =
    let e = Experiment.create (Nfm.Descriptions.DataSpec("moons", N = int64 (exampleSize 20000 2000))) (string (exampleSteps 1500)) (exampleOut "own-evaluation")
    { e with Methods = [ { Name = "independent"; Coupling = Independent }; { Name = "nfm"; Coupling = Nfm(None, None) } ]
             Budget = { e.Budget with Steps = [ 1; 2; 4 ]; EvalCount = exampleSize 2000 300 } }

// The swapped stage: the library's evaluation of a setup whose budget draws 5 noise sets per row.
let fiveDraws (s: Setup) = { s with Plan = { s.Plan with Budget = { s.Plan.Budget with Draws = 5 } } }
let stages = { Experiment.stages with Evaluate = fun s name student start -> Experiment.Stage.evaluate (fiveDraws s) name student start }
let result = Experiment.runWith stages RunEnvironment.lines e
printfn "%s" (Experiment.table result)

// One stage alone, on the trained students: the evaluation scored by MMD (its figures are cached under their own key).
let s = { Experiment.Stage.setup RunEnvironment.silent e with Metric = "mmd"; Quality = Metrics.mmd }
for st in result.Students do
    let _, rows = Experiment.Stage.evaluate s st.Method.Name st.Student None
    for r in rows do printfn "%s, %d steps: MMD %.5f ± %.5f over %d draws" r.Method r.Steps r.Value r.Spread r.Draws
