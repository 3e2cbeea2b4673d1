namespace Nfm.FSharp

open Nfm
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Regress
open Nfm.Training
open Nfm.Sampling

/// Data sources: built-in 2-D sets, mnist:DIR, FILE.npy.
[<RequireQualifiedAccess>]
module Data =
    /// Loads a data spec (built-in name, mnist:DIR or FILE.npy); n rows of a built-in set drawn with seed.
    let load (spec: string) (n: int64) (seed: int64) : Dataset = DataSource.Load(spec, n, seed)

    /// n points of a built-in 2-D set.
    let toy (name: string) (n: int64) (seed: int64) : Dataset = Toy2D.Sample(name, n, seed)

    /// The MNIST train or test split of a folder of IDX files.
    let mnist (folder: string) (split: DataSplit) : Dataset = Mnist.Load(folder, split)

    /// A folder of PNG and JPEG images (`images:FOLDER[?size=N&channels=C]`, one subfolder per class) as a split.
    let images (spec: string) (split: DataSplit) : Dataset = ImageFolder.Load(ImageFolderSpec.Parse spec, split)

    /// The rows of `data` in an order drawn from `seed` (an image folder comes sorted by class; a held-out set is
    /// drawn from every class).
    let shuffled (seed: int64) (data: Dataset) : Dataset =
        use g = new torch.Generator(uint64 seed)
        let order = torch.randperm(data.X.shape[0], generator = g)
        Dataset(data.X.index_select(0L, order), (if isNull data.Labels then null else data.Labels.index_select(0L, order)), data.Name)

    let private first (n: int64) (data: Dataset) =
        let n = min data.X.shape[0] n
        Dataset(data.X.narrow(0L, 0L, n), (if isNull data.Labels then null else data.Labels.narrow(0L, 0L, n)), data.Name)

    /// The held-out set a run is scored on: a fresh draw (seed + 1) of `count` rows of a built-in set, the first
    /// `count` rows of MNIST's test split, `count` rows drawn (seed) from an image folder's test/ split; None for a
    /// user's file or an image folder without splits (`Experiment.split` holds rows out of it).
    let heldOut (spec: string) (seed: int64) (count: int) : Dataset option =
        match DataSource.KindOf spec with
        | DataSourceKind.Toy2D -> Some (Toy2D.Sample(spec, int64 count, seed + 1L))
        | DataSourceKind.Mnist -> Some (first (int64 count) (DataSource.Load(spec, 0L, seed, DataSplit.Test)))
        | DataSourceKind.Images when ImageFolder.HasSplits (ImageFolderSpec.Parse spec).Folder ->
            Some (first (int64 count) (shuffled seed (images spec DataSplit.Test)))
        | _ -> None

    /// Labels for sampling `count` rows from a model of `classes` classes: one class, or cycling through the classes;
    /// None for an unconditional model (0 classes).
    let samplingLabels (classes: int) (count: int64) (label: int option) (device: torch.Device) : torch.Tensor option =
        if classes = 0 then
            if label.IsSome then invalidArg "label" "a label was given, but the model is not class-conditional"
            None
        else
            match label with
            | Some l when l < 0 || l >= classes -> invalidArg "label" (sprintf "the label must be in [0, %d), got %d" classes l)
            | Some l -> Some (torch.full(count, int64 l, dtype = torch.int64, device = device))
            | None -> Some (torch.arange(count, dtype = torch.int64, device = device).remainder(Scalar.op_Implicit (int64 classes)))

    /// Reads a .npy array.
    let readNpy (path: string) = Npy.Read path

    /// Writes a tensor as .npy (atomically).
    let writeNpy (path: string) (t: torch.Tensor) = Npy.Write(path, t)

/// One request for samples from a student: `Student.request steps count seed` gives one (the paper's solver at that
/// many steps, the quadratic grid, no guidance) to change with `with`; `Student.draw request student` answers it.
type SampleRequest =
    { /// How many samples.
      Count: int64
      /// The seed of the starting noise.
      Seed: int64
      Solver: Solver
      Grid: Grid
      /// The labels of a conditional student's samples (None: it cycles through its classes; an unconditional student
      /// takes none).
      Labels: torch.Tensor option
      /// The classifier-free guidance weight (0 = none).
      Guidance: float }

/// What a student run needs besides its data and coupling; `Student.settings` gives defaults to change with `with`.
type StudentSettings =
    { /// The network: Mlp (vectors; Width x Depth) or UNet (images; Width = base channels, Depth = levels).
      Architecture: Architecture
      Width: int; Depth: int; Steps: int; Batch: int; LearningRate: float; Warmup: int; Ema: float
      Seed: int64; Times: Times; Device: string
      /// float32, or bfloat16 mixed precision for the training steps' matrix products.
      Precision: Precision
      /// Class-conditional on the data's labels, with label dropout `LabelDropout` (for classifier-free guidance).
      Conditional: bool
      LabelDropout: float
      /// Checkpoint every this many steps (0 = only at the end) when the run options give a checkpoint.
      SaveEvery: int }

/// Flow-matching students: train on a coupling, sample by integrating from noise.
[<RequireQualifiedAccess>]
module Student =
    /// Defaults sized for 2-D data on a CPU (MLP 256 x 3, 2,000 steps of 256, EMA 0.999), silent.
    let settings =
        { Architecture = Architecture.Mlp; Width = 256; Depth = 3; Steps = 2000; Batch = 256; LearningRate = 1e-3; Warmup = 0
          Ema = 0.999; Seed = 0L; Times = UniformTimes; Device = "cpu"; Precision = Precision.Float32; Conditional = false; LabelDropout = 0.1; SaveEvery = 0 }

    /// Defaults for 28 x 28 images on a CPU: the small U-Net, logit-normal times, checkpoints every 500 steps.
    let imageSettings =
        let struct (w, d) = Nfm.Nets.VelocityUNet.MnistCpu
        { settings with Architecture = Architecture.UNet; Width = w; Depth = d; Batch = 64; Times = LogitNormal(0.0, 1.0); SaveEvery = 500 }

    /// Defaults for 28 x 28 images with the SiT transformer student: width 128 (4 heads of 32), 4 blocks, 4 x 4 patches,
    /// logit-normal times, checkpoints every 500 steps.
    let sitSettings = { imageSettings with Architecture = Architecture.Sit; Width = 128; Depth = 4 }

    /// The full description of a run on a data set with a named coupling.
    let spec (s: StudentSettings) (couplingName: string) (data: Dataset) : StudentSpec =
        let shape = data.X.shape |> Array.skip 1
        let classes =
            if not s.Conditional then 0
            else
                match data.Labels with
                | null -> invalidArg "data" "a conditional student needs labels with the data"
                | l -> int (l.max().item<int64>()) + 1
        StudentSpec(VelocityNetSpec(shape, s.Width, s.Depth, Activation.Silu, 32, classes, s.Architecture), Spec.path s.Times,
                    TrainingSpec(s.Steps, s.Batch, s.LearningRate, s.Warmup, Seed = s.Seed, EmaDecay = s.Ema, SaveEvery = s.SaveEvery,
                                 Precision = s.Precision),
                    CouplingSpec.Named couplingName, data.Name, DeviceSpec(s.Device), s.LabelDropout).Validate()

    /// The run of `spec`: continued from `checkpoint` when that holds the same run (more steps allowed), else fresh.
    let start (reporter: Reporter) (checkpoint: string option) (spec: StudentSpec) : Student =
        Runs.resumeOrCreate reporter "student" Student.Kind checkpoint (Json.Write spec)
                            (fun c -> Json.Write(c.DescriptionAs<StudentSpec>()))
                            (fun c -> Student.FromCheckpoint(spec, c)) (fun () -> Student.Create spec)

    /// Trains (or continues, from the options' checkpoint) a student on a coupling recorded as `couplingName`, with the
    /// options' reporter and step observer. Raises OperationCanceledException when the options' token fires (what was
    /// trained is saved first).
    let trainIn (o: RunOptions) (coupling: Nfm.Couple.Coupling) (couplingName: string) (s: StudentSettings) (data: Dataset) : Student =
        // A student records the coupling it was trained on: a name in the command-line form must be what the coupling is.
        let declared = CouplingSpec.Named couplingName
        match Couple.describe coupling with
        | Some known when known.Kind <> CouplingKind.Custom && declared.Kind <> CouplingKind.Custom && known.Format() <> declared.Format() ->
            invalidArg "couplingName" (sprintf "the coupling is %s, but the student would record it as %s" (known.Format()) couplingName)
        | _ -> ()
        let spec = spec s couplingName data
        let st = start o.Reporter o.Checkpoint spec
        let update = o.Reporter.Stage couplingName (int64 s.Steps)
        let trained =
            StudentTraining.Run(st, data.X, (if spec.Net.Classes > 0 then data.Labels else null), coupling,
                                Option.toObj o.Checkpoint,
                                System.Action<_>(fun p -> update p.Step (sprintf "loss %.4f" p.Loss); o.OnStep p), o.Cancel)
        if o.Cancel.IsCancellationRequested then
            raise (System.OperationCanceledException("interrupted; the student trained so far is saved"))
        trained

    /// Trains a student on a coupling, silently and unsaved: `data |> Student.train Couple.ot "ot" settings`.
    let train (coupling: Nfm.Couple.Coupling) (couplingName: string) (s: StudentSettings) (data: Dataset) : Student =
        trainIn RunOptions.silent coupling couplingName s data

    /// `fit` with run options (a checkpoint, a reporter, cancellation).
    let fitIn (o: RunOptions) (coupling: Nfm.Couple.Coupling) (s: StudentSettings) (data: Dataset) : Student =
        match Couple.describe coupling with
        | Some _ -> trainIn o coupling (Couple.describeText coupling) s data
        | None -> invalidArg "coupling" "this coupling carries no description; name it with Couple.named NAME (or use Student.train with a name)"

    /// Trains a student on a coupling that carries its description (every built-in, combinator and `Couple.named`
    /// coupling does), recording that: `data |> Student.fit Couple.ot settings`.
    let fit (coupling: Nfm.Couple.Coupling) (s: StudentSettings) (data: Dataset) : Student = fitIn RunOptions.silent coupling s data

    /// Labels for `count` samples of a conditional student: one class, or cycling through the classes; None for an
    /// unconditional one.
    let labels (count: int64) (label: int option) (st: Student) =
        Data.samplingLabels st.Spec.Net.Classes count label (st.Spec.Device.ToDevice())

    /// A request for `count` samples from the noise of `seed` with the paper's solver at `steps` (Euler up to 4 steps,
    /// Heun above) on the quadratic grid, without guidance; change the rest with `with`.
    let request (steps: int) (count: int64) (seed: int64) : SampleRequest =
        { Count = count; Seed = seed; Solver = Spec.paperSolver steps; Grid = Quadratic; Labels = None; Guidance = 0.0 }

    /// Answers a sample request: the samples and the network passes per sample (guidance included).
    let draw (r: SampleRequest) (st: Student) : torch.Tensor * int =
        let device = st.Spec.Device.ToDevice()
        use g = new torch.Generator(uint64 r.Seed, device)
        let labels = match r.Labels with Some y -> Some y | None -> labels r.Count None st
        let x = StudentSampler.Sample(st.SamplingNet(), st.Spec.Net.InputShape, r.Count, Spec.solver r.Grid r.Solver, g, device,
                                      Option.toObj labels, r.Guidance)
        x.X, x.Nfe

    /// count samples with a solver on a grid, noise drawn with seed; EMA weights are used when the run kept them
    /// (a conditional student cycles through its classes).
    let sample (solver: Solver) (grid: Grid) (count: int64) (seed: int64) (st: Student) : torch.Tensor =
        fst (draw { request 1 count seed with Solver = solver; Grid = grid } st)

    /// Integrates given starting points (e.g. a teacher's encodings) instead of fresh noise.
    let integrate (solver: Solver) (grid: Grid) (x0: torch.Tensor) (st: Student) : torch.Tensor =
        (StudentSampler.FromNoise(st.SamplingNet(), x0, Spec.solver grid solver)).X

    /// The student's velocity field v(x, t) (EMA weights), e.g. for reflow or likelihoods.
    let field (st: Student) : Nfm.Integrate.VelocityField = StudentSampler.Field(st.SamplingNet())

    /// Loads a student checkpoint.
    let load (path: string) = Student.Load path

    /// Saves a student checkpoint (atomically).
    let save (path: string) (st: Student) = st.Save path

/// Sample quality and flow diagnostics.
[<RequireQualifiedAccess>]
module Metrics =
    /// Exact W2 between two equal-size point sets (rows flattened).
    let w2 (a: torch.Tensor) (b: torch.Tensor) = Nfm.Metrics.Wasserstein.W2(a, b)

    /// MMD with the default RBF kernel mixture.
    let mmd (a: torch.Tensor) (b: torch.Tensor) = Nfm.Metrics.Mmd.Rbf(a, b)

    /// FD-MNIST: the Frechet distance between the feature classifier's features of samples and of reference images.
    let fd (classifier: Nfm.Metrics.FeatureClassifier) (samples: torch.Tensor) (reference: torch.Tensor) =
        Nfm.Metrics.FeatureClassifier.FdMnist(classifier, samples, reference)

    /// Trains an FD-MNIST feature classifier with the fixed recipe (seed 0) for `steps` steps on MNIST's train split
    /// and reports its test accuracy; FD figures are comparable only between runs of one classifier (its identity).
    let trainClassifier (reporter: Reporter) (steps: int) (train: Dataset) (test: Dataset) =
        let update = reporter.Stage "classifier" (int64 steps)
        let struct (c, acc) =
            Nfm.Metrics.FeatureClassifier.Train(train, test, 0L, steps, System.Action<_>(fun p -> update p.Step (sprintf "loss %.4f" p.Loss)))
        reporter.Message(sprintf "feature classifier: test accuracy %.2f%%, identity %s" (100.0 * acc) (c.Identity()))
        c

    /// The FD-MNIST feature classifier: loaded from `path`, or trained with the fixed recipe (seed 0, 1,500 steps) on
    /// the MNIST data set `mnistSpec` (mnist:DIR; its train split, scored on its test split) and saved there when the
    /// file does not exist yet.
    let classifier (reporter: Reporter) (path: string) (mnistSpec: string) =
        if System.IO.File.Exists path then Nfm.Metrics.FeatureClassifier.Load path
        else
            reporter.Message(sprintf "training the FD-MNIST feature classifier (fixed recipe, seed 0, 1500 steps) into %s" path)
            let split s = DataSource.Load(mnistSpec, 0L, 0L, s)
            let c = trainClassifier reporter 1500 (split DataSplit.Train) (split DataSplit.Test)
            c.Save path
            c

    /// Path curvature per dimension (rectified-flow sense) of a velocity field from starting points x0.
    let curvature (solver: Solver) (grid: Grid) (x0: torch.Tensor) (field: Nfm.Integrate.VelocityField) =
        (Nfm.Metrics.PathCurvature.Measure(field, x0, Spec.solver grid solver)).PerDimension

    /// The log-likelihood log p(x1) of each row under the flow of a velocity field (the instantaneous change of
    /// variables, `steps` RK4 steps; the exact divergence, or Hutchinson with `probes` Rademacher probes when given).
    let odeLogLikelihood (steps: int) (probes: int option) (seed: int64) (x1: torch.Tensor) (field: Nfm.Integrate.VelocityField) =
        use g = new torch.Generator(uint64 seed)
        let estimator, n =
            match probes with
            | Some p -> Nfm.Metrics.DivergenceEstimator.HutchinsonRademacher, p
            | None -> Nfm.Metrics.DivergenceEstimator.Exact, 1
        Nfm.Metrics.Divergence.StudentLogLikelihood(field, x1, steps, estimator, n, g)

    /// How far a set of encodings is from N(0, I): Frechet distance and the covariance's extreme eigenvalues.
    let gaussianGap (z: torch.Tensor) = Nfm.Metrics.Frechet.ToStandardNormal(z.reshape(z.shape[0], -1L))

    /// How Gaussian a set of encodings is, as an excess over its sampling floor: their Frechet distance to N(0, I)
    /// minus the mean over `draws` exact N(0, I) samples of the same shape (drawn from `seed`), with the spread and the
    /// per-dimension mean, variance and excess-kurtosis ranges. Reads 0 on exact N(0, I) rows.
    let gaussianity (draws: int) (seed: int64) (z: torch.Tensor) =
        use g = new torch.Generator(uint64 seed)
        Nfm.Metrics.Gaussianity.Measure(z, g, draws)
