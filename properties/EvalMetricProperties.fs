/// Laws of the evaluation metrics: Fréchet distance, path curvature, divergence and the student log-likelihood.
/// Everything in float64 on tiny tensors, against closed forms.
module Nfm.Properties.EvalMetricProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Descriptions
open Nfm.Integrate
open Nfm.Metrics
open Nfm.Properties.Generators

/// FD of a set with itself, relative to 1 + Tr(S): rank-deficient covariances (N <= F) leave square-root noise of
/// order sqrt(machine epsilon) in the null directions, far below this.
let selfTolerance = 1e-6
/// FD(a, b) against FD(b, a), and the closed forms, relative to 1 + the sum of the traces and the mean term.
let frechetTolerance = 1e-8
/// Exact divergence against trace(A), and exact-oracle log-likelihoods, relative to 1 + the size of the answer.
let exactTolerance = 1e-10
/// A constant field's curvature (per dimension): only float64 rounding of x1 - x0 is left.
let straightTolerance = 1e-24
/// Curvature and log-likelihood of v = a x by RK4 against the analytic exponential path, relative.
let rk4Tolerance = 1e-4
/// Hutchinson's mean over probes must lie within a bound that a correct estimator exceeds with probability at most
/// this, per row (a rigorous tail bound, below, not a normal approximation).
/// History: a bound of 5, then 6, sample standard errors failed once in CI (seed 450650681, N 2, D 3, Rademacher: the
/// four possible probe values came 40/51/71/94 times in 256 draws instead of 64 each, z = 5.16); skewed, discrete
/// probe estimates make sample-SE bounds unreliable, so the law now uses Hoeffding (Rademacher) and Bernstein (Gaussian).
let hutchinsonFailureProbability = 1e-9
/// The Gaussian-probe likelihood law allows this many standard deviations of one divergence mean over 1,024 probes;
/// the integral averages 32 such means (8 RK4 steps), so its actual spread is several times smaller.
let likelihoodStandardErrors = 6.0
/// Probes per Hutchinson check.
let probes = 256

module private Generators =
    let seed = Nfm.Properties.Generators.seed
    /// Rows N (2..30) and features F (1..6): some sets with N <= F (singular covariance).
    let set = Gen.zip (Gen.choose (2, 30)) (Gen.choose (1, 6))
    /// Rows N (1..5) and dimension D (1..6).
    let field = Gen.zip (Gen.choose (1, 5)) (Gen.choose (1, 6))
    let fixedMethod = Gen.elements [ SolverMethod.Euler; SolverMethod.Midpoint; SolverMethod.Heun; SolverMethod.Rk4 ]
    let anyMethod = Gen.elements [ SolverMethod.Euler; SolverMethod.Midpoint; SolverMethod.Heun; SolverMethod.Rk4; SolverMethod.Dopri5 ]
    let grid = Gen.elements [ TimeGridKind.Uniform; TimeGridKind.Quadratic ]
    let estimator = Gen.elements [ DivergenceEstimator.Exact; DivergenceEstimator.HutchinsonRademacher; DivergenceEstimator.HutchinsonGaussian ]
    let hutchinson = Gen.elements [ DivergenceEstimator.HutchinsonRademacher; DivergenceEstimator.HutchinsonGaussian ]

let private randn (shape: int64 list) (g: torch.Generator) =
    torch.randn(Array.ofList shape, dtype = torch.float64, generator = g)

/// A set [N, F] with per-feature scales and offsets, so covariances are not all near I.
let private featureSet n f (g: torch.Generator) =
    randn [ int64 n; int64 f ] g * (randn [ 1L; int64 f ] g).exp() + randn [ 1L; int64 f ] g * 2.0

let private item (t: torch.Tensor) = t.item<float>()
let private trace (s: torch.Tensor) = item (s.trace())

let private linearField (a: torch.Tensor) (b: torch.Tensor) =
    VelocityField(fun x t -> x.matmul(a.t()) + b * t)

let private constantField (c: torch.Tensor) = VelocityField(fun x _ -> c.expand_as(x))

let private logStandardNormal (x: torch.Tensor) =
    x.square().sum(1) * -0.5 - 0.5 * float x.shape[1] * log (2.0 * Math.PI)

let private maxAbs (t: torch.Tensor) = item (t.abs().max())

[<Tests>]
let frechet =
    testList "metrics/frechet" [
        testPropertyWithConfig config "FD of a set with itself is 0" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.set Generators.seed)) (fun ((n, f), seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a = featureSet n f g
                let fit = Frechet.GaussianStatistics a
                let fd = Frechet.Distance(a, a)
                Expect.isLessThanOrEqual fd (selfTolerance * (1.0 + trace fit.Covariance)) $"FD(a, a) = {fd}")

        testPropertyWithConfig config "FD is symmetric" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 Generators.set (Gen.choose (2, 30)) Generators.seed)) (fun ((n, f), m, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a, b = featureSet n f g, featureSet m f g
                let ab, ba = Frechet.Distance(a, b), Frechet.Distance(b, a)
                let scale = 1.0 + ab + trace (Frechet.GaussianStatistics a).Covariance + trace (Frechet.GaussianStatistics b).Covariance
                Expect.isLessThanOrEqual (abs (ab - ba)) (frechetTolerance * scale) $"FD(a, b) = {ab}, FD(b, a) = {ba}")

        testPropertyWithConfig config "FD of Gaussians with commuting covariances is the closed form sum (sqrt s1 - sqrt s2)^2" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 8)) (Gen.elements [ false; true ]) Generators.seed)) (fun (f, rotate, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let m1, m2 = randn [ int64 f ] g * 2.0, randn [ int64 f ] g
                let s1, s2 = (randn [ int64 f ] g).exp(), (randn [ int64 f ] g).exp()
                // Diagonal, or both turned by one random rotation Q (Q diag(s) Q^T commute and keep their eigenvalues).
                let q =
                    if rotate then (let struct (q, _) = torch.linalg.qr (randn [ int64 f; int64 f ] g) in q)
                    else torch.eye(int64 f, dtype = torch.float64)
                let spd (s: torch.Tensor) = (q * s.unsqueeze 0).matmul(q.t())
                let expected = item ((m1 - m2).square().sum()) + item ((s1 + s2 - (s1 * s2).sqrt() * 2.0).sum())
                let fd = Frechet.FromStatistics(m1, spd s1, m2, spd s2)
                let scale = 1.0 + item (s1.sum()) + item (s2.sum()) + item ((m1 - m2).square().sum())
                Expect.isLessThanOrEqual (abs (fd - expected)) (frechetTolerance * scale) $"FD {fd} vs closed form {expected}")

        testPropertyWithConfig config "distance to N(0, I) is FD against mean 0, covariance I" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.set Generators.seed)) (fun ((n, f), seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let z = featureSet n f g
                let fit = Frechet.GaussianStatistics z
                let gap = Frechet.ToStandardNormal z
                let direct = Frechet.FromStatistics(fit.Mean, fit.Covariance, torch.zeros(int64 f, dtype = torch.float64), torch.eye(int64 f, dtype = torch.float64))
                let eig = torch.linalg.eigvalsh fit.Covariance
                let scale = 1.0 + float f + trace fit.Covariance + item (fit.Mean.square().sum())
                Expect.isLessThanOrEqual (abs (gap.Distance - direct)) (frechetTolerance * scale) $"closed form {gap.Distance} vs FD {direct}"
                Expect.isLessThanOrEqual (abs (gap.MinEigenvalue - item (eig.min())) + abs (gap.MaxEigenvalue - item (eig.max()))) (frechetTolerance * scale) "extreme eigenvalues"
                Expect.equal (gap.Dimension, gap.Count) (int64 f, int64 n) "D and N")
    ]

[<Tests>]
let curvature =
    testList "metrics/curvature" [
        testPropertyWithConfig config "a constant velocity has curvature 0" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.zip Generators.field Generators.anyMethod) (Gen.zip Generators.grid (Gen.choose (1, 8))) Generators.seed))
                (fun (((n, d), method), (grid, steps), seed) ->
                    use _ = torch.NewDisposeScope()
                    use g = new torch.Generator(uint64 seed)
                    let c = randn [ 1L; int64 d ] g * 3.0
                    let r = PathCurvature.Measure(constantField c, randn [ int64 n; int64 d ] g, SolverSpec(method, steps, grid))
                    Expect.isLessThanOrEqual r.Total (straightTolerance * float d) $"curvature {r.Total}"
                    Expect.isTrue (r.Times.Length >= 1 && r.Times.Length = r.PerDimensionAtTime.Length) "one figure per compared time")

        testPropertyWithConfig config "v = a x: curvature is the grid average of (a e^(a t) - (e^a - 1))^2 E x0^2" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 Generators.field (Gen.choose (1, 6)) Generators.seed)) (fun ((n, d), steps, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a = item (randn [ 1L ] g) |> max -2.0 |> min 2.0
                let x0 = randn [ int64 n; int64 d ] g
                // RK4 with 16 steps per grid step keeps the path's error far below the tolerance; compare on the coarse grid.
                let r = PathCurvature.Measure(VelocityField(fun x _ -> x * a), x0, SolverSpec(SolverMethod.Rk4, 16 * steps))
                let times = Array.init (16 * steps) (fun i -> float i / float (16 * steps))
                let meanSq = item (x0.square().mean())
                let expected = times |> Array.averageBy (fun t -> (a * exp (a * t) - (exp a - 1.0)) ** 2.0) |> (*) meanSq
                Expect.isLessThanOrEqual (abs (r.PerDimension - expected)) (rk4Tolerance * (1e-12 + expected)) $"curvature {r.PerDimension} vs {expected}")
    ]

[<Tests>]
let divergence =
    testList "metrics/divergence" [
        testPropertyWithConfig config "exact divergence of v = A x + b t is trace(A)" <|
            Prop.forAll (Arb.fromGen (Gen.zip Generators.field Generators.seed)) (fun ((n, d), seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a, b = randn [ int64 d; int64 d ] g, randn [ int64 d ] g
                let div = Divergence.Exact(linearField a b, randn [ int64 n; int64 d ] g, 0.7)
                Expect.sequenceEqual div.shape [| int64 n |] "one value per row"
                Expect.isLessThanOrEqual (maxAbs (div - trace a)) (exactTolerance * (1.0 + item (a.abs().sum()))) "trace(A)")

        testPropertyWithConfig config $"Hutchinson's mean over {probes} probes is within a tail bound of trace(A) (failure probability {hutchinsonFailureProbability})" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 Generators.field Generators.hutchinson Generators.seed)) (fun ((n, d), estimator, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a, b = randn [ int64 d; int64 d ] g, randn [ int64 d ] g
                use probeGen = new torch.Generator(uint64 seed + 1UL)
                let each = Divergence.HutchinsonProbes(linearField a b, randn [ int64 n; int64 d ] g, 0.3, probes, probeGen, estimator)
                Expect.sequenceEqual each.shape [| int64 probes; int64 n |] "[probes, N]"
                let logTerm = log (2.0 / hutchinsonFailureProbability)
                let bound =
                    if estimator = DivergenceEstimator.HutchinsonRademacher then
                        // e'Ae - tr A = sum over i <> j of A_ij e_i e_j lies in [-R, R], R = sum over i <> j of |A_ij|:
                        // Hoeffding, P(|mean - tr A| >= u) <= 2 exp(-n u^2 / (2 R^2)).
                        let r = item (a.abs().sum()) - item (a.diagonal().abs().sum())
                        r * sqrt (2.0 * logTerm / float probes)
                    else
                        // z'Az - tr A = sum_i l_i (g_i^2 - 1) over the eigenvalues l of (A + A')/2: sub-exponential with
                        // nu = 2 |l|, b = 4 max |l|; Bernstein, P(|mean| >= u) <= 2 exp(-n/2 min(u^2/nu^2, u/b)).
                        let l = torch.linalg.eigvalsh((a + a.t()) * 0.5)
                        let nu, bExp = 2.0 * item (l.square().sum().sqrt()), 4.0 * item (l.abs().max())
                        max (nu * sqrt (2.0 * logTerm / float probes)) (bExp * 2.0 * logTerm / float probes)
                let err = (each.mean([| 0L |]) - trace a).abs()
                Expect.isLessThanOrEqual (item (err.max())) (bound + 1e-9) $"|mean - trace| {item (err.max())} vs bound {bound}")

        test "the Hutchinson case that failed a sample-standard-error bound is within the tail bound" {
            use _ = torch.NewDisposeScope()
            use g = new torch.Generator(450650681UL)
            let a, b = randn [ 3L; 3L ] g, randn [ 3L ] g
            use probeGen = new torch.Generator(450650682UL)
            let each = Divergence.HutchinsonProbes(linearField a b, randn [ 2L; 3L ] g, 0.3, probes, probeGen, DivergenceEstimator.HutchinsonRademacher)
            let r = item (a.abs().sum()) - item (a.diagonal().abs().sum())
            let bound = r * sqrt (2.0 * log (2.0 / hutchinsonFailureProbability) / float probes)
            let err = item ((each.mean([| 0L |]) - trace a).abs().max())
            Expect.isGreaterThan err 0.4 "the recorded case: off by 0.41 (5.16 sample standard errors)"
            Expect.isLessThanOrEqual err bound "within Hoeffding's bound"
        }

        testPropertyWithConfig config "log-likelihood under a constant velocity c is log N(x1 - c; 0, I)" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.zip Generators.field Generators.fixedMethod) Generators.estimator (Gen.zip (Gen.choose (1, 6)) Generators.seed)))
                (fun (((n, d), method), estimator, (steps, seed)) ->
                    use _ = torch.NewDisposeScope()
                    use g = new torch.Generator(uint64 seed)
                    let c = randn [ 1L; int64 d ] g * 2.0
                    let x1 = randn [ int64 n; int64 d ] g
                    let logp = Divergence.StudentLogLikelihood(constantField c, x1, steps, estimator, 2, g, method)
                    let expected = logStandardNormal (x1 - c)
                    Expect.isLessThanOrEqual (maxAbs (logp - expected)) (exactTolerance * (1.0 + maxAbs expected)) "log N(x1 - c)")

        testPropertyWithConfig config "log-likelihood under v = a x is log N(x1 e^-a; 0, I) - a D" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 Generators.field Generators.estimator Generators.seed)) (fun ((n, d), estimator, seed) ->
                use _ = torch.NewDisposeScope()
                use g = new torch.Generator(uint64 seed)
                let a = item (randn [ 1L ] g) |> max -1.5 |> min 1.5
                let x1 = randn [ int64 n; int64 d ] g
                // div(a x) = a D for every probe (Rademacher exactly; Gaussian only on average, so it is given many probes).
                let probeCount = if estimator = DivergenceEstimator.HutchinsonGaussian then 1024 else 1
                let logp = Divergence.StudentLogLikelihood(VelocityField(fun x _ -> x * a), x1, 8, estimator, probeCount, g)
                let expected = logStandardNormal (x1 * exp (-a)) - a * float d
                let slack = if estimator = DivergenceEstimator.HutchinsonGaussian then likelihoodStandardErrors * abs a * sqrt (2.0 * float d / 1024.0) else 0.0
                Expect.isLessThanOrEqual (maxAbs (logp - expected)) (rk4Tolerance * (1.0 + maxAbs expected) + slack) "analytic")
    ]
