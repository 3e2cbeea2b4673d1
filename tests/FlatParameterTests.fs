/// One buffer for every parameter (FlatParameters): the multi-tensor AdamW, clipping and EMA do the update that one
/// update per tensor does, the parameters stay the module's (views of the buffer), checkpoints keep their names and
/// load either way, and gradients set to none by zero_grad() are re-attached.
module Nfm.Tests.FlatParameterTests

open Expecto
open TorchSharp
open Nfm.Descriptions
open Nfm.Training

/// A small model with several parameter tensors of different shapes (weights, biases, a LayerNorm).
let model () =
    torch.manual_seed 7L |> ignore
    torch.nn.Sequential(torch.nn.Linear(3L, 16L), torch.nn.LayerNorm(16L), torch.nn.GELU(), torch.nn.Linear(16L, 16L),
                        torch.nn.GELU(), torch.nn.Linear(16L, 2L))

/// Weight decay, EMA and a clip that bites (gradients well above 0.05), so every part of the update runs.
let spec () = TrainingSpec(Steps = 40, Batch = 8, EmaDecay = 0.9, WeightDecay = 0.01, GradClip = 0.05, LearningRate = 1e-2,
                           WarmupSteps = 0)

let data () =
    use g = new torch.Generator(3UL)
    let x = torch.randn([| 64L; 3L |], generator = g)
    x, torch.stack([| x.sum(1L).sin(); x.narrow(1L, 0L, 1L).squeeze(1L) * 2.0 |], 1L)

/// Trains `steps` steps of a regression from `state` on fixed data (batches drawn from the state's generator).
let trainSteps (steps: int) (state: TrainingState) =
    let x, y = data ()
    let mutable s = state
    for _ in 1 .. steps do
        use _ = torch.NewDisposeScope()
        let i = TrainingLoop.BatchIndices(s, 64L, torch.CPU)
        let m = s.Model :?> torch.nn.Module<torch.Tensor, torch.Tensor>
        let loss = (m.forward(x.index_select(0L, i)) - y.index_select(0L, i)).square().mean()
        s <- (Optimisation.Apply(s, loss)).State
    s

let largestDifference (a: TrainingState) (b: TrainingState) =
    let ta, tb = a.ToTensors(), b.ToTensors()
    Expect.equal (Set.ofSeq ta.Keys) (Set.ofSeq tb.Keys) "the same tensor names"
    [ for KeyValue(name, t) in ta do
        if t.is_floating_point() then
            yield name, (t.to_type(torch.float64) - tb[name].to_type(torch.float64)).abs().max().item<float>() ]
    |> List.maxBy snd

[<Tests>]
let tests =
    testSequenced <| testList "flat parameters" [
        test "one buffer trains as one update per tensor does (weights, moments, EMA within 1e-6)" {
            let flat = TrainingState.Start(model (), spec (), torch.CPU)
            let perTensor = TrainingState.Start(model (), spec (), torch.CPU, flatParameters = false)
            Expect.isNotNull flat.Optimizer.Flat "the parameters share one buffer"
            Expect.isNull perTensor.Optimizer.Flat "the comparison updates tensor by tensor"
            let a, b = trainSteps 40 flat, trainSteps 40 perTensor
            let name, d = largestDifference a b
            Expect.isLessThan d 1e-6 (sprintf "largest difference %g in %s" d name)
            // Not vacuous: the weights moved.
            let moved = (model().parameters() |> Seq.head).sub(a.Model.parameters() |> Seq.head).abs().max().item<float32>()
            Expect.isGreaterThan (float moved) 1e-3 "training changed the weights"
        }
        test "the parameters are views of the buffer and stay the module's" {
            let m = model ()
            let names = [ for struct (n, _) in m.named_parameters() -> n ]
            let s = TrainingState.Start(m, spec (), torch.CPU)
            let flat = s.Optimizer.Flat
            Expect.equal [ for struct (n, _) in m.named_parameters() -> n ] names "same names"
            Expect.equal flat.Count (m.parameters() |> Seq.sumBy (fun p -> p.numel())) "every value in the buffer"
            use x = torch.ones(2L, 3L)
            let before = m.forward(x).clone()
            use _ = torch.no_grad()
            flat.Values.add_(torch.tensor 0.5f) |> ignore
            Expect.isGreaterThan (m.forward(x).sub(before).abs().max().item<float32>()) 0.01f "writing the buffer changes the module"
        }
        test "a checkpoint of one update per tensor resumes with one buffer, and the other way" {
            let perTensor = TrainingState.Start(model (), spec (), torch.CPU, flatParameters = false) |> trainSteps 10
            let saved = perTensor.ToCheckpoint("test", "{}")
            let resumed = TrainingState.Start(model (), spec (), torch.CPU).Restore(saved) |> trainSteps 10
            let continued = perTensor |> trainSteps 10
            let name, d = largestDifference resumed continued
            Expect.isLessThan d 1e-6 (sprintf "largest difference %g in %s" d name)
            let back = TrainingState.Start(model (), spec (), torch.CPU, flatParameters = false).Restore(resumed.ToCheckpoint("test", "{}"))
            let name, d = largestDifference back resumed
            Expect.equal d 0.0 (sprintf "loaded exactly (%s)" name)
        }
        test "gradients set to none by zero_grad() are re-attached before the next step" {
            let s = TrainingState.Start(model (), spec (), torch.CPU)
            s.Model.zero_grad()
            Expect.isNull (s.Model.parameters() |> Seq.head).grad "zero_grad() set the gradients to none"
            let after = trainSteps 1 s
            Expect.equal after.Optimizer.Steps 1L "one update"
            Expect.isGreaterThan (s.Optimizer.Flat.Gradients.abs().sum().item<float32>()) 0.0f "the backward pass wrote the buffer"
        }
    ]
