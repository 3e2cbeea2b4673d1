namespace Nfm.FSharp

open TorchSharp
open Nfm.Couple

/// Couplings as values, and combinators to build new ones; each is a core Coupling, usable from C# as well.
/// Every combinator keeps each data row exactly once, in its place, with its label.
[<RequireQualifiedAccess>]
module Couple =
    /// Fresh Gaussian noise, paired row by row.
    let independent : Coupling = Couplings.Independent

    /// Noise rows re-paired with the data by exact minibatch OT (squared Euclidean cost).
    let ot : Coupling = Couplings.MinibatchOt()

    /// Entropic OT with relative regulariser eps; the plan becomes a permutation by sampling without replacement.
    let sinkhorn (eps: float) : Coupling = Couplings.Sinkhorn(eps)

    /// Entropic OT, the plan rounded to its heaviest permutation.
    let sinkhornRounded (eps: float) : Coupling = Couplings.Sinkhorn(eps, SinkhornPairing.Round)

    /// Any function (x1, labels, generator) -> x0 as a coupling.
    let ofFunction (f: torch.Tensor -> torch.Tensor option -> torch.Generator -> torch.Tensor) : Coupling =
        CouplingCombinators.OfFunction(fun x1 labels g -> f x1 (Option.ofObj labels) g)

    /// Each row's noise from a with probability p, else from b; mix 1 a b = a, mix 0 a b = b.
    let mix (p: float) (a: Coupling) (b: Coupling) : Coupling = CouplingCombinators.Mix(p, a, b)

    /// Adds noise sigma to c's x0 and renormalises by sqrt(1 + sigma^2); perturb 0 c = c.
    let perturb (sigma: float) (c: Coupling) : Coupling = CouplingCombinators.Perturb(sigma, c)

    /// Couples each label's rows with that label's coupling.
    let perLabel (byLabel: int64 -> Coupling) : Coupling = CouplingCombinators.PerLabel(fun l -> byLabel l)

    /// Re-pairs c's noise with the data by exact OT inside the batch.
    let otWithin (c: Coupling) : Coupling = CouplingCombinators.OtWithin(c)

    /// Applies a coupling to a batch with a generator.
    let apply (g: torch.Generator) (c: Coupling) (batch: Batch) : CoupledBatch = c.Invoke(batch, g)

    /// A batch from data rows and optional labels.
    let batch (x1: torch.Tensor) (labels: torch.Tensor option) = Batch(x1, Option.toObj labels)
