/// The command-line surface (../shared CLI.md): names and options users script against stay stable.
module Nfm.Cli.Args

open Argu

type DemoArgs =
    | Out of dir: string
    | Steps of int
    | Seed of int
    | Json of file: string
    | Workers of int
    | [<Hidden>] Baselines_Only of names: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Workers _ -> "1 or 2 (default 2 on a machine with two or more cores): with 2, the students that need no teacher train in a second process while the teacher trains, each process on one libtorch thread; the figures are the same."
            | Baselines_Only _ -> "internal: train only these methods' students (the second process of --workers 2)."
            | Out _ -> "folder for results.json and the PNG plots (default: demo-out)."
            | Steps _ -> "training steps for the teacher and each student (default: the quick budget)."
            | Seed _ -> "random seed (default 0)."
            | Json _ -> "also write the results JSON to this file."

type CompareArgs =
    | [<Mandatory>] Data of spec: string
    | [<Mandatory>] Out of dir: string
    | Budget of string
    | Student_Steps of int
    | Labels of file: string
    | Seed of int
    | Grid of string
    | Eta of list: string
    | Teacher of file: string
    | Conditional
    | Guidance of list: string
    | Guidance_Per_Steps
    | Guidance_From of file: string
    | Precision of string
    | Classifier of file: string
    | Workers of int
    | Logdir of dir: string
    | Json of file: string
    | Student_Net of string
    | Student_Width of int
    | Student_Depth of int
    | [<Hidden>] Baselines_Only of names: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Baselines_Only _ -> "internal: train only these methods' students (the second process of --workers 2)."
            | Student_Net _ -> "images: the students' network, unet (default) or sit (the transformer: 4 x 4 patches, adaLN-Zero time and label conditioning; width 128, 4 blocks by default); vectors always use the MLP."
            | Student_Width _ -> "images: the students' width (U-Net base channels, default 16; SiT hidden size, a multiple of 32, default 128)."
            | Student_Depth _ -> "images: the students' depth (U-Net levels, default 3; SiT blocks, default 4)."
            | Workers _ -> "1 (default) or 2: with 2, the students that need no teacher train in a second process while the teacher trains, each process on one libtorch thread; the figures are the same."
            | Teacher _ -> "a pretrained teacher to distil instead of training one: a teacher checkpoint, or ml-tarflow weights (.safetensors, .pt, .pth); its figures are measured, the smaller teacher's student is left out."
            | Conditional -> "class-conditional teacher and students on the data's labels (label dropout 0.1), each sampled with classifier-free guidance at every --guidance weight; rows at each method's best weight, every curve in results.json."
            | Guidance _ -> "with --conditional: the guidance weights to sweep, comma-separated (default 0,0.5,1,2,3)."
            | Guidance_Per_Steps -> "with --conditional: each row at the best guidance weight for its step count, not at the method's one best weight."
            | Guidance_From _ -> "with --conditional: sample each method and step count (and the teacher) at the one weight its row has in this results.json (a comparison on validation digits), instead of sweeping --guidance on the digits that report."
            | Precision _ -> "float32 or bfloat16: mixed precision for every training step of teachers and students (evaluation stays float32); default float32 for vectors; for images bfloat16 where this machine's bfloat16 matmul is measured at least 2x float32's (AMX), else float32 (printed at the start)."
            | Classifier _ -> "MNIST: the FD-MNIST feature classifier checkpoint (default fd-classifier.ckpt; trained with the fixed recipe when missing)."
            | Data _ -> "data: a built-in 2-D set (checkerboard, moons, 8gaussians, 2spirals, rings), mnist:DIR, images:FOLDER[?size=N&channels=C] (PNG/JPEG, one subfolder per class) or FILE.npy."
            | Out _ -> "output folder (results.json, results.md, quality.png, sample grids)."
            | Budget _ -> "quick | standard | N (teacher steps; students get the same scale)."
            | Student_Steps _ -> "every student's training steps instead of the budget's (the same for every coupling; recorded in experiment.json as the budget's student_steps)."
            | Labels _ -> "int64 labels .npy for FILE.npy data."
            | Seed _ -> "random seed (default 0)."
            | Grid _ -> "time grid for sampling: quadratic (default) or uniform."
            | Eta _ -> "NFM coupling noise eta, or a comma-separated list (e.g. 0.02,0.05,0.1: one NFM student per value, named nfm-eta<value>; the first is the one the claims use). Default: the teacher's training sigma."
            | Logdir _ -> "write TensorBoard event files to this folder (loss, learning rate, gradient norm, skipped steps; teachers' held-out NLL; the metric against sampling steps; sample grids)."
            | Json _ -> "also write the results JSON to this file."

type StudentTrainArgs =
    | [<Mandatory>] Data of spec: string
    | [<Mandatory>] Coupling of string
    | [<Mandatory>] Out of file: string
    | Labels of file: string
    | Steps of int
    | Batch of int
    | Seed of int
    | Save_Every of int
    | Resume
    | Lr of float
    | Warmup of int
    | Width of int
    | Net of string
    | Depth of int
    | Time_Sampling of string
    | Ema of float
    | Conditional
    | N of int
    | Device of string
    | Precision of string
    | Logdir of dir: string
    | Json of file: string
    | Loss_Png of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Precision _ -> "float32 (default) or bfloat16: mixed precision, the network's matrix products in bfloat16 on float32 weights; sampling stays float32."
            | Data _ -> "training data: checkerboard|moons|8gaussians|2spirals|rings, mnist:DIR, images:FOLDER[?size=N&channels=C] or FILE.npy."
            | Coupling _ -> "independent | ot | sinkhorn:EPS | teacher:PAIRS | teacher:T.ckpt | reflow:S.ckpt."
            | Out _ -> "student checkpoint to write (.ckpt)."
            | Labels _ -> "int64 labels .npy for FILE.npy data."
            | Steps _ -> "training steps (default 2000)."
            | Batch _ -> "batch size (default 256)."
            | Seed _ -> "random seed (default 0)."
            | Save_Every _ -> "steps between checkpoints (default 0 = only at the end)."
            | Resume -> "continue from the checkpoint at --out."
            | Lr _ -> "peak learning rate (default 1e-3)."
            | Warmup _ -> "linear warm-up steps (default 0)."
            | Width _ -> "hidden width (default 256)."
            | Net _ -> "the velocity network: mlp (default; Width x Depth), unet (images; Width = base channels, Depth = levels) or sit (images: the transformer, Width = hidden size, a multiple of 32, Depth = blocks)."
            | Depth _ -> "hidden layers (default 3)."
            | Time_Sampling _ -> "uniform (default) or logit-normal[:MEAN:STD]."
            | Ema _ -> "EMA decay of the weights used for sampling (default 0.999; 0 = off)."
            | Conditional -> "class-conditional student (needs labels); label dropout 0.1."
            | N _ -> "rows to draw from a built-in 2-D set (default 20000)."
            | Device _ -> "cpu (default) or cuda."
            | Logdir _ -> "write TensorBoard event files to this folder (loss, learning rate, gradient norm, skipped steps)."
            | Json _ -> "write the training figures (final loss, steps/s) to this JSON file."
            | Loss_Png _ -> "draw the loss of every step of this run against the step to this PNG."

type StudentSampleArgs =
    | [<Mandatory>] Student of file: string
    | [<Mandatory>] Count of int
    | [<Mandatory>] Out of file: string
    | Nfe of int
    | Solver of string
    | Grid of string
    | Cfg of float
    | Label of int
    | Rtol of float
    | Atol of float
    | Seed of int
    | Png of file: string
    | Json of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Student _ -> "student checkpoint (.ckpt)."
            | Count _ -> "number of samples."
            | Out _ -> "samples .npy to write."
            | Nfe _ -> "solver steps (default 4); dopri5 ignores it."
            | Solver _ -> "euler | midpoint | heun | rk4 | dopri5 (default euler)."
            | Grid _ -> "uniform | quadratic (default quadratic: small steps near the data end)."
            | Cfg _ -> "classifier-free guidance weight for conditional students (default 0)."
            | Label _ -> "class to sample for conditional students (default: cycle through classes)."
            | Rtol _ -> "dopri5 relative tolerance (default 1e-5)."
            | Atol _ -> "dopri5 absolute tolerance (default 1e-5)."
            | Seed _ -> "random seed of the noise (default 0)."
            | Png _ -> "also write a PNG (scatter for 2-D, grid for images)."
            | Json _ -> "write NFE and timing to this JSON file."

type StudentArgs =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<StudentTrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Sample of ParseResults<StudentSampleArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train a flow-matching student on a coupling."
            | Sample _ -> "sample a student by integrating its ODE from noise."

type EvalArgs =
    | [<Mandatory>] Samples of file: string
    | [<Mandatory>] Reference of spec: string
    | Metric of string
    | Classifier of file: string
    | Max_N of int
    | Seed of int
    | Json of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Samples _ -> "samples .npy."
            | Reference _ -> "reference data: a built-in set, mnist:DIR (its test split) or FILE.npy."
            | Metric _ -> "w2 (default) | mmd (squared MMD, RBF mixture) | fd (FD-MNIST: Frechet distance of CNN features; not Inception FID)."
            | Classifier _ -> "fd: the feature classifier checkpoint (default fd-classifier.ckpt); trained with the fixed recipe on the reference folder's train split when the file does not exist."
            | Max_N _ -> "use at most this many points of each set (default 2000)."
            | Seed _ -> "seed for drawing built-in reference sets and subsets (default 0)."
            | Json _ -> "write the figure to this JSON file."

type BenchArgs =
    | [<MainCommand; ExactlyOnce>] Name of string
    | Data of spec: string
    | Budget of string
    | Out of dir: string
    | Workers of int
    | Precision of string
    | Json of file: string
    | Teacher of file: string
    | Rounds of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "latency: a teacher to time against its student (repeatable; checkpoint or ml-tarflow weights; default the released models/mnist-teacher-conditional and models/mnist-teacher)."
            | Rounds _ -> "latency: rounds of timing (default 5); each round times 9 student samples and 3 teacher samples per setting and takes their medians."
            | Precision _ -> "matmul, student-nets, teacher-train, memory: float32 (default) or bfloat16 (mixed precision training steps; the matmul peak in the same dtype); mnist-compare: bfloat16 or float32 (default: as compare, bfloat16 where the bfloat16 matmul is measured at least 2x float32's)."
            | Workers _ -> "mnist-compare: 1 (default: one worker on every libtorch thread; the teacher is the longest chain and its bfloat16 step scales 1.94x on two threads) or 2 (the students that need no teacher train on a second thread while the teacher trains)."
            | Name _ -> "ot | train-2d | matmul | student-nets | teacher-train | teacher-sample | all; teacher-profile (where a teacher step's time goes); latency (one sample: the student at 1, 2 and 4 steps, guided and not, against the KV-cached teacher, on 1 and 2 threads); memory (2,000 training steps, resident memory); mnist-compare (long: compare on MNIST)."
            | Data _ -> "mnist-compare: the MNIST folder as mnist:DIR (default mnist:../shared/data/mnist)."
            | Budget _ -> "mnist-compare: quick | standard | N (default standard)."
            | Out _ -> "mnist-compare: output folder (default results/mnist-compare)."
            | Json _ -> "JSON file for the figures (default bench-NAME.json)."

type TeacherTrainArgs =
    | [<Mandatory>] Data of spec: string
    | [<Mandatory>] Out of file: string
    | Labels of file: string
    | Steps of int
    | Batch of int
    | Seed of int
    | Save_Every of int
    | Resume
    | Lr of float
    | Token_Size of int
    | Width of int
    | Blocks of int
    | Layers of int
    | Head_Dim of int
    | Noise of float
    | Shift_Only
    | Conditional
    | Ema of float
    | Eval_Every of int
    | N of int
    | Device of string
    | Precision of string
    | Logdir of dir: string
    | Json of file: string
    | Loss_Png of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Precision _ -> "float32 (default) or bfloat16: mixed precision, the transformer's matrix products in bfloat16 on float32 weights; NLL, encoding and sampling stay float32."
            | Data _ -> "training data: a built-in 2-D set, mnist:DIR, images:FOLDER[?size=N&channels=C] or FILE.npy."
            | Out _ -> "teacher checkpoint to write (.ckpt)."
            | Labels _ -> "int64 labels .npy for FILE.npy data."
            | Steps _ -> "training steps (default 2000)."
            | Batch _ -> "batch size (default 256 for 2-D data, 64 for images)."
            | Seed _ -> "random seed (default 0)."
            | Save_Every _ -> "steps between checkpoints (default 500)."
            | Resume -> "continue from the checkpoint at --out."
            | Lr _ -> "peak learning rate, cosine decay after warm-up (default 1e-3)."
            | Token_Size _ -> "values per token for vectors (default 1), patch size for images (default 4)."
            | Width _ -> "transformer width (default 64 for 2-D, 128 for images)."
            | Blocks _ -> "flow blocks K (default 8 for 2-D, 4 for images)."
            | Layers _ -> "transformer layers per block (default 2 for 2-D, 4 for images)."
            | Head_Dim _ -> "channels per attention head (default 32 for 2-D, 64 for images)."
            | Noise _ -> "training noise sigma (default 0.05 for 2-D, 0.1 for images)."
            | Shift_Only -> "volume-preserving shift-only steps instead of affine."
            | Conditional -> "class-conditional teacher (needs labels); label dropout 0.1."
            | Ema _ -> "EMA decay of the weights used for encoding and sampling (default 0 = off)."
            | Eval_Every _ -> "steps between held-out NLL reports and sample grids (default 0 = only at the end)."
            | N _ -> "rows to draw from a built-in 2-D set (default 20000)."
            | Device _ -> "cpu (default) or cuda."
            | Logdir _ -> "write TensorBoard event files to this folder (loss, learning rate, gradient norm, skipped steps; held-out NLL and bits/dim at --eval-every; the sample grid)."
            | Json _ -> "write the training figures to this JSON file."
            | Loss_Png _ -> "draw the loss of every step of this run against the step to this PNG."

type TeacherEncodeArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Input of file: string
    | [<Mandatory>] Out of file: string
    | Labels of file: string
    | Logdet of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint."
            | Input _ -> "data .npy (same shape as the teacher's input)."
            | Out _ -> "noise z .npy to write."
            | Labels _ -> "int64 labels .npy for a conditional teacher."
            | Logdet _ -> "also write the total log-determinant per sample (nats) to this .npy."

type TeacherDecodeArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Input of file: string
    | [<Mandatory>] Out of file: string
    | Labels of file: string
    | Guidance of float
    | Denoise
    | Uncached
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint."
            | Input _ -> "noise z .npy."
            | Out _ -> "data .npy to write."
            | Labels _ -> "int64 labels .npy for a conditional teacher."
            | Guidance _ -> "classifier-free guidance weight on a and b (conditional teachers)."
            | Denoise -> "one denoising step with the teacher's training sigma."
            | Uncached -> "decode without the key/value cache (slow; for checking)."

type TeacherSampleArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Count of int
    | [<Mandatory>] Out of file: string
    | Png of file: string
    | Denoise
    | Label of int
    | Guidance of float
    | Seed of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint."
            | Count _ -> "number of samples."
            | Out _ -> "samples .npy to write."
            | Png _ -> "also write a PNG (scatter for 2-D, grid for images)."
            | Denoise -> "one denoising step with the teacher's training sigma."
            | Label _ -> "class to sample (conditional teachers; default: cycle through classes)."
            | Guidance _ -> "classifier-free guidance weight (conditional teachers)."
            | Seed _ -> "random seed (default 0)."

type TeacherNllArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Data of spec: string
    | Labels of file: string
    | N of int
    | Seed of int
    | Json of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint."
            | Data _ -> "data: a built-in 2-D set, mnist:DIR (test split) or FILE.npy."
            | Labels _ -> "int64 labels .npy for FILE.npy data."
            | N _ -> "rows to draw from a built-in set (default 2000)."
            | Seed _ -> "seed for built-in sets (default 1: not the training draw)."
            | Json _ -> "write the figures to this JSON file."

type TeacherArgs =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TeacherTrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Encode of ParseResults<TeacherEncodeArgs>
    | [<CliPrefix(CliPrefix.None)>] Decode of ParseResults<TeacherDecodeArgs>
    | [<CliPrefix(CliPrefix.None)>] Sample of ParseResults<TeacherSampleArgs>
    | [<CliPrefix(CliPrefix.None)>] Nll of ParseResults<TeacherNllArgs>
    | [<CliPrefix(CliPrefix.None)>] Import of ParseResults<Nfm.Cli.InteropArgs.TeacherImportArgs>
    | [<CliPrefix(CliPrefix.None)>] Export of ParseResults<Nfm.Cli.InteropArgs.TeacherExportArgs>
    | [<CliPrefix(CliPrefix.None)>] Release of ParseResults<Nfm.Cli.InteropArgs.TeacherReleaseArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train a TarFlow teacher by maximum likelihood."
            | Encode _ -> "data to noise (one parallel pass), with log-determinants."
            | Decode _ -> "noise to data (sequential, key/value cached)."
            | Sample _ -> "sample the teacher."
            | Nll _ -> "negative log-likelihood (and bits per dimension for images) on data."
            | Import _ -> "import a PyTorch state_dict of Apple's ml-tarflow (.pt or .safetensors) as a teacher checkpoint."
            | Export _ -> "export a teacher as an ml-tarflow state_dict (.safetensors or .pt)."
            | Release _ -> "release a comparison's teacher: EMA weights as ml-tarflow safetensors with a model card whose NLL is measured on the file."

type CoupleArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Data of spec: string
    | [<Mandatory>] Out of file: string
    | Eta of float
    | Shard of spec: string
    | Draws of int
    | Labels of file: string
    | N of int
    | Seed of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint."
            | Data _ -> "the data to pair (as given to student train)."
            | Out _ -> "pair file to write (for shards: one file per shard in one folder, e.g. pairs/part-0.pairs)."
            | Eta _ -> "data noise eta before encoding (default: the teacher's training sigma; 0 = deterministic)."
            | Shard _ -> "I/N: compute shard I of N (0-based); shards together equal one run."
            | Draws _ -> "noise draws per data row (default 1)."
            | Labels _ -> "int64 labels .npy for FILE.npy data."
            | N _ -> "rows of a built-in 2-D set (default 20000, as student train)."
            | Seed _ -> "seed of the data draw and the noise (default 0)."

type ReportReadmeArgs =
    | File of path: string
    | Check
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | File _ -> "a markdown file whose generated blocks are rewritten (repeatable; default: README.md, CONTRIBUTING.md and docs/*.md); paths in its markers are relative to the repository root, links are written relative to the file."
            | Check -> "write nothing; fail, naming the first stale block, when a block differs from what its JSON gives."

type ReportDiffArgs =
    | [<Mandatory>] Expected of file: string
    | [<Mandatory>] Actual of file: string
    | Tolerance of float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Expected _ -> "the saved results.json (e.g. results/demo/results.json)."
            | Actual _ -> "the results.json of a fresh run."
            | Tolerance _ -> "largest allowed difference of a row's value or a teacher figure (default 1e-6); timings are not compared."

type ReportArgs =
    | [<CliPrefix(CliPrefix.None)>] Readme of ParseResults<ReportReadmeArgs>
    | [<CliPrefix(CliPrefix.None)>] Diff of ParseResults<ReportDiffArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Readme _ -> "regenerate the tables between '<!-- generated: KIND PATH -->' and '<!-- end generated -->' markers from the results JSON (KIND: methods, teachers, students, claims, guidance, seeds, recipes)."
            | Diff _ -> "compare a fresh run's results.json with a saved one; exit 1 listing every row that differs."

type NfmArgs =
    | [<CliPrefix(CliPrefix.None)>] Demo of ParseResults<DemoArgs>
    | [<CliPrefix(CliPrefix.None)>] Compare of ParseResults<CompareArgs>
    | [<CliPrefix(CliPrefix.None)>] Student of ParseResults<StudentArgs>
    | [<CliPrefix(CliPrefix.None)>] Teacher of ParseResults<TeacherArgs>
    | [<CliPrefix(CliPrefix.None)>] Couple of ParseResults<CoupleArgs>
    | [<CliPrefix(CliPrefix.None)>] Eval of ParseResults<EvalArgs>
    | [<CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None)>] Report of ParseResults<ReportArgs>
    | Version
    | Verbose
    | Threads of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Threads _ -> "libtorch intra-op threads (default: libtorch's choice; demo and 2-D compare use 1, faster for small models)."
            | Demo _ -> "the whole method on a built-in 2-D set, in a few minutes."
            | Compare _ -> "students on independent / OT / NFM couplings with equal budgets; quality against steps."
            | Student _ -> "train or sample a flow-matching student."
            | Teacher _ -> "train, import, export, encode, decode, sample or score a TarFlow teacher."
            | Couple _ -> "precompute NFM pairs (noise = teacher encoding of the data) for a data set."
            | Eval _ -> "quality of samples against reference data (w2, mmd, fd)."
            | Bench _ -> "benchmarks: print figures and write JSON."
            | Report _ -> "README tables from the results JSON, and a fresh run's figures against saved ones."
            | Version -> "print the version and the git commit this build was made from."
            | Verbose -> "print stack traces on errors."

