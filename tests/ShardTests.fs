/// A folder of pair shards (nfm couple --shard I/N): merged only when they cover every row exactly once with one
/// teacher and one data identity, else a one-line error naming the missing or duplicate shard or the file that
/// differs; and the cluster examples (Slurm job array, Kubernetes Indexed Job) run the right command.
module Nfm.Tests.ShardTests

open System
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open Nfm.Couple
open Nfm.Tests.Cli

let rows = 3L * int64 TeacherCoupling.EncodeBatch + 10L
/// The description of pairs made by `teacher` for `data`, rows [start, end).
let specOf (teacher: string) (data: string) (start: int64) (stop: int64) =
    PairsSpec(teacher, data, rows, 1, 0.05, 1.0, 0L, start, stop)

/// Shard i of n as Compute would write it (by teacher-a of data-a unless given): its rows of a table whose value is
/// the row index.
let shardBy (teacher: string) (data: string) (i: int) (n: int) =
    let struct (a, b) = TeacherPairs.ShardRows(rows, i, n)
    TeacherPairs(specOf teacher data a b, torch.arange(a, b, dtype = torch.float32).reshape(1L, -1L, 1L).expand(1L, -1L, 2L).contiguous(),
                 Shard = Nullable<struct (int * int)>(struct (i, n)))

let shard i n = shardBy "teacher-a" "data-a" i n

let folderOf (files: (string * TeacherPairs) list) =
    let dir = tempDir ()
    for name, p in files do p.Save(Path.Combine(dir, name))
    dir

let loadError (dir: string) =
    try
        TeacherPairs.Load dir |> ignore
        failtest "the folder was accepted"
    with :? InvalidDataException as e -> e.Message

let oneLine (m: string) = Expect.isFalse (m.Contains '\n') (sprintf "one line: %s" m)

/// The tokens of the nfm command in a shell script (backslash continuations joined), quotes removed.
let commandIn (script: string) =
    let joined = File.ReadAllText(script).Replace("\\\n", " ")
    let line = joined.Split('\n') |> Array.find (fun l -> l.TrimStart().StartsWith "$NFM ")
    [ for m in Regex.Matches(line, "\"[^\"]*\"|\\S+") -> m.Value.Trim('"') ]

/// The options `nfm couple --help` lists.
let coupleOptions =
    lazy (
        let r = runIn (Path.GetTempPath()) 60 [ "couple"; "--help" ]
        set [ for m in Regex.Matches(r.Out, @"^\s+(--[a-z-]+)", RegexOptions.Multiline) -> m.Groups[1].Value ])

/// The couple options given (every --name), checked against the CLI's own list.
let checkOptions (args: string list) =
    let afterCouple = args |> List.skipWhile ((<>) "couple")
    Expect.isNonEmpty afterCouple "the command is nfm couple"
    for a in afterCouple do
        if a.StartsWith "--" then Expect.isTrue (coupleOptions.Value.Contains a) (sprintf "%s is an option of nfm couple" a)
    let value name = afterCouple |> List.skipWhile ((<>) name) |> List.tail |> List.head
    value

[<Tests>]
let tests =
    testList "pair shards" [
        test "three shards in any file order merge into the whole table" {
            let dir = folderOf [ "c.pairs", shard 0 3; "a.pairs", shard 2 3; "b.pairs", shard 1 3 ]
            let p = TeacherPairs.Load dir
            Expect.equal (p.Spec.RowStart, p.Spec.RowEnd) (0L, rows) "every row"
            Expect.isTrue (p.X0.select(0, 0L).select(1, 0L).eq(torch.arange(rows, dtype = torch.float32)).all().item<bool>()) "rows in order"
        }
        test "the shard a file holds is recorded and read back" {
            let dir = folderOf [ "s.pairs", shard 1 3 ]
            let p = TeacherPairs.Load(Path.Combine(dir, "s.pairs"))
            Expect.equal p.Shard (Nullable<struct (int * int)>(struct (1, 3))) "shard 1/3"
        }
        test "a missing shard is named" {
            let m = loadError (folderOf [ "s0.pairs", shard 0 3; "s2.pairs", shard 2 3 ])
            oneLine m
            let struct (a, b) = TeacherPairs.ShardRows(rows, 1, 3)
            Expect.stringContains m (sprintf "shard 1/3 (rows %d..%d) is missing" a (b - 1L)) m
        }
        test "a missing last shard is named" {
            let m = loadError (folderOf [ "s0.pairs", shard 0 3; "s1.pairs", shard 1 3 ])
            oneLine m
            Expect.stringContains m "shard 2/3" m
            Expect.stringContains m "is missing" m
        }
        test "a shard present twice is named with both files" {
            let m = loadError (folderOf [ "s0.pairs", shard 0 3; "s1.pairs", shard 1 3; "s1-again.pairs", shard 1 3
                                          "s2.pairs", shard 2 3 ])
            oneLine m
            Expect.stringContains m "shard 1/3 appears twice: s1-again.pairs and s1.pairs" m
        }
        test "shards of different splits that overlap are named with their rows" {
            let m = loadError (folderOf [ "half.pairs", shard 0 2; "third.pairs", shard 1 3; "rest.pairs", shard 2 3 ])
            oneLine m
            Expect.stringContains m "half.pairs" m
            Expect.stringContains m "third.pairs" m
            Expect.stringContains m "overlap" m
        }
        test "a shard of another teacher is refused, naming the file and the teacher" {
            let m = loadError (folderOf [ "s0.pairs", shard 0 2; "s1.pairs", shardBy "teacher-b" "data-a" 1 2 ])
            oneLine m
            Expect.stringContains m "s1.pairs" m
            Expect.stringContains m "teacher teacher-b (not teacher-a)" m
        }
        test "a shard of other data is refused, naming the file and the data identity" {
            let m = loadError (folderOf [ "s0.pairs", shard 0 2; "s1.pairs", shardBy "teacher-a" "data-b" 1 2 ])
            oneLine m
            Expect.stringContains m "s1.pairs" m
            Expect.stringContains m "data data-b" m
        }
        test "shards without a recorded index still get the uncovered rows named" {
            let bare (p: TeacherPairs) = TeacherPairs(p.Spec, p.X0)
            let m = loadError (folderOf [ "s0.pairs", bare (shard 0 3); "s2.pairs", bare (shard 2 3) ])
            oneLine m
            let struct (a, b) = TeacherPairs.ShardRows(rows, 1, 3)
            Expect.stringContains m (sprintf "rows %d..%d of %d are in no shard file" a (b - 1L) rows) m
        }
        test "the Kubernetes Indexed Job runs nfm couple --shard INDEX/completions, one file per index" {
            let text = File.ReadAllText(Path.Combine(repoRoot, "examples", "cluster", "couple-indexed-job.yaml"))
            Expect.stringContains text "completionMode: Indexed" "an Indexed Job"
            let completions = int (Regex.Match(text, @"^\s*completions:\s*(\d+)", RegexOptions.Multiline).Groups[1].Value)
            let command = Regex.Match(text, @"^\s*command:\s*(\[.*\])\s*$", RegexOptions.Multiline).Groups[1].Value
            let argsJson = Regex.Match(text, @"^\s*args:\s*(\[.*\])\s*$", RegexOptions.Multiline).Groups[1].Value
            let command = JsonSerializer.Deserialize<string list> command
            Expect.stringContains (List.item 2 command) "exec nfm \"$@\"" "runs nfm with the arguments"
            let args = JsonSerializer.Deserialize<string list> argsJson
            Expect.stringContains (List.item 2 command) (Path.GetDirectoryName((checkOptions args) "--out")) "after making the --out folder"
            let args = JsonSerializer.Deserialize<string list> argsJson
            let value = checkOptions args
            Expect.equal (value "--shard") (sprintf "$(JOB_COMPLETION_INDEX)/%d" completions) "--shard INDEX/completions"
            Expect.stringContains (value "--out") "$(JOB_COMPLETION_INDEX)" "one pair file per index"
            Expect.stringContains text "job-completion-index" "the index comes from the Job controller"
        }
        test "the Slurm job array runs nfm couple --shard TASK/COUNT, and its shards train a student" {
            let script = Path.Combine(repoRoot, "examples", "cluster", "couple-slurm.sh")
            let text = File.ReadAllText script
            let array = Regex.Match(text, @"#SBATCH --array=0-(\d+)").Groups[1].Value
            Expect.isNonEmpty array "an array job 0..K"
            let value = checkOptions (commandIn script)
            Expect.equal (value "--shard") "$I/$N" "--shard TASK/COUNT"
            Expect.stringContains text "I=${SLURM_ARRAY_TASK_ID" "I is the array task"
            Expect.stringContains text "N=${SLURM_ARRAY_TASK_COUNT" "N is the array size"
            // Run it as two array tasks would, on a tiny teacher and 2-D data, then train on the folder.
            let dir = tempDir ()
            let teacher = runIn dir 240 [ "teacher"; "train"; "--data"; "moons"; "--n"; "600"; "--out"; "t.ckpt"; "--steps"; "10"; "--batch"; "64"
                                          "--width"; "16"; "--blocks"; "2"; "--layers"; "1"; "--head-dim"; "8" ]
            Expect.equal teacher.Code 0 teacher.Err
            for i in 0 .. 1 do
                let psi = Diagnostics.ProcessStartInfo("bash", RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = dir)
                psi.ArgumentList.Add script
                for k, v in [ "NFM", sprintf "dotnet %s" nfmDll; "TEACHER", "t.ckpt"; "DATA", "moons"; "EXTRA", "--n 600"
                              "SLURM_ARRAY_TASK_ID", string i; "SLURM_ARRAY_TASK_COUNT", "2"; "SLURM_CPUS_PER_TASK", "1" ] do
                    psi.Environment[k] <- v
                use p = Diagnostics.Process.Start psi
                let err = p.StandardError.ReadToEndAsync()
                p.StandardOutput.ReadToEnd() |> ignore
                Expect.isTrue (p.WaitForExit 120000) "task finishes"
                Expect.equal p.ExitCode 0 (sprintf "task %d: %s" i err.Result)
            Expect.sequenceEqual (Directory.GetFiles(Path.Combine(dir, "pairs")) |> Array.map Path.GetFileName |> Array.sort)
                [| "shard-0-of-2.pairs"; "shard-1-of-2.pairs" |] "one file per task"
            let st = runIn dir 120 [ "student"; "train"; "--data"; "moons"; "--n"; "600"; "--coupling"; "teacher:pairs"; "--out"; "s.ckpt"
                                     "--steps"; "5"; "--batch"; "32"; "--width"; "16"; "--depth"; "1" ]
            Expect.equal st.Code 0 st.Err
            File.Delete(Path.Combine(dir, "pairs", "shard-1-of-2.pairs"))
            let missing = runIn dir 120 [ "student"; "train"; "--data"; "moons"; "--n"; "600"; "--coupling"; "teacher:pairs"; "--out"; "s2.ckpt"; "--steps"; "2" ]
            Expect.notEqual missing.Code 0 "a folder with a shard missing is refused"
            Expect.stringContains missing.Err "shard 1/2" "the CLI names the missing shard"
        }
    ]
