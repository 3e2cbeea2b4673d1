namespace Nfm.FSharp

open TorchSharp
open Nfm.Couple
open Nfm.Regress
open Nfm.Training

/// A point on the linear path between a coupled pair: x_t = (1 - t) x0 + t x1 and its target velocity x1 - x0.
type PathPoint =
    { X0: torch.Tensor; X1: torch.Tensor; T: torch.Tensor; Xt: torch.Tensor; Target: torch.Tensor; Labels: torch.Tensor option }

/// The four steps of flow matching as functions, for scripts that write their own loop instead of calling the
/// checkpointing trainer: couple a batch, sample the path, regress the velocity (loss and one optimiser step), and
/// integrate any velocity field. `Student.trainIn` runs the same core steps (FlowMatching.TrainStep) with checkpoints.
[<RequireQualifiedAccess>]
module Steps =
    /// Step 1, couple: noise paired with a batch of data rows (and labels) by a coupling.
    let couple (coupling: Coupling) (generator: torch.Generator) (labels: torch.Tensor option) (x1: torch.Tensor) : CoupledBatch =
        coupling.Invoke(Batch(x1, Option.toObj labels), generator)

    /// Training times for `n` rows from a time distribution.
    let times (dist: Times) (generator: torch.Generator) (n: int64) : torch.Tensor =
        ProbabilityPath.SampleTimes(Spec.path dist, n, generator, torch.CPU)

    /// Step 2, the path: each pair interpolated at its own time.
    let path (t: torch.Tensor) (pairs: CoupledBatch) : PathPoint =
        let p = ProbabilityPath.Sample(pairs.X0, pairs.X1, t.``to``(pairs.X1.device))
        { X0 = pairs.X0; X1 = pairs.X1; T = p.T; Xt = p.Xt; Target = p.Ut; Labels = Option.ofObj pairs.Labels }

    /// Step 3a, regress: the flow-matching loss, the mean squared error of the network's velocity at (x_t, t) against
    /// the target x1 - x0.
    let loss (net: torch.nn.Module<torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor>) (p: PathPoint) : torch.Tensor =
        use v = net.forward(p.Xt, p.T, Option.toObj p.Labels)
        torch.nn.functional.mse_loss(v, p.Target)

    /// Step 3b: one optimiser step on a loss (backward, gradient clipping, AdamW, EMA, the non-finite guard) from a
    /// training state; the next state, the loss and the gradient norm.
    let step (state: TrainingState) (loss: torch.Tensor) : StepOutcome = Optimisation.Apply(state, loss)

    /// A training state for a network: optimiser, EMA and generator as `spec` sets them (`Student.spec` makes one).
    let start (spec: Nfm.Descriptions.TrainingSpec) (net: torch.nn.Module) : TrainingState =
        TrainingState.Start(net, spec, torch.CPU)

    /// Any function of (x, t) as a velocity field.
    let field (f: torch.Tensor -> float -> torch.Tensor) : Nfm.Integrate.VelocityField = Nfm.Integrate.VelocityField(fun x t -> f x t)

    /// The velocity field of a network (eval mode, no autograd needed), at labels when given.
    let netField (labels: torch.Tensor option) (net: torch.nn.Module<torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor>) : Nfm.Integrate.VelocityField =
        Nfm.Sampling.StudentSampler.Field(net, Option.toObj labels)

    /// Step 4, integrate: one ODE solve of a velocity field from x0 at t = 0 to t = 1 with a solver on a grid.
    let solve (solver: Solver) (grid: Grid) (field: Nfm.Integrate.VelocityField) (x0: torch.Tensor) : torch.Tensor =
        use _ = torch.no_grad()
        (Nfm.Integrate.Integrator.Integrate(field, x0, Spec.solver grid solver)).X
