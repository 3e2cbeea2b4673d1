// Checks a hand-written flow block with the Laws module: invertibility, the log-determinant against autograd and
// the autoregressive structure, on 200 generated batches each.  dotnet fsi examples/verify-flow.fsx
#load "_load.fsx"

open TorchSharp
open Nfm.FSharp

// A custom autoregressive affine block over 4 values: z_i = (x_i - b_i) * exp(-a_i), where (a_i, b_i) depend on
// x_0 .. x_{i-1} through a strictly lower-triangular linear map followed by tanh.
let dim = 4
let g = new torch.Generator(3UL)
let mask = torch.ones(dim, dim, dtype = torch.float64).tril(-1L)
let wa = torch.randn([| int64 dim; int64 dim |], dtype = torch.float64, generator = g) * 0.5 * mask
let wb = torch.randn([| int64 dim; int64 dim |], dtype = torch.float64, generator = g) * 0.5 * mask

let shifts (x: torch.Tensor) = torch.tanh(x.matmul(wa.t())), x.matmul(wb.t())

let encode (x: torch.Tensor) =
    let a, b = shifts x
    (x - b) * torch.exp(-a), -(a.sum(1L))

let decode (z: torch.Tensor) =
    // Sequential: value i needs the already decoded values before it.
    let mutable x = torch.zeros_like z
    for i in 0 .. dim - 1 do
        let a, b = shifts x
        let xi = z.narrow(1L, int64 i, 1L) * torch.exp(a.narrow(1L, int64 i, 1L)) + b.narrow(1L, int64 i, 1L)
        x <- torch.cat([| x.narrow(1L, 0L, int64 i); xi; x.narrow(1L, int64 i + 1L, int64 (dim - i - 1)) |], 1L)
    x

Laws.check { Encode = encode; Decode = decode; Dimension = dim; TokenSize = Some 1 }
printfn "custom block: decode(encode x) = x, encode(decode z) = z, log|det| = autograd's, autoregressive: all hold"

// A broken block is caught: the log-determinant with the wrong sign.
try
    Laws.checkWith 50 Laws.float64Tolerances { Encode = (fun x -> let z, l = encode x in z, -l); Decode = decode; Dimension = dim; TokenSize = None }
    printfn "unexpected: the broken block passed"
with e -> printfn "broken block rejected as expected: %s" (e.Message.Split('\n').[0])
