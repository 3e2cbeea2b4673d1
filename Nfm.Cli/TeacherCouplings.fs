/// Resolving the teacher (NFM) couplings named on the command line: precomputed pairs or a teacher checkpoint.
module Nfm.Cli.TeacherCouplings

open TorchSharp
open Nfm.Cli.Common
open Nfm.Descriptions
open Nfm.Couple
open Nfm.Invert

/// eta when none is given: the teacher's own training noise sigma (the paper's scale for eta).
let defaultEta (t: TrainedTeacher) = t.Spec.Model.NoiseSigma

/// An on-the-fly NFM coupling: sigma_f estimated once over the data (seeded), then each batch encoded.
let onTheFly (teacher: TrainedTeacher) (eta: float) (data: Nfm.Data.Dataset) (seed: int64) =
    let model = teacher.InferenceModel()
    let device = teacher.Spec.Device.ToDevice()
    let labels = if teacher.Spec.Model.IsConditional then data.Labels else null
    use x = data.X.``to``(device)
    let sigmaF = TeacherCoupling.EstimateScale(model, x, (if isNull labels then null else labels.``to``(device)), eta, new torch.Generator(uint64 seed, device))
    eprintfn "NFM coupling: eta %g, sigma_f %.4f (teacher %s)" eta sigmaF (teacher.Identity())
    TeacherCoupling.OnTheFly(model, sigmaF, eta), sigmaF

/// The coupling of a teacher spec: `teacher:PAIRS` (file or folder of shards, checked against the data) or
/// `teacher:T.ckpt[,eta=E]` encoding on the fly.
let resolve (spec: CouplingSpec) (data: Nfm.Data.Dataset) : Coupling =
    match spec.Kind with
    | CouplingKind.Teacher when not (isNull spec.PairsPath) ->
        let pairs = TeacherPairs.Load spec.PairsPath
        pairs.ToCoupling(data.X, data.Labels)
    | CouplingKind.Teacher ->
        let t = TrainedTeacher.Load(existing "teacher checkpoint" spec.TeacherPath)
        let eta = if spec.Eta.HasValue then spec.Eta.Value else defaultEta t
        fst (onTheFly t eta data 0L)
    | k -> fail (sprintf "not a teacher coupling: %A" k)
