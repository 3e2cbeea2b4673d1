module Nfm.Tests.NfmCliTests

open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Nfm.Tests.Cli

let tinyTeacher (dir: string) (extra: string list) =
    runIn dir 240 ([ "teacher"; "train"; "--data"; "moons"; "--n"; "2000"; "--out"; "t.ckpt"; "--steps"; "20"; "--batch"; "64"
                     "--width"; "32"; "--blocks"; "2"; "--layers"; "1"; "--head-dim"; "16" ] @ extra)

let ok (r: Run) what = Expect.equal r.Code 0 (sprintf "%s succeeds: %s" what r.Err)

[<Tests>]
let tests =
    testSequenced <| testList "cli teacher and nfm" [
        test "teacher train, encode, decode, sample, nll: decode(encode x) = x through files" {
            let dir = tempDir ()
            ok (tinyTeacher dir [ "--json"; "t.json" ]) "teacher train"
            use tj = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "t.json")))
            Expect.isTrue (tj.RootElement.GetProperty("test_nll").GetDouble() |> System.Double.IsFinite) "held-out NLL reported"
            let x = torch.randn(50L, 2L)
            Nfm.Data.Npy.Write(Path.Combine(dir, "x.npy"), x)
            ok (runIn dir 120 [ "teacher"; "encode"; "--teacher"; "t.ckpt"; "--input"; "x.npy"; "--out"; "z.npy"; "--logdet"; "l.npy" ]) "encode"
            ok (runIn dir 120 [ "teacher"; "decode"; "--teacher"; "t.ckpt"; "--input"; "z.npy"; "--out"; "x2.npy" ]) "decode"
            let x2 = Nfm.Data.Npy.Read(Path.Combine(dir, "x2.npy"))
            let err = (x2 - x).abs().max().item<float32>() |> float
            Expect.isLessThan err 1e-4 "float32 round trip through the CLI within 1e-4"
            Expect.sequenceEqual (Nfm.Data.Npy.Read(Path.Combine(dir, "l.npy"))).shape [| 50L |] "one log-det per row"
            ok (runIn dir 120 [ "teacher"; "sample"; "--teacher"; "t.ckpt"; "--count"; "100"; "--out"; "s.npy"; "--png"; "s.png" ]) "sample"
            Expect.isTrue (File.Exists(Path.Combine(dir, "s.png"))) "png"
            let nll = runIn dir 120 [ "teacher"; "nll"; "--teacher"; "t.ckpt"; "--data"; "moons"; "--json"; "n.json" ]
            ok nll "nll"
            use nj = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "n.json")))
            Expect.isTrue (nj.RootElement.GetProperty("nll_nats").GetDouble() |> System.Double.IsFinite) "nll figure"
        }
        test "couple in two shards equals one run, and a student trains on the pairs" {
            let dir = tempDir ()
            ok (tinyTeacher dir []) "teacher train"
            let common = [ "couple"; "--teacher"; "t.ckpt"; "--data"; "moons"; "--n"; "600"; "--eta"; "0.05" ]
            ok (runIn dir 120 (common @ [ "--out"; "all.pairs" ])) "single run"
            Directory.CreateDirectory(Path.Combine(dir, "shards")) |> ignore
            ok (runIn dir 120 (common @ [ "--out"; "shards/a.pairs"; "--shard"; "0/2" ])) "shard 0"
            ok (runIn dir 120 (common @ [ "--out"; "shards/b.pairs"; "--shard"; "1/2" ])) "shard 1"
            let one = Nfm.Couple.TeacherPairs.Load(Path.Combine(dir, "all.pairs"))
            let two = Nfm.Couple.TeacherPairs.Load(Path.Combine(dir, "shards"))
            Expect.isTrue (one.X0.eq(two.X0).all().item<bool>()) "the union of the shards equals the single run exactly"
            Expect.equal one.Spec two.Spec "same description"
            ok (runIn dir 120 [ "student"; "train"; "--data"; "moons"; "--n"; "600"; "--coupling"; "teacher:shards"; "--out"; "s.ckpt"
                                "--steps"; "10"; "--batch"; "32"; "--width"; "16"; "--depth"; "1" ]) "student on the shards"
            let other = runIn dir 120 [ "student"; "train"; "--data"; "moons"; "--n"; "500"; "--coupling"; "teacher:all.pairs"; "--out"; "s2.ckpt"; "--steps"; "2" ]
            Expect.notEqual other.Code 0 "pairs made for other data are refused"
            Expect.stringContains other.Err "other data" "names the problem"
        }
        test "compare on a tiny budget writes results.json with the fixed fields" {
            let dir = tempDir ()
            let r = runIn dir 600 [ "compare"; "--data"; "8gaussians"; "--out"; "c"; "--budget"; "15" ]
            ok r "compare"
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "c", "results.json")))
            let root = j.RootElement
            Expect.equal (root.GetProperty("metric").GetString()) "w2" "metric"
            let rows = [ for row in root.GetProperty("rows").EnumerateArray() -> row ]
            let methods = rows |> List.map (fun r -> r.GetProperty("method").GetString()) |> List.distinct |> List.sort
            Expect.equal methods [ "independent"; "nfm"; "nfm-from-train-encodings"; "ot"; "teacher"; "teacher-denoised" ] "every method has rows"
            for row in rows do
                for field in [ "kind"; "solver"; "grid"; "nfe"; "value"; "spread"; "draws"; "seconds_per_1000" ] do
                    Expect.isTrue (fst (row.TryGetProperty field)) (sprintf "row has %s" field)
                let name = row.GetProperty("method").GetString()
                Expect.equal (row.GetProperty("kind").GetString()) (if name.StartsWith "teacher" then "teacher" else "student") (name + "'s kind")
            Expect.equal (root.GetProperty("format_version").GetInt32()) 3 "format 3"
            let diag = root.GetProperty("diagnostics")
            let gaussianity = diag.GetProperty("encodings_gaussianity")
            Expect.isTrue (gaussianity.GetProperty("floor_mean").GetDouble() > 0.0) "the encodings' floor from exact N(0, I) samples"
            Expect.isTrue (gaussianity.GetProperty("excess").GetDouble() |> System.Double.IsFinite) "the encodings' excess over it"
            Expect.isTrue (diag.GetProperty("data_floor").GetDouble() > 0.0) "the data floor"
            Expect.equal (diag.GetProperty("pair_cost_per_dimension").EnumerateObject() |> Seq.length) 3 "a pair cost per coupling"
            for f in [ "quality.png"; "results.md"; "teacher.ckpt"; "nfm.pairs" ] do
                Expect.isTrue (File.Exists(Path.Combine(dir, "c", f))) (sprintf "%s written" f)
            let latency = [ for l in root.GetProperty("latency").EnumerateArray() -> l.GetProperty("method").GetString(), l.GetProperty("single_sample_seconds").GetDouble() ]
            Expect.equal (latency |> List.map fst |> List.distinct) [ "independent"; "ot"; "nfm"; "teacher" ] "latency per method"
            Expect.isTrue (latency |> List.forall (fun (_, s) -> s > 0.0 && System.Double.IsFinite s)) "latencies are positive"
            for l in root.GetProperty("latency").EnumerateArray() do
                let m, steps, nfe = l.GetProperty("method").GetString(), l.GetProperty("steps").GetInt32(), l.GetProperty("nfe").GetInt32()
                Expect.equal nfe steps (sprintf "%s: unguided, one network evaluation per step" m)
            for m in [ "independent"; "ot"; "nfm" ] do
                let st = root.GetProperty("students").GetProperty(m)
                Expect.isTrue (st.GetProperty("path_curvature_per_dim").GetDouble() >= 0.0) (sprintf "%s path curvature" m)
                Expect.isTrue (st.GetProperty("nll_nats_per_dim").GetDouble() |> System.Double.IsFinite) (sprintf "%s held-out NLL" m)
            let claims = root.GetProperty("claims")
            for k in [ "nfm_over_independent_1step"; "nfm_over_ot_4step"; "nfm_best_at_most_16_steps_over_teacher"; "teacher_latency_over_nfm_4step" ] do
                Expect.isTrue (claims.GetProperty(k).GetDouble() > 0.0) (sprintf "claim %s measured" k)
        }
        test "compare on two workers (a second process) gives the same figures as on one, and a second run continues from the checkpoints" {
            let dir = tempDir ()
            // 1,500 rows of moons as a user's file: 300 held out, so that 75 exact W2 evaluations stay cheap.
            Nfm.FSharp.Data.writeNpy (Path.Combine(dir, "moons.npy")) (Nfm.FSharp.Data.toy "moons" 1500L 0L).X
            let compare out workers = runIn dir 600 [ "compare"; "--data"; "moons.npy"; "--out"; out; "--budget"; "12"; "--workers"; workers ]
            ok (compare "one" "1") "one worker"
            let two = compare "two" "2"
            ok two "two workers"
            Expect.stringContains two.Err "independent, ot: trained and evaluated in a second process" "the baselines train in a second process"
            let values out =
                use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, out, "results.json")))
                [ for row in j.RootElement.GetProperty("rows").EnumerateArray() ->
                    row.GetProperty("method").GetString(), row.GetProperty("steps").GetInt32(), row.GetProperty("value").GetDouble() ]
            let one = values "one"
            Expect.equal (values "two") one "every figure equal"
            let again = compare "one" "1"
            ok again "second run"
            Expect.stringContains again.Err "continuing from" "the second run continues the checkpoints"
            Expect.equal (values "one") one "and finds the same figures"
            let other = runIn dir 600 [ "compare"; "--data"; "moons.npy"; "--out"; "one"; "--budget"; "13" ]
            Expect.notEqual other.Code 0 "a folder made with another budget is refused"
            Expect.stringContains other.Err "other settings" "names the problem"
        }
        test "compare --guidance-from needs --conditional and a results file that exists" {
            let dir = tempDir ()
            let bad = runIn dir 60 [ "compare"; "--data"; "moons"; "--out"; "g"; "--guidance-from"; "r.json" ]
            Expect.notEqual bad.Code 0 "non-zero exit"
            Expect.stringContains bad.Err "--guidance-from needs --conditional" "names the problem"
            let missing = runIn dir 60 [ "compare"; "--data"; "moons"; "--out"; "g"; "--conditional"; "--guidance-from"; "missing.json" ]
            Expect.notEqual missing.Code 0 "non-zero exit"
            Expect.stringContains missing.Err "missing.json" "names the file"
        }
        test "compare --student-steps sets every student's steps and records them; 0 is refused" {
            let dir = tempDir ()
            Nfm.FSharp.Data.writeNpy (Path.Combine(dir, "moons.npy")) (Nfm.FSharp.Data.toy "moons" 1500L 0L).X
            ok (runIn dir 600 [ "compare"; "--data"; "moons.npy"; "--out"; "c"; "--budget"; "12"; "--student-steps"; "7" ]) "compare"
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "c", "results.json")))
            Expect.equal (j.RootElement.GetProperty("student_steps").GetInt32()) 7 "results.json"
            use d = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "c", "experiment.json")))
            let budget = d.RootElement.GetProperty("budget")
            Expect.equal (budget.GetProperty("student_steps").GetInt32(), budget.GetProperty("teacher_steps").GetInt32()) (7, 12) "experiment.json"
            let bad = runIn dir 60 [ "compare"; "--data"; "moons"; "--out"; "d"; "--student-steps"; "0" ]
            Expect.notEqual bad.Code 0 "non-zero exit"
            Expect.stringContains bad.Err "--student-steps must be a positive integer, got 0" "names the problem"
        }
        test "students train on sinkhorn and reflow couplings" {
            let dir = tempDir ()
            let student coupling out =
                runIn dir 120 [ "student"; "train"; "--data"; "moons"; "--n"; "500"; "--coupling"; coupling; "--out"; out
                                "--steps"; "5"; "--batch"; "32"; "--width"; "16"; "--depth"; "1" ]
            ok (student "sinkhorn:0.1" "s1.ckpt") "sinkhorn student"
            ok (student "reflow:s1.ckpt" "s2.ckpt") "reflow student"
            let bad = student "reflow:missing.ckpt" "s3.ckpt"
            Expect.notEqual bad.Code 0 "a missing reflow student is refused"
            Expect.stringContains bad.Err "missing.ckpt" "names the file"
        }
        test "teacher export then import gives the same encodings" {
            let dir = tempDir ()
            ok (tinyTeacher dir []) "teacher train"
            ok (runIn dir 120 [ "teacher"; "export"; "--teacher"; "t.ckpt"; "--out"; "t.safetensors" ]) "export"
            ok (runIn dir 120 [ "teacher"; "import"; "--state-dict"; "t.safetensors"; "--out"; "t2.ckpt" ]) "import"
            Nfm.Data.Npy.Write(Path.Combine(dir, "x.npy"), torch.randn(20L, 2L))
            ok (runIn dir 120 [ "teacher"; "encode"; "--teacher"; "t.ckpt"; "--input"; "x.npy"; "--out"; "z1.npy" ]) "encode 1"
            ok (runIn dir 120 [ "teacher"; "encode"; "--teacher"; "t2.ckpt"; "--input"; "x.npy"; "--out"; "z2.npy" ]) "encode 2"
            let z1, z2 = Nfm.Data.Npy.Read(Path.Combine(dir, "z1.npy")), Nfm.Data.Npy.Read(Path.Combine(dir, "z2.npy"))
            Expect.isLessThan ((z1 - z2).abs().max().item<float32>() |> float) 1e-6 "same encodings"
        }
    ]

[<Tests>]
let imageFolderCli =
    testList "cli image folders" [
        test "teacher train and student train read images:FOLDER?size=N; a corrupt image is one line naming it and exit 1" {
            let dir = tempDir ()
            Nfm.Tests.ImageFolderTests.colourFolder (Path.Combine(dir, "pics")) 8 12 8
            let data = "images:pics?size=8&channels=3"
            ok (runIn dir 240 [ "teacher"; "train"; "--data"; data; "--out"; "t.ckpt"; "--steps"; "3"; "--batch"; "8"
                                "--width"; "16"; "--blocks"; "2"; "--layers"; "1"; "--head-dim"; "8" ]) "teacher train on an image folder"
            ok (runIn dir 240 [ "student"; "train"; "--data"; data; "--coupling"; "independent"; "--out"; "s.ckpt"; "--steps"; "3"; "--batch"; "8" ])
                "student train on an image folder"
            let bad = Path.Combine(dir, "pics", "a-red", "zz.png")
            File.WriteAllBytes(bad, [| 0uy; 1uy |])
            let r = runIn dir 120 [ "teacher"; "train"; "--data"; data; "--out"; "t2.ckpt"; "--steps"; "1" ]
            Expect.equal r.Code 1 "exit 1"
            Expect.stringContains r.Err "zz.png: not a readable PNG or JPEG" "names the file"
            Expect.equal (r.Err.Trim().Split('\n').Length) 1 (sprintf "one line: %s" r.Err)
            Expect.isFalse (File.Exists(Path.Combine(dir, "t2.ckpt"))) "nothing written"
        }
    ]
