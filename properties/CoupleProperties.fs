/// Laws of the couple step: the exact assignment solver, Sinkhorn and its two pairings, the model-free
/// couplings, and the coupling description.
module Nfm.Properties.CoupleProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Couple
open Nfm.Descriptions
open Nfm.Properties.Generators

/// Relative slack when two optimal costs found by different routes are compared (float64 sums of <= 900 terms).
let costTolerance = 1e-9
/// Independent noise: each sample moment may miss its true value by this many standard errors.
let noiseSigmas = 5.0
/// Rows drawn for the noise-moment law (standard error of a mean: 1 / sqrt rows).
let noiseRows = 4000L
/// Sinkhorn stops at this L1 error of the row marginal; the law checks the returned error against it.
let sinkhornTolerance = 1e-7
/// Largest entry-wise difference between two converged plans (entries are about 1/n^2 <= 1).
let planTolerance = 1e-8
/// Iteration cap in the Sinkhorn laws: they hold converged or not, so a small cap keeps the suite fast.
let sinkhornIterations = 60

/// Generators for this suite (besides the shared ones).
module CouplingGenerators =
    /// Any coupling description, valid by construction.
    let spec =
        let path = Gen.elements [ "p"; "dir/pairs"; "/abs/pairs.npz"; "C:\\win\\x"; "a:b/c"; "my pairs" ]
        let number = Gen.choose (1, 1_000_000) |> Gen.map (fun k -> float k / 1000.0)
        Gen.oneof [
            Gen.constant CouplingSpec.Independent
            Gen.constant CouplingSpec.Ot
            gen {
                let! e = number
                let! p = Gen.elements [ SinkhornPairing.Round; SinkhornPairing.Sample ]
                return CouplingSpec.Sinkhorn(e, p) }
            path |> Gen.map CouplingSpec.TeacherPairs
            gen {
                let! p = path
                let! eta = Gen.oneof [ Gen.constant None; (Gen.choose (0, 1000) |> Gen.map (fun k -> Some(float k / 1000.0))) ]
                return CouplingSpec.TeacherOnTheFly(p + ".ckpt", Option.toNullable eta) }
            path |> Gen.map (fun p -> CouplingSpec.Reflow(p + ".ckpt"))
        ]

let private pairCost (c: float[]) n (perm: int[]) =
    let mutable s = 0.0
    for i in 0 .. n - 1 do s <- s + c[i * n + perm[i]]
    s

let private isPermutation n (perm: int[]) =
    perm.Length = n && (Array.sort perm = Array.init n id)

/// Every permutation of 0..n-1 (n <= 7 here).
let rec private permutations n : int[] list =
    if n = 0 then [ [||] ]
    else
        [ for p in permutations (n - 1) do
            for k in 0 .. n - 1 -> Array.concat [ p[.. k - 1]; [| n - 1 |]; p[k ..] ] ]

let private randomPermutation (rng: Random) n =
    let p = Array.init n id
    rng.Shuffle p
    p

let private close (a: float) (b: float) = abs (a - b) <= costTolerance * (1.0 + abs a + abs b)

let private gaussian (shape: int64[]) (dtype: torch.ScalarType) (seed: int) =
    use g = new torch.Generator(uint64 seed)
    torch.randn(shape, dtype = dtype, generator = g)

/// Rows of x as arrays of float, sorted lexicographically: the multiset of rows.
let private sortedRows (x: torch.Tensor) =
    let n = int x.shape[0]
    let flat = x.reshape(int64 n, -1L).to_type(torch.ScalarType.Float64).data<float>().ToArray()
    let d = flat.Length / max n 1
    Array.init n (fun i -> flat[i * d .. i * d + d - 1]) |> Array.sortWith compare

let private sumSquared (a: torch.Tensor) (b: torch.Tensor) =
    (a - b).to_type(torch.ScalarType.Float64).square().sum().item<float>()

[<Tests>]
let assignment =
    testList "couple/assignment" [
        testPropertyWithConfig config "the answer is a permutation and its cost is the sum of its pairs" <|
            Prop.forAll (Arb.fromGen (Generators.cost 40)) (fun (n, c) ->
                let r = Assignment.Solve(c, n)
                Expect.isTrue (isPermutation n r.Permutation) "a permutation of 0..n-1"
                Expect.isTrue (close r.Cost (pairCost c n r.Permutation)) "reported cost = sum of its pairs")

        testPropertyWithConfig config "cost <= the identity pairing and <= 100 random permutations" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.cost 30) Generators.seed)) (fun ((n, c), seed) ->
                let r = Assignment.Solve(c, n)
                let rng = Random seed
                Expect.isTrue (r.Cost <= pairCost c n (Array.init n id) + costTolerance * (1.0 + abs r.Cost)) "<= identity"
                for _ in 1 .. 100 do
                    let p = randomPermutation rng n
                    let other = pairCost c n p
                    Expect.isTrue (r.Cost <= other + costTolerance * (1.0 + abs other)) "<= a random permutation")

        testPropertyWithConfig config "equals brute force for n <= 7" <|
            Prop.forAll (Arb.fromGen (Generators.cost 7)) (fun (n, c) ->
                let best = permutations n |> List.map (pairCost c n) |> List.min
                let r = Assignment.Solve(c, n)
                Expect.isTrue (close r.Cost best) $"solver {r.Cost} vs brute force {best}")

        testPropertyWithConfig config "relabelling rows and columns relabels the answer" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.cost 30) Generators.seed)) (fun ((n, c), seed) ->
                let rng = Random seed
                let p, q = randomPermutation rng n, randomPermutation rng n
                // c'[i, j] = c[p[i], q[j]]
                let c' = Array.init (n * n) (fun k -> c[p[k / n] * n + q[k % n]])
                let r, r' = Assignment.Solve(c, n), Assignment.Solve(c', n)
                Expect.isTrue (close r.Cost r'.Cost) "same optimal cost"
                // When the optimum is unique (checked by brute force on small n), the permutation is conjugated.
                if n <= 6 then
                    let costs = permutations n |> List.map (pairCost c n)
                    let best = List.min costs
                    let unique = costs |> List.filter (fun x -> close x best) |> List.length = 1
                    if unique then
                        let qInv = Array.zeroCreate n
                        q |> Array.iteri (fun j qj -> qInv[qj] <- j)
                        let expected = Array.init n (fun i -> qInv[r.Permutation[p[i]]])
                        Expect.equal r'.Permutation expected "conjugated permutation")

        testPropertyWithConfig config "the initial reductions change nothing: the same optimal cost as the search alone" <|
            Prop.forAll (Arb.fromGen (Generators.cost 40)) (fun (n, c) ->
                let r, reference = Assignment.Solve(c, n), Assignment.SolveBySearchOnly(c, n)
                Expect.isTrue (isPermutation n r.Permutation) "a permutation"
                Expect.isTrue (close r.Cost reference.Cost) $"full solver {r.Cost} vs search alone {reference.Cost}")

        testPropertyWithConfig config "on point clouds (near, far apart, duplicated) the full solver's cost is the search's" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 300)) (Gen.elements [ 1; 2; 8 ]) Generators.seed)) (fun (n, dim, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a = torch.randn([| int64 n; int64 dim |], dtype = torch.float64, generator = g)
                // Far apart (a one-step student against the data), or few distinct points (ties everywhere).
                let b =
                    match seed % 3 with
                    | 0 -> torch.randn([| int64 n; int64 dim |], dtype = torch.float64, generator = g) * 0.3 + 4.0
                    | 1 -> torch.randint(0L, 3L, [| int64 n; int64 dim |], generator = g).to_type(torch.float64)
                    | _ -> torch.randn([| int64 n; int64 dim |], dtype = torch.float64, generator = g)
                let c = (a.unsqueeze(1L) - b.unsqueeze(0L)).square().sum(2L).contiguous().data<float>().ToArray()
                let r, reference = Assignment.Solve(c, n), Assignment.SolveBySearchOnly(c, n)
                Expect.isTrue (isPermutation n r.Permutation) "a permutation"
                Expect.isTrue (close r.Cost reference.Cost) $"full solver {r.Cost} vs search alone {reference.Cost}"
                // From the points: both sets standardised first, the cost reported for the original points.
                let p = Assignment.Solve(a, b)
                Expect.isTrue (isPermutation n p.Permutation) "a permutation (points)"
                Expect.isTrue (close p.Cost reference.Cost) $"from the points {p.Cost} vs search alone {reference.Cost}"
                Expect.isTrue (close p.Cost (pairCost c n p.Permutation)) "its cost is the sum of its pairs")

        testPropertyWithConfig config "the 2-D array and tensor overloads agree with the flat one" <|
            Prop.forAll (Arb.fromGen (Generators.cost 20)) (fun (n, c) ->
                use _ = torch.NewDisposeScope()
                let flat = Assignment.Solve(c, n)
                let grid = Assignment.Solve(Array2D.init n n (fun i j -> c[i * n + j]))
                Expect.isTrue (close flat.Cost grid.Cost) "double[,] overload"
                if n > 0 then
                    let t = Assignment.Solve(torch.tensor(c).reshape(int64 n, int64 n))
                    Expect.isTrue (close flat.Cost t.Cost) "tensor overload")

        testPropertyWithConfig config "points paired with a shuffled copy of themselves cost 0, duplicates included" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 40)) Generators.seed)) (fun (n, seed) ->
                use _ = torch.NewDisposeScope()
                let rng = Random seed
                // Few distinct values: many duplicate points.
                let a = torch.tensor(Array.init (n * 2) (fun _ -> float (rng.Next 3))).reshape(int64 n, 2L)
                let shuffle = randomPermutation rng n
                let b = a.index_select(0L, torch.tensor(shuffle |> Array.map int64))
                let r = Assignment.Solve(a, b)
                Expect.isTrue (isPermutation n r.Permutation) "a permutation"
                Expect.isTrue (abs r.Cost <= costTolerance) $"cost {r.Cost} should be 0")

        test "all-equal costs at n = 600 finish quickly (ties prefer free columns)" {
            let n = 600
            let sw = Diagnostics.Stopwatch.StartNew()
            let r = Assignment.Solve(Array.create (n * n) 1.0, n)
            Expect.isTrue (isPermutation n r.Permutation) "a permutation"
            Expect.isLessThan sw.Elapsed.TotalSeconds 2.0 "seconds"
        }

        test "rejects a wrong length and non-finite costs" {
            Expect.throwsT<ArgumentException> (fun () -> Assignment.Solve(Array.zeroCreate 5, 2) |> ignore) "length"
            Expect.throwsT<ArgumentException> (fun () -> Assignment.Solve([| 0.0; nan; 1.0; 2.0 |], 2) |> ignore) "NaN"
            Expect.throwsT<ArgumentException> (fun () -> Assignment.Solve([| 0.0; infinity; 1.0; 2.0 |], 2) |> ignore) "infinity"
            Expect.throwsT<ArgumentException> (fun () -> Assignment.Solve([| 0.0; 1e200; 1.0; 2.0 |], 2) |> ignore) "beyond MaxAbsCost"
        }
    ]

/// Reference: plain log-domain Sinkhorn on float arrays (log-sum-exp updates of both potentials), epsilon relative
/// to the mean cost like Sinkhorn.Plan, until the row marginal is within tolerance (L1) or the cap. Returns the plan.
let private logDomainPlan (cost: torch.Tensor) (epsilon: float) (tolerance: float) iterations =
    let n, m = int cost.shape[0], int cost.shape[1]
    let c = cost.contiguous().data<float>().ToArray()
    let eps = epsilon * Array.average c
    let logK = c |> Array.map (fun x -> -x / eps)
    let f, g = Array.zeroCreate<float> n, Array.zeroCreate<float> m
    let lse (xs: seq<float>) =
        let xs = Array.ofSeq xs
        let top = Array.max xs
        top + log (Array.sumBy (fun x -> exp (x - top)) xs)
    let rowLse i = lse (seq { for j in 0 .. m - 1 -> logK[i * m + j] + g[j] })
    let mutable it = 0
    let mutable error = infinity
    while it < iterations && error > tolerance do
        for i in 0 .. n - 1 do f[i] <- -log (float n) - rowLse i
        for j in 0 .. m - 1 do g[j] <- -log (float m) - lse (seq { for i in 0 .. n - 1 -> logK[i * m + j] + f[i] })
        error <- Seq.sum (seq { for i in 0 .. n - 1 -> abs (exp (f[i] + rowLse i) - 1.0 / float n) })
        it <- it + 1
    torch.tensor(Array.init (n * m) (fun k -> exp (logK[k] + f[k / m] + g[k % m]))).reshape(int64 n, int64 m)

[<Tests>]
let sinkhorn =
    testList "couple/sinkhorn" [
        testPropertyWithConfig config "the plan sums to 1, columns are uniform, and the reported row error is the plan's" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.zip3 (Gen.choose (1, 24)) (Gen.choose (1, 24)) Generators.seed) (Gen.elements [ 1e-3; 1e-2; 0.2; 10.0 ]))) (fun ((n, m, seed), eps) ->
                use _ = torch.NewDisposeScope()
                let a = gaussian [| int64 n; 3L |] torch.ScalarType.Float64 seed
                let b = gaussian [| int64 m; 3L |] torch.ScalarType.Float64 (seed ^^^ 0x5bd1e995)
                use plan = Sinkhorn.Plan(SquaredDistances.Pairwise(a, b), SinkhornOptions(eps, sinkhornIterations, sinkhornTolerance))
                Expect.isTrue (plan.LogPlan.isfinite().all().item<bool>()) "finite log plan"
                let p = plan.Plan()
                let rowErr = (p.sum(1L) - 1.0 / float n).abs().sum().item<float>()
                let colErr = (p.sum(0L) - 1.0 / float m).abs().sum().item<float>()
                Expect.isTrue (abs (rowErr - plan.MarginalError) <= 1e-12) $"reported {plan.MarginalError}, actual {rowErr}"
                Expect.equal plan.Converged (rowErr <= sinkhornTolerance) "converged iff within tolerance"
                Expect.isLessThanOrEqual colErr 1e-12 "column marginal"
                Expect.floatClose Accuracy.high (p.sum().item<float>()) 1.0 "total mass")

        testPropertyWithConfig config "converged plans agree with the plain log-domain iteration" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 16)) (Gen.elements [ 0.2; 0.5; 2.0 ]) Generators.seed)) (fun (n, eps, seed) ->
                use _ = torch.NewDisposeScope()
                let c = SquaredDistances.Pairwise(gaussian [| int64 n; 2L |] torch.ScalarType.Float64 seed,
                                                  gaussian [| int64 n; 2L |] torch.ScalarType.Float64 (seed + 1))
                use plan = Sinkhorn.Plan(c, SinkhornOptions(eps, 3000, 1e-11))
                // Nearly degenerate plans (two far-apart pairs) may not reach the tolerance; only converged ones are compared.
                if plan.Converged then
                    let diff = (plan.Plan() - logDomainPlan c eps 1e-11 3000).abs().max().item<float>()
                    Expect.isLessThanOrEqual diff planTolerance "same plan")

        test "with a tiny epsilon (absorbing scalings) the plan still agrees with the log-domain iteration" {
            use _ = torch.NewDisposeScope()
            let c = SquaredDistances.Pairwise(gaussian [| 48L; 2L |] torch.ScalarType.Float64 3,
                                              gaussian [| 48L; 2L |] torch.ScalarType.Float64 4)
            use plan = Sinkhorn.Plan(c, SinkhornOptions(0.01, 3000, 1e-9))
            Expect.isTrue plan.Converged $"converged: error {plan.MarginalError} after {plan.Iterations}"
            let diff = (plan.Plan() - logDomainPlan c 0.01 1e-9 3000).abs().max().item<float>()
            Expect.isLessThanOrEqual diff planTolerance "same plan"
        }

        test "well-conditioned plans converge" {
            use _ = torch.NewDisposeScope()
            for n, eps in [ 64, 0.5; 256, 0.1; 512, 0.05 ] do
                let a = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 n
                let b = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 (n + 1)
                use plan = Sinkhorn.Plan(SquaredDistances.Pairwise(a, b), SinkhornOptions(eps, 2000, 1e-6))
                Expect.isTrue plan.Converged $"n = {n}, epsilon = {eps}: error {plan.MarginalError} after {plan.Iterations}"
        }

        testPropertyWithConfig config "round and sample both give permutations" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 30)) (Gen.elements [ 1e-3; 0.05; 1.0; 100.0 ]) Generators.seed)) (fun (n, eps, seed) ->
                use _ = torch.NewDisposeScope()
                let a = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 seed
                let b = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 (seed + 1)
                use plan = Sinkhorn.Plan(SquaredDistances.Pairwise(a, b), SinkhornOptions(eps, sinkhornIterations, 1e-6))
                use g = new torch.Generator(uint64 seed)
                Expect.isTrue (isPermutation n (Sinkhorn.Round plan)) "round"
                Expect.isTrue (isPermutation n (Sinkhorn.Sample(plan, g))) "sample")

        testPropertyWithConfig config "round collects at least as much plan mass as any of 50 random permutations" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 20)) Generators.seed)) (fun (n, seed) ->
                use _ = torch.NewDisposeScope()
                let a = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 seed
                let b = gaussian [| int64 n; 2L |] torch.ScalarType.Float64 (seed + 1)
                use plan = Sinkhorn.Plan(SquaredDistances.Pairwise(a, b), SinkhornOptions(0.2, sinkhornIterations, 1e-6))
                let p = plan.Plan().contiguous().data<float>().ToArray()
                let mass perm = pairCost p n perm
                let best = mass (Sinkhorn.Round plan)
                let rng = Random seed
                for _ in 1 .. 50 do
                    Expect.isTrue (best >= mass (randomPermutation rng n) - costTolerance) "round is the heaviest")

        test "sampling a plan that is a permutation returns that permutation" {
            use _ = torch.NewDisposeScope()
            let n = 9
            let target = [| 3; 0; 8; 1; 7; 2; 6; 4; 5 |]
            let logPlan = torch.full(int64 n, int64 n, -1e4, dtype = torch.ScalarType.Float64)
            for i in 0 .. n - 1 do logPlan[int64 i, int64 target[i]] <- torch.tensor(-log (float n), dtype = torch.ScalarType.Float64)
            use plan = new SinkhornPlan(logPlan, 0, 0.0, true)
            use g = new torch.Generator(7UL)
            Expect.equal (Sinkhorn.Sample(plan, g)) target "sampled"
            Expect.equal (Sinkhorn.Round plan) target "rounded"
        }
    ]

/// Checks the laws every model-free coupling keeps, against the independent draw from the same seed.
let private checkCoupling (coupling: Coupling) (shape: int64[]) (dtype: torch.ScalarType) seed =
    use _ = torch.NewDisposeScope()
    let n = shape[0]
    let x1 = gaussian shape dtype (seed + 17)
    let labels = torch.arange(n, dtype = torch.ScalarType.Int64) * 7L
    use g1 = new torch.Generator(uint64 seed)
    use g2 = new torch.Generator(uint64 seed)
    let independent = Couplings.Independent.Invoke(Batch(x1, labels), g1)
    let coupled = coupling.Invoke(Batch(x1, labels), g2)
    Expect.sequenceEqual coupled.X0.shape x1.shape "x0 has x1's shape"
    Expect.equal coupled.X0.dtype dtype "x0 has x1's dtype"
    Expect.isTrue (coupled.X1.eq(x1).all().item<bool>()) "data rows unchanged, in order"
    Expect.isTrue (coupled.Labels.eq(labels).all().item<bool>()) "labels stay with their rows"
    Expect.equal (sortedRows coupled.X0) (sortedRows independent.X0) "noise rows: the same multiset as the independent draw"
    sumSquared coupled.X0 x1, sumSquared independent.X0 x1

[<Tests>]
let couplings =
    testList "couple/couplings" [
        testPropertyWithConfig config $"independent noise has mean 0 and covariance I within {noiseSigmas} standard errors" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 4)) (Gen.elements [ torch.ScalarType.Float32; torch.ScalarType.Float64 ]) Generators.seed)) (fun (d, dtype, seed) ->
                use _ = torch.NewDisposeScope()
                let x1 = torch.zeros([| noiseRows; int64 d |], dtype = dtype)
                use g = new torch.Generator(uint64 seed)
                let x0 = Couplings.Independent.Invoke(Batch(x1), g).X0
                Expect.equal x0.dtype dtype "dtype"
                let z = x0.to_type(torch.ScalarType.Float64)
                let rows = float noiseRows
                let mean = z.mean([| 0L |])
                let centred = z - mean
                let cov = centred.t().matmul(centred) / (rows - 1.0)
                let meanErr = mean.abs().max().item<float>()
                // Standard error of a sample covariance entry of N(0, I): sqrt(2/N) on the diagonal, sqrt(1/N) off it.
                let diagErr = (cov.diagonal() - 1.0).abs().max().item<float>()
                let offErr = (cov - torch.diag(cov.diagonal())).abs().max().item<float>()
                Expect.isLessThan meanErr (noiseSigmas / sqrt rows) "mean"
                Expect.isLessThan diagErr (noiseSigmas * sqrt (2.0 / rows)) "variance"
                Expect.isLessThan offErr (noiseSigmas * sqrt (1.0 / rows)) "covariance")

        testPropertyWithConfig config "minibatch OT keeps every row once with its label and never costs more than independent" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Generators.batchShape 24) Generators.seed)) (fun (shape, seed) ->
                let ot, ind = checkCoupling (Couplings.MinibatchOt()) shape torch.ScalarType.Float64 seed
                Expect.isLessThanOrEqual ot (ind + costTolerance * (1.0 + ind)) "OT cost <= independent cost")

        testPropertyWithConfig config "Sinkhorn (round and sample) keeps every row once with its label" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Generators.batchShape 24) (Gen.elements [ SinkhornPairing.Round; SinkhornPairing.Sample ]) Generators.seed)) (fun (shape, pairing, seed) ->
                checkCoupling (Couplings.Sinkhorn(0.05, pairing, SinkhornOptions(MaxIterations = sinkhornIterations))) shape torch.ScalarType.Float32 seed |> ignore)

        test "a batch with mismatched labels is refused before libtorch sees it" {
            use _ = torch.NewDisposeScope()
            use g = new torch.Generator(1UL)
            let batch = Batch(torch.zeros(4L, 2L), torch.zeros(3L, dtype = torch.ScalarType.Int64))
            Expect.throwsT<ArgumentException> (fun () -> Couplings.MinibatchOt().Invoke(batch, g) |> ignore) "labels [3] for 4 rows"
        }
    ]

[<Tests>]
let spec =
    testList "couple/spec" [
        testPropertyWithConfig config "Parse (Format spec) = spec" <|
            Prop.forAll (Arb.fromGen CouplingGenerators.spec) (fun s ->
                Expect.equal (CouplingSpec.Parse(s.Format())) s (s.Format()))

        testPropertyWithConfig config "JSON round trip" <|
            Prop.forAll (Arb.fromGen CouplingGenerators.spec) (fun s ->
                Expect.equal (Json.Read<CouplingSpec>(Json.Write s)) s (Json.Write s))

        testPropertyWithConfig config "model-free specs build a coupling; teacher and reflow are refused here" <|
            Prop.forAll (Arb.fromGen CouplingGenerators.spec) (fun s ->
                match s.Kind with
                | CouplingKind.Independent | CouplingKind.Ot | CouplingKind.Sinkhorn -> Couplings.From s |> ignore
                | _ -> Expect.throwsT<NotSupportedException> (fun () -> Couplings.From s |> ignore) "needs a model")

        test "the command-line forms" {
            Expect.equal (CouplingSpec.Parse "independent") CouplingSpec.Independent "independent"
            Expect.equal (CouplingSpec.Parse "OT") CouplingSpec.Ot "ot, any case"
            Expect.equal (CouplingSpec.Parse "sinkhorn:0.1") (CouplingSpec.Sinkhorn(0.1, SinkhornPairing.Sample)) "sinkhorn default pairing"
            Expect.equal (CouplingSpec.Parse "sinkhorn:0.1:round") (CouplingSpec.Sinkhorn(0.1, SinkhornPairing.Round)) "sinkhorn round"
            Expect.equal (CouplingSpec.Parse "teacher:pairs/run1") (CouplingSpec.TeacherPairs "pairs/run1") "pairs"
            Expect.equal (CouplingSpec.Parse "teacher:T.ckpt") (CouplingSpec.TeacherOnTheFly("T.ckpt", Nullable())) "teacher"
            Expect.equal (CouplingSpec.Parse "teacher:T.ckpt,eta=0.05") (CouplingSpec.TeacherOnTheFly("T.ckpt", Nullable 0.05)) "teacher with eta"
            Expect.equal (CouplingSpec.Parse "reflow:S.ckpt") (CouplingSpec.Reflow "S.ckpt") "reflow"
            for bad in [ ""; "ot:1"; "sinkhorn"; "sinkhorn:x"; "sinkhorn:0"; "sinkhorn:-1"; "sinkhorn:1:maybe"; "teacher:"
                         "teacher:T.ckpt,eta=-1"; "teacher:pairs,eta=0.1"; "reflow:S.pt"; "reflow"; "nfm" ] do
                Expect.throwsT<ArgumentException> (fun () -> CouplingSpec.Parse bad |> ignore) bad
        }

        test "Validate names the foreign field" {
            let e = Expect.throwsC (fun () -> CouplingSpec(CouplingKind.Ot, Epsilon = Nullable 0.1).Validate() |> ignore) id
            Expect.stringContains e.Message "Epsilon" "names the field"
        }
    ]
