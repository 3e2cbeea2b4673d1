module Nfm.Cli.Program
open TorchSharp
[<EntryPoint>]
let main argv =
    let t = torch.randn(3L, 3L)
    printfn "%A" (t.sum().item<float32>())
    0
