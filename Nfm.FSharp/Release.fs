namespace Nfm.FSharp

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open Nfm.Data
open Nfm.Descriptions

/// A released teacher: the inference (EMA) weights of a comparison's teacher as an ml-tarflow `.safetensors` file,
/// with a model card (card.json, and README.md made from it) whose likelihood is measured on the file itself.
[<RequireQualifiedAccess>]
module Release =
    /// The weights' file name inside a release folder.
    let weightsFile = "teacher.safetensors"

    /// The card's file name inside a release folder.
    let cardFile = "card.json"

    let private sha256 (path: string) =
        use s = File.OpenRead path
        Convert.ToHexString(SHA256.HashData s).ToLowerInvariant()

    /// Releases the teacher of the comparison in `experimentDir` (its held-out choice teacher-best.ckpt when the budget
    /// made one, else teacher.ckpt) into `outDir`: teacher.safetensors (EMA weights in ml-tarflow's layout, with the
    /// teacher's description), card.json and README.md. The checkpoint must be the teacher results.json describes
    /// (same identity); the NLL, bits/dim and the encodings' Gaussianity on the comparison's reference set are measured
    /// on the written file, read back. When the folder no longer holds the checkpoint (a finished run keeps none) but
    /// `outDir` holds the released file of that same teacher, the card is measured again on that file, its training
    /// record taken from the card already there. Returns the card.
    let teacher (experimentDir: string) (outDir: string) : JsonObject =
        let resultsPath = Path.Combine(experimentDir, "results.json")
        let describedPath = Path.Combine(experimentDir, "experiment.json")
        for p in [ resultsPath; describedPath ] do
            if not (File.Exists p) then raise (FileNotFoundException(sprintf "'%s' not found: release a finished comparison" p, p))
        let results = JsonNode.Parse(File.ReadAllText(resultsPath))
        let described = JsonNode.Parse(File.ReadAllText(describedPath))
        let best = Path.Combine(experimentDir, "teacher-best.ckpt")
        let checkpoint = if File.Exists best then best else Path.Combine(experimentDir, "teacher.ckpt")
        let t = results["teacher"]
        let recorded = t["id"].GetValue<string>()
        let weights = Path.Combine(outDir, weightsFile)
        let cardPath = Path.Combine(outDir, cardFile)
        let training, selectedStep =
            if File.Exists checkpoint then
                let trained = Teacher.load checkpoint
                if trained.Identity() <> recorded then
                    raise (InvalidDataException(sprintf "%s is teacher %s, but %s describes teacher %s" checkpoint (trained.Identity()) resultsPath recorded))
                Directory.CreateDirectory outDir |> ignore
                Teacher.exportTarflow weights trained
                trained.Spec.Training, trained.State.Step
            elif File.Exists weights && File.Exists cardPath then
                let previous = JsonNode.Parse(File.ReadAllText cardPath)
                if previous["run_identity"].GetValue<string>() <> recorded then
                    raise (InvalidDataException(sprintf "%s was released from teacher %s, but %s describes teacher %s" cardPath (previous["run_identity"].GetValue<string>()) resultsPath recorded))
                Json.Read<TrainingSpec>(previous["training"].ToJsonString()), previous["selected_step"].GetValue<int64>()
            else raise (FileNotFoundException(sprintf "no teacher checkpoint in '%s' and no released teacher in '%s'" experimentDir outDir, checkpoint))
        let released = Teacher.read weights
        let budget = described["budget"]
        let evalCount = budget["eval_count"].GetValue<int>()
        let data = DataSpec.FromJson(described["data"].ToJsonString())
        let _, referenceSet = Experiment.split data evalCount
        let nll, bpd = Teacher.nll released referenceSet
        let m = released.Spec.Model
        let hash = sha256 weights
        let bytes = FileInfo(weights).Length
        let parameters = released.Model.parameters() |> Seq.sumBy (fun p -> p.numel())
        let num (n: JsonNode) = if isNull n then nan else n.GetValue<float>()
        // How Gaussian the file's NFM encodings (at the comparison's eta, scaled by its sigma_f) of the reference rows,
        // which the teacher never trained on, are: an excess over the floor of exact N(0, I) samples of that size.
        let eta, sigmaF = num results["nfm"].["eta"], num results["nfm"].["sigma_f"]
        let gaussianity = Teacher.encodingsGaussianity eta sigmaF 0L referenceSet released
        let card =
            JsonFile.obj
                [ "name", JsonFile.str (sprintf "TarFlow teacher for %s" data.Source)
                  "weights", JsonFile.str weightsFile
                  "weights_sha256", JsonFile.str hash
                  "weights_bytes", JsonFile.int bytes
                  "identity", JsonFile.str (released.Identity())
                  "run_identity", JsonFile.str recorded
                  "parameters", JsonFile.int parameters
                  "model", JsonNode.Parse(Json.Write m)
                  "training", JsonNode.Parse(Json.Write training)
                  "selected_step", JsonFile.int selectedStep
                  "data", JsonNode.Parse(data.ToJson())
                  "reference_rows", JsonFile.int referenceSet.X.shape[0]
                  "test_nll_nats", JsonFile.num nll
                  "test_bpd", JsonFile.num bpd
                  "heldout_train_nll_nats", (match t["heldout_train_nll_nats"] with null -> JsonFile.str "n/a" | v -> v.DeepClone())
                  "heldout_train_rows", (match t["heldout_train_rows"] with null -> JsonFile.int 0L | v -> v.DeepClone())
                  "metric", results["metric"].DeepClone()
                  "value", JsonFile.num (num t["value"])
                  "value_denoised", JsonFile.num (num t["value_denoised"])
                  "nfm_eta", JsonFile.num eta
                  "sigma_f", JsonFile.num sigmaF
                  "encodings_gaussianity", Report.gaussianityJson gaussianity
                  "command", results["command"].DeepClone()
                  "commit", results["commit"].DeepClone()
                  "released_by_commit", JsonFile.str (Provenance.commit ()) ]
        JsonFile.write (Path.Combine(outDir, cardFile)) card
        let tr = training
        let metric = results["metric"].GetValue<string>()
        let lines =
            [ sprintf "# TarFlow teacher for %s" data.Source
              ""
              sprintf "Made by `nfm teacher release` from the comparison in `%s`; every figure below is in [card.json](card.json)." experimentDir
              ""
              "## The model"
              ""
              sprintf "- TarFlow (autoregressive normalizing flow): %d blocks x %d layers, width %d, head dim %d, %d tokens of %d values (%dx%d patches), %s, %s; %d parameters."
                  m.Blocks m.LayersPerBlock m.Width m.HeadDim m.Tokens m.TokenDim m.TokenSize m.TokenSize
                  (if m.Affine then "affine" else "shift-only") (if m.IsConditional then sprintf "%d classes" m.Classes else "unconditional") parameters
              sprintf "- `%s`: the EMA weights only, in ml-tarflow's layout (`transformer_flow.Model` names), with the teacher's description in the metadata; %.1f MB, SHA-256 `%s`."
                  weightsFile (float bytes / 1e6) hash
              sprintf "- Training noise sigma %g (%s dequantisation), data scaled to [-1, 1]." m.NoiseSigma (m.Dequantisation.ToString().ToLowerInvariant())
              ""
              "## How it was trained"
              ""
              sprintf "- Command: `%s`, commit %s." (results["command"].GetValue<string>()) (results["commit"].GetValue<string>())
              sprintf "- Budget: %d steps at batch %d (%d samples), peak lr %g with %d warm-up steps and cosine decay, AdamW (betas %g, %g), gradient clip %g, EMA %g, %s."
                  tr.Steps tr.Batch (int64 tr.Steps * int64 tr.Batch) tr.LearningRate tr.WarmupSteps tr.Beta1 tr.Beta2 tr.GradClip tr.EmaDecay (tr.Precision.Name())
              (match t["heldout_train_rows"] with
               | null -> sprintf "- The checkpoint at step %d (the last)." selectedStep
               | rows ->
                   sprintf "- The checkpoint at step %d, chosen by the NLL (%.3f nats) of %d training digits held out of the teacher's data; the test digits were not used to choose anything."
                       selectedStep (num t["heldout_train_nll_nats"]) (rows.GetValue<int64>()))
              ""
              "## Figures"
              ""
              sprintf "Measured on the %d reference rows of the comparison (%s)." referenceSet.X.shape[0]
                  (if DataSource.KindOf data.Source = DataSourceKind.Mnist then "the test digits" else "held-out rows")
              ""
              "| figure | value |"
              "|---|---:|"
              sprintf "| NLL (nats per image), measured on this file | %.3f |" nll
              sprintf "| bits/dim, measured on this file | %.4f |" bpd
              sprintf "| %s of 2,000 samples | %.2f |" (if metric = "fd" then "FD-MNIST" else metric) (num t["value"])
              sprintf "| %s after one denoising step | %.2f |" (if metric = "fd" then "FD-MNIST" else metric) (num t["value_denoised"])
              ""
              sprintf "How Gaussian its NFM encodings are (eta %g, scaled by sigma_f %.4f), measured on this file with the %d reference rows, which the teacher never trained on, against %d samples of exact N(0, I) of the same size (%d x %d):"
                  eta sigmaF gaussianity.Count gaussianity.Draws gaussianity.Count gaussianity.Dimension
              ""
              "| figure | encodings | exact N(0, I) |"
              "|---|---:|---:|"
              sprintf "| Fréchet distance to N(0, I) | %.2f | %.2f ± %.2f |" gaussianity.Statistic gaussianity.FloorMean gaussianity.FloorSpread
              sprintf "| excess over the exact samples | %.2f ± %.2f | 0 |" gaussianity.Excess gaussianity.Spread
              sprintf "| covariance eigenvalues | %.3f .. %.3f | %.3f .. %.3f |" gaussianity.Gap.MinEigenvalue gaussianity.Gap.MaxEigenvalue gaussianity.FloorGap.MinEigenvalue gaussianity.FloorGap.MaxEigenvalue
              sprintf "| per-dimension means | %.3f .. %.3f | %.3f .. %.3f |" gaussianity.Dimensions.MeanMin gaussianity.Dimensions.MeanMax gaussianity.FloorDimensions.MeanMin gaussianity.FloorDimensions.MeanMax
              sprintf "| per-dimension variances | %.3f .. %.3f | %.3f .. %.3f |" gaussianity.Dimensions.VarianceMin gaussianity.Dimensions.VarianceMax gaussianity.FloorDimensions.VarianceMin gaussianity.FloorDimensions.VarianceMax
              sprintf "| per-dimension excess kurtosis | %.3f .. %.3f | %.3f .. %.3f |" gaussianity.Dimensions.KurtosisMin gaussianity.Dimensions.KurtosisMax gaussianity.FloorDimensions.KurtosisMin gaussianity.FloorDimensions.KurtosisMax
              ""
              "The raw Fréchet distance is biased by the sample size (exact N(0, I) samples of this size read about the same); the excess is what the encodings add."
              ""
              "FD-MNIST is the Fréchet distance of a small MNIST classifier's features (docs/cli.md in the repository), not Inception FID."
              ""
              "## Use"
              ""
              "```bash"
              sprintf "bash scripts/nfm.sh compare --data %s --teacher %s%s --out runs/distil   # students in minutes, no teacher training"
                  data.Source (Path.Combine(outDir, weightsFile)) (if m.IsConditional then " --conditional" else "")
              "```"
              ""
              "```fsharp"
              sprintf "let teacher = Teacher.read \"%s\"" (Path.Combine(outDir, weightsFile))
              "```"
              ""
              sprintf "Limits: trained on %s only%s; a test (tests/ReleaseTests.fs) checks that the file loads and that its NLL is the card's." data.Source
                  (match t["heldout_train_rows"] with
                   | null -> ""
                   | rows -> sprintf " (%d of its training rows were held out of the teacher's data to choose the checkpoint)" (rows.GetValue<int64>())) ]
        File.WriteAllText(Path.Combine(outDir, "README.md"), String.concat "\n" lines + "\n")
        card
