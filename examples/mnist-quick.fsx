// NFM on real MNIST digits at a quick budget, scored by FD-MNIST: a small TarFlow teacher on 28 x 28 images, its
// pairs precomputed once (two noise draws per digit), a U-Net student on them, and FD against the test digits at 1,
// 2 and 4 steps. Run from the repository root after one build:  dotnet fsi examples/mnist-quick.fsx
// (about 15 minutes on two cores, most of it the teacher; the FD classifier is trained once into mnist-classifier.ckpt).
#load "_load.fsx"
open _load

open Nfm.FSharp
open Nfm.Data
open Nfm.Descriptions

let folder = mnistFolder   // NFM_MNIST, else ../shared/data/mnist
let train = Data.load folder (int64 (exampleSize 0 500)) 0L   // all 8,000 training digits (500 at CI's small budget)
let test = DataSource.Load(folder, 0L, 0L, DataSplit.Test)

// A quick teacher: width 64, 2 layers per block (the default MNIST shape is width 128, 4 layers), lr 2e-3.
let teacher =
    train |> Teacher.trainIn (RunOptions.saved (exampleOut "mnist-teacher.ckpt"))
                             { Teacher.settings with Width = Some 64; Layers = Some 2; Steps = exampleSteps 300; LearningRate = 2e-3 }
let _, bpd = Teacher.nll teacher (Data.heldOut folder 0L 500).Value
printfn "teacher: %.3f bits/dim on 500 test digits" bpd

let pairs = teacher |> Couple.precompute 0.1 2 0L train
let student =
    train |> Student.train (Couple.ofPairs train pairs) "nfm" { Student.imageSettings with Steps = exampleSteps 300 }

let classifier =
    match System.Environment.GetEnvironmentVariable "NFM_EXAMPLE_STEPS" with
    | null | "" -> Metrics.classifier Reporter.lines (exampleOut "mnist-classifier.ckpt") folder
    | _ -> Metrics.trainClassifier Reporter.lines (exampleSteps 1500) train test   // a small budget: a quick classifier
let reference = test.X.narrow(0L, 0L, int64 (exampleSize 500 100))
for steps in [ 1; 2; 4 ] do
    let x = student |> Student.sample (Euler steps) Quadratic reference.shape[0] 1L
    printfn "NFM student, %d Euler step(s): FD-MNIST %.1f" steps (Metrics.fd classifier x reference)
Plot.grid (exampleOut "mnist-nfm-4step.png") 16 (student |> Student.sample (Euler 4) Quadratic 128L 1L)
printfn "wrote %s" (exampleOut "mnist-nfm-4step.png")
