/// Laws of the TarFlow teacher (Nfm.Invert) over generated tiny models with random non-zero weights
/// (proj_out included: a zero proj_out makes every block the identity and hides bugs).
module Nfm.Properties.TeacherProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Descriptions
open Nfm.Invert
open Nfm.FSharp
open Nfm.Properties.Generators

/// Named tolerances (float64 unless said).
module Tolerance =
    /// Cached and uncached decoding, guidance 0 and plain decoding: same arithmetic up to summation order.
    let sameDecoding = 1e-12
    /// log p(x) against its formula, bits per dim against theirs.
    let formula = 1e-12
    /// Riemann sum of the density over a grid.
    let mass = 1e-2
    /// Denoising step against a five-point central finite-difference score (step 1e-4: truncation O(step^4) stays
    /// far below this, rounding O(eps / step) about 1e-11; step 1e-3 once measured 1.5e-6 on a steep model).
    let score = 1e-6

/// One generated teacher and the batch it is tested on; everything is drawn from Seed.
type TeacherCase =
    { Shape: int64 list
      TokenSize: int
      Heads: int
      HeadDim: int
      Blocks: int
      Layers: int
      Expansion: int
      Classes: int
      Affine: bool
      /// Standard deviation of every weight times sqrt(fan-in), proj_out's excepted.
      WeightScale: float
      /// The same for proj_out: a and b grow like WeightScale * OutScale * |x| (the residual stream is not normalised),
      /// and decoding compounds that over the tokens, so it stays small enough for exp(a) to stay finite.
      OutScale: float
      /// Prior variance drawn from [0.5, 1.5] instead of ones.
      RandomVar: bool
      Rows: int
      Seed: int }
    member c.Spec =
        TeacherSpec(Array.ofList c.Shape, c.TokenSize, c.Heads * c.HeadDim, c.Blocks, c.Layers,
                    HeadDim = c.HeadDim, Expansion = c.Expansion, Affine = c.Affine, Classes = c.Classes)
    member c.Dimension = c.Shape |> List.fold (*) 1L |> int

/// A materialised case: the model, a data batch and a noise batch as flat rows [N, D], the labels (or null).
type Built =
    { Model: TeacherModel
      X: torch.Tensor
      Z: torch.Tensor
      Labels: torch.Tensor | null }
    interface IDisposable with
        member b.Dispose() = b.Model.Dispose()

module Gens =
    /// A vector [T d] in tokens of d, or an image [C, H, W] in patches of p; D <= maxD.
    let layout (maxD: int) : Gen<int64 list * int> =
        Gen.oneof [
            gen {
                let! t = Gen.choose (1, 6)
                let! d = Gen.choose (1, 3)
                return [ int64 (t * d) ], d }
            gen {
                let! c = Gen.choose (1, 2)
                let! p = Gen.choose (1, 2)
                let! gh = Gen.choose (1, 2)
                let! gw = Gen.choose (1, 2)
                return [ int64 c; int64 (gh * p); int64 (gw * p) ], p } ]
        |> Gen.filter (fun (shape, _) -> List.fold (*) 1L shape <= int64 maxD)

    /// A teacher case over a given layout generator.
    let caseOver (layouts: Gen<int64 list * int>) (weightScale: Gen<float>) (outScale: Gen<float>) : Gen<TeacherCase> =
        gen {
            let! shape, tokenSize = layouts
            let! heads = Gen.choose (1, 2)
            let! headDim = Gen.elements [ 2; 4 ]
            let! blocks = Gen.choose (1, 3)
            let! layers = Gen.choose (0, 2)
            let! expansion = Gen.choose (1, 2)
            let! classes = Gen.elements [ 0; 0; 3 ]
            let! affine = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
            let! scale = weightScale
            let! out = outScale
            let! randomVar = Gen.elements [ false; true ]
            let! rows = Gen.choose (1, 3)
            let! seed = Generators.seed
            return
                { Shape = shape; TokenSize = tokenSize; Heads = heads; HeadDim = headDim; Blocks = blocks; Layers = layers
                  Expansion = expansion; Classes = classes; Affine = affine; WeightScale = scale; OutScale = out; RandomVar = randomVar
                  Rows = rows; Seed = seed } }

    /// Small models with D <= 16 and weights of moderate size.
    let cases = caseOver (layout 16) (Gen.elements [ 0.2; 0.3; 0.4 ]) (Gen.elements [ 0.1; 0.2; 0.3 ]) |> Arb.fromGen

    /// Conditional cases only, with proj_out at most 0.2: the class embedding adds to the stream, and at 0.3 one drawn
    /// case (5 tokens of 1, 2 blocks x 2 layers, weights 0.3) decoded a 3.2-sigma z to infinity.
    let conditional =
        caseOver (layout 16) (Gen.elements [ 0.2; 0.3; 0.4 ]) (Gen.elements [ 0.1; 0.2 ])
        |> Gen.map (fun c -> { c with Classes = 3 })
        |> Arb.fromGen

    /// Small models with mild weights (smooth densities, for finite differences).
    let mild = caseOver (layout 16) (Gen.elements [ 0.1; 0.2; 0.3 ]) (Gen.elements [ 0.1; 0.2; 0.3 ]) |> Arb.fromGen

    /// Vector cases of dimension exactly D in D tokens of 1, with mild weights (the mass stays on the grid).
    let densityCases (d: int) =
        caseOver (Gen.constant ([ int64 d ], 1)) (Gen.elements [ 0.1; 0.2; 0.3 ]) (Gen.elements [ 0.1; 0.2; 0.3 ])
        |> Gen.map (fun c -> { c with Blocks = min c.Blocks 2 })
        |> Arb.fromGen

/// Builds the model of a case in the given dtype with random non-zero weights, plus its batches.
let build (dtype: torch.ScalarType) (c: TeacherCase) : Built =
    let model = new TeacherModel(c.Spec)
    model.``to``(dtype) |> ignore
    use g = new torch.Generator(uint64 c.Seed)
    using (torch.no_grad ()) (fun _ ->
        for struct (name, p) in model.named_parameters () do
            let fanIn = p.shape.[p.shape.Length - 1]
            let scale = if name.Contains "proj_out." then c.OutScale else c.WeightScale
            p.copy_ (torch.randn (p.shape, dtype = dtype, generator = g) * (scale / sqrt (float fanIn))) |> ignore
        if c.RandomVar then
            let v = model.PriorVariance
            v.copy_ (torch.rand (v.shape, dtype = dtype, generator = g) + 0.5) |> ignore)
    let n = int64 c.Rows
    let x = torch.randn ([| n; int64 c.Dimension |], dtype = dtype, generator = g)
    let z = torch.randn ([| n; int64 c.Dimension |], dtype = dtype, generator = g)
    let labels =
        if c.Classes = 0 then null
        else torch.randint (-1L, int64 c.Classes, [| n |], dtype = torch.int64, generator = g)
    { Model = model; X = x; Z = z; Labels = labels }

/// Flat rows [N, D] to data [N, ...InputShape] of the model.
let private unflatten (model: TeacherModel) (rows: torch.Tensor) =
    rows.reshape (Array.append [| rows.shape.[0] |] model.Spec.InputShape)

let private flatten (x: torch.Tensor) = x.reshape (x.shape.[0], -1L)

/// The whole teacher as a flow over flat rows (labels must match the batch size).
let modelFlow (b: Built) : FlowUnderTest =
    { Encode = fun x -> let struct (z, ld) = Teacher.Encode(b.Model, unflatten b.Model x, b.Labels) in flatten z, ld
      Decode = fun z -> Teacher.Decode(b.Model, unflatten b.Model z, b.Labels) |> flatten
      Dimension = int b.Model.Spec.Dimension
      TokenSize = None }

/// Block k alone, over flat rows in that block's own reading order.
let blockFlow (b: Built) (k: int) : FlowUnderTest =
    let block = b.Model.Blocks.[k]
    let tokens (x: torch.Tensor) = x.reshape (x.shape.[0], block.Tokens, block.TokenDim)
    { Encode = fun x -> let struct (z, ld) = block.EncodeInOrder(tokens x, b.Labels) in flatten z, ld
      Decode = fun z -> block.DecodeInOrder(tokens z, b.Labels) |> flatten
      Dimension = int b.Model.Spec.Dimension
      TokenSize = Some (int block.TokenDim) }

let private relative (a: torch.Tensor) (e: torch.Tensor) = Laws.relativeError a e

/// One measured error of a law on one case, with the bound it must stay under.
type Measured = { What: string; Error: float; Tolerance: float; Note: string }

let private measured what tolerance (err: float, note: string) = { What = what; Error = err; Tolerance = tolerance; Note = note }
let private plainly what tolerance (err: float) = measured what tolerance (err, "")

/// A law: what it says, the cases it is checked on, their dtype, and what it measures on one built case.
type TeacherLaw = { Name: string; Cases: Arbitrary<TeacherCase>; DType: torch.ScalarType; Measure: Built -> Measured list }

/// log N(z; 0, diag var) + log|det| written out here, apart from Teacher.PriorLogDensity.
let private expectedLogLikelihood (b: Built) =
    let struct (z, logdet) = Teacher.Encode(b.Model, unflatten b.Model b.X, b.Labels)
    let tokens = b.Model.ToTokens z
    let v = b.Model.PriorVariance
    let d = float b.Model.Spec.Dimension
    -0.5 * ((tokens * tokens / v).sum ([| 1L; 2L |]) + v.log().sum() + d * log (2.0 * Math.PI)) + logdet

/// Riemann sum of exp(log p) over a uniform grid [-L, L]^D, D = 1 or 2, spacing h (midpoints).
let private mass (b: Built) =
    let dimension = int b.Model.Spec.Dimension
    // A fine, wide grid: at h = 0.2 on [-8, 8] one generated 2-D model measured mass 0.98996 (midpoint-rule error).
    let half, h = 10.0, 0.1
    let axis = torch.arange (-half + h / 2.0, half, h, dtype = torch.float64)
    let grid =
        if dimension = 1 then axis.unsqueeze 1
        else
            let mesh = torch.meshgrid ([| axis; axis |], indexing = "ij")
            torch.stack ([| mesh.[0].flatten (); mesh.[1].flatten () |], 1)
    let n = grid.shape.[0]
    let labels = match b.Labels with null -> null | l -> l.narrow(0, 0L, 1L).expand ([| n |])
    let logp = Teacher.LogLikelihood(b.Model, grid, labels)
    logp.exp().sum().item<float> () * (h ** float dimension)

/// Every law of the teacher.
let laws : TeacherLaw list =
    let roundTrip (tol: LawTolerances) (b: Built) =
        [ measured "decode(encode x) = x" tol.RoundTrip (Laws.Measure.decodeAfterEncode (modelFlow b) b.X)
          measured "encode(decode z) = z" tol.RoundTrip (Laws.Measure.encodeAfterDecode (modelFlow b) b.Z) ]
    [ { Name = "decode(encode x) = x and encode(decode z) = z (float64)"
        Cases = Gens.cases; DType = torch.float64; Measure = roundTrip Laws.float64Tolerances }
      { Name = "decode(encode x) = x and encode(decode z) = z (float32)"
        Cases = Gens.cases; DType = torch.float32; Measure = roundTrip Laws.float32Tolerances }
      { Name = "reported log|det| equals the autograd Jacobian's"
        Cases = Gens.cases; DType = torch.float64
        Measure = fun b -> [ measured "log|det|" Laws.float64Tolerances.LogDet (Laws.Measure.logDet (modelFlow b) b.X) ] }
      { Name = "inside a block z_t depends on x_s for s <= t only, token 0 passes through"
        Cases = Gens.cases; DType = torch.float64
        Measure = fun b ->
            // The block depends on the batch size, so both reading orders come up.
            let k = b.Model.Spec.Blocks - 1 - (int b.X.shape.[0] % b.Model.Spec.Blocks)
            let flow = blockFlow b k
            let z, _ = flow.Encode b.X
            let d = b.Model.Spec.TokenDim
            [ measured "later-token leak" Laws.float64Tolerances.Structure (Laws.Measure.laterTokenLeak (int d) flow b.X)
              plainly "token 0 changed" 0.0 (relative (z.narrow (1, 0L, d)) (b.X.narrow (1, 0L, d))) ] }
      { Name = "log p(x) = log N(encode x; 0, var) + log|det|"
        Cases = Gens.cases; DType = torch.float64
        Measure = fun b ->
            [ plainly "log p" Tolerance.formula (relative (Teacher.LogLikelihood(b.Model, unflatten b.Model b.X, b.Labels)) (expectedLogLikelihood b)) ] }
      { Name = "bits per dim = -log p(x) / (D ln 2) + 7"
        Cases = Gens.cases; DType = torch.float64
        Measure = fun b ->
            let x = unflatten b.Model b.X
            let expected = -Teacher.LogLikelihood(b.Model, x, b.Labels) / (float b.Model.Spec.Dimension * log 2.0) + 7.0
            [ plainly "bits per dim" Tolerance.formula (relative (Teacher.BitsPerDim(b.Model, x, b.Labels)) expected) ] }
      { Name = "the 1-D density integrates to 1"
        Cases = Gens.densityCases 1; DType = torch.float64
        Measure = fun b -> let m = mass b in [ measured "mass - 1" Tolerance.mass (abs (m - 1.0), sprintf "mass %g" m) ] }
      { Name = "the 2-D density integrates to 1"
        Cases = Gens.densityCases 2; DType = torch.float64
        Measure = fun b -> let m = mass b in [ measured "mass - 1" Tolerance.mass (abs (m - 1.0), sprintf "mass %g" m) ] }
      { Name = "cached decoding equals uncached decoding (with and without guidance)"
        Cases = Gens.cases; DType = torch.float64
        Measure = fun b ->
            let z = unflatten b.Model b.Z
            let guidance = if b.Model.Spec.IsConditional then Nullable 1.5 else Nullable()
            [ plainly "plain" Tolerance.sameDecoding
                  (relative (Teacher.Decode(b.Model, z, b.Labels, useCache = false)) (Teacher.Decode(b.Model, z, b.Labels)))
              plainly "guided" Tolerance.sameDecoding
                  (relative (Teacher.Decode(b.Model, z, b.Labels, guidance, false)) (Teacher.Decode(b.Model, z, b.Labels, guidance, true))) ] }
      { Name = "guidance 0 equals plain conditional decoding; null labels ignore guidance"
        Cases = Gens.conditional; DType = torch.float64
        Measure = fun b ->
            let z = unflatten b.Model b.Z
            let nulls = torch.full_like (nonNull b.Labels, -1L)
            [ plainly "w = 0" Tolerance.sameDecoding
                  (relative (Teacher.Decode(b.Model, z, b.Labels, guidance = 0.0)) (Teacher.Decode(b.Model, z, b.Labels)))
              plainly "null labels, w = 2" Tolerance.sameDecoding
                  (relative (Teacher.Decode(b.Model, z, nulls, guidance = 2.0)) (Teacher.Decode(b.Model, z, nulls))) ] }
      { Name = "guided decoding solves x_t = z_t exp(a_t + w (a_t - a_uncond,t)) + b_t + w (b_t - b_uncond,t)"
        Cases = Gens.conditional; DType = torch.float64
        Measure = fun b ->
            let w = 1.5
            let block = b.Model.Blocks.[int b.X.shape.[0] % b.Model.Spec.Blocks]
            let z = b.Z.reshape (b.Z.shape.[0], block.Tokens, block.TokenDim)
            let x = block.DecodeInOrder(z, b.Labels, guidance = w)
            // The defining equation, with shifts from one full pass over the decoded tokens.
            let struct (a, sb) = block.Shifts(x, b.Labels)
            let struct (au, bu) = block.Shifts(x, null)
            let expected = z * (a + w * (a - au)).exp() + sb + w * (sb - bu)
            [ plainly "equation" Tolerance.sameDecoding (relative x expected) ] }
      { Name = "denoising adds sigma^2 times the finite-difference score"
        Cases = Gens.mild; DType = torch.float64
        Measure = fun b ->
            let sigma, step = 0.3, 1e-4
            let x = b.X
            let n, d = x.shape.[0], x.shape.[1]
            let eye = torch.eye (d, dtype = torch.float64) * step
            // Rows n*d + j: x_n moved by sign * step along dimension j.
            let shifted (sign: float) = (x.unsqueeze 1 + sign * eye.unsqueeze 0).reshape (n * d, d)
            let labels = match b.Labels with null -> null | l -> l.repeat_interleave (d)
            let logp rows = Teacher.LogLikelihood(b.Model, unflatten b.Model rows, labels).reshape (n, d)
            // Five-point central difference: error O(step^4) + O(eps / step).
            let score = (8.0 * (logp (shifted 1.0) - logp (shifted -1.0)) - (logp (shifted 2.0) - logp (shifted -2.0))) / (12.0 * step)
            let denoised = Teacher.Denoise(b.Model, unflatten b.Model x, sigma, b.Labels) |> flatten
            [ plainly "score" Tolerance.score (relative ((denoised - x) / (sigma * sigma)) score) ] } ]

/// Builds the case, measures the law, frees every tensor.
let measure (law: TeacherLaw) (c: TeacherCase) : Measured list =
    use scope = torch.NewDisposeScope()
    use built = build law.DType c
    law.Measure built

[<Tests>]
let tests =
    testList "teacher laws" [
        for law in laws do
            testPropertyWithConfig config law.Name (fun () ->
                Prop.forAll law.Cases (fun c ->
                    measure law c
                    |> List.map (fun m -> Laws.within m.What m.Tolerance (m.Error, m.Note))
                    |> List.reduce (.&.)))

        // Laws.check as a user calls it: one call on one block, over generated batches of rows.
        test "Laws.check passes a reversed teacher block" {
            let case =
                { Shape = [ 8L ]; TokenSize = 2; Heads = 2; HeadDim = 2; Blocks = 2; Layers = 2; Expansion = 2; Classes = 0
                  Affine = true; WeightScale = 0.5; OutScale = 0.3; RandomVar = false; Rows = 1; Seed = 11 }
            use built = build torch.float64 case
            Laws.check (blockFlow built 1)
        }
        test "Laws.check rejects a flow whose decode is off" {
            let flow =
                { Encode = fun x -> x * 2.0, torch.full ([| x.shape.[0] |], (4.0 * log 2.0).ToScalar(), dtype = torch.float64)
                  Decode = fun z -> z / 2.0 + 1e-6
                  Dimension = 4
                  TokenSize = Some 1 }
            Expect.throws (fun () -> Laws.check flow) "the round trip is off by 1e-6"
        }
        test "Laws.check rejects a wrong log-determinant" {
            let flow =
                { Encode = fun x -> x * 2.0, torch.full ([| x.shape.[0] |], (3.0 * log 2.0).ToScalar(), dtype = torch.float64)
                  Decode = fun z -> z / 2.0
                  Dimension = 4
                  TokenSize = None }
            Expect.throws (fun () -> Laws.check flow) "log|det| is log 8, not log 16"
        }
        test "Laws.check rejects a flow that reads a later token" {
            // z_0 = x_0 + 0.1 x_1, the rest unchanged: invertible with log|det| = 0, but token 0 reads token 1.
            let mix (sign: float) (x: torch.Tensor) = x + sign * 0.1 * torch.nn.functional.pad (x.narrow (1, 1L, 1L), [| 0L; 3L |])
            let flow =
                { Encode = fun x -> mix 1.0 x, torch.zeros ([| x.shape.[0] |], dtype = torch.float64)
                  Decode = mix -1.0
                  Dimension = 4
                  TokenSize = Some 1 }
            Expect.throws (fun () -> Laws.check flow) "token 0 depends on token 1"
            Laws.check { flow with TokenSize = None } // the same flow keeps the other laws
        }
    ]
