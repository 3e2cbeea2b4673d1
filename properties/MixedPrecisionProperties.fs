/// A teacher trained in bfloat16 mixed precision is still a flow: evaluated in float32 or float64 it inverts and
/// reports its log-determinant to the usual tolerances (those of TeacherProperties and Laws). Mixed precision changes
/// how the weights were reached, never the arithmetic the trained model is evaluated with.
module Nfm.Properties.MixedPrecisionProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Regress
open Nfm.Training
open Nfm.FSharp
open Nfm.Properties.TeacherProperties

let private config = { FsCheckConfig.defaultConfig with maxTest = 60 }

/// Bfloat16 training steps per case, at a learning rate high enough that every weight moves well away from where
/// float32 arithmetic would have put it.
let trainingSteps = 4

/// Builds the case in float32, trains it in bfloat16 on its own rows, then moves the model and its batches to dtype.
let trainedInBf16 (dtype: torch.ScalarType) (c: TeacherCase) : Built =
    let b = build torch.float32 c
    let rows = int b.X.shape.[0]
    let spec = TrainingSpec(Steps = trainingSteps, Batch = rows, LearningRate = 1e-2, EmaDecay = 0.0, Precision = Precision.BFloat16)
    let mutable state = TrainingState.Start(b.Model, spec, torch.CPU)
    let x = b.X.reshape (Array.append [| int64 rows |] b.Model.Spec.InputShape)
    b.Model.train ()
    for _ in 1 .. trainingSteps do
        use scope = torch.NewDisposeScope()
        state <- (Optimisation.Apply(state, Teacher.Loss(b.Model, x, b.Labels, Precision.BFloat16))).State
    b.Model.eval ()
    b.Model.``to`` dtype |> ignore
    { b with X = b.X.``to`` dtype; Z = b.Z.``to`` dtype }

let private law (name: string) (dtype: torch.ScalarType) (tolerances: LawTolerances) =
    testPropertyWithConfig config name (fun () ->
        Prop.forAll Gens.cases (fun c ->
            use scope = torch.NewDisposeScope()
            use b = trainedInBf16 dtype c
            let flow = modelFlow b
            [ Laws.within "decode(encode x) = x" tolerances.RoundTrip (Laws.Measure.decodeAfterEncode flow b.X)
              Laws.within "encode(decode z) = z" tolerances.RoundTrip (Laws.Measure.encodeAfterDecode flow b.Z)
              Laws.within "log|det|" tolerances.LogDet (Laws.Measure.logDet flow b.X) ]
            |> List.reduce (.&.)))

[<Tests>]
let tests =
    testList "teacher trained in bfloat16" [
        law "evaluated in float64: decode(encode x) = x, encode(decode z) = z, log|det| = the Jacobian's" torch.float64 Laws.float64Tolerances
        law "evaluated in float32: decode(encode x) = x, encode(decode z) = z, log|det| = the Jacobian's" torch.float32 Laws.float32Tolerances
    ]
