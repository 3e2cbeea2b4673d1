namespace Nfm.FSharp

open TorchSharp
open FsCheck
open FsCheck.FSharp

/// A normalizing flow (or one block of it) under test, over flat rows: Encode maps data rows [N, D] to noise rows
/// [N, D] and log|det dz/dx| [N] (nats, summed over all D dimensions); Decode maps noise rows back. Rows must be
/// independent of each other (the per-row Jacobian is read off a batch). TokenSize, when given, says the flow is
/// autoregressive over tokens of that many values in row order: z's token t depends on x's tokens <= t only.
type FlowUnderTest =
    { Encode: torch.Tensor -> torch.Tensor * torch.Tensor
      Decode: torch.Tensor -> torch.Tensor
      Dimension: int
      TokenSize: int option }

/// Accepted errors: RoundTrip relative to max(1, max |x|); LogDet absolute for |log det| <= 1, else relative;
/// Structure absolute, for the Jacobian entries that must vanish.
type LawTolerances = { RoundTrip: float; LogDet: float; Structure: float }

/// A batch of generated rows: how many, their scale, and the seed they are drawn from (so a failure can be replayed).
type RowSample =
    { Rows: int; Scale: float; Seed: int64 }
    /// Rows [Rows, dimension] ~ N(0, Scale^2), float64 on the CPU.
    member s.Tensor(dimension: int) =
        use g = new torch.Generator(uint64 s.Seed)
        torch.randn([| int64 s.Rows; int64 dimension |], dtype = torch.float64, generator = g) * s.Scale

/// Laws every normalizing flow keeps, as FsCheck properties a user who writes a flow block can check in one call
/// (Laws.check). Each law is also a plain function of one batch, so a suite that generates its own flows
/// (properties/TeacherProperties.fs) checks the same code.
module Laws =

    /// Tolerances for float64 flows.
    let float64Tolerances = { RoundTrip = 1e-9; LogDet = 1e-8; Structure = 1e-12 }

    /// Tolerances for float32 flows (round trip only: the autograd laws want float64).
    let float32Tolerances = { RoundTrip = 1e-4; LogDet = 1e-3; Structure = 1e-6 }

    /// max |actual - expected| / max(1, max |expected|), as a float.
    let relativeError (actual: torch.Tensor) (expected: torch.Tensor) =
        use scope = torch.NewDisposeScope()
        let actual, expected = actual.to_type(torch.float64).cpu(), expected.to_type(torch.float64).cpu()
        let err = (actual - expected).abs().max().item<float>()
        let size = expected.abs().max().item<float>()
        err / max 1.0 size

    let private toFloat (t: torch.Tensor) = t.to_type(torch.float64).cpu()

    let private relative (actual: torch.Tensor) (expected: torch.Tensor) =
        if actual.shape <> expected.shape then infinity else relativeError actual expected

    /// Per-row Jacobian [N, D, D] of a row-wise map f: [N, D] -> [N, D] at x, by D backward passes
    /// (J[n, i, j] = d f(x)[n, i] / d x[n, j]; rows must not interact).
    let jacobian (f: torch.Tensor -> torch.Tensor) (x: torch.Tensor) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        use grad = torch.enable_grad()
        let input = x.detach().requires_grad_(true)
        let out = f input
        let d = out.shape.[1]
        let rows =
            [| for i in 0L .. d - 1L ->
                   let g = torch.autograd.grad([| out.select(1, i).sum() |], [| input |], retain_graph = true, allow_unused = true).[0]
                   if isNull g then torch.zeros_like(input) else g |]
        torch.stack(rows, 1).detach().MoveToOuterDisposeScope()

    /// Measures: each returns the error a law bounds (and a note for the failure message).
    module Measure =
        /// Relative error of decode (encode x) against x; the note gives max |z|.
        let decodeAfterEncode (flow: FlowUnderTest) (x: torch.Tensor) : float * string =
            use scope = torch.NewDisposeScope()
            let z, _ = flow.Encode x
            relative (flow.Decode z) x, sprintf "max |z| = %g" ((toFloat z).abs().max().item<float>())

        /// Relative error of encode (decode z) against z; the note gives max |x|.
        let encodeAfterDecode (flow: FlowUnderTest) (z: torch.Tensor) : float * string =
            use scope = torch.NewDisposeScope()
            let x = flow.Decode z
            let back, _ = flow.Encode x
            relative back z, sprintf "max |x| = %g" ((toFloat x).abs().max().item<float>())

        /// Largest error of the reported log|det| against autograd's, absolute below 1, relative above.
        let logDet (flow: FlowUnderTest) (x: torch.Tensor) : float * string =
            use scope = torch.NewDisposeScope()
            let struct (_, exact) = torch.linalg.slogdet(jacobian (flow.Encode >> fst) x)
            let _, reported = flow.Encode x
            let reported, exact = toFloat reported, toFloat exact
            let err =
                if reported.shape <> exact.shape then infinity
                else ((reported - exact).abs() / exact.abs().clamp_min(1.0)).max().item<float>()
            err, sprintf "reported %A, autograd %A" (reported.data<float>().ToArray()) (exact.data<float>().ToArray())

        /// Largest |d z_t / d x_s| over tokens s > t (tokens of tokenSize values in row order).
        let laterTokenLeak (tokenSize: int) (flow: FlowUnderTest) (x: torch.Tensor) : float * string =
            use scope = torch.NewDisposeScope()
            let j = jacobian (flow.Encode >> fst) x
            let d = j.shape.[1]
            let token = torch.arange(d, dtype = torch.int64) / int64 tokenSize
            // after[i, j] is true where input j belongs to a later token than output i.
            let after = token.unsqueeze(0).gt(token.unsqueeze(1))
            (toFloat (j.abs() * after.to_type(j.dtype))).max().item<float>(), sprintf "token size %d" tokenSize

    /// A measured error as a property: holds when err <= tolerance, labelled with the law's name and the note.
    let within (name: string) (tolerance: float) (err: float, note: string) : Property =
        Prop.label (sprintf "%s: error %g > %g (%s)" name err tolerance note) (err <= tolerance)

    /// decode (encode x) = x, relative to max(1, max |x|).
    let decodeInvertsEncode (tol: LawTolerances) (flow: FlowUnderTest) (x: torch.Tensor) : Property =
        within "decode(encode x) = x" tol.RoundTrip (Measure.decodeAfterEncode flow x)

    /// encode (decode z) = z, relative to max(1, max |z|).
    let encodeInvertsDecode (tol: LawTolerances) (flow: FlowUnderTest) (z: torch.Tensor) : Property =
        within "encode(decode z) = z" tol.RoundTrip (Measure.encodeAfterDecode flow z)

    /// The reported log|det| equals log|det| of the autograd Jacobian, row by row.
    let logDetMatchesAutograd (tol: LawTolerances) (flow: FlowUnderTest) (x: torch.Tensor) : Property =
        within "log|det| = autograd's" tol.LogDet (Measure.logDet flow x)

    /// Autoregressive structure over tokens of tokenSize values: d z_t / d x_s = 0 for every token s > t
    /// (the Jacobian is block lower triangular).
    let autoregressive (tol: LawTolerances) (tokenSize: int) (flow: FlowUnderTest) (x: torch.Tensor) : Property =
        within "z_t independent of later tokens" tol.Structure (Measure.laterTokenLeak tokenSize flow x)

    /// Generated row batches: 1 to 4 rows, scale 0.5 to 2, any seed.
    let rowSamples : Arbitrary<RowSample> =
        gen {
            let! rows = Gen.choose (1, 4)
            let! scale = Gen.elements [ 0.5; 1.0; 2.0 ]
            let! seed = Gen.choose (0, System.Int32.MaxValue)
            return { Rows = rows; Scale = scale; Seed = int64 seed }
        }
        |> Arb.fromGen

    /// Every law for the flow, each as an FsCheck property over generated rows (the structure law only with a TokenSize).
    let properties (tol: LawTolerances) (flow: FlowUnderTest) : (string * Property) list =
        let over law = Prop.forAll rowSamples (fun s -> law (s.Tensor flow.Dimension))
        [ "decode inverts encode", over (decodeInvertsEncode tol flow)
          "encode inverts decode", over (encodeInvertsDecode tol flow)
          "log|det| matches autograd", over (logDetMatchesAutograd tol flow)
          match flow.TokenSize with
          | Some size -> "autoregressive structure", over (autoregressive tol size flow)
          | None -> () ]

    /// Checks every law with <paramref name="cases"/> generated batches each; throws on the first failure with its counterexample.
    let checkWith (cases: int) (tol: LawTolerances) (flow: FlowUnderTest) =
        for name, property in properties tol flow do
            Check.One(Config.QuickThrowOnFailure.WithMaxTest(cases).WithName(name).WithQuietOnSuccess(true), property)

    /// Checks every law of a float64 flow, 200 generated batches each; throws on the first failure.
    let check (flow: FlowUnderTest) = checkWith 200 float64Tolerances flow
