/// Laws of the encodings' Gaussianity diagnostic: an excess over the floor that exact N(0, I) samples of the same size
/// give. It must read 0 when nothing is wrong (exact N(0, I) rows) and clearly more when the rows are scaled or shifted.
module Nfm.Properties.GaussianityProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Metrics
open Nfm.Properties.Generators

/// Exact draws behind each floor in these laws: enough that the floor's mean and spread are themselves precise.
let draws = 32
/// On exact N(0, I) rows the excess lies within this many of its spreads of 0. The statistic is a sum of positive,
/// chi-square-like terms (skewed at small D), so the bound is wide: a chi-square of 10 degrees of freedom exceeds its
/// mean by 8 standard deviations with probability about 1e-6.
let nullSpreads = 8.0
/// Rows scaled by 3 (Fréchet distance 4 D) or shifted by 1.5 in every value (2.25 D) exceed the floor by more than
/// this many spreads.
let alternativeSpreads = 8.0

module private Generators =
    /// Values per row D (4..24) and rows N (8 D .. 8 D + 200): small enough to check 200 cases quickly.
    let size =
        gen {
            let! d = Gen.choose (4, 24)
            let! extra = Gen.choose (0, 200)
            return 8 * d + extra, d
        }

let private normal (n: int) (d: int) (seed: int) =
    use g = new torch.Generator(uint64 seed)
    torch.randn([| int64 n; int64 d |], dtype = torch.ScalarType.Float64, generator = g)

let private measure (z: torch.Tensor) (seed: int) =
    use g = new torch.Generator(uint64 (seed + 1))
    Gaussianity.Measure(z, g, draws)

[<Tests>]
let gaussianity =
    testList "metrics/gaussianity" [
        testPropertyWithConfig config "on exact N(0, I) rows of any size the excess over the floor is 0 within its spread" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.size seed)) (fun ((n, d), s) ->
                use _ = torch.NewDisposeScope()
                let r = measure (normal n d s) s
                Expect.isLessThanOrEqual (abs r.Excess) (nullSpreads * r.Spread)
                    (sprintf "|excess| %g within %g spreads (%g) at N %d, D %d (statistic %g, floor %g)" r.Excess nullSpreads r.Spread n d r.Statistic r.FloorMean))

        testPropertyWithConfig config "scaled or shifted Gaussian rows exceed the floor by many spreads" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.size seed)) (fun ((n, d), s) ->
                use _ = torch.NewDisposeScope()
                let z = normal n d s
                for name, rows in [ "scaled by 3", z * 3.0; "shifted by 1.5", z + 1.5 ] do
                    let r = measure rows s
                    Expect.isGreaterThan r.Excess (alternativeSpreads * r.Spread)
                        (sprintf "%s: excess %g above %g spreads (%g) at N %d, D %d" name r.Excess alternativeSpreads r.Spread n d))

        testPropertyWithConfig config "per-dimension summaries: exact N(0, I) rows have means within 6/sqrt(N) of 0 and variances within 6 sqrt(2/(N-1)) of 1; scaling by a scales them by a and a^2" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.size seed)) (fun ((n, d), s) ->
                use _ = torch.NewDisposeScope()
                let z = normal n d s
                let m = DimensionSummary.Of z
                let meanBound, varianceBound = 6.0 / sqrt (float n), 6.0 * sqrt (2.0 / float (n - 1))
                Expect.isLessThan (max (abs m.MeanMin) (abs m.MeanMax)) meanBound "every mean near 0"
                Expect.isLessThan (max (abs (m.VarianceMin - 1.0)) (abs (m.VarianceMax - 1.0))) varianceBound "every variance near 1"
                let scaled = DimensionSummary.Of(z * 2.5)
                let close a b = abs (a - b) <= 1e-9 * (1.0 + abs a + abs b)
                Expect.isTrue (close scaled.MeanMax (2.5 * m.MeanMax) && close scaled.VarianceMin (6.25 * m.VarianceMin)
                               && close scaled.KurtosisMax m.KurtosisMax) "scaling by 2.5: means x2.5, variances x6.25, kurtosis unchanged")
    ]
