/// Laws of the sample-quality metrics: exact W2 and RBF-mixture MMD.
module Nfm.Properties.MetricProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Metrics
open Nfm.Properties.Generators

/// W2 or MMD of a set with itself (or a relabelled copy): exactly zero up to float64 rounding.
let zeroTolerance = 1e-12
/// Relative slack between two float64 evaluations of the same quantity by different routes.
let relativeTolerance = 1e-9

module private Generators =
    let seed = Nfm.Properties.Generators.seed
    /// Point-set shape [N, D] (N in 1..maxN, D in 1..4) or an image-like [N, 1, 2, 2].
    let shape maxN =
        gen {
            let! n = Gen.choose (1, maxN)
            let! d = Gen.choose (1, 4)
            let! image = Gen.elements [ false; true ]
            return if image then [| int64 n; 1L; 2L; 2L |] else [| int64 n; int64 d |]
        }

let private points (shape: int64[]) (seed: int) =
    use g = new torch.Generator(uint64 seed)
    torch.randn(shape, dtype = torch.ScalarType.Float64, generator = g)

let private shuffled (x: torch.Tensor) (seed: int) =
    let n = int x.shape[0]
    let p = Array.init n int64
    Random(seed).Shuffle p
    x.index_select(0L, torch.tensor p)

let private close (a: float) (b: float) = abs (a - b) <= relativeTolerance * (1.0 + abs a + abs b)

let rec private permutations n : int[] list =
    if n = 0 then [ [||] ]
    else [ for p in permutations (n - 1) do for k in 0 .. n - 1 -> Array.concat [ p[.. k - 1]; [| n - 1 |]; p[k ..] ] ]

let private rows (x: torch.Tensor) =
    let n = int x.shape[0]
    let flat = x.reshape(int64 n, -1L).contiguous().data<float>().ToArray()
    let d = flat.Length / n
    Array.init n (fun i -> flat[i * d .. i * d + d - 1])

let private sq (u: float[]) (v: float[]) = Array.fold2 (fun s a b -> s + (a - b) * (a - b)) 0.0 u v

[<Tests>]
let wasserstein =
    testList "metrics/w2" [
        testPropertyWithConfig config "W2 of a set and a shuffled copy is 0" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.shape 40) Generators.seed)) (fun (shape, seed) ->
                use _ = torch.NewDisposeScope()
                let a = points shape seed
                Expect.isLessThanOrEqual (Wasserstein.W2(a, shuffled a (seed + 1))) zeroTolerance "W2(a, shuffle a)")

        testPropertyWithConfig config "W2 is symmetric" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.shape 40) Generators.seed)) (fun (shape, seed) ->
                use _ = torch.NewDisposeScope()
                let a, b = points shape seed, points shape (seed ^^^ 0x2545F491)
                Expect.isTrue (close (Wasserstein.W2(a, b)) (Wasserstein.W2(b, a))) "W2(a, b) = W2(b, a)")

        testPropertyWithConfig config "W2 to a translated (and shuffled) copy is the length of the shift" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.shape 40) Generators.seed)) (fun (shape, seed) ->
                use _ = torch.NewDisposeScope()
                let a = points shape seed
                let shift = points (Array.append [| 1L |] shape[1..]) (seed + 2) * 3.0
                let b = shuffled (a + shift) (seed + 3)
                let expected = shift.square().sum().sqrt().item<float>()
                Expect.isTrue (close (Wasserstein.W2(a, b)) expected) $"W2 = |shift| = {expected}")

        testPropertyWithConfig config "W2 equals brute force over permutations for n <= 6" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.shape 6) Generators.seed)) (fun (shape, seed) ->
                use _ = torch.NewDisposeScope()
                let a, b = points shape seed, points shape (seed + 5)
                let ra, rb = rows a, rows b
                let n = ra.Length
                let best = permutations n |> List.map (fun p -> Array.sumBy (fun i -> sq ra[i] rb[p[i]]) [| 0 .. n - 1 |]) |> List.min
                Expect.isTrue (close (Wasserstein.W2(a, b)) (sqrt (best / float n))) "brute force")

        test "W2 refuses sets of different sizes" {
            use _ = torch.NewDisposeScope()
            Expect.throwsT<ArgumentException> (fun () -> Wasserstein.W2(torch.zeros(3L, 2L), torch.zeros(4L, 2L)) |> ignore) "sizes"
            Expect.throwsT<ArgumentException> (fun () -> Wasserstein.W2(torch.zeros(3L, 2L), torch.zeros(3L, 3L)) |> ignore) "dims"
        }
    ]

[<Tests>]
let mmd =
    testList "metrics/mmd" [
        testPropertyWithConfig config "MMD of a set and a shuffled copy is 0 (default and given bandwidths)" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.shape 40) Generators.seed)) (fun (shape, seed) ->
                use _ = torch.NewDisposeScope()
                let a = points shape seed
                Expect.isLessThanOrEqual (Mmd.Rbf(a, a)) zeroTolerance "identical"
                Expect.isLessThanOrEqual (Mmd.Rbf(a, shuffled a (seed + 1), [| 0.3; 2.0 |])) zeroTolerance "shuffled")

        testPropertyWithConfig config "MMD is symmetric and non-negative, also for different sizes" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Generators.shape 40) (Gen.choose (1, 40)) Generators.seed)) (fun (shape, m, seed) ->
                use _ = torch.NewDisposeScope()
                let a = points shape seed
                let b = points (Array.append [| int64 m |] shape[1..]) (seed + 7) + 0.5
                let ab, ba = Mmd.Rbf(a, b), Mmd.Rbf(b, a)
                Expect.isGreaterThanOrEqual ab 0.0 "non-negative"
                Expect.isTrue (close ab ba) $"MMD(a, b) = {ab} vs MMD(b, a) = {ba}")

        testPropertyWithConfig config "MMD equals the direct V-statistic for given bandwidths" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Generators.shape 8) (Gen.choose (1, 8)) Generators.seed)) (fun (shape, m, seed) ->
                use _ = torch.NewDisposeScope()
                let a = points shape seed
                let b = points (Array.append [| int64 m |] shape[1..]) (seed + 9)
                let bw = [| 0.5; 1.5 |]
                let k (u: float[]) (v: float[]) = bw |> Array.averageBy (fun s -> exp (-(sq u v) / (2.0 * s * s)))
                let mean (xs: float[][]) (ys: float[][]) = Array.averageBy (fun x -> Array.averageBy (k x) ys) xs
                let ra, rb = rows a, rows b
                let direct = mean ra ra + mean rb rb - 2.0 * mean ra rb
                Expect.isTrue (abs (Mmd.Rbf(a, b, bw) - max 0.0 direct) <= 1e-10) $"direct {direct}")

        test "MMD separates far-apart sets and rejects bad bandwidths" {
            use _ = torch.NewDisposeScope()
            let a = points [| 50L; 2L |] 1
            // Far apart the cross term vanishes: MMD^2 = mean k(a, a') + mean k(b, b') ~ 2 * (1/3 + 1/50) for N(0, I) in 2-D.
            Expect.isGreaterThan (Mmd.Rbf(a, a + 10.0, [| 1.0 |])) 0.5 "far apart"
            Expect.throwsT<ArgumentException> (fun () -> Mmd.Rbf(a, a, [| 0.0 |]) |> ignore) "zero bandwidth"
            Expect.throwsT<ArgumentException> (fun () -> Mmd.Rbf(a, points [| 5L; 3L |] 2) |> ignore) "row sizes"
        }
    ]
