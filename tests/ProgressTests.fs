/// Progress as a user sees it: live bars that redraw in place on a terminal (a pseudo-terminal made by `script`),
/// two of them at once for compare's two workers, and the line-per-tenth log format when stderr is not a terminal.
module Nfm.Tests.ProgressTests

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Expecto
open Nfm.Tests.Cli

/// Runs nfm on a pseudo-terminal (util-linux `script`) and returns everything it drew, escape sequences included.
let private onTerminal (dir: string) (timeoutSeconds: int) (args: string list) =
    let command = String.Join(" ", "dotnet" :: nfmDll :: args)
    let psi = ProcessStartInfo("script", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir)
    for a in [ "-q"; "-e"; "-c"; command; "/dev/null" ] do psi.ArgumentList.Add a
    psi.Environment["TERM"] <- "xterm-256color"
    psi.Environment.Remove "NFM_PROGRESS" |> ignore
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    if not (p.WaitForExit(timeoutSeconds * 1000)) then
        p.Kill true
        failwithf "nfm %s on a terminal did not finish in %d s" command timeoutSeconds
    p.ExitCode, out.Result

/// The text with escape sequences removed.
let private plain (s: string) = Regex.Replace(s, @"\x1b\[[0-9;?]*[A-Za-z]", "")

[<Tests>]
let tests =
    testSequenced <| testList "progress" [
        test "on a terminal the bar redraws in place and ends at 100% before the summary" {
            let dir = tempDir ()
            let code, out =
                onTerminal dir 180 [ "student"; "train"; "--data"; "checkerboard"; "--n"; "2000"; "--coupling"; "ot"; "--out"; "s.ckpt"
                                     "--steps"; "200"; "--batch"; "64"; "--width"; "32"; "--depth"; "2" ]
            Expect.equal code 0 out
            Expect.isTrue (Regex.IsMatch(out, @"\x1b\[\d*A")) "the cursor moves up to redraw the bar in place"
            let text = plain out
            Expect.stringContains text "100%" "the bar reaches 100%"
            Expect.isTrue (Regex.IsMatch(text, @"it/s")) "the rate is shown"
            let lastBar = text.LastIndexOf "200/200"
            let summary = text.IndexOf "student: 200 steps"
            Expect.isTrue (lastBar >= 0 && summary > lastBar) "the summary is printed after the bar's last frame"
            Expect.isFalse (Regex.IsMatch(text, @"\[#+\.*\] \d+/200")) "no log-style lines on a terminal"
        }
        test "compare --workers 2 on a terminal draws the teacher's and a student's bar in one frame; --logdir logs the metric by steps" {
            let dir = tempDir ()
            // 1,500 rows of checkerboard as a user's file (300 held out): the bars are the point, not the W2 figures.
            Nfm.FSharp.Data.writeNpy (Path.Combine(dir, "checkerboard.npy")) (Nfm.FSharp.Data.toy "checkerboard" 1500L 0L).X
            // The teacher's 200 steps outlast the second process's start (a few seconds) before its students' 60.
            let code, out = onTerminal dir 300 [ "compare"; "--data"; "checkerboard.npy"; "--budget"; "200"; "--student-steps"; "60"
                                                 "--workers"; "2"; "--out"; "c"; "--logdir"; "tb" ]
            Expect.equal code 0 (plain out)
            let text = plain out
            Expect.isTrue (Regex.IsMatch(text, @"teacher\s+\d+/200[^\n]*\n[^\n]*\n?[^\n]*(independent|ot)\s+\d+/60", RegexOptions.Multiline))
                "two bars stacked in the same frame"
            let scalars = TensorBoardTests.scalars (Path.Combine(dir, "tb"))
            let byStep m = scalars |> List.filter (fun (t, _, _) -> t = m + "/w2_by_sampling_steps") |> List.map (fun (_, s, _) -> s)
            for m in [ "independent"; "ot"; "nfm" ] do
                Expect.equal (byStep m) [ 1L; 2L; 4L; 8L; 16L; 32L ] (sprintf "%s's W2 at each step count" m)
            Expect.isTrue (scalars |> List.exists (fun (t, _, _) -> t = "teacher/heldout_nll_nats")) "the teacher's held-out NLL"
            Expect.isTrue (TensorBoardTests.events (Path.Combine(dir, "tb")) |> List.exists (fun e -> not (isNull e.Summary) && e.Summary.Value |> Seq.exists (fun v -> not (isNull v.Image))))
                "sample grids as images"
        }
        test "when stderr is not a terminal, one log line per tenth of the work" {
            let dir = tempDir ()
            let r = CliTests.tinyTrain dir []
            Expect.equal r.Code 0 r.Err
            let lines = r.Err.Split('\n') |> Array.filter (fun l -> Regex.IsMatch(l, @"^student \[[#.]+\] \d+/30 "))
            Expect.equal lines.Length 11 (sprintf "0/10 .. 10/10 of the work, one line each:\n%s" r.Err)
            Expect.isFalse (r.Err.Contains "\x1b[") "no escape sequences in a log"
        }
    ]
