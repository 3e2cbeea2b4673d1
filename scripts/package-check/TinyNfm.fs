/// The tiny NFM run the package check does outside the repository, from the packages alone: a teacher trained a few
/// hundred steps on 2-D data, its NFM coupling encoded on the fly, a student trained a few hundred steps on that
/// coupling, and the W2 of the student's samples against held-out data, checked against the W2 of plain noise.
/// Shared by the scratch project (Program.fs) and the scratch script (check.fsx): the one place to edit when the
/// F# API changes.
module TinyNfm

open TorchSharp
open Nfm.FSharp

/// Runs the pipeline; returns (student W2, noise W2) to held-out data. NFM_CHECK_STEPS sets both step counts.
let run () =
    Native.load ()
    torch.set_num_threads 1
    let steps = match System.Environment.GetEnvironmentVariable "NFM_CHECK_STEPS" with null | "" -> 500 | s -> int s
    let data = Data.toy "moons" 4000L 0L
    let reference = (Data.toy "moons" 1000L 2L).X
    // Teacher: a small 2-D TarFlow (thinner and shallower than the default 2-D shape), no progress output.
    let teacher =
        data |> Teacher.train { Teacher.settings with Width = Some 32; Blocks = Some 4; Layers = Some 1; HeadDim = Some 16
                                                      Batch = Some 256; LearningRate = 2e-3; Steps = steps; SaveEvery = 0 }
    // The NFM coupling: sigma_f estimated once over the data, then each batch encoded with eta on the fly.
    let nfm, sigmaF = teacher |> Couple.teacherWithScale 0.05 data
    // Student on the NFM coupling, sampled with 4 Heun steps.
    let student = data |> Student.train nfm "nfm" { Student.settings with Width = 128; Steps = steps; Ema = 0.99 }
    let x = student |> Student.sample (Heun 4) Quadratic 1000L 1L
    let w2 = Metrics.w2 x reference
    let noise = Metrics.w2 (torch.randn([| 1000L; 2L |], generator = new torch.Generator(3UL))) reference
    printfn "tiny NFM: teacher %d steps (sigma_f %.4f), student %d steps; W2 to held-out data %.4f (plain noise %.4f)" steps sigmaF steps w2 noise
    w2, noise

/// The sanity bound: finite, and below 0.6 times the W2 of plain noise (measured: 0.41 against 0.95).
let passes (w2: float, noise: float) = System.Double.IsFinite w2 && w2 < 0.6 * noise
