/// TensorBoard logs: `--logdir` writes event files whose records TensorBoard's reader accepts, with the scalars named.
module Nfm.Tests.TensorBoardTests

open System
open System.IO
open Expecto
open Nfm.Tests.Cli

/// Every event of every event file under a folder: the TFRecord framing (u64 length, u32 masked CRC, payload, u32
/// masked CRC) read back and each payload parsed as a tensorboard Event.
let events (dir: string) =
    [ for file in Directory.GetFiles(dir, "events.out.tfevents.*", SearchOption.AllDirectories) do
        use r = new BinaryReader(File.OpenRead file)
        while r.BaseStream.Position < r.BaseStream.Length do
            let length = r.ReadUInt64()
            r.ReadUInt32() |> ignore
            let payload = r.ReadBytes(int length)
            r.ReadUInt32() |> ignore
            yield Tensorboard.Event.Parser.ParseFrom payload ]

/// (tag, step, value) of each scalar event.
let scalars (dir: string) =
    [ for e in events dir do
        if not (isNull e.Summary) then
            for v in e.Summary.Value do
                if v.ValueCase = Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue then yield v.Tag, e.Step, float v.SimpleValue ]

[<Tests>]
let tests =
    testSequenced <| testList "tensorboard" [
        test "student train --logdir: loss, learning rate, gradient norm and skipped steps at every step" {
            let dir = tempDir ()
            let r = CliTests.tinyTrain dir [ "--logdir"; "tb" ]
            Expect.equal r.Code 0 r.Err
            let s = scalars (Path.Combine(dir, "tb"))
            for tag in [ "student/loss"; "student/learning_rate"; "student/grad_norm"; "student/skipped_steps" ] do
                let steps = s |> List.filter (fun (t, _, _) -> t = tag) |> List.map (fun (_, st, _) -> st)
                Expect.equal steps [ 1L .. 30L ] (sprintf "%s logged at steps 1..30" tag)
            let losses = s |> List.filter (fun (t, _, _) -> t = "student/loss") |> List.map (fun (_, _, v) -> v)
            Expect.all losses (fun v -> Double.IsFinite v && v > 0.0) "losses are finite and positive"
            Expect.isTrue (events (Path.Combine(dir, "tb")) |> List.exists (fun e -> e.FileVersion = "brain.Event:2")) "a file-version header"
        }
        test "teacher train --logdir: held-out NLL and the sample grid" {
            let dir = tempDir ()
            let r = runIn dir 300 [ "teacher"; "train"; "--data"; "checkerboard"; "--out"; "t.ckpt"; "--steps"; "20"; "--batch"; "64"
                                    "--width"; "16"; "--blocks"; "2"; "--layers"; "1"; "--head-dim"; "8"; "--eval-every"; "10"; "--logdir"; "tb" ]
            Expect.equal r.Code 0 r.Err
            let s = scalars (Path.Combine(dir, "tb"))
            let nll = s |> List.filter (fun (t, _, _) -> t = "teacher/heldout_nll_nats")
            Expect.equal (nll |> List.map (fun (_, st, _) -> st)) [ 10L; 20L ] "held-out NLL at --eval-every and at the end"
            Expect.isTrue (s |> List.exists (fun (t, _, _) -> t = "teacher/loss")) "the loss too"
        }
        test "a --logdir below a missing folder is a one-line error" {
            let dir = tempDir ()
            CliTests.expectCleanError (CliTests.tinyTrain dir [ "--logdir"; "no/such/tb" ]) "does not exist"
        }
    ]
