namespace Nfm.FSharp

open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Regress
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

    /// Reads a .npy array.
    let readNpy (path: string) = Npy.Read path

    /// Writes a tensor as .npy (atomically).
    let writeNpy (path: string) (t: torch.Tensor) = Npy.Write(path, t)

/// What a student run needs besides its data and coupling; `Student.settings` gives defaults to change with `with`.
type StudentSettings =
    { Width: int; Depth: int; Steps: int; Batch: int; LearningRate: float; Warmup: int; Ema: float
      Seed: int64; Times: Times; Device: string; Conditional: bool; SaveEvery: int }

/// Flow-matching students: train on a coupling, sample by integrating from noise.
[<RequireQualifiedAccess>]
module Student =
    /// Defaults sized for 2-D data on a CPU.
    let settings =
        { Width = 256; Depth = 3; Steps = 2000; Batch = 256; LearningRate = 1e-3; Warmup = 0; Ema = 0.999
          Seed = 0L; Times = UniformTimes; Device = "cpu"; Conditional = false; SaveEvery = 0 }

    /// The full description of a run on a data set with a named coupling.
    let spec (s: StudentSettings) (couplingName: string) (data: Dataset) : StudentSpec =
        let shape = data.X.shape |> Array.skip 1
        let classes =
            if not s.Conditional then 0
            else
                match data.Labels with
                | null -> invalidArg "data" "a conditional student needs labels with the data"
                | l -> int (l.max().item<int64>()) + 1
        StudentSpec(VelocityNetSpec(shape, s.Width, s.Depth, Activation.Silu, 32, classes), Spec.path s.Times,
                    TrainingSpec(s.Steps, s.Batch, s.LearningRate, s.Warmup, Seed = s.Seed, EmaDecay = s.Ema, SaveEvery = s.SaveEvery),
                    couplingName, data.Name, DeviceSpec(s.Device))

    /// Trains a fresh student on a coupling: `data |> Student.train Couple.ot "ot" settings`.
    let train (coupling: Nfm.Couple.Coupling) (couplingName: string) (s: StudentSettings) (data: Dataset) : Student =
        let st = Student.Create(spec s couplingName data)
        StudentTraining.Run(st, data.X, (if s.Conditional then data.Labels else null), coupling)

    /// Trains with a progress callback and a checkpoint path.
    let trainWith (progress: TrainingProgress -> unit) (checkpoint: string option) (coupling: Nfm.Couple.Coupling)
                  (st: Student) (data: Dataset) : Student =
        StudentTraining.Run(st, data.X, (if st.Spec.Net.Classes > 0 then data.Labels else null), coupling,
                            Option.toObj checkpoint, System.Action<_>(progress))

    /// count samples with a solver on a grid, noise drawn with seed; EMA weights are used when the run kept them.
    let sample (solver: Solver) (grid: Grid) (count: int64) (seed: int64) (st: Student) : torch.Tensor =
        let device = st.Spec.Device.ToDevice()
        use g = new torch.Generator(uint64 seed, device)
        let r = StudentSampler.Sample(st.SamplingNet(), st.Spec.Net.InputShape, count, Spec.solver grid solver, g, device)
        r.X

    /// Loads a student checkpoint.
    let load (path: string) = Student.Load path

    /// Saves a student checkpoint (atomically).
    let save (path: string) (st: Student) = st.Save path

/// Sample quality.
[<RequireQualifiedAccess>]
module Metrics =
    /// Exact W2 between two equal-size point sets.
    let w2 (a: torch.Tensor) (b: torch.Tensor) = Nfm.Metrics.Wasserstein.W2(a, b)

    /// MMD with the default RBF kernel mixture.
    let mmd (a: torch.Tensor) (b: torch.Tensor) = Nfm.Metrics.Mmd.Rbf(a, b)
