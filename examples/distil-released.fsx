// Distil the released MNIST teacher (models/mnist-teacher, EMA weights in ml-tarflow's safetensors layout) into a
// few-step U-Net student: no teacher training, only its encodings as pairs, then FD-MNIST at 1, 2 and 4 steps against
// the test digits. Run from the repository root after one build:  dotnet fsi examples/distil-released.fsx
// (about 10 minutes on two cores: the pairs, 2,000 student steps and the FD classifier, trained once).
#load "_load.fsx"
open _load

open Nfm.FSharp
open Nfm.Data
open Nfm.Descriptions

let folder = mnistFolder   // NFM_MNIST, else ../shared/data/mnist
let teacher = Teacher.read "models/mnist-teacher/teacher.safetensors"
printfn "teacher %s: %d steps, identity %s" "models/mnist-teacher/teacher.safetensors" teacher.State.Step (Teacher.identity teacher)

let train = Data.load folder (int64 (exampleSize 0 256)) 0L     // all training digits (256 at CI's small budget)
let test = DataSource.Load(folder, 0L, 0L, DataSplit.Test)

// NFM pairs at eta 0.1 (the teacher's training noise), one noise draw per digit: one encode pass over the data.
let pairs = teacher |> Couple.precompute 0.1 1 0L train
let student =
    train |> Student.train (Couple.ofPairs train pairs) "nfm" { Student.imageSettings with Steps = exampleSteps 2000
                                                                                           Precision = Precision.BFloat16 }

let classifier =
    if exampleSmall then Metrics.trainClassifier Reporter.lines (exampleSteps 1500) train test   // a quick classifier
    else Metrics.classifier Reporter.lines (exampleOut "mnist-classifier.ckpt") folder
let reference = test.X.narrow(0L, 0L, int64 (exampleSize 2000 100))
for steps in [ 1; 2; 4 ] do
    let x = student |> Student.sample (Euler steps) Quadratic reference.shape[0] 1L
    printfn "NFM student of the released teacher, %d Euler step(s): FD-MNIST %.1f" steps (Metrics.fd classifier x reference)
Plot.grid (exampleOut "released-nfm-4step.png") 16 (student |> Student.sample (Euler 4) Quadratic 128L 1L)
printfn "wrote %s" (exampleOut "released-nfm-4step.png")
