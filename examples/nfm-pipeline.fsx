// The whole method on 2-D data, step by step: a TarFlow teacher, its NFM coupling (the teacher's own data-to-noise
// map), a flow-matching student on those pairs, and the student's W2 at 1 to 8 sampling steps beside an
// independent-coupling student with the same network and budget.
// Run from the repository root after one build:  dotnet fsi examples/nfm-pipeline.fsx   (about 3 minutes)
#load "_load.fsx"
open _load

open Nfm.FSharp

let data = Data.toy "checkerboard" 20000L 0L
let reference = (Data.toy "checkerboard" 2000L 1L).X

// The teacher: the default 2-D shape, 3,000 steps; checkpointed, so a second run continues (or reuses) it.
let teacher =
    data |> Teacher.trainIn (RunOptions.saved (exampleOut "pipeline-teacher.ckpt")) { Teacher.settings with Steps = exampleSteps 3000 }
let nll, _ = Teacher.nll teacher (Data.toy "checkerboard" 2000L 1L)
printfn "teacher: held-out NLL %.3f nats" nll

// NFM: x0 = f(x1 + eta eps) / sigma_f with the teacher's encoder f, eta = its training noise 0.05.
let nfm = teacher |> Couple.teacher 0.05 data

let settings = { Student.settings with Steps = exampleSteps 2000 }
let students = [ "nfm", data |> Student.train nfm "nfm" settings
                 "independent", data |> Student.train Couple.independent "independent" settings ]

for steps in [ 1; 2; 4; 8 ] do
    let w2 st = st |> Student.sample (Spec.paperSolver steps) Quadratic 2000L 2L |> Metrics.w2 reference
    printfn "%d step(s): %s" steps (students |> List.map (fun (n, st) -> sprintf "%s W2 %.4f" n (w2 st)) |> String.concat ", ")

let nfmStudent = snd students.Head
Plot.scatter (exampleOut "pipeline.png") "NFM student, 2 Euler steps"
    [ "data", reference; "nfm", nfmStudent |> Student.sample (Euler 2) Quadratic 2000L 2L ]
printfn "wrote %s" (exampleOut "pipeline.png")
