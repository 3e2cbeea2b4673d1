// Builds a coupling from the combinators, checks its laws, trains a student with it and compares it with the
// built-in couplings at a few sampling steps.  dotnet fsi examples/custom-coupling.fsx
#load "_load.fsx"
open _load

open Nfm.FSharp

let data = Data.toy "8gaussians" 20000L 0L
let reference = (Data.toy "8gaussians" 2000L 1L).X

// Half the rows paired by exact OT, half independent; then a little noise on x0, renormalised; then re-paired by OT.
let custom = Couple.mix 0.5 Couple.ot Couple.independent |> Couple.perturb 0.1 |> Couple.otWithin

// The laws every coupling keeps (each data row once, with its label; reproducible), on 200 generated batches each.
CouplingLaws.check custom
printfn "custom coupling: laws hold"

let settings = { Student.settings with Steps = exampleSteps 1000 }
let candidates = [ "independent", Couple.independent; "ot", Couple.ot; "custom", custom ]
for name, coupling in candidates do
    let student = data |> Student.train coupling name settings
    let w2 steps = Metrics.w2 (student |> Student.sample (Spec.paperSolver steps) Quadratic 2000L 2L) reference
    printfn "%-12s W2 at 1 / 2 / 8 steps: %.4f / %.4f / %.4f" name (w2 1) (w2 2) (w2 8)
