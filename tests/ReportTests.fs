/// The README's generated tables, the claims' verdicts, the fresh-run check and the build's version.
module Nfm.Tests.ReportTests

open System.IO
open System.Text.RegularExpressions
open Expecto
open Nfm.FSharp
open Nfm.Tests.Cli

/// A small results.json in the shape `compare` writes.
let private results (nfm1: float) =
    sprintf """{ "data": "checkerboard", "metric": "w2", "command": "nfm demo", "commit": "0123456789ab",
  "rows": [ { "method": "independent", "solver": "euler", "grid": "quadratic", "steps": 1, "nfe": 1, "value": 2.0, "seconds_per_1000": 0.1 },
            { "method": "independent", "solver": "heun", "grid": "quadratic", "steps": 8, "nfe": 15, "value": 0.4, "seconds_per_1000": 0.2 },
            { "method": "nfm", "solver": "euler", "grid": "quadratic", "steps": 1, "nfe": 1, "value": %.9f, "seconds_per_1000": 0.1 },
            { "method": "nfm", "solver": "heun", "grid": "quadratic", "steps": 8, "nfe": 15, "value": 0.3, "seconds_per_1000": 0.3 },
            { "method": "teacher", "solver": "autoregressive", "grid": "-", "steps": 8, "nfe": 8, "value": 0.25, "seconds_per_1000": 1.0 } ],
  "teacher": { "steps": 100, "value": 0.25, "value_denoised": 0.24, "test_nll_nats": 3.1, "test_bpd": "n/a", "sigma_f": 1.2,
               "encodings_frechet_to_standard_normal": 0.05, "encodings_covariance_min_eigenvalue": 0.9,
               "encodings_covariance_max_eigenvalue": 1.1, "train_seconds": 12.0 },
  "claims": { "nfm_over_independent_1step": %.9f, "nfm_over_ot_1step": 1.07, "teacher_latency_over_nfm_4step": 12.0 } }""" nfm1 (nfm1 / 2.0)

let private writeRun (dir: string) (name: string) (nfm1: float) =
    let p = Path.Combine(dir, name)
    File.WriteAllText(p, results nfm1)
    p

let private readme = "# title\n\ntext before\n\n<!-- generated: methods r.json -->\nstale\n<!-- end generated -->\n\n<!-- generated: claims r.json -->\n<!-- end generated -->\ntext after\n"

[<Tests>]
let tests =
    testList "report" [
        test "claims: each ratio against its target" {
            let c k v = (Claims.check k v).Value
            Expect.isTrue (c "nfm_over_independent_1step" 0.5).Holds "at most half at 1 step: 0.5 holds"
            Expect.isFalse (c "nfm_over_independent_4step" 0.53).Holds "0.53 at 4 steps is not at most half"
            Expect.isTrue (c "nfm_over_independent_16step" 0.9).Holds "below independent at 16 steps"
            Expect.isFalse (c "nfm_over_ot_1step" 1.07).Holds "1.07 of OT is not below OT"
            Expect.isTrue (c "teacher_latency_over_nfm_4step" 10.0).Holds "10x is enough"
            Expect.isFalse (c "teacher_latency_over_nfm_4step" 8.3).Holds "8.3x is not"
            Expect.isTrue (c "nfm_best_at_most_16_steps_over_teacher" 0.83).Holds "below the teacher"
            Expect.isNone (Claims.check "something_else" 1.0) "unknown keys are no claim"
            Expect.stringContains (Claims.describe (c "nfm_over_ot_2step" 1.2)) "does not hold" "verdict in words"
        }
        test "claims with a spread: decided only beyond two standard errors of the target, undecided within" {
            let c k v se = (Claims.checkWith k v se).Value
            Expect.equal (c "nfm_over_independent_8step" 0.7 0.1).Verdict Claims.Holds "0.7 ± 0.1 below 1: holds"
            Expect.equal (c "nfm_over_independent_8step" 0.9 0.1).Verdict Claims.Undecided "0.9 ± 0.1: within two standard errors of 1"
            Expect.equal (c "nfm_over_independent_8step" 1.1 0.1).Verdict Claims.Undecided "1.1 ± 0.1: within two standard errors of 1"
            Expect.equal (c "nfm_over_independent_8step" 1.3 0.1).Verdict Claims.Fails "1.3 ± 0.1: does not hold"
            Expect.equal (c "nfm_over_independent_2step" 0.45 0.01).Verdict Claims.Holds "0.45 ± 0.01 at most half"
            Expect.equal (c "nfm_over_independent_2step" 0.49 0.01).Verdict Claims.Undecided "0.49 ± 0.01: within two standard errors of half"
            Expect.isFalse (c "nfm_over_independent_8step" 0.9 0.1).Holds "an undecided claim does not count as holding"
            Expect.equal (c "nfm_over_ot_1step" 0.99 0.0).Verdict Claims.Holds "no spread: the ratio alone decides"
            Expect.stringContains (Claims.describe (c "nfm_over_ot_1step" 0.9 0.1)) "0.900 ± 0.100" "the ratio with its standard error"
            Expect.stringContains (Claims.describe (c "nfm_over_ot_1step" 0.9 0.1)) "undecided" "the verdict in words"
        }
        test "a block in a file below the repository root names PATH as written and links to it relative to the file" {
            let dir = tempDir ()
            writeRun dir "r.json" 0.5 |> ignore
            let docs = Path.Combine(dir, "docs")
            Directory.CreateDirectory docs |> ignore
            let text = Report.regenerateIn dir docs "<!-- generated: methods r.json -->\n<!-- end generated -->\n"
            Expect.stringContains text "from [r.json](../r.json)" "the link climbs out of docs/"
            Expect.stringContains text "| nfm | 0.5000 | 0.3000 |" "the table from the JSON at the root"
        }
        test "readme blocks are regenerated from the JSON, and regenerating again changes nothing" {
            let dir = tempDir ()
            writeRun dir "r.json" 0.5 |> ignore
            let once = Report.regenerate dir readme
            Expect.isFalse (once.Contains "stale") "the old block content is replaced"
            Expect.stringContains once "| nfm | 0.5000 | 0.3000 |" "the nfm row with its values"
            Expect.stringContains once "| independent | 2.0000 | 0.4000 |" "the independent row"
            Expect.isFalse (once.Contains "| teacher |") "teacher rows are not student columns"
            Expect.stringContains once "commit 0123456789ab" "the commit the JSON records"
            Expect.stringContains once "`nfm demo`" "the command the JSON records"
            Expect.stringContains once "NFM below minibatch OT at 1 step | 1.070 | < 1 | does not hold" "a claim that fails says so"
            Expect.stringContains once "text after" "text outside the blocks is kept"
            Expect.equal (Report.regenerate dir once) once "idempotent"
        }
        test "a training figure a checkpoint did not record shows as not recorded, a recorded one as its value" {
            let dir = tempDir ()
            let withStudents =
                (results 0.5).TrimEnd().TrimEnd('}')
                + ", \"students\": { \"nfm\": { \"final_loss\": \"NaN\", \"train_seconds\": \"NaN\", \"path_curvature_per_dim\": 0.1, \"nll_nats_per_dim\": 1.5 },"
                + " \"ot\": { \"final_loss\": 0.25, \"train_seconds\": 61.0, \"path_curvature_per_dim\": 0.2, \"nll_nats_per_dim\": 1.4 } } }"
            File.WriteAllText(Path.Combine(dir, "s.json"), withStudents)
            let text = Report.regenerate dir "<!-- generated: students s.json -->\n<!-- end generated -->\n"
            Expect.stringContains text "| nfm | not recorded | 0.1000 | 1.500 | not recorded |" "NaN in results.json is not printed as a number"
            Expect.stringContains text "| ot | 0.2500 | 0.2000 | 1.400 | 61 |" "recorded figures as numbers"
        }
        test "a guidance block: every weight per method and step count, the best weight in bold" {
            let dir = tempDir ()
            let sweep = """{ "data": "mnist:d", "metric": "fd", "command": "nfm compare --conditional", "commit": "abc",
  "rows": [ { "method": "nfm", "solver": "euler", "grid": "quadratic", "steps": 1, "nfe": 1, "value": 30.0 } ],
  "guidance": { "weights": [0, 1],
    "methods": { "nfm": { "best": 1, "curve": [ { "weight": 0, "steps": 1, "value": 40.0 }, { "weight": 1, "steps": 1, "value": 30.0 },
                                                { "weight": 0, "steps": 4, "value": 20.0 }, { "weight": 1, "steps": 4, "value": 21.0 } ] },
                 "teacher": { "best": 0, "curve": [ { "weight": 0, "steps": 192, "value": 44.0 }, { "weight": 1, "steps": 192, "value": 50.0 } ] } } } }"""
            File.WriteAllText(Path.Combine(dir, "c.json"), sweep)
            let text = Report.regenerate dir "<!-- generated: guidance c.json -->\n<!-- end generated -->\n"
            Expect.stringContains text "| method | steps | guidance 0 | guidance 1 | best weight |" "a column per weight"
            Expect.stringContains text "| nfm | 1 | 40.0 | **30.0** | 1 |" "the best weight's figure in bold"
            Expect.stringContains text "| nfm | 4 | 20.0 | **21.0** | 1 |" "one best weight per method, over its step counts"
            Expect.stringContains text "| teacher | 192 sequential | **44.0** | 50.0 | 0 |" "the teacher at its sequential steps"
            File.WriteAllText(Path.Combine(dir, "u.json"), results 0.5)
            Expect.throwsC (fun () -> Report.regenerate dir "<!-- generated: guidance u.json -->\n<!-- end generated -->\n" |> ignore)
                (fun e -> Expect.stringContains e.Message "no guidance sweep" "an unconditional run has no sweep to show")
        }
        test "nfm report readme --check fails on a stale block and passes after rewriting" {
            let dir = tempDir ()
            writeRun dir "r.json" 0.5 |> ignore
            File.WriteAllText(Path.Combine(dir, "README.md"), readme)
            let stale = runIn dir 60 [ "report"; "readme"; "--check" ]
            CliTests.expectCleanError stale "stale"
            Expect.equal (File.ReadAllText(Path.Combine(dir, "README.md"))) readme "--check writes nothing"
            let write = runIn dir 60 [ "report"; "readme" ]
            Expect.equal write.Code 0 (sprintf "rewrite succeeds: %s" write.Err)
            let ok = runIn dir 60 [ "report"; "readme"; "--check" ]
            Expect.equal ok.Code 0 (sprintf "check passes after the rewrite: %s" ok.Err)
            writeRun dir "r.json" 0.6 |> ignore
            CliTests.expectCleanError (runIn dir 60 [ "report"; "readme"; "--check" ]) "is stale"
        }
        test "a marker naming an unknown kind or a missing file is a clear error" {
            let dir = tempDir ()
            File.WriteAllText(Path.Combine(dir, "README.md"), "<!-- generated: bogus r.json -->\n<!-- end generated -->\n")
            CliTests.expectCleanError (runIn dir 60 [ "report"; "readme"; "--check" ]) "unknown generated block kind"
            File.WriteAllText(Path.Combine(dir, "README.md"), "<!-- generated: methods nothing.json -->\n<!-- end generated -->\n")
            CliTests.expectCleanError (runIn dir 60 [ "report"; "readme" ]) "not found"
        }
        test "diff: equal runs agree; a value moved by more than the tolerance is named" {
            let dir = tempDir ()
            let a = Report.read (writeRun dir "a.json" 0.5)
            let same = Report.read (writeRun dir "b.json" (0.5 + 1e-8))
            Expect.isEmpty (Report.diff a same 1e-6) "1e-8 apart is within 1e-6"
            let moved = Report.read (writeRun dir "c.json" (0.5 + 1e-5))
            let problems = Report.diff a moved 1e-6
            Expect.equal problems.Length 1 (sprintf "one row differs: %A" problems)
            Expect.stringContains problems.Head "nfm euler/quadratic nfe 1" "the row is named"
            let r = runIn dir 60 [ "report"; "diff"; "--expected"; "a.json"; "--actual"; "c.json" ]
            Expect.notEqual r.Code 0 "the command fails"
            Expect.stringContains r.Err "differ" "and says why"
            Expect.equal (runIn dir 60 [ "report"; "diff"; "--expected"; "a.json"; "--actual"; "b.json" ]).Code 0 "agreeing runs pass"
        }
        test "nfm --version names the version and the commit it was built from" {
            let r = runIn (tempDir ()) 60 [ "--version" ]
            Expect.equal r.Code 0 r.Err
            Expect.isTrue (Regex.IsMatch(r.Out.Trim(), @"^nfm \d+\.\d+\.\d+\+[0-9a-f]{12}(-dirty)?$")) (sprintf "version line: %s" r.Out)
        }
    ]
