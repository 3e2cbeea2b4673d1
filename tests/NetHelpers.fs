/// What the velocity-network tests share: moving weights off their initial values, expecting a named argument error,
/// and the flow-matching loss on a fixed batch.
module Nfm.Tests.NetHelpers

open System
open Expecto
open TorchSharp
open Nfm.Descriptions
open Nfm.Regress

/// Moves every parameter away from its initial value, so that zero-initialised output layers (and adaLN-Zero gates) no
/// longer hide what the rest of the network computes.
let perturb (net: torch.nn.Module) (seed: uint64) =
    use _ = torch.no_grad ()
    let g = new torch.Generator(seed)
    for p in net.parameters () do p.add_(torch.randn(p.shape, dtype = p.dtype, generator = g) * 0.1) |> ignore

/// Expects an ArgumentException naming the argument whose message contains the given text.
let expectArgument (name: string) (contains: string) (f: unit -> unit) =
    match Expect.throwsC f id with
    | :? ArgumentException as a ->
        Expect.equal a.ParamName name $"parameter name in: {a.Message}"
        Expect.stringContains a.Message contains "message"
    | other -> failtestf "expected ArgumentException naming %s, got %O" name other

/// The flow-matching loss of a network on a fixed coupled batch with fixed times (same draw every call).
let fixedLoss (net: torch.nn.Module<torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor>) (data: torch.Tensor) =
    use _ = torch.no_grad ()
    let g = new torch.Generator(99UL)
    let pairs = Nfm.Couple.Couplings.Independent.Invoke(Nfm.Couple.Batch(data, null, null), g)
    use loss = FlowMatching.Loss(net, pairs, PathSpec(), g)
    loss.item<float32>() |> float
