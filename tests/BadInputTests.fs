/// Bad input across the CLI: each case ends with one line on stderr naming the problem, a non-zero exit, no stack
/// trace, and an output file that existed before is left as it was (no temporary files either).
module Nfm.Tests.BadInputTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Nfm.Tests.Cli
open Nfm.Tests.CliTests
open Nfm.Tests.ReliabilityTests
open Nfm.Tests.CheckpointTests

/// Tiny checkpoints to misuse, made once (libtorch single-threaded, as in ReliabilityTests).
let fixtures =
    lazy (
        let dir = tempDir ()
        let ok (r: Run) = if r.Code <> 0 then failwithf "fixture failed: %s" r.Err
        runNfm dir 180 [ "student"; "train"; "--data"; "moons"; "--n"; "500"; "--coupling"; "ot"; "--steps"; "2"; "--batch"; "16"
                         "--width"; "8"; "--depth"; "1"; "--out"; "s.ckpt" ] |> ok
        runNfm dir 180 [ "teacher"; "train"; "--data"; "moons"; "--n"; "500"; "--steps"; "2"; "--batch"; "16"; "--width"; "16"
                         "--blocks"; "1"; "--layers"; "1"; "--head-dim"; "8"; "--out"; "t.ckpt" ] |> ok
        dir)

let student () = Path.Combine(fixtures.Force(), "s.ckpt")
let teacher () = Path.Combine(fixtures.Force(), "t.ckpt")

/// A folder for one case, with a file `name` that already exists (precious content) and a check that it is unchanged
/// and that no temporary file was left next to it.
let withExisting (name: string) =
    let dir = tempDir ()
    let path = Path.Combine(dir, name)
    File.WriteAllText(path, "precious: must survive a failed command\n")
    let check () =
        Expect.equal (File.ReadAllText path) "precious: must survive a failed command\n" (sprintf "existing %s unchanged" name)
        Expect.isEmpty (Directory.GetFiles(dir, ".*.tmp")) "no temporary files left behind"
    dir, check

/// Runs nfm in dir (single-threaded libtorch) and expects a clean error mentioning `mentions`.
let failsWith (dir: string) (mentions: string) (args: string list) = expectCleanError (runNfm dir 120 args) mentions

/// failsWith in a fresh folder that holds an existing file `name`, which must survive the failed command unchanged.
let failsKeeping (name: string) (mentions: string) (args: string list) =
    let dir, check = withExisting name
    failsWith dir mentions args
    check ()

/// Points [n, d] as float32.
let points (n: int64) (d: int64) = torch.randn(n, d)

/// True when file permissions do not stop this process (root): the permission sub-cases are then skipped.
let permissionsIgnored (path: string) =
    try File.ReadAllBytes path |> ignore; true
    with :? UnauthorizedAccessException -> false

[<Tests>]
let files =
    testSequenced <| testList "bad input: files" [
        test "missing data file (teacher train)" {
            failsKeeping "t.ckpt" "nope.npy" [ "teacher"; "train"; "--data"; "nope.npy"; "--out"; "t.ckpt"; "--resume" ]
        }
        test "missing samples file (eval)" {
            failsWith (tempDir ()) "missing.npy" [ "eval"; "--samples"; "missing.npy"; "--reference"; "moons" ]
        }
        test "missing checkpoint (student sample)" {
            failsKeeping "x.npy" "none.ckpt" [ "student"; "sample"; "--student"; "none.ckpt"; "--count"; "5"; "--out"; "x.npy" ]
        }
        test "unreadable samples file (chmod 000)" {
            let dir = tempDir ()
            let p = writeNpy dir "x.npy" (points 20L 2L)
            File.SetUnixFileMode(p, UnixFileMode.None)
            if permissionsIgnored p then skiptest "running as root: chmod 000 does not stop reads, so nothing to refuse"
            failsWith dir "x.npy" [ "eval"; "--samples"; "x.npy"; "--reference"; "moons" ]
        }
        test "mnist:DIR with a corrupted magic number" {
            let dir = tempDir ()
            let mn = Directory.CreateDirectory(Path.Combine(dir, "mn")).FullName
            Nfm.Data.Idx.WriteImages(Path.Combine(mn, "train-images-idx3-ubyte"), Nfm.Data.IdxImages(3, 28, 28, Array.zeroCreate (3 * 784)), false)
            Nfm.Data.Idx.WriteLabels(Path.Combine(mn, "train-labels-idx1-ubyte"), [| 0uy; 1uy; 2uy |], false)
            let p = Path.Combine(mn, "train-images-idx3-ubyte")
            let b = File.ReadAllBytes p
            b[3] <- 0x04uy
            File.WriteAllBytes(p, b)
            failsWith dir "wrong magic" [ "teacher"; "train"; "--data"; "mnist:mn"; "--out"; "t.ckpt" ]
        }
        test "mnist:DIR with a truncated IDX file" {
            let dir = tempDir ()
            let mn = Directory.CreateDirectory(Path.Combine(dir, "mn")).FullName
            Nfm.Data.Idx.WriteImages(Path.Combine(mn, "train-images-idx3-ubyte"), Nfm.Data.IdxImages(3, 28, 28, Array.zeroCreate (3 * 784)), false)
            Nfm.Data.Idx.WriteLabels(Path.Combine(mn, "train-labels-idx1-ubyte"), [| 0uy; 1uy; 2uy |], false)
            let p = Path.Combine(mn, "train-images-idx3-ubyte")
            let b = File.ReadAllBytes p
            File.WriteAllBytes(p, b[0 .. b.Length - 101])
            failsWith dir "truncated IDX" [ "student"; "train"; "--data"; "mnist:mn"; "--coupling"; "ot"; "--out"; "s.ckpt" ]
        }
        test "truncated .npy" {
            let dir = tempDir ()
            let p = writeNpy dir "x.npy" (points 50L 2L)
            let b = File.ReadAllBytes p
            File.WriteAllBytes(p, b[0 .. b.Length - 38])
            failsWith dir "truncated" [ "eval"; "--samples"; "x.npy"; "--reference"; "moons" ]
        }
        test "int64 data where floats are needed" {
            let dir, check = withExisting "s.ckpt"
            writeNpy dir "x.npy" (torch.arange(100L).reshape(50L, 2L)) |> ignore
            failsWith dir "must be float32 or float64, found int64" [ "student"; "train"; "--data"; "x.npy"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--resume" ]
            check ()
        }
        test "bool samples" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (torch.rand(50L, 2L).gt(torch.tensor 0.5f)) |> ignore
            failsWith dir "bool" [ "eval"; "--samples"; "x.npy"; "--reference"; "moons" ]
        }
        test "float labels" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (points 50L 2L) |> ignore
            writeNpy dir "y.npy" (torch.zeros(50L)) |> ignore
            failsWith dir "labels must be integers" [ "student"; "train"; "--data"; "x.npy"; "--labels"; "y.npy"; "--coupling"; "ot"; "--out"; "s.ckpt" ]
        }
        test "labels whose count does not match the data" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (points 50L 2L) |> ignore
            writeNpy dir "y.npy" (torch.zeros(40L, dtype = torch.int64)) |> ignore
            failsWith dir "40 labels, but x.npy has 50 rows" [ "student"; "train"; "--data"; "x.npy"; "--labels"; "y.npy"; "--coupling"; "ot"; "--out"; "s.ckpt" ]
        }
        test "samples of another dimension for eval" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (torch.randn(50L)) |> ignore
            failsWith dir "samples have rows of shape []" [ "eval"; "--samples"; "x.npy"; "--reference"; "moons" ]
        }
        test "teacher encode input of the wrong shape" {
            let dir, check = withExisting "z.npy"
            writeNpy dir "x.npy" (points 50L 3L) |> ignore
            failsWith dir "the teacher expects [N, 2]" [ "teacher"; "encode"; "--teacher"; teacher (); "--input"; "x.npy"; "--out"; "z.npy" ]
            check ()
        }
        test "teacher decode labels of the wrong count" {
            let dir, check = withExisting "x.npy"
            writeNpy dir "z.npy" (points 50L 2L) |> ignore
            writeNpy dir "y.npy" (torch.zeros(40L, dtype = torch.int64)) |> ignore
            failsWith dir "expected [50] labels" [ "teacher"; "decode"; "--teacher"; teacher (); "--input"; "z.npy"; "--labels"; "y.npy"; "--out"; "x.npy" ]
            check ()
        }
        test "Inf in training data names the row" {
            let dir = tempDir ()
            let x = points 50L 2L
            x[7L, 0L] <- torch.tensor infinity
            writeNpy dir "x.npy" x |> ignore
            failsWith dir "row 7" [ "teacher"; "train"; "--data"; "x.npy"; "--out"; "t.ckpt" ]
        }
        test "a FILE.npy smaller than the built-in --n default is used whole" {
            // Regression: --n (default 20000) used to apply to files too, refusing any smaller file.
            let dir = tempDir ()
            writeNpy dir "x.npy" (points 50L 2L) |> ignore
            let r = runNfm dir 120 [ "student"; "train"; "--data"; "x.npy"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--steps"; "2"
                                     "--batch"; "8"; "--width"; "8"; "--depth"; "1" ]
            Expect.equal r.Code 0 (sprintf "trains on the 50 rows: %s" r.Err)
        }
    ]

[<Tests>]
let options =
    testSequenced <| testList "bad input: options and names" [
        test "--batch 0" {
            failsKeeping "t.ckpt" "--batch must be a positive integer" [ "teacher"; "train"; "--data"; "moons"; "--out"; "t.ckpt"; "--batch"; "0" ]
        }
        test "compare --budget, --eta and --workers out of range" {
            let dir = tempDir ()
            let compare extra = [ "compare"; "--data"; "moons"; "--out"; "c" ] @ extra
            failsWith dir "budget 'nope': expected quick, standard or a positive number of steps" (compare [ "--budget"; "nope" ])
            failsWith dir "--eta '0.1,x': expected a number or a comma-separated list" (compare [ "--eta"; "0.1,x" ])
            failsWith dir "--eta '0.1,0.1' repeats a value" (compare [ "--eta"; "0.1,0.1" ])
            failsWith dir "workers 3: expected 1 or 2" (compare [ "--workers"; "3" ])
            failsWith dir "--guidance needs --conditional" (compare [ "--guidance"; "0,1" ])
            writeNpy dir "x.npy" (points 200L 2L) |> ignore
            failsWith dir "a conditional comparison needs labels with the data" [ "compare"; "--data"; "x.npy"; "--out"; "c2"; "--conditional" ]
            failsWith dir "teacher 'none.ckpt' not found" (compare [ "--teacher"; "none.ckpt" ])
            failsWith dir "--student-net 'transformer': expected unet or sit" (compare [ "--student-net"; "transformer" ])
            failsWith dir "--student-width must be a positive integer, got 0" (compare [ "--student-width"; "0" ])
        }
        test "--eta -1" {
            failsKeeping "p.pairs" "--eta must be a finite number >= 0" [ "couple"; "--teacher"; teacher (); "--data"; "moons"; "--eta"; "-1"; "--out"; "p.pairs" ]
        }
        test "--count 0" {
            failsKeeping "x.npy" "--count must be a positive integer" [ "teacher"; "sample"; "--teacher"; teacher (); "--count"; "0"; "--out"; "x.npy" ]
        }
        test "--nfe 0" {
            failsKeeping "x.npy" "--nfe must be a positive integer" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--nfe"; "0"; "--out"; "x.npy" ]
        }
        test "--cfg nan" {
            failsKeeping "x.npy" "--cfg must be a finite number" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--cfg"; "nan"; "--out"; "x.npy" ]
        }
        test "unknown solver" {
            failsKeeping "x.npy" "rk9" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--solver"; "rk9"; "--out"; "x.npy" ]
        }
        test "unknown grid" {
            failsKeeping "x.npy" "unknown time grid 'cubic'" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--grid"; "cubic"; "--out"; "x.npy" ]
        }
        test "unknown data set" {
            failsWith (tempDir ()) "unknown data 'spirals3'" [ "teacher"; "train"; "--data"; "spirals3"; "--out"; "t.ckpt" ]
        }
        test "unknown metric" {
            let dir = tempDir ()
            writeNpy dir "x.npy" (points 20L 2L) |> ignore
            failsWith dir "unknown --metric 'fid'" [ "eval"; "--samples"; "x.npy"; "--reference"; "moons"; "--metric"; "fid" ]
        }
        test "unknown benchmark" {
            failsWith (tempDir ()) "unknown benchmark 'warp'" [ "bench"; "warp" ]
        }
        test "malformed coupling parameter" {
            let dir = tempDir ()
            let r = runNfm dir 120 [ "student"; "train"; "--data"; "moons"; "--coupling"; "sinkhorn:abc"; "--out"; "s.ckpt" ]
            expectCleanError r "sinkhorn epsilon must be a number, got 'abc'"
            Expect.isFalse (r.Err.Contains "(Parameter") "no .NET parameter name in the message"
        }
        test "shard 3/2" {
            failsWith (tempDir ()) "--shard '3/2'" [ "couple"; "--teacher"; teacher (); "--data"; "moons"; "--shard"; "3/2"; "--out"; "p.pairs" ]
        }
        test "shard 1/0" {
            failsWith (tempDir ()) "--shard '1/0'" [ "couple"; "--teacher"; teacher (); "--data"; "moons"; "--shard"; "1/0"; "--out"; "p.pairs" ]
        }
        test "shard x/y" {
            failsWith (tempDir ()) "--shard 'x/y'" [ "couple"; "--teacher"; teacher (); "--data"; "moons"; "--shard"; "x/y"; "--out"; "p.pairs" ]
        }
        test "an unknown option is a usage error (exit 2) naming it" {
            let r = runNfm (tempDir ()) 60 [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--out"; "x.npy"; "--bogus" ]
            Expect.equal r.Code 2 "usage errors exit 2"
            Expect.stringContains (r.Err.Split('\n')[0]) "--bogus" "the first line names the option"
            Expect.isFalse (r.Err.Contains "   at ") "no stack trace"
        }
    ]

[<Tests>]
let outputs =
    testSequenced <| testList "bad input: outputs" [
        test "output in a missing folder" {
            failsWith (tempDir ()) "does not exist" [ "teacher"; "sample"; "--teacher"; teacher (); "--count"; "5"; "--out"; "no/such/x.npy" ]
        }
        test "--png in a missing folder: nothing is written, not even --out" {
            failsKeeping "x.npy" "does not exist" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--out"; "x.npy"; "--png"; "no/g.png" ]
        }
        test "--logdet in a missing folder: nothing is written, not even --out" {
            let dir, check = withExisting "z.npy"
            writeNpy dir "x.npy" (points 10L 2L) |> ignore
            failsWith dir "does not exist" [ "teacher"; "encode"; "--teacher"; teacher (); "--input"; "x.npy"; "--out"; "z.npy"; "--logdet"; "no/l.npy" ]
            check ()
        }
        test "--json in a missing folder fails before training" {
            let dir = tempDir ()
            failsWith dir "does not exist" [ "student"; "train"; "--data"; "moons"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--json"; "no/t.json" ]
            Expect.isFalse (File.Exists(Path.Combine(dir, "s.ckpt"))) "no training happened"
        }
        test "--loss-png in a missing folder fails before training" {
            let dir = tempDir ()
            failsWith dir "does not exist" [ "student"; "train"; "--data"; "moons"; "--coupling"; "ot"; "--out"; "s.ckpt"; "--loss-png"; "no/l.png" ]
            Expect.isFalse (File.Exists(Path.Combine(dir, "s.ckpt"))) "no student training happened"
            failsWith dir "does not exist" [ "teacher"; "train"; "--data"; "moons"; "--out"; "t.ckpt"; "--loss-png"; "no/l.png" ]
            Expect.isFalse (File.Exists(Path.Combine(dir, "t.ckpt"))) "no teacher training happened"
        }
        test "read-only output folder (chmod 555)" {
            let dir = tempDir ()
            let ro = Directory.CreateDirectory(Path.Combine(dir, "ro")).FullName
            File.SetUnixFileMode(ro, UnixFileMode.UserRead ||| UnixFileMode.UserExecute ||| UnixFileMode.GroupRead ||| UnixFileMode.GroupExecute
                                     ||| UnixFileMode.OtherRead ||| UnixFileMode.OtherExecute)
            let canWrite =
                try File.WriteAllText(Path.Combine(ro, "probe"), ""); File.Delete(Path.Combine(ro, "probe")); true
                with :? UnauthorizedAccessException -> false
            if canWrite then skiptest "running as root: chmod 555 does not stop writes, so nothing to refuse"
            failsWith dir "ro" [ "student"; "sample"; "--student"; student (); "--count"; "5"; "--out"; "ro/x.npy" ]
        }
    ]

[<Tests>]
let checkpoints =
    testSequenced <| testList "bad input: checkpoints" [
        test "a student checkpoint passed as a teacher" {
            failsKeeping "x.npy" "is a student checkpoint, expected a teacher" [ "teacher"; "sample"; "--teacher"; student (); "--count"; "5"; "--out"; "x.npy" ]
        }
        test "a teacher checkpoint passed as a student" {
            failsKeeping "x.npy" "is a teacher checkpoint, expected a student" [ "student"; "sample"; "--student"; teacher (); "--count"; "5"; "--out"; "x.npy" ]
        }
        test "a truncated checkpoint" {
            let dir, check = withExisting "x.npy"
            let b = File.ReadAllBytes(student ())
            File.WriteAllBytes(Path.Combine(dir, "s.ckpt"), b[0 .. b.Length / 2])
            failsWith dir "truncated or altered" [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--out"; "x.npy" ]
            check ()
        }
        test "an altered checkpoint (one byte flipped in the middle)" {
            let dir, check = withExisting "x.npy"
            let b = File.ReadAllBytes(teacher ())
            b[b.Length / 2] <- b[b.Length / 2] ^^^ 0x10uy
            File.WriteAllBytes(Path.Combine(dir, "t.ckpt"), b)
            failsWith dir "SHA-256 mismatch" [ "teacher"; "sample"; "--teacher"; "t.ckpt"; "--count"; "5"; "--out"; "x.npy" ]
            check ()
        }
        test "a checkpoint of another format version (well-formed, checksum right)" {
            let dir, check = withExisting "x.npy"
            let b = rewriteHeader (File.ReadAllBytes(student ())) (fun m -> m["nfm.format_version"] <- JsonValue.Create "3")
            File.WriteAllBytes(Path.Combine(dir, "s.ckpt"), b)
            failsWith dir "format version 3 is not supported" [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--out"; "x.npy" ]
            check ()
        }
        test "a checkpoint with another format's magic" {
            let dir = tempDir ()
            let b = OldLayout.bytesOf (Nfm.Checkpoints.Checkpoint.Load(student ()))
            b[7] <- byte '2'
            File.WriteAllBytes(Path.Combine(dir, "s.ckpt"), b)
            failsWith dir "'NFMCKPT2' is not supported" [ "student"; "sample"; "--student"; "s.ckpt"; "--count"; "5"; "--out"; "x.npy" ]
        }
        test "an old NFMCKPT1 checkpoint: samples as before with a one-line note; --resume saves it as safetensors" {
            let dir = tempDir ()
            OldLayout.write (Path.Combine(dir, "old.ckpt")) (Nfm.Checkpoints.Checkpoint.Load(student ()))
            File.Copy(student (), Path.Combine(dir, "new.ckpt"))
            let sample name out = runNfm dir 120 [ "student"; "sample"; "--student"; name; "--count"; "20"; "--seed"; "3"; "--out"; out ]
            let fromNew = sample "new.ckpt" "new.npy"
            Expect.equal fromNew.Code 0 fromNew.Err
            Expect.isFalse (fromNew.Err.Contains "NFMCKPT1") "no note for a safetensors checkpoint"
            let fromOld = sample "old.ckpt" "old.npy"
            Expect.equal fromOld.Code 0 fromOld.Err
            let notes = fromOld.Err.Split('\n') |> Array.filter (fun l -> l.Contains "NFMCKPT1")
            Expect.equal notes.Length 1 (sprintf "one note on stderr: %s" fromOld.Err)
            Expect.stringContains notes[0] "old.ckpt" "naming the file"
            Expect.sequenceEqual (File.ReadAllBytes(Path.Combine(dir, "old.npy"))) (File.ReadAllBytes(Path.Combine(dir, "new.npy"))) "the same samples"
            let args = [ "student"; "train"; "--data"; "moons"; "--n"; "500"; "--coupling"; "ot"; "--steps"; "3"; "--batch"; "16"
                         "--width"; "8"; "--depth"; "1"; "--out"; "old.ckpt"; "--resume" ]
            let resumed = runNfm dir 120 args
            Expect.equal resumed.Code 0 resumed.Err
            let c = Nfm.Checkpoints.Checkpoint.Load(Path.Combine(dir, "old.ckpt"))
            Expect.equal (c.SourceFormatVersion, c.Meta["step"]) (2, "3") "continued and written as safetensors"
        }
        test "resume with another configuration leaves the checkpoint as it was" {
            let dir = tempDir ()
            let p = Path.Combine(dir, "s.ckpt")
            File.Copy(student (), p)
            let before = File.ReadAllBytes p
            let args = [ "student"; "train"; "--data"; "moons"; "--n"; "500"; "--coupling"; "ot"; "--steps"; "4"
                         "--batch"; "16"; "--width"; "16"; "--depth"; "1"; "--out"; "s.ckpt"; "--resume" ]
            failsWith dir "other settings" args
            Expect.sequenceEqual (File.ReadAllBytes p) before "checkpoint untouched"
        }
    ]
