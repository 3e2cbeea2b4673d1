// Trains an OT-coupled flow-matching student on the two-moons set and writes a scatter plot of its samples.
// Run from the repository root after one build:  dotnet fsi examples/two-moons.fsx
#load "_load.fsx"
open _load

open Nfm.FSharp

let data = Data.toy "moons" 20000L 0L
let settings = { Student.settings with Steps = exampleSteps 1500; Seed = 0L }

let student = data |> Student.train Couple.ot "ot" settings

for steps in [ 1; 2; 4; 8 ] do
    let x = student |> Student.sample (Spec.paperSolver steps) Quadratic 2000L 1L
    let reference = (Data.toy "moons" 2000L 2L).X
    printfn "%d step(s): W2 to held-out data %.4f" steps (Metrics.w2 x reference)

let samples = student |> Student.sample (Euler 2) Quadratic 2000L 1L
Plot.scatter (exampleOut "two-moons.png") "OT student on moons, 2 Euler steps" [ "data", (Data.toy "moons" 2000L 2L).X; "student", samples ]
printfn "wrote %s" (exampleOut "two-moons.png")
