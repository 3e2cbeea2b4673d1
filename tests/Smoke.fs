module Nfm.Tests.Smoke
open Expecto
open TorchSharp

[<Tests>]
let tests =
    testList "smoke" [
        test "libtorch loads and computes" {
            let t = torch.ones(3L, 3L)
            Expect.floatClose Accuracy.high (t.sum().item<float32>() |> float) 9.0 "sum of ones"
        }
    ]
