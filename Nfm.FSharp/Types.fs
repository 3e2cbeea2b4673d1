namespace Nfm.FSharp

open Nfm.Descriptions

/// An ODE solver, mirroring Nfm.Descriptions.SolverSpec: fixed-step methods take their step count.
type Solver =
    | Euler of steps: int
    | Midpoint of steps: int
    | Heun of steps: int
    | Rk4 of steps: int
    | Dopri5 of rtol: float * atol: float

/// Where fixed steps fall on [0, 1]: equal, or shrinking towards the data end.
type Grid =
    | Uniform
    | Quadratic

/// How training times are drawn.
type Times =
    | UniformTimes
    | LogitNormal of mean: float * std: float

/// Conversions between the F# unions and the core's records.
module Spec =
    /// The core SolverSpec for a solver on a grid.
    let solver (grid: Grid) (s: Solver) : SolverSpec =
        let g = match grid with Uniform -> TimeGridKind.Uniform | Quadratic -> TimeGridKind.Quadratic
        match s with
        | Euler n -> SolverSpec(SolverMethod.Euler, n, g)
        | Midpoint n -> SolverSpec(SolverMethod.Midpoint, n, g)
        | Heun n -> SolverSpec(SolverMethod.Heun, n, g)
        | Rk4 n -> SolverSpec(SolverMethod.Rk4, n, g)
        | Dopri5 (rtol, atol) -> SolverSpec(SolverMethod.Dopri5, 0, g, rtol, atol)
        |> fun spec -> spec.Validate()

    /// The solver the paper uses for a step budget: Euler up to 4 steps, Heun above (steps counted as solver steps).
    let paperSolver (steps: int) = if steps <= 4 then Euler steps else Heun steps

    /// The core PathSpec for a time distribution.
    let path (t: Times) : PathSpec =
        match t with
        | UniformTimes -> PathSpec(TimeSampling.Uniform)
        | LogitNormal (m, s) -> PathSpec(TimeSampling.LogitNormal, m, s)
        |> fun p -> p.Validate()

    /// Parses the CLI's solver name and step count.
    let parseSolver (name: string) (steps: int) (rtol: float) (atol: float) =
        match SolverMethods.Parse name with
        | SolverMethod.Euler -> Euler steps
        | SolverMethod.Midpoint -> Midpoint steps
        | SolverMethod.Heun -> Heun steps
        | SolverMethod.Rk4 -> Rk4 steps
        | _ -> Dopri5 (rtol, atol)

    /// Parses the CLI's grid name.
    let parseGrid (name: string) =
        match TimeGridKinds.Parse name with
        | TimeGridKind.Uniform -> Uniform
        | _ -> Quadratic

    /// The CLI spelling of a solver.
    let solverName (s: Solver) =
        match s with
        | Euler _ -> "euler" | Midpoint _ -> "midpoint" | Heun _ -> "heun" | Rk4 _ -> "rk4" | Dopri5 _ -> "dopri5"

    /// The CLI spelling of a grid.
    let gridName (g: Grid) = match g with Uniform -> "uniform" | Quadratic -> "quadratic"
