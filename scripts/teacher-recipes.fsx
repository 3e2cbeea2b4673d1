// The 2-D teacher recipe study behind the demo's quick budget: trains the demo's teacher (checkerboard, the data and
// seed stream `nfm compare` uses) for several seeds with one recipe, and measures its negative log-likelihood on a
// part held out of the training rows (the selection criterion) and, for the record only, the W2 of its samples
// against the evaluation points.
//
//   dotnet fsi scripts/teacher-recipes.fsx NAME steps=1500 lr=1e-3 warmup=75 ema=0 seeds=0,1,2,3,4 [out=DIR]
//
// Writes DIR/NAME.json (default DIR results/teacher-recipes) with one entry per seed and the mean and spread.
#load "../examples/_load.fsx"

open System
open System.IO
open TorchSharp
open Nfm.Descriptions
open Nfm.Invert

let argv = fsi.CommandLineArgs |> Array.skip 1
if argv.Length < 1 then failwith "usage: teacher-recipes.fsx NAME key=value ..."
let name = argv[0]
let kv = argv |> Array.skip 1 |> Array.map (fun a -> let i = a.IndexOf '=' in a[.. i - 1], a[i + 1 ..]) |> Map.ofArray
let get k d = Map.tryFind k kv |> Option.defaultValue d
let steps = int (get "steps" "1500")
let lr = float (get "lr" "1e-3")
let warmup = int (get "warmup" (string (max 1 (steps / 20))))
let ema = float (get "ema" "0")
let batch = int (get "batch" "256")
let seeds = (get "seeds" "0,1,2,3,4").Split ',' |> Array.map int64
let outDir = get "out" "results/teacher-recipes"
torch.set_num_threads 1

let heldOut = 2000L
let result =
    [ for seed in seeds do
        let data = Nfm.Data.Toy2D.Sample("checkerboard", 20000L, seed)
        let n = data.X.shape[0]
        let train = data.X.narrow(0L, 0L, n - heldOut)
        let valid = data.X.narrow(0L, n - heldOut, heldOut)
        let evaluation = (Nfm.Data.Toy2D.Sample("checkerboard", 2000L, seed + 1L)).X
        let model = TeacherSpec([| 2L |], 1, 64, 8, 2, 32, 4, true, 0, 0.05, Dequantisation.Gaussian).Validate()
        let training =
            TrainingSpec(steps, batch, lr, WarmupSteps = warmup, Cosine = true, Beta1 = 0.9, Beta2 = 0.95, GradClip = 1.0,
                         EmaDecay = ema, Seed = seed, SaveEvery = 0)
        let spec = TeacherRunSpec(model, training, "checkerboard", DeviceSpec("cpu")).Validate()
        let watch = Diagnostics.Stopwatch.StartNew()
        let teacher = TeacherTraining.Run(TrainedTeacher.Create spec, train, null)
        let seconds = watch.Elapsed.TotalSeconds
        let inference = teacher.InferenceModel()
        let nll =
            use _ = torch.no_grad()
            -(Teacher.LogLikelihood(inference, valid).mean().item<float32>() |> float)
        use g = new torch.Generator(uint64 (seed + 3L))
        let samples = Teacher.Sample(inference, 2000L, g)
        let w2 = Nfm.Metrics.Wasserstein.W2(samples, evaluation)
        printfn "%s seed %d: held-out NLL %.4f nats, W2 %.4f, %.1f s" name seed nll w2 seconds
        yield seed, nll, w2, seconds ]

let stats (xs: float list) =
    let m = List.average xs
    let sd = sqrt ((xs |> List.sumBy (fun x -> (x - m) ** 2.0)) / float (max 1 (xs.Length - 1)))
    m, sd, List.min xs, List.max xs
let nllM, nllSd, nllMin, nllMax = stats [ for (_, n, _, _) in result -> n ]
let w2M, w2Sd, w2Min, w2Max = stats [ for (_, _, w, _) in result -> w ]
printfn "%s: held-out NLL %.4f +- %.4f (%.4f..%.4f); W2 %.4f +- %.4f (%.4f..%.4f)" name nllM nllSd nllMin nllMax w2M w2Sd w2Min w2Max
Directory.CreateDirectory outDir |> ignore
let json =
    let o = Text.Json.Nodes.JsonObject()
    o["recipe"] <- Text.Json.Nodes.JsonValue.Create name
    o["steps"] <- Text.Json.Nodes.JsonValue.Create steps
    o["batch"] <- Text.Json.Nodes.JsonValue.Create batch
    o["lr"] <- Text.Json.Nodes.JsonValue.Create lr
    o["warmup"] <- Text.Json.Nodes.JsonValue.Create warmup
    o["ema"] <- Text.Json.Nodes.JsonValue.Create ema
    o["heldout_nll_mean"] <- Text.Json.Nodes.JsonValue.Create nllM
    o["heldout_nll_sd"] <- Text.Json.Nodes.JsonValue.Create nllSd
    o["w2_mean"] <- Text.Json.Nodes.JsonValue.Create w2M
    o["w2_sd"] <- Text.Json.Nodes.JsonValue.Create w2Sd
    let arr = Text.Json.Nodes.JsonArray()
    for (s, n, w, secs) in result do
        let e = Text.Json.Nodes.JsonObject()
        e["seed"] <- Text.Json.Nodes.JsonValue.Create s
        e["heldout_nll"] <- Text.Json.Nodes.JsonValue.Create n
        e["w2"] <- Text.Json.Nodes.JsonValue.Create w
        e["train_seconds"] <- Text.Json.Nodes.JsonValue.Create secs
        arr.Add e
    o["seeds"] <- arr
    o
File.WriteAllText(Path.Combine(outDir, name + ".json"), json.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)))
