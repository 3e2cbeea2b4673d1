// Flow matching in four steps, without the checkpointing trainer: couple, path, regress, integrate. A student on
// two moons, its own training loop, then one ODE solve from noise, scored by W2 against fresh moons.
// Run from the repository root after one build:  dotnet fsi examples/four-steps.fsx   (about 30 seconds)
#load "_load.fsx"
open _load

open TorchSharp
open Nfm.FSharp

let data = Data.toy "moons" 20000L 0L
let spec = Student.spec { Student.settings with Steps = exampleSteps 1500 } "ot" data
let net = Nfm.Nets.VelocityNets.Create spec.Net
let mutable state = Steps.start spec.Training net
for i in 1 .. spec.Training.Steps do
    use _ = torch.NewDisposeScope()
    let x1 = data.X.index_select(0L, torch.randint(data.X.shape[0], [| 256L |], generator = state.Generator))
    let pairs = x1 |> Steps.couple Couple.ot state.Generator None                    // 1. couple noise with data
    let point = pairs |> Steps.path (Steps.times UniformTimes state.Generator 256L)  // 2. the path and its target
    let outcome = Steps.loss net point |> Steps.step state                            // 3. regress: loss, one step
    state <- outcome.State
    if i % 500 = 0 then printfn "step %d: loss %.4f" i outcome.Loss
state.Ema.CopyTo net
net.eval ()
let x0 = torch.randn(2000L, 2L, generator = new torch.Generator(1UL))
let samples = Steps.solve (Euler 4) Uniform (Steps.netField None net) x0             // 4. integrate from noise
printfn "W2 to fresh moons at 4 Euler steps: %.4f" (Metrics.w2 samples (Data.toy "moons" 2000L 7L).X)
