// The comparison as a library call: NFM at three values of eta against a custom coupling (half NFM, half minibatch
// OT) and the independent and OT baselines, all with the same network, steps, batch and seed. Writes results.json,
// results.md and the plots into eta-sweep/ (resumable: a second run continues its checkpoints).
// Run from the repository root after one build:  dotnet fsi examples/eta-sweep.fsx   (about 6 minutes)
#load "_load.fsx"
open _load

open Nfm.FSharp

let experiment =
    let e = Experiment.create (Nfm.Descriptions.DataSpec("checkerboard", N = int64 (exampleSize 20000 2000))) (string (exampleSteps 2000)) (exampleOut "eta-sweep")
    let mix = { Name = "mix"; Coupling = Custom("half NFM (eta 0.05), half OT", fun ctx -> Couple.mix 0.5 (ctx.Nfm 0.05) Couple.ot) }
    { e with
        Methods = [ { Name = "independent"; Coupling = Independent }; { Name = "ot"; Coupling = Ot } ]
                  @ Experiment.etaMethods [ 0.02; 0.05; 0.1 ] @ [ mix ]
        Eta = Some 0.02
        Budget = { e.Budget with Steps = [ 1; 2; 4; 8 ]; EvalCount = exampleSize 2000 300 } }

let result = Experiment.run RunEnvironment.lines experiment
printfn "%s" (Experiment.write result)
