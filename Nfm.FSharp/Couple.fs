namespace Nfm.FSharp

open Nfm
open TorchSharp
open Nfm.Couple

/// Couplings as values, and combinators to build new ones; each is a core Coupling, usable from C# as well.
/// Every combinator keeps each data row exactly once, in its place, with its label.
[<RequireQualifiedAccess>]
module Couple =
    // What each coupling value is, kept beside it (couplings are delegates): a student records it.
    let private known = System.Runtime.CompilerServices.ConditionalWeakTable<Coupling, Nfm.Descriptions.CouplingSpec>()
    let private describedAs (spec: Nfm.Descriptions.CouplingSpec) (c: Coupling) : Coupling = known.AddOrUpdate(c, spec); c

    /// What a coupling made here is (its command-line form for the built-ins, a composed name for combinators, the name
    /// given with `named`), or None for a coupling made elsewhere.
    let describe (c: Coupling) : Nfm.Descriptions.CouplingSpec option =
        match known.TryGetValue c with
        | true, s -> Some s
        | _ -> None

    /// A coupling's description as text ("?" when it has none).
    let describeText (c: Coupling) =
        match describe c with
        | Some s when s.Kind = Nfm.Descriptions.CouplingKind.Custom -> s.Name
        | Some s -> s.Format()
        | None -> "?"

    /// The same coupling under a name of one's own, which students trained on it record.
    let named (name: string) (c: Coupling) : Coupling =
        let copy = Coupling(fun batch g -> c.Invoke(batch, g))
        describedAs (Nfm.Descriptions.CouplingSpec.Custom name) copy

    let private custom (name: string) (c: Coupling) = describedAs (Nfm.Descriptions.CouplingSpec.Custom name) c

    /// Fresh Gaussian noise, paired row by row.
    let independent : Coupling = Couplings.Independent |> describedAs Nfm.Descriptions.CouplingSpec.Independent

    /// Noise rows re-paired with the data by exact minibatch OT (squared Euclidean cost).
    let ot : Coupling = Couplings.MinibatchOt() |> describedAs Nfm.Descriptions.CouplingSpec.Ot

    /// Entropic OT with relative regulariser eps; the plan becomes a permutation by sampling without replacement.
    let sinkhorn (eps: float) : Coupling = Couplings.Sinkhorn(eps) |> describedAs (Nfm.Descriptions.CouplingSpec.Sinkhorn eps)

    /// Entropic OT, the plan rounded to its heaviest permutation.
    let sinkhornRounded (eps: float) : Coupling =
        Couplings.Sinkhorn(eps, Nfm.Descriptions.SinkhornPairing.Round)
        |> describedAs (Nfm.Descriptions.CouplingSpec.Sinkhorn(eps, Nfm.Descriptions.SinkhornPairing.Round))

    /// Any function (x1, labels, generator) -> x0 as a coupling (without a description: give it one with `named`).
    let ofFunction (f: torch.Tensor -> torch.Tensor option -> torch.Generator -> torch.Tensor) : Coupling =
        CouplingCombinators.OfFunction(fun x1 labels g -> f x1 (Option.ofObj labels) g)

    /// Each row's noise from a with probability p, else from b; mix 1 a b = a, mix 0 a b = b.
    let mix (p: float) (a: Coupling) (b: Coupling) : Coupling =
        CouplingCombinators.Mix(p, a, b) |> custom (sprintf "mix %g (%s) (%s)" p (describeText a) (describeText b))

    /// Adds noise sigma to c's x0 and renormalises by sqrt(1 + sigma^2); perturb 0 c = c.
    let perturb (sigma: float) (c: Coupling) : Coupling =
        CouplingCombinators.Perturb(sigma, c) |> custom (sprintf "perturb %g (%s)" sigma (describeText c))

    /// Couples each label's rows with that label's coupling.
    let perLabel (byLabel: int64 -> Coupling) : Coupling = CouplingCombinators.PerLabel(fun l -> byLabel l) |> custom "per label"

    /// Re-pairs c's noise with the data by exact OT inside the batch.
    let otWithin (c: Coupling) : Coupling = CouplingCombinators.OtWithin(c) |> custom (sprintf "ot within (%s)" (describeText c))

    /// The NFM coupling, encoding each batch on the fly with a trained teacher:
    /// x0 = f(x1 + eta eps) / sigma_f, sigma_f estimated once over `data` (seed 0). eta = 0 is deterministic.
    /// `teacher |> Couple.teacher 0.05 data`.
    let teacherWithScale (eta: float) (data: Nfm.Data.Dataset) (teacher: Nfm.Invert.TrainedTeacher) : Coupling * float =
        let model = teacher.InferenceModel()
        let device = teacher.Spec.Device.ToDevice()
        let labels = if teacher.Spec.Model.IsConditional then data.Labels else null
        use x = data.X.``to``(device)
        use g = new torch.Generator(0UL, device)
        let sigmaF = TeacherCoupling.EstimateScale(model, x, (if isNull labels then null else labels.``to``(device)), eta, g)
        TeacherCoupling.OnTheFly(model, sigmaF, eta), sigmaF

    /// The NFM coupling on the fly (see teacherWithScale), without the scale.
    let teacher (eta: float) (data: Nfm.Data.Dataset) (teacher: Nfm.Invert.TrainedTeacher) : Coupling =
        fst (teacherWithScale eta data teacher)

    /// Precomputed NFM pairs of the whole data set: `draws` noise draws per row in one encode pass (seeded), so that
    /// training does not run the teacher. Save them with `.Save path` to reuse.
    let precompute (eta: float) (draws: int) (seed: int64) (data: Nfm.Data.Dataset) (teacher: Nfm.Invert.TrainedTeacher) : TeacherPairs =
        TeacherPairs.Compute(teacher, data.X, data.Labels, eta, draws, seed)

    /// The coupling of precomputed pairs, checked against the data they were made from (same rows, same order).
    let ofPairs (data: Nfm.Data.Dataset) (pairs: TeacherPairs) : Coupling = pairs.ToCoupling(data.X, data.Labels)

    /// The coupling of a pair file, or of a folder of shards (`nfm couple --shard I/N`), checked against the data.
    let pairsFile (path: string) (data: Nfm.Data.Dataset) : Coupling =
        ofPairs data (TeacherPairs.Load path) |> describedAs (Nfm.Descriptions.CouplingSpec.TeacherPairs path)

    /// Reflow: fresh noise integrated by any velocity field (Heun, 16 uniform steps by default) gives the data side.
    let reflowField (field: Nfm.Integrate.VelocityField) : Coupling = ReflowCoupling.Create(fun _ -> field)

    /// Reflow from a trained student (its EMA weights; a conditional one is integrated at the batch's labels).
    let reflow (student: Nfm.Regress.Student) : Coupling = student.ReflowCoupling()

    /// The coupling a description names (`CouplingSpec.Parse "ot"`, `"sinkhorn:0.05"`, `"teacher:PAIRS"`,
    /// `"teacher:T.ckpt,eta=0.1"`, `"reflow:S.ckpt"`) for `data`: pair files (or folders of shards) are checked against
    /// the data; a teacher checkpoint encodes on the fly with eta defaulting to its training noise.
    let ofSpec (spec: Nfm.Descriptions.CouplingSpec) (data: Nfm.Data.Dataset) : Coupling =
        match spec.Kind with
        | Nfm.Descriptions.CouplingKind.Reflow -> reflow (Nfm.Regress.Student.Load spec.StudentPath)
        | Nfm.Descriptions.CouplingKind.Teacher when not (isNull spec.PairsPath) -> pairsFile spec.PairsPath data
        | Nfm.Descriptions.CouplingKind.Teacher ->
            let t = Nfm.Invert.TrainedTeacher.Load spec.TeacherPath
            teacher (if spec.Eta.HasValue then spec.Eta.Value else t.Spec.Model.NoiseSigma) data t
        | _ -> Couplings.From spec
        |> describedAs spec

    /// Applies a coupling to a batch with a generator.
    let apply (g: torch.Generator) (c: Coupling) (batch: Batch) : CoupledBatch = c.Invoke(batch, g)

    /// A batch from data rows and optional labels.
    let batch (x1: torch.Tensor) (labels: torch.Tensor option) = Batch(x1, Option.toObj labels)
