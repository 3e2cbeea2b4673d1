module Nfm.Tests.CliTests

open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Nfm.Tests.Cli

/// A one-line error on stderr naming the problem, a non-zero exit, no stack trace.
let expectCleanError (r: Run) (mentions: string) =
    Expect.notEqual r.Code 0 "non-zero exit code"
    let lines = r.Err.Trim().Split('\n') |> Array.filter (fun l -> l.Trim() <> "")
    Expect.equal lines.Length 1 (sprintf "exactly one line on stderr, got:\n%s" r.Err)
    Expect.stringContains lines[0] mentions "the message names the problem"
    Expect.isFalse (r.Err.Contains "   at ") "no stack trace"

let tinyTrain (dir: string) (extra: string list) =
    runIn dir 180 ([ "student"; "train"; "--data"; "checkerboard"; "--n"; "2000"; "--coupling"; "ot"; "--out"; "s.ckpt"
                     "--steps"; "30"; "--batch"; "64"; "--width"; "32"; "--depth"; "2" ] @ extra)

[<Tests>]
let endToEnd =
    testSequenced <| testList "cli end-to-end" [
        test "student train, sample, eval: files written and JSON parses" {
            let dir = tempDir ()
            let t = tinyTrain dir [ "--json"; "train.json" ]
            Expect.equal t.Code 0 (sprintf "train succeeds: %s" t.Err)
            Expect.isTrue (File.Exists(Path.Combine(dir, "s.ckpt"))) "checkpoint written"
            use train = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "train.json")))
            Expect.equal (train.RootElement.GetProperty("steps").GetInt64()) 30L "30 steps recorded"
            let s = runIn dir 120 [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "300"; "--nfe"; "2"; "--solver"; "heun"
                                    "--out"; "x.npy"; "--png"; "x.png"; "--json"; "sample.json" ]
            Expect.equal s.Code 0 (sprintf "sample succeeds: %s" s.Err)
            let x = Nfm.Data.Npy.Read(Path.Combine(dir, "x.npy"))
            Expect.sequenceEqual x.shape [| 300L; 2L |] "samples have shape [300, 2]"
            use sj = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "sample.json")))
            Expect.equal (sj.RootElement.GetProperty("nfe").GetInt32()) 4 "heun, 2 steps = 4 evaluations"
            Expect.isTrue (File.Exists(Path.Combine(dir, "x.png"))) "png written"
            let e = runIn dir 120 [ "eval"; "--samples"; "x.npy"; "--reference"; "checkerboard"; "--metric"; "w2"; "--json"; "eval.json" ]
            Expect.equal e.Code 0 (sprintf "eval succeeds: %s" e.Err)
            use ej = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")))
            Expect.equal (ej.RootElement.GetProperty("metric").GetString()) "w2" "metric named"
            let v = ej.RootElement.GetProperty("value").GetDouble()
            Expect.isTrue (v > 0.0 && v < 10.0) (sprintf "w2 is a sensible positive number, got %g" v)
            Expect.equal (ej.RootElement.GetProperty("n_samples").GetInt32()) 300 "n_samples"
        }
        test "resume continues a finished run to more steps" {
            let dir = tempDir ()
            Expect.equal (tinyTrain dir []).Code 0 "first run"
            let r = tinyTrain dir [ "--steps"; "40"; "--resume"; "--json"; "t.json"; "--loss-png"; "loss.png" ]
            Expect.equal r.Code 0 (sprintf "resume succeeds: %s" r.Err)
            use j = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "t.json")))
            Expect.equal (j.RootElement.GetProperty("steps").GetInt64()) 40L "ends at step 40"
            use loss = SkiaSharp.SKBitmap.Decode(Path.Combine(dir, "loss.png"))
            Expect.isNotNull loss "the loss curve of the resumed steps is a PNG"
        }
    ]

let writeNpy (dir: string) (name: string) (t: torch.Tensor) =
    let p = Path.Combine(dir, name)
    Nfm.Data.Npy.Write(p, t)
    p

[<Tests>]
let badInput =
    testSequenced <| testList "cli bad input" [
        test "missing data file" {
            expectCleanError (run [ "student"; "train"; "--data"; "nope.npy"; "--coupling"; "ot"; "--out"; "s.ckpt" ]) "nope.npy"
        }
        test "NaN in data names the row" {
            let dir = tempDir ()
            let x = torch.randn(10L, 2L)
            x[4L, 1L] <- torch.tensor(nan)
            writeNpy dir "nan.npy" x |> ignore
            expectCleanError (runIn dir 60 [ "student"; "train"; "--data"; "nan.npy"; "--coupling"; "ot"; "--out"; "s.ckpt" ]) "row 4"
        }
        test "wrong-shaped samples for eval" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (torch.randn(50L, 3L)) |> ignore
            expectCleanError (runIn dir 60 [ "eval"; "--samples"; "x.npy"; "--reference"; "moons" ]) "shape"
        }
        test "unknown solver" {
            let dir = tempDir ()
            Expect.equal (tinyTrain dir [ "--steps"; "2" ]).Code 0 "train"
            expectCleanError (runIn dir 60 [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--solver"; "rk7"; "--out"; "x.npy" ]) "rk7"
        }
        test "non-positive step count" {
            expectCleanError (run [ "student"; "train"; "--data"; "moons"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--steps"; "0" ]) "--steps"
        }
        test "unknown coupling" {
            expectCleanError (run [ "student"; "train"; "--data"; "moons"; "--coupling"; "magic"; "--out"; "s.ckpt" ]) "magic"
        }
        test "unknown data name" {
            expectCleanError (run [ "student"; "train"; "--data"; "spiralz"; "--coupling"; "ot"; "--out"; "s.ckpt" ]) "spiralz"
        }
        test "output in a missing folder" {
            expectCleanError (run [ "student"; "train"; "--data"; "moons"; "--coupling"; "ot"; "--out"; "no/such/dir/s.ckpt" ]) "does not exist"
        }
        test "an existing checkpoint is not overwritten without --resume" {
            let dir = tempDir ()
            Expect.equal (tinyTrain dir [ "--steps"; "2" ]).Code 0 "train"
            let before = File.ReadAllBytes(Path.Combine(dir, "s.ckpt"))
            expectCleanError (tinyTrain dir [ "--steps"; "3" ]) "--resume"
            Expect.sequenceEqual (File.ReadAllBytes(Path.Combine(dir, "s.ckpt"))) before "checkpoint untouched"
        }
        test "a corrupt checkpoint is refused" {
            let dir = tempDir ()
            File.WriteAllText(Path.Combine(dir, "s.ckpt"), "not a checkpoint")
            expectCleanError (runIn dir 60 [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--out"; "x.npy" ]) "not an nfm checkpoint"
        }
        test "unknown benchmark" {
            expectCleanError (run [ "bench"; "warp-speed" ]) "warp-speed"
        }
    ]
