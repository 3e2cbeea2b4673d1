namespace Nfm.FSharp

open Nfm
open System
open System.Globalization
open System.IO
open System.Text.Json.Nodes
open System.Threading
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Regress
open Nfm.Training
/// What a teacher run needs besides its data; `Teacher.settings` gives defaults to change with `with`. Shape fields left
/// at None take the default for the data's shape (`TeacherSpec.ForData`: ml-tarflow's MNIST shape for images, a small
/// deep flow for vectors).
type TeacherSettings =
    { TokenSize: int option; Width: int option; Blocks: int option; Layers: int option; HeadDim: int option
      /// Training noise sigma (also the default eta of the NFM coupling).
      Noise: float option
      /// false: shift-only (volume-preserving) steps.
      Affine: bool
      /// Class-conditional on the data's labels (label dropout `LabelDropout` for guidance).
      Conditional: bool
      LabelDropout: float
      Steps: int
      Batch: int option
      LearningRate: float
      /// EMA decay of the weights (0 = off); encoding and sampling then use the averaged weights.
      Ema: float
      Seed: int64
      /// float32, or bfloat16 mixed precision for the training steps' matrix products.
      Precision: Precision
      /// Checkpoint every this many steps (0 = only at the end) when the run options give a checkpoint.
      SaveEvery: int
      Device: string }

/// The checkpoint a teacher run kept as its best by the likelihood of rows held out of its training data.
type TeacherSelection =
    { /// The kept checkpoint (a full teacher checkpoint at `Step`).
      Path: string
      Step: int64
      /// Mean negative log-likelihood of the held-out rows (nats per row) under the kept weights (EMA when kept).
      HeldOutNll: float
      HeldOutRows: int64
      /// The held-out NLL at every checkpoint of the run, in step order (kept beside the best one as PATH.json, so a
      /// resumed run keeps the whole curve).
      History: (int64 * float) list
      /// The whole run's last training loss and training seconds (every process that continued it, summed), which
      /// the kept checkpoint at `Step` does not carry when an earlier step won; NaN where a checkpoint did not record them.
      FinalLoss: float
      TrainSeconds: float }

/// The TarFlow teacher: train (and resume), encode, decode, sample, likelihood, denoising, ml-tarflow interop.
[<RequireQualifiedAccess>]
module Teacher =
    /// Defaults: the data's default shape, 2,000 steps at lr 1e-3, no EMA, seed 0.
    let settings =
        { TokenSize = None; Width = None; Blocks = None; Layers = None; HeadDim = None; Noise = None; Affine = true
          Conditional = false; LabelDropout = 0.1; Steps = 2000; Batch = None; LearningRate = 1e-3; Ema = 0.0; Seed = 0L; Precision = Precision.Float32
          SaveEvery = 500; Device = "cpu" }

    /// The number of classes of labelled data (largest label + 1).
    let classesOf (data: Dataset) =
        match data.Labels with
        | null -> invalidArg "data" "a class-conditional run needs labels with the data"
        | l -> int (l.max().item<int64>()) + 1

    /// The model a run trains for rows of `rowShape`.
    let model (s: TeacherSettings) (rowShape: int64[]) (classes: int) : TeacherSpec =
        let d = TeacherSpec.ForData(rowShape, classes, s.Affine)
        TeacherSpec(rowShape, defaultArg s.TokenSize d.TokenSize, defaultArg s.Width d.Width, defaultArg s.Blocks d.Blocks,
                    defaultArg s.Layers d.LayersPerBlock, defaultArg s.HeadDim d.HeadDim, d.Expansion, s.Affine, classes,
                    defaultArg s.Noise d.NoiseSigma, d.Dequantisation).Validate()

    /// The full description of a teacher run on `data`.
    let spec (s: TeacherSettings) (data: Dataset) : TeacherRunSpec =
        let rowShape = data.X.shape |> Array.skip 1
        let classes = if s.Conditional then classesOf data else 0
        let batch = defaultArg s.Batch (TeacherSpec.DefaultBatch rowShape)
        TeacherRunSpec(model s rowShape classes,
                       TeacherRunSpec.DefaultTraining(s.Steps, batch, s.LearningRate, s.Seed, s.SaveEvery, s.Ema, s.Precision),
                       data.Name, DeviceSpec(s.Device), s.LabelDropout).Validate()

    /// Loads a teacher checkpoint (verified).
    let load (path: string) : TrainedTeacher = TrainedTeacher.Load path

    /// Saves a teacher checkpoint (atomically).
    let save (path: string) (t: TrainedTeacher) = t.Save path

    /// The run of `spec`: continued from `checkpoint` when that holds the same run (more steps allowed), else fresh.
    let start (reporter: Reporter) (checkpoint: string option) (spec: TeacherRunSpec) : TrainedTeacher =
        Runs.resumeOrCreate reporter "teacher" TrainedTeacher.Kind checkpoint (Json.Write spec)
                            (fun c -> Json.Write(c.DescriptionAs<TeacherRunSpec>()))
                            (fun c -> TrainedTeacher.FromCheckpoint(spec, c)) (fun () -> TrainedTeacher.Create spec)

    /// Trains a started teacher (see `start`) on `data` to its description's step count, calling the options' observer
    /// after every step; saves to the options' checkpoint when given (every `SaveEvery` steps of its description and at
    /// the end). Raises OperationCanceledException when the options' token fires (what was trained is saved first).
    let continueIn (o: RunOptions) (data: Dataset) (t: TrainedTeacher) : TrainedTeacher =
        let update = o.Reporter.Stage "teacher" (int64 t.Spec.Training.Steps)
        let trained =
            TeacherTraining.Run(t, data.X, (if t.Spec.Model.IsConditional then data.Labels else null), Option.toObj o.Checkpoint,
                                System.Action<_>(fun p -> update p.Step (sprintf "loss %.4f" p.Loss); o.OnStep p), o.Cancel)
        if o.Cancel.IsCancellationRequested then
            raise (System.OperationCanceledException("interrupted; the teacher trained so far is saved"))
        trained

    /// Trains a started teacher like `continueIn`, scoring every checkpoint it writes (every `SaveEvery` steps and the
    /// last) by the mean NLL of `heldOut` (rows kept out of `data`), and returns the best of them, kept at `bestPath`:
    /// early stopping by held-out likelihood, never by the test set. Needs the options' checkpoint. A resumed run keeps the
    /// earlier best and curve when `bestPath` holds the same run.
    let continueSelecting (heldOut: Dataset) (bestPath: string) (o: RunOptions) (data: Dataset) (t: TrainedTeacher) : TrainedTeacher * TeacherSelection =
        if o.Checkpoint.IsNone then invalidArg "options" "selecting a teacher by held-out likelihood needs a checkpoint path (Checkpoint)"
        if heldOut.X.shape[0] = 0L then invalidArg "heldOut" "the held-out set has no rows"
        let historyPath = bestPath + ".json"
        let labels = if t.Spec.Model.IsConditional then heldOut.Labels else null
        let mutable best =
            if not (File.Exists bestPath) then None
            else
                let c = Nfm.Checkpoints.Checkpoint.Load(bestPath, TrainedTeacher.Kind)
                if not (Runs.same (Json.Write(c.DescriptionAs<TeacherRunSpec>())) (Json.Write t.Spec)) then
                    raise (InvalidDataException(sprintf "%s holds a teacher made with other settings than this run; use another output folder or remove the file" bestPath))
                Some (int64 c.Meta["heldout_step"], Double.Parse(c.Meta["heldout_nll_nats"], CultureInfo.InvariantCulture))
        let mutable history =
            if not (File.Exists historyPath) || best.IsNone then []
            else
                let saved = JsonNode.Parse(File.ReadAllText historyPath)
                [ for p in saved["history"].AsArray() -> p["step"].GetValue<int64>(), p["heldout_nll_nats"].GetValue<float>() ]
                |> List.filter (fun (step, _) -> step <= t.State.Step)
        let score (x: TrainedTeacher) =
            let step = x.State.Step
            if not (history |> List.exists (fun (k, _) -> k = step)) then
                let m = x.InferenceModel()
                let struct (nll, bpd) = Nfm.Invert.Teacher.MeanNll(m, heldOut.X, labels)
                x.ReleaseInferenceModel()
                history <- history @ [ step, nll ]
                let isBest = match best with Some (_, b) -> nll < b | None -> true
                if isBest then
                    let nllText = nll.ToString("R", CultureInfo.InvariantCulture)
                    let rows = string heldOut.X.shape[0]
                    x.Save(bestPath, readOnlyDict [ "heldout_step", string step; "heldout_nll_nats", nllText; "heldout_rows", rows ])
                    best <- Some (step, nll)
                JsonFile.write historyPath
                    (JsonFile.obj [ "heldout_rows", JsonFile.int heldOut.X.shape[0]
                                    "history", JsonFile.arr [ for (k, v) in history -> JsonFile.obj [ "step", JsonFile.int k; "heldout_nll_nats", JsonFile.num v ] :> JsonNode ] ])
                o.Reporter.Message(sprintf "teacher step %d: held-out NLL %.4f nats (%.4f bits/dim)%s" step nll bpd (if isBest then ", the best so far" else ""))
        let update = o.Reporter.Stage "teacher" (int64 t.Spec.Training.Steps)
        let final =
            TeacherTraining.Run(t, data.X, (if t.Spec.Model.IsConditional then data.Labels else null), o.Checkpoint.Value,
                                System.Action<_>(fun p -> update p.Step (sprintf "loss %.4f" p.Loss); o.OnStep p), o.Cancel,
                                System.Action<_>(score))
        if o.Cancel.IsCancellationRequested then
            raise (System.OperationCanceledException("interrupted; the teacher trained so far is saved"))
        let step, nll = best.Value
        let chosen = TrainedTeacher.Load bestPath
        chosen, { Path = bestPath; Step = step; HeldOutNll = nll; HeldOutRows = heldOut.X.shape[0]; History = history
                  FinalLoss = final.State.LastLoss; TrainSeconds = final.State.TrainSeconds }

    /// Trains (or continues, from the options' checkpoint) a teacher on `data` with its settings.
    let trainIn (o: RunOptions) (s: TeacherSettings) (data: Dataset) : TrainedTeacher =
        spec s data |> start o.Reporter o.Checkpoint |> continueIn o data

    /// Trains a teacher on `data` with progress lines on stderr, unsaved: `data |> Teacher.train Teacher.settings`
    /// (`Teacher.trainIn (RunOptions.saved "t.ckpt")` keeps it and continues it).
    let train (s: TeacherSettings) (data: Dataset) : TrainedTeacher = trainIn RunOptions.lines s data

    /// The model to encode and decode with (EMA weights when the run kept them).
    let inference (t: TrainedTeacher) : TeacherModel = t.InferenceModel()

    /// The teacher's identity (hash of description and weights), recorded in pair files.
    let identity (t: TrainedTeacher) = t.Identity()

    let private onDevice (t: TrainedTeacher) (x: torch.Tensor) = x.``to``(t.Spec.Device.ToDevice())
    let private labelsFor (t: TrainedTeacher) (labels: torch.Tensor option) =
        match labels with
        | Some l when t.Spec.Model.IsConditional -> onDevice t l
        | None when t.Spec.Model.IsConditional -> invalidArg "labels" "this teacher is class-conditional: give labels"
        | _ -> null

    /// Data to noise with labels (for a conditional teacher): z and the total log|det dz/dx| per row, under no_grad.
    let encodeWith (labels: torch.Tensor option) (t: TrainedTeacher) (x: torch.Tensor) =
        use _ = torch.no_grad()
        let struct (z, logdet) = Nfm.Invert.Teacher.Encode(inference t, onDevice t x, labelsFor t labels)
        z, logdet

    /// Data to noise: z and the total log|det dz/dx| per row (nats), under no_grad.
    let encode (t: TrainedTeacher) (x: torch.Tensor) = encodeWith None t x

    /// Noise to data with labels and optional classifier-free guidance, KV-cached.
    let decodeWith (labels: torch.Tensor option) (guidance: float option) (t: TrainedTeacher) (z: torch.Tensor) =
        use _ = torch.no_grad()
        Nfm.Invert.Teacher.Decode(inference t, onDevice t z, labelsFor t labels, Option.toNullable guidance, true)

    /// Noise to data (the inverse of encode), KV-cached.
    let decode (t: TrainedTeacher) (z: torch.Tensor) = decodeWith None None t z

    /// `count` samples from the prior decoded, noise drawn with `seed`; labels cycle through the classes of a
    /// conditional teacher.
    let sample (count: int64) (seed: int64) (t: TrainedTeacher) =
        let device = t.Spec.Device.ToDevice()
        use g = new torch.Generator(uint64 seed, device)
        let labels = Data.samplingLabels t.Spec.Model.Classes count None device
        Nfm.Invert.Teacher.Sample(inference t, count, g, Option.toObj labels)

    /// One denoising step with the teacher's own score at its training noise (TarFlow's sample clean-up).
    let denoise (t: TrainedTeacher) (x: torch.Tensor) =
        Nfm.Invert.Teacher.Denoise(inference t, onDevice t x, t.Spec.Model.NoiseSigma)

    /// How Gaussian the teacher's NFM encodings of `data` are (x + eta eps encoded, scaled by `sigmaF`, the eta noise
    /// drawn from `seed`), as an excess over exact N(0, I) samples of the same size (drawn from seed + 1). Measure it
    /// on rows the teacher never trained on.
    let encodingsGaussianity (eta: float) (sigmaF: float) (seed: int64) (data: Dataset) (t: TrainedTeacher) =
        use _ = torch.NewDisposeScope()
        let labels = if t.Spec.Model.IsConditional then data.Labels else null
        let enc = Nfm.Couple.TeacherPairs.Compute(t, data.X, labels, eta, 1, seed, sigmaF = Nullable sigmaF)
        Metrics.gaussianity Nfm.Metrics.Gaussianity.DefaultDraws (seed + 1L) enc.X0[0L]

    /// Mean negative log-likelihood of rows (nats per row) and bits per dimension (for 8-bit data).
    let nll (t: TrainedTeacher) (data: Dataset) =
        let struct (nats, bpd) = Nfm.Invert.Teacher.MeanNll(inference t, data.X, data.Labels)
        nats, bpd

    /// Reads an ml-tarflow state_dict (.pt, .pth or .safetensors) as a teacher (sizes inferred from the tensors).
    let importTarflow (options: ImportOptions) (path: string) : TrainedTeacher = TarFlowStateDict.Import(path, options)

    /// A pretrained teacher from a file: a teacher checkpoint of this project, or ml-tarflow weights (a state_dict as
    /// .pt, .pth or .safetensors; sizes inferred from the tensors).
    let read (path: string) : TrainedTeacher =
        if Nfm.Checkpoints.Checkpoint.IsCheckpoint path then load path
        else importTarflow (ImportOptions()) path

    /// Writes a teacher as an ml-tarflow state_dict (.safetensors, .pt or .pth by the extension).
    let exportTarflow (path: string) (t: TrainedTeacher) = TarFlowStateDict.Export(t, path)
