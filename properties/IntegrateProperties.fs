/// Laws of the integrate step, checked against a table of ODEs with exact solutions (float64 unless a law
/// says otherwise). t = 0 is noise, t = 1 is data.
module Nfm.Properties.IntegrateProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.Descriptions
open Nfm.Integrate
open Nfm.Properties.Generators

type Tensor = torch.Tensor

/// A double as a TorchSharp scalar (Tensor.mul/div are overloaded on Tensor and Scalar).
let sc (v: float) = Scalar.op_Implicit v

// ---------------------------------------------------------------------------------------------------------
// The problem table: every law draws its ODEs from here.

/// A problem with an exact answer. Parameters are plain floats so a failing case prints readably.
type Problem =
    { Name: string
      /// State widths this problem is posed in.
      Dims: int list
      /// Parameters for a given width.
      Params: int -> Gen<float[]>
      /// The velocity field built from the parameters (float64 tensors).
      Field: float[] -> int -> VelocityField
      /// Exact flow map: the state at t1 from the state x at t0.
      Flow: float[] -> int -> Tensor -> float -> float -> Tensor
      /// Methods whose error on this problem is rounding only (their quadrature is exact for it).
      ExactFor: Set<SolverMethod> }

/// A uniform double in [lo, hi].
let uniform lo hi = Gen.choose (0, 1_000_000) |> Gen.map (fun i -> lo + (hi - lo) * float i / 1e6)

/// A double with random sign and magnitude in [lo, hi] (bounded away from 0, so no problem is trivial).
let signed lo hi =
    Gen.zip (Gen.elements [ -1.0; 1.0 ]) (uniform lo hi) |> Gen.map (fun (s, m) -> s * m)

let row (p: float[]) = torch.tensor(p).reshape(1L, int64 p.Length)

/// x' = A x with A = Q B Q^T: B holds 2x2 blocks [[a, -b], [b, a]] (eigenvalues a ± ib), Q is orthogonal.
/// A is normal, so no solver error can cancel between directions; the exact flow is expm((t1 - t0) A).
let linearMatrix (p: float[]) (d: int) =
    let blocks = d / 2
    let b = torch.zeros(int64 d, int64 d, dtype = torch.float64)
    for j in 0 .. blocks - 1 do
        let a, w = p[2 * j], p[2 * j + 1]
        let i = int64 (2 * j)
        b[i, i] <- torch.tensor(a)
        b[i + 1L, i + 1L] <- torch.tensor(a)
        b[i, i + 1L] <- torch.tensor(-w)
        b[i + 1L, i] <- torch.tensor(w)
    let m = torch.tensor(p[2 * blocks ..]).reshape(int64 d, int64 d)
    let struct (q, _) = torch.linalg.qr(m)
    q.matmul(b).matmul(q.t())

let table : Problem list =
    [ { Name = "constant velocity"
        Dims = [ 1; 2; 3 ]
        Params = fun d -> Gen.arrayOfLength d (signed 0.2 2.0)
        Field = fun p _ -> let c = row p in VelocityField(fun x _ -> c.expand(x.shape))
        Flow = fun p _ x t0 t1 -> x.add(row p, t1 - t0)
        ExactFor = set [ SolverMethod.Euler; SolverMethod.Midpoint; SolverMethod.Heun; SolverMethod.Rk4; SolverMethod.Dopri5 ] }
      { Name = "velocity 3t^2"
        Dims = [ 1; 2; 3 ]
        Params = fun d -> Gen.arrayOfLength d (signed 0.2 2.0)
        Field = fun p _ -> let a = row p in VelocityField(fun x t -> a.mul(sc (3.0 * t * t)).expand(x.shape))
        Flow = fun p _ x t0 t1 -> x.add(row p, t1 ** 3.0 - t0 ** 3.0)
        // RK4 reduces to Simpson's rule here, exact for cubics; Dopri5's quadrature is exact up to degree 4.
        ExactFor = set [ SolverMethod.Rk4; SolverMethod.Dopri5 ] }
      { Name = "linear x' = A x"
        Dims = [ 2; 4 ]
        Params = fun d ->
            gen {
                let! eig = Gen.arrayOfLength (d / 2) (Gen.zip (uniform -1.0 0.5) (uniform 0.5 2.0))
                let! q = Gen.arrayOfLength (d * d) (uniform -1.0 1.0)
                return Array.append (eig |> Array.collect (fun (a, b) -> [| a; b |])) q
            }
        Field = fun p d -> let at = (linearMatrix p d).t() in VelocityField(fun x _ -> x.matmul(at))
        Flow = fun p d x t0 t1 -> x.matmul(torch.linalg.matrix_exp((linearMatrix p d).mul(sc (t1 - t0))).t())
        ExactFor = Set.empty }
      { Name = "exponential decay x' = -k x"
        Dims = [ 1; 2; 3 ]
        Params = fun _ -> uniform 0.2 2.0 |> Gen.map Array.singleton
        Field = fun p _ -> VelocityField(fun x _ -> x.mul(sc -p[0]))
        Flow = fun p _ x t0 t1 -> x.mul(sc (exp (-p[0] * (t1 - t0))))
        ExactFor = Set.empty } ]

/// One generated instance of a table problem: a batch of start points [Batch, Dim].
type Case =
    { Problem: Problem
      Dim: int
      Params: float[]
      Batch: int
      X0: float[] }
    override c.ToString() =
        sprintf "%s, dim %d, params %A, batch %d, x0 %A" c.Problem.Name c.Dim c.Params c.Batch c.X0
    member c.Start() = torch.tensor(c.X0).reshape(int64 c.Batch, int64 c.Dim)
    member c.Field = c.Problem.Field c.Params c.Dim
    member c.Exact(x: Tensor, t0, t1) = c.Problem.Flow c.Params c.Dim x t0 t1

let caseFrom (problems: Problem list) =
    gen {
        let! p = Gen.elements problems
        let! d = Gen.elements p.Dims
        let! ps = p.Params d
        let! n = Gen.choose (1, 3)
        let! x0 = Gen.arrayOfLength (n * d) (signed 0.5 2.0)
        return { Problem = p; Dim = d; Params = ps; Batch = n; X0 = x0 }
    }

let anyCase = caseFrom table

let fixedMethods = [ SolverMethod.Euler; SolverMethod.Midpoint; SolverMethod.Heun; SolverMethod.Rk4 ]
let allMethods = fixedMethods @ [ SolverMethod.Dopri5 ]
let grids = [ TimeGridKind.Uniform; TimeGridKind.Quadratic ]

/// Same shape, dtype and values.
let same (a: Tensor) (b: Tensor) =
    a.shape = b.shape && a.dtype = b.dtype && a.eq(b).all().item<bool>()

let maxAbs (a: Tensor) (b: Tensor) = a.sub(b).abs().max().item<float>()

let integrate (case: Case) (spec: SolverSpec) = Integrator.Integrate(case.Field, case.Start(), spec)

// ---------------------------------------------------------------------------------------------------------
// Settings and tolerances. Errors are max abs at the end point over the generated magnitudes (|x0| <= 2,
// |parameters| <= 2). Figures in comments: the worst seen over 300 to 1000 generated cases when these were set.

/// Fixed step counts used by the endpoint, round-trip and float32 laws.
let stepsFor =
    function
    | SolverMethod.Euler -> 400
    | SolverMethod.Midpoint -> 64
    | SolverMethod.Heun -> 64
    | SolverMethod.Rk4 -> 16
    | _ -> 0

/// Dopri5's rtol = atol in the endpoint and round-trip laws.
let dopri5Tol = 1e-8

/// Endpoint error bound of each method at its setting above, either grid; also bounds the round trip.
/// Seen: Euler 0.024 (round trip 0.030), Midpoint/Heun 2.1e-3 (1.2e-4), RK4 6.3e-5 (1.9e-5), Dopri5 2.0e-8 (4.4e-8).
let endpointTol =
    function
    | SolverMethod.Euler -> 6e-2
    | SolverMethod.Midpoint -> 5e-3
    | SolverMethod.Heun -> 5e-3
    | SolverMethod.Rk4 -> 2e-4
    | _ -> 1e-7

/// Error of a method the problem is exact for: rounding only (seen: 7e-14).
let roundingTol = 1e-11

/// Step counts n (then 2n) in each method's asymptotic regime for the order law.
let orderSteps =
    function
    | SolverMethod.Euler -> 32
    | SolverMethod.Midpoint -> 16
    | SolverMethod.Heun -> 16
    | SolverMethod.Rk4 -> 16
    | _ -> 0

/// Allowed distance of the observed order log2(e(n) / e(2n)) from the method's order
/// (seen at these n: Euler 0.06, Midpoint/Heun 0.11, RK4 0.12, the quadratic grid being the worse).
let orderSlack = 0.3

/// Dopri5 tolerances, three decades apart, for the law that its error falls as they tighten.
let dopri5Tolerances = [ 1e-3; 1e-6; 1e-9 ]

/// Dopri5: the error never exceeds this multiple of (atol + rtol |x(1)|) at rtol = atol = tol (seen: 1.7).
let dopri5Multiple = 10.0

/// Each tightening by three decades at least halves the error (seen: it fell at least 7-fold), down to rounding.
let dopri5Fall = 0.5

/// Six decades of tolerance buy at least this error ratio last / first (seen: 5e-3; gentle decay is already
/// accurate at the loosest tolerance).
let dopri5TotalFall = 0.05

/// Rounding floor of the error comparisons.
let roundingFloor = 1e-13

/// float32 against float64 on the same problem and settings (seen: Euler 2.4e-5, the others 2e-6).
let float32Tol = 1e-4

let counting (v: VelocityField) =
    let calls = ref 0
    calls, VelocityField(fun x t -> calls.Value <- calls.Value + 1; v.Invoke(x, t))

let spec (m: SolverMethod) (n: int) (g: TimeGridKind) (tol: float) (t0: float) (t1: float) =
    SolverSpec(m, n, g, tol, tol, 10_000, t0, t1)

let solve (v: VelocityField) (x0: Tensor) (s: SolverSpec) = Integrator.Integrate(v, x0, s)

let forAll gen body = Prop.forAll (Arb.fromGen gen) body

let methodCase = Gen.zip3 anyCase (Gen.elements allMethods) (Gen.elements grids)

let interval = Gen.zip (uniform -2.0 2.0) (uniform -2.0 2.0)

/// A random start of shape [N, ...] (1 to 4 axes) in float32 or float64, from a generated seed.
let anyStart =
    gen {
        let! shape = Gen.choose (1, 4) |> Gen.bind (fun k -> Gen.arrayOfLength k (Gen.choose (1, 3)))
        let! dtype = Gen.elements [ torch.float32; torch.float64 ]
        let! seed = Generators.seed
        return shape, dtype, seed
    }

let startOf (shape: int[], dtype, seed: int) =
    use g = new torch.Generator(uint64 seed)
    torch.randn(shape |> Array.map int64, dtype = Nullable(dtype: torch.ScalarType), generator = g)

let specGen =
    gen {
        let! m = Gen.elements allMethods
        let! n = Gen.choose (0, 1000)
        let! g = Gen.elements grids
        let! rtol = uniform -12.0 -1.0 |> Gen.map (fun e -> 10.0 ** e)
        let! atol = uniform -12.0 -1.0 |> Gen.map (fun e -> 10.0 ** e)
        let! maxSteps = Gen.choose (1, 100_000)
        let! t0, t1 = interval
        return SolverSpec(m, n, g, rtol, atol, maxSteps, t0, t1)
    }

/// A name with its letters in random case.
let randomCase (name: string) =
    Gen.arrayOfLength name.Length (Gen.elements [ true; false ])
    |> Gen.map (fun up -> String(Array.map2 (fun (c: char) u -> if u then Char.ToUpperInvariant c else c) (name.ToCharArray()) up))

[<Tests>]
let tests =
    testList "integrate" [
        testPropertyWithConfig config "endpoint error within each method's tolerance" (
            forAll methodCase (fun (case, m, g) ->
                use _ = torch.NewDisposeScope()
                let x0 = case.Start()
                let r = solve case.Field x0 (spec m (stepsFor m) g dopri5Tol 0.0 1.0)
                let err = maxAbs r.X (case.Exact(x0, 0.0, 1.0))
                let tol = if case.Problem.ExactFor.Contains m then roundingTol else endpointTol m
                Expect.isLessThanOrEqual err tol $"{m}, {g} grid: error {err:g3} > {tol:g3}"))

        testPropertyWithConfig config "observed order log2(e(n)/e(2n)) is 1/2/2/4 for Euler/Midpoint/Heun/RK4" (
            forAll (Gen.zip3 anyCase (Gen.elements fixedMethods) (Gen.elements grids)) (fun (case, m, g) ->
                use _ = torch.NewDisposeScope()
                let x0 = case.Start()
                let exact = case.Exact(x0, 0.0, 1.0)
                let n = orderSteps m
                let e1 = maxAbs (solve case.Field x0 (spec m n g 1e-5 0.0 1.0)).X exact
                let e2 = maxAbs (solve case.Field x0 (spec m (2 * n) g 1e-5 0.0 1.0)).X exact
                if case.Problem.ExactFor.Contains m then
                    Expect.isLessThanOrEqual (max e1 e2) roundingTol $"{m} is exact here; errors {e1:g3}, {e2:g3}"
                else
                    let observed = Math.Log2(e1 / e2)
                    let p = float (SolverMethods.Order m)
                    Expect.isLessThanOrEqual (abs (observed - p)) orderSlack
                        $"{m}, {g} grid, n = {n}: observed order {observed:f3}, expected {p} (errors {e1:g3}, {e2:g3})"))

        testPropertyWithConfig config "dopri5 error falls as the tolerance tightens and stays within a multiple of it" (
            forAll anyCase (fun case ->
                use _ = torch.NewDisposeScope()
                let x0 = case.Start()
                let exact = case.Exact(x0, 0.0, 1.0)
                let errors =
                    dopri5Tolerances
                    |> List.map (fun tol ->
                        let r = solve case.Field x0 (spec SolverMethod.Dopri5 0 TimeGridKind.Uniform tol 0.0 1.0)
                        let err = r.X.sub(exact).abs()
                        let scaled = err.div(exact.abs().mul(sc tol).add(sc tol)).max().item<float>()
                        Expect.isLessThanOrEqual scaled dopri5Multiple
                            $"tol {tol:g1}: error is {scaled:g3} x (atol + rtol |x|), allowed {dopri5Multiple}"
                        err.max().item<float>(), r.Nfe)
                for (e1, n1), (e2, n2) in List.pairwise errors do
                    Expect.isLessThanOrEqual e2 (dopri5Fall * e1 + roundingFloor) $"error did not fall as the tolerance tightened: {errors}"
                    Expect.isGreaterThanOrEqual n2 n1 $"fewer evaluations at a tighter tolerance: {errors}"
                let first, last = fst errors.Head, fst (List.last errors)
                Expect.isLessThanOrEqual last (dopri5TotalFall * first + roundingFloor) $"error did not fall: {errors}"))

        testPropertyWithConfig config "zero steps (or t0 = t1 for dopri5) is the identity, with no evaluation" (
            forAll (Gen.zip (Gen.zip3 anyStart (Gen.elements allMethods) (Gen.elements grids)) interval) (fun ((start, m, g), (t0, t1)) ->
                use _ = torch.NewDisposeScope()
                let x0 = startOf start
                let calls, v = counting (VelocityField(fun x _ -> x.mul(sc 2.0)))
                let t1 = if m = SolverMethod.Dopri5 then t0 else t1
                let r = Integrator.Integrate(v, x0, spec m 0 g 1e-6 t0 t1, keepTrajectory = true)
                Expect.isTrue (same r.X x0) "X is the start"
                Expect.equal r.X.dtype x0.dtype "dtype kept"
                Expect.equal (r.Nfe, calls.Value) (0, 0) "no evaluation"
                Expect.equal r.Times [| t0 |] "only the start time"
                Expect.equal r.Trajectory.Count 1 "one trajectory entry"))

        testPropertyWithConfig config "0 -> 1 then 1 -> 0 returns the start within the method's endpoint tolerance" (
            forAll methodCase (fun (case, m, g) ->
                use _ = torch.NewDisposeScope()
                let x0 = case.Start()
                let there = solve case.Field x0 (spec m (stepsFor m) g dopri5Tol 0.0 1.0)
                let back = solve case.Field there.X (spec m (stepsFor m) g dopri5Tol 1.0 0.0)
                let err = maxAbs back.X x0
                let tol = if case.Problem.ExactFor.Contains m then roundingTol else endpointTol m
                Expect.isLessThanOrEqual err tol $"{m}, {g} grid: round trip missed the start by {err:g3}"
                if m <> SolverMethod.Dopri5 then
                    Expect.isTrue ((Array.rev back.Times = there.Times)) "the way back visits the same grid times"))

        testPropertyWithConfig config "NFE equals the method's count; the trajectory follows the times" (
            forAll (Gen.zip3 methodCase (Gen.zip (Gen.choose (0, 12)) (uniform -8.0 -3.0)) interval) (fun ((case, m, g), (n, logTol), (t0, t1)) ->
                use _ = torch.NewDisposeScope()
                let x0 = case.Start()
                let calls, v = counting case.Field
                let r = Integrator.Integrate(v, x0, spec m n g (10.0 ** logTol) t0 t1, keepTrajectory = true)
                Expect.equal r.Nfe calls.Value "Nfe counts the calls made"
                if m = SolverMethod.Dopri5 then
                    // First step: f(x0), one probe for the initial step, six stages; more if t0 <> t1 needs more.
                    if t0 <> t1 then Expect.isGreaterThanOrEqual r.Nfe 8 "at least one dopri5 step"
                    let dir = float (sign (t1 - t0))
                    for a, b in Array.pairwise r.Times do
                        Expect.isGreaterThan ((b - a) * dir) 0.0 "accepted times move towards t1"
                else
                    Expect.equal r.Nfe (n * SolverMethods.EvaluationsPerStep m) $"{m}: {n} steps"
                    Expect.equal r.Times.Length (n + 1) "n + 1 grid times"
                Expect.equal r.Times[0] t0 "starts at t0"
                Expect.equal (Array.last r.Times) (if n = 0 && m <> SolverMethod.Dopri5 then t0 else t1) "ends at t1"
                Expect.equal r.Trajectory.Count r.Times.Length "one state per time"
                Expect.isTrue (same r.Trajectory[0] x0) "the trajectory starts at x0"
                Expect.isTrue (Object.ReferenceEquals(Seq.last r.Trajectory, r.X)) "and ends at X"))

        testPropertyWithConfig config "quadratic grid: increasing, exact ends, steps shrink towards t = 1" (
            forAll (Gen.zip3 (Gen.choose (2, 1000)) (uniform -2.0 2.0) (uniform 0.01 3.0)) (fun (n, t0, length) ->
                let t1 = t0 + length
                let q = TimeGrid.Make(TimeGridKind.Quadratic, n, t0, t1)
                Expect.equal q.Length (n + 1) "n + 1 times"
                Expect.equal (q[0], q[n]) (t0, t1) "exact ends"
                let steps = Array.pairwise q |> Array.map (fun (a, b) -> b - a)
                Expect.isTrue (steps |> Array.forall (fun h -> h > 0.0)) "strictly increasing"
                Expect.isLessThan steps[n - 1] steps[0] "last step smaller than the first"
                let ratio = steps[0] / steps[n - 1]
                Expect.floatClose { absolute = 0.0; relative = 1e-6 } ratio (float (2 * n - 1)) "first / last = 2n - 1"
                Expect.isTrue (Array.pairwise steps |> Array.forall (fun (a, b) -> b <= a * (1.0 + 1e-9))) "steps never grow"
                let back = TimeGrid.Make(TimeGridKind.Quadratic, n, t1, t0)
                Expect.isTrue ((back = Array.rev q)) "backward grid is the forward one reversed"
                let u = TimeGrid.Make(TimeGridKind.Uniform, n, t0, t1)
                let h = length / float n
                Expect.isTrue (Array.pairwise u |> Array.forall (fun (a, b) -> abs (b - a - h) <= 1e-12 * (1.0 + abs t0 + length))) "uniform steps are equal"))

        testPropertyWithConfig config "float32 states of any shape keep their shape and dtype and track float64" (
            forAll (Gen.zip methodCase (Gen.choose (1, 2))) (fun ((case, m, g), layout) ->
                use _ = torch.NewDisposeScope()
                let n, d = int64 case.Batch, int64 case.Dim
                let shape = if layout = 1 then [| n; 1L; d; 1L |] else [| n; d; 1L |]
                let flat = case.Field
                // The table's fields compute in float64; the integrator must bring velocities back to float32.
                let v = VelocityField(fun x t -> flat.Invoke(x.reshape(n, d).to_type(torch.float64), t).reshape(x.shape))
                let x64 = case.Start()
                let s = spec m (stepsFor m) g 1e-5 0.0 1.0
                let r32 = solve v (x64.to_type(torch.float32).reshape(shape)) s
                let r64 = solve flat x64 s
                Expect.sequenceEqual r32.X.shape shape "shape kept"
                Expect.equal r32.X.dtype torch.float32 "dtype kept"
                let err = maxAbs (r32.X.reshape(n, d).to_type(torch.float64)) r64.X
                Expect.isLessThanOrEqual err float32Tol $"{m}: float32 off float64 by {err:g3}"))

        testPropertyWithConfig config "only the result stays alive: every step's intermediates are freed" (
            forAll (Gen.zip3 methodCase (Gen.choose (1, 20)) (Gen.elements [ true; false ])) (fun ((case, m, g), n, keep) ->
                use scope = torch.NewDisposeScope()
                let x0 = case.Start()
                let v = case.Field
                let before = scope.DisposablesCount
                let r = Integrator.Integrate(v, x0, spec m n g 1e-6 0.0 1.0, keepTrajectory = keep)
                let alive = scope.DisposablesCount - before
                Expect.equal alive (if keep then r.Times.Length else 1) $"{m}, {n} steps: tensors left behind"
                Expect.isFalse x0.IsInvalid "the start is never freed"))

        testPropertyWithConfig config "dopri5 refuses to run past MaxSteps with a clear error" (
            forAll (Gen.zip anyCase (Gen.choose (1, 3))) (fun (case, maxSteps) ->
                use _ = torch.NewDisposeScope()
                let s = SolverSpec(SolverMethod.Dopri5, Rtol = 1e-10, Atol = 1e-10, MaxSteps = maxSteps)
                let e = Expect.throwsC (fun () -> integrate case s |> ignore) id
                Expect.isTrue (e :? InvalidOperationException) $"InvalidOperationException, got {e.GetType().Name}"
                Expect.stringContains e.Message $"MaxSteps = {maxSteps}" "the message names the guard"))

        testPropertyWithConfig config "a field returning the wrong shape is refused before it can broadcast" (
            forAll (Gen.zip anyCase (Gen.elements allMethods)) (fun (case, m) ->
                use _ = torch.NewDisposeScope()
                // [N * D] against [N, D]: broadcasting would turn it into an [N, N * D] state, or fail deep in libtorch.
                let bad = VelocityField(fun x _ -> x.flatten())
                let e = Expect.throwsC (fun () -> Integrator.Integrate(bad, case.Start(), SolverSpec(m, 4)) |> ignore) id
                Expect.isTrue (e :? ArgumentException) $"ArgumentException, got {e.GetType().Name}"
                Expect.stringContains e.Message $"[{case.Batch}, {case.Dim}]" "the message names the expected shape"))

        testList "solver spec" [
            testPropertyWithConfig config "JSON round trip, methods spelled as on the command line" (
                forAll specGen (fun s ->
                    let json = Json.Write s
                    Expect.equal (Json.Read<SolverSpec> json) s "round trip"
                    Expect.stringContains json $"\"{SolverMethods.Name s.Method}\"" "method name"))

            testPropertyWithConfig config "Parse reads every name in any case" (
                forAll (Gen.elements allMethods |> Gen.bind (fun m -> randomCase (SolverMethods.Name m) |> Gen.map (fun s -> m, s))) (fun (m, s) ->
                    Expect.equal (SolverMethods.Parse s) m s
                    Expect.equal (SolverMethods.Name(SolverMethods.Parse (" " + s + " "))) (s.ToLowerInvariant()) "name round trip"))

            testPropertyWithConfig config "Parse refuses unknown names and lists the valid ones" (
                forAll (Gen.elements [ "rk45"; "eulerr"; "dopri"; ""; "heun2"; "ode45"; "midpt" ] |> Gen.bind randomCase) (fun s ->
                    let e = Expect.throwsC (fun () -> SolverMethods.Parse s |> ignore) id
                    Expect.isTrue (e :? ArgumentException) "ArgumentException"
                    for name in SolverMethods.Names do
                        Expect.stringContains e.Message name "lists the valid names"))

            testPropertyWithConfig config "Validate accepts valid specs and names the field of an invalid one" (
                forAll (Gen.zip3 specGen (Gen.choose (0, 3)) (Gen.choose (-1000, 0))) (fun (s, field, k) ->
                    s.Validate() |> ignore
                    let bad, name =
                        match field with
                        | 0 -> SolverSpec(s.Method, k - 1, s.Grid, s.Rtol, s.Atol, s.MaxSteps, s.T0, s.T1), "Steps"
                        | 1 -> SolverSpec(s.Method, s.Steps, s.Grid, float k, s.Atol, s.MaxSteps, s.T0, s.T1), "Rtol"
                        | 2 -> SolverSpec(s.Method, s.Steps, s.Grid, s.Rtol, (if k % 2 = 0 then nan else float k), s.MaxSteps, s.T0, s.T1), "Atol"
                        | _ -> SolverSpec(s.Method, s.Steps, s.Grid, s.Rtol, s.Atol, k, s.T0, s.T1), "MaxSteps"
                    let e = Expect.throwsC (fun () -> bad.Validate() |> ignore) id
                    Expect.equal (e :?> ArgumentException).ParamName name "names the field"))
        ]
    ]

