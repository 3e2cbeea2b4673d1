namespace Nfm.FSharp

open System
open System.Threading
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Regress
open Nfm.Training

/// Training budgets: teacher and student steps and batches, the reference set's size, the sampling step counts, and
/// optionally a second, smaller teacher budget whose NFM student shows how the students follow the teacher.
/// Which budget a comparison runs at: one of the two named ones, or a number of steps for teacher and students.
/// Parsed case-insensitively at the edges (`BudgetKind.Parse`); compared as a value inside.
[<RequireQualifiedAccess>]
type BudgetKind =
    | Quick
    | Standard
    | Steps of int
    /// The name as results and experiment.json spell it: quick, standard or the step count.
    member k.Name = match k with Quick -> "quick" | Standard -> "standard" | Steps n -> string n
    /// quick, standard (in any case) or a positive number of steps; anything else raises with one line naming it.
    static member Parse(text: string) =
        match (if isNull text then "" else text.Trim().ToLowerInvariant()) with
        | "quick" -> Quick
        | "standard" -> Standard
        | n ->
            match Int32.TryParse n with
            | true, v when v > 0 -> Steps v
            | _ -> invalidArg "budget" (sprintf "budget '%s': expected quick, standard or a positive number of steps" text)

type Budget =
    { Kind: BudgetKind; TeacherSteps: int; StudentSteps: int; TeacherBatch: int; StudentBatch: int; EvalCount: int
      Steps: int list; SmallTeacherSteps: int option
      /// EMA decay of the teacher's weights (0 = off); encoding and sampling use the averaged weights.
      TeacherEma: float
      /// Rows held out of the teacher's training data (0 = none): every teacher checkpoint is scored by their NLL and
      /// the best one is the teacher (early stopping by held-out likelihood, never by the reference set).
      TeacherHeldOut: int
      /// Noise draws per student row: each row's value is the mean over this many samples of `EvalCount` (different
      /// noise), reported with their standard deviation; claims hold only beyond it.
      Draws: int }
    /// The budget's name: quick, standard or the step count.
    member b.Name = b.Kind.Name

/// Where a compared student's pairs come from.
type MethodCoupling =
    /// Fresh noise, row by row.
    | Independent
    /// Exact minibatch OT over the whole batch (label-blind in a class-conditional comparison).
    | Ot
    /// Exact minibatch OT within each label of the batch: the fair OT baseline of a class-conditional comparison.
    | OtPerLabel
    /// The NFM coupling: the teacher's pairs at eta (None: the experiment's eta), of the main teacher or, with
    /// `TeacherSteps`, of a teacher trained for that many steps (the budget's smaller teacher).
    | Nfm of eta: float option * teacherSteps: int option
    /// Any coupling, built once the main teacher is trained (the context lends it and its NFM couplings), e.g.
    /// `Custom("mix 0.5 nfm ot", fun ctx -> Couple.mix 0.5 (ctx.Nfm 0.05) Couple.ot)`.
    | Custom of description: string * make: (ExperimentContext -> Nfm.Couple.Coupling)

/// One student of a comparison: its name (the method column of the results) and its coupling.
and Method = { Name: string; Coupling: MethodCoupling }

/// What a custom coupling may use: the training data, the main teacher, and its NFM coupling at an eta (pairs
/// precomputed once per eta and cached in the output folder).
and ExperimentContext = { Data: Dataset; Teacher: TrainedTeacher; Nfm: float -> Nfm.Couple.Coupling }

/// A comparison: students with the same network, steps, batch and seed on different couplings, each sampled at several
/// step counts and scored against held-out data, beside the teacher(s) they distil.
type Experiment =
    { /// The data (its source, row count, seed and labels); the held-out reference comes from `Experiment.split`.
      Data: DataSpec
      Budget: Budget
      /// The students to compare (`Experiment.defaultMethods` is independent, OT, NFM and the small teacher's NFM).
      Methods: Method list
      /// eta of the NFM coupling when a method gives none (None: the teacher's training noise).
      Eta: float option
      Seed: int64
      /// The sampling grid (the solver follows the paper: Euler up to 4 steps, Heun above).
      Grid: Grid
      /// Checkpoints, pairs, results and plots go here; a rerun continues what an interrupted run left.
      OutDir: string
      /// Class-conditional teacher and students (label dropout 0.1) on the data's labels, sampled with classifier-free
      /// guidance at every weight of `Guidance`; each method's rows are at its best weight.
      Conditional: bool
      /// The guidance weights swept at sampling (0 = plain conditional); one weight, 0, for an unconditional run.
      Guidance: float list
      /// false (default): each method's rows are at its one best weight (the lowest mean log metric over the step
      /// counts); true: each row at the best weight for its step count (a method may want guidance at 1 step and none
      /// at 16). Either way the choice is made on the reference the rows are scored on: choose with `Validation`.
      GuidancePerSteps: bool
      /// Weights chosen elsewhere (on validation digits), by method name and step count ("teacher" for the teacher,
      /// at any step count): a method or step count found here is sampled at that one weight, not swept, so a run on
      /// the test digits reports at weights the test digits did not choose. Empty (the default): sweep `Guidance`.
      /// `Experiment.guidanceFrom results.json` reads them from another comparison's rows.
      ChosenGuidance: Map<string, Map<int, float>>
      /// float32, or bfloat16 mixed precision for every training step (teachers and students).
      Precision: Precision
      /// The students' network for images: the U-Net (default) or the SiT transformer (`Architecture.Sit`, at
      /// `StudentWidth` x `StudentDepth` when given); vectors always use the MLP.
      StudentNet: Architecture
      StudentWidth: int option
      StudentDepth: int option
      /// Score against the held-out set (false, the default: MNIST's test digits, a fresh draw of a built-in set), or
      /// against the last `EvalCount` rows of the training split, which then no student or teacher trains on (true):
      /// for choosing settings without looking at the test digits.
      Validation: bool
      /// A pretrained main teacher (a teacher checkpoint, or ml-tarflow weights): it is scored and distilled, not
      /// trained (`Experiment.withTeacher`).
      Teacher: string option
      /// The FD-MNIST feature classifier's checkpoint (loaded, or trained and saved there); MNIST only.
      Classifier: string }

/// How a comparison runs, never what it measures: the workers, the TensorBoard log, the reporter, cancellation and the
/// command recorded in results.json. Two runs of one `Experiment` in different environments give the same figures.
type RunEnvironment =
    { /// 1, or 2: the students that need no teacher train beside the teacher (in `SideProcess`, else on a second
      /// thread of this process).
      Workers: int
      /// With two workers: trains the students of the named methods (those that need no teacher) in another process,
      /// which leaves their finished checkpoints in the output folder, while this process trains the teacher; this
      /// process then loads them (and trains in-process whatever the other left unfinished). The command line passes
      /// one that starts itself. A second process has its own garbage collector, so the hazard of two training
      /// threads in one process (TorchSharp's temporary scalars, CONTRIBUTING.md) cannot arise. None: a second thread.
      SideProcess: (string list -> Tasks.Task) option
      /// A TensorBoard log for training curves, figures and sample grids.
      Log: TensorBoardLog option
      Reporter: Reporter
      Cancel: CancellationToken
      /// The command that made the run, recorded in results.json.
      Command: string }

[<RequireQualifiedAccess>]
module RunEnvironment =
    /// One worker, no log, progress as lines on stdout, no cancellation, no command recorded.
    let lines = { Workers = 1; SideProcess = None; Log = None; Reporter = Reporter.lines; Cancel = CancellationToken.None; Command = "" }
    /// As `lines`, silent.
    let silent = { lines with Reporter = Reporter.silent }

/// Seeds of a comparison's random streams, derived from its seed and a stream's name (for example
/// "evaluation noise, draw 2"), so that no two streams share a seed by an accident of offsets and a new stream changes
/// none of the others. The derivation (the first 8 bytes of SHA-256 of "SEED/NAME", kept to 62 bits; libtorch's CPU
/// generator reads the low 32 bits, which SHA-256 makes as unrelated between names as the rest) is part of the results:
/// changing it changes every figure.
[<RequireQualifiedAccess>]
module Seeds =
    let derive (seed: int64) (name: string) : int64 =
        let hash = Security.Cryptography.SHA256.HashData(Text.Encoding.UTF8.GetBytes(sprintf "%d/%s" seed name))
        int64 (BitConverter.ToUInt64(hash, 0) >>> 2)

/// The methods the claims compare, found by their couplings (never by their names): the NFM method under test and the
/// two baselines.
type Roles = { UnderTest: string option; Independent: string option; Ot: string option }

/// A method's metric at every guidance weight and step count, and the weight its rows use (the lowest mean log
/// metric over the step counts).
type GuidanceCurve = { Method: string; Best: float; Points: (float * int * float) list }

/// A teacher budget's figures on the held-out set, and the pairs of its NFM coupling at the experiment's eta.
type TeacherResult =
    { Steps: int; Teacher: TrainedTeacher; Loss: float; TrainSeconds: float; Nll: float; Bpd: float
      /// The metric of its samples at the best guidance weight: the mean over `Draws` noise draws, with their standard
      /// deviation `Spread` (the denoised figure is of the first draw).
      Value: float; Spread: float; Draws: int; ValueDenoised: float; SampleSeconds: float; Nfe: int; Pairs: Nfm.Couple.TeacherPairs; PairsPath: string
      EncodesPerSecond: float
      /// How Gaussian its NFM encodings (at eta, scaled by sigma_f) of the held-out reference rows are, as an excess over
      /// the floor of exact N(0, I) samples of the same size.
      Gaussianity: Nfm.Metrics.GaussianityExcess
      /// The checkpoint chosen by held-out likelihood, when the budget holds rows out of the teacher's data.
      Selection: TeacherSelection option
      /// Under a conditional run: the teacher's metric against the guidance weight (its Value is at the best one).
      Curve: GuidanceCurve option }

/// A trained student of the comparison and its rows.
type StudentResult =
    { Method: Method; Student: Student; Coupling: Nfm.Couple.Coupling; FinalLoss: float; TrainSeconds: float
      Rows: ResultRow list; Curve: GuidanceCurve; Curvature: float; Nll: float }

/// Latency of one sample and throughput at batch 64.
/// `Nfe`: network evaluations per sample, guidance included (the guided student's two passes per step run as one call;
/// the guided teacher runs a conditional and an unconditional pass, each with its own cache, at any weight).
type Latency = { Method: string; Steps: int; Nfe: int; SingleSeconds: float; SecondsPer1000AtBatch64: float }

/// Everything a comparison measured.
type ExperimentResult =
    { Experiment: Experiment; Environment: RunEnvironment; Metric: string; IsImage: bool; Eta: float
      /// Students' rows, then the NFM student started from the teacher's encodings, then the teachers' rows.
      Rows: ResultRow list
      Teacher: TeacherResult; SmallTeacher: TeacherResult option
      Students: StudentResult list
      PairCosts: (string * float) list
      /// The metric of `NReference` training rows against the reference: what a sampler of the data itself scores.
      DataFloor: float
      /// Per claim key: the standard error of its ratio, from the rows' spreads over their draws.
      ClaimErrors: (string * float) list
      Latency: Latency list
      Claims: (string * float) list
      ClaimChecks: Claims.Claim list
      /// Per method (and the teacher) under a conditional run: the metric against the guidance weight.
      Guidance: GuidanceCurve list
      NReference: int
      FeatureNetwork: string option }

/// What every stage of one comparison shares, made once by `Experiment.Stage.setup`: the plan and its environment, the
/// training rows and the reference they are scored against, the metric, the students' settings, the evaluation cache,
/// and the comparison's named seeds.
type Setup =
    { Plan: Experiment; Env: RunEnvironment
      /// The output folder's full path.
      OutDir: string
      /// The rows the teacher and the students train on.
      Data: Dataset
      /// The rows samples are scored against (held-out, or the validation rows of the training split).
      Reference: Dataset
      /// The labels of a class-conditional comparison (null otherwise).
      TrainLabels: torch.Tensor
      ReferenceLabels: torch.Tensor
      EvalCount: int
      RowShape: int64[]
      IsImage: bool
      /// MNIST images: scored by FD-MNIST with `Classifier`, else by exact W2.
      IsMnist: bool
      Metric: string
      /// The metric of samples against reference rows.
      Quality: torch.Tensor -> torch.Tensor -> float
      Classifier: Lazy<Nfm.Metrics.FeatureClassifier>
      /// eta of the NFM coupling (the experiment's, or the teacher's training noise).
      Eta: float
      Settings: StudentSettings
      /// Every figure the evaluation measures, kept in the folder as it is measured (evaluation-cache.json).
      Cache: EvaluationCache }
    /// The cache key of a figure: the metric's identity (the feature classifier's for FD), the comparison's seed and
    /// the reference size, then the parts naming the figure.
    member s.Key(parts: string list) =
        let metricId = if s.IsMnist then sprintf "fd %s" (s.Classifier.Force().Identity()) else s.Metric
        String.concat " | " (sprintf "%s, seed %d, %d reference rows" metricId s.Plan.Seed s.EvalCount :: parts)
    /// The seed of the comparison's random stream `name` (`Seeds.derive`).
    member s.Seed(name: string) = Seeds.derive s.Plan.Seed name

/// A student the training stage left: its method, the coupling it trained on, its last loss and training time (from
/// its checkpoint, summed over the processes that continued it).
type TrainedStudent = { Method: Method; Student: Student; Coupling: Nfm.Couple.Coupling; FinalLoss: float; TrainSeconds: float }

/// Where an evaluation starts: fresh noise (None), or given starting points, one set per draw ([draws, rows, ...]),
/// with their labels and the one guidance weight to sample at.
type EvaluationStart = { X0: torch.Tensor; Labels: torch.Tensor; Guidance: float }

/// The stages of a comparison a script may replace (`{ Experiment.stages with Evaluate = mine }`): each takes the
/// shared setup and typed inputs, resumes from the folder (checkpoints, pairs, the evaluation cache) and returns typed
/// figures. `Experiment.runWith` composes them.
type Stages =
    { /// A teacher at a budget (steps, file suffix): trained or continued (or the pretrained one), scored, its pairs.
      Teacher: Setup -> int -> string -> TeacherResult
      /// One student on a coupling (the coupling's recorded description last): trained or continued.
      Train: Setup -> Method -> Nfm.Couple.Coupling -> string -> TrainedStudent
      /// A student (named) sampled and scored: its guidance curve and its rows.
      Evaluate: Setup -> string -> Student -> EvaluationStart option -> GuidanceCurve * ResultRow list
      /// A student's path curvature per dimension and held-out NLL per dimension.
      Diagnostics: Setup -> string -> Student -> float * float
      /// Latency of the students (at 4 steps or fewer) and of the teacher.
      Latency: Setup -> TeacherResult -> StudentResult list -> Latency list }
