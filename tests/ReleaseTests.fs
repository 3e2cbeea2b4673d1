/// The released MNIST teachers (models/*): each shipped file loads, is its card's, and has the card's NLL; and
/// `Release.teacher` on a tiny comparison measures its card on the file it writes.
module Nfm.Tests.ReleaseTests

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open Expecto
open Nfm.FSharp

/// Comparisons in these tests run silently on one worker.
let private quiet = Nfm.FSharp.RunEnvironment.silent

/// Every release folder under models/ (a folder holding a card).
let private releaseFolders () =
    match Nfm.Tests.DataTests.repoRoot () with
    | None -> []
    | Some root ->
        let models = Path.Combine(root, "models")
        if not (Directory.Exists models) then []
        else Directory.GetDirectories models |> Array.filter (fun d -> File.Exists(Path.Combine(d, Release.cardFile))) |> Array.sort |> List.ofArray

let private checkRelease (dir: string) =
    let card = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, Release.cardFile)))
    let weights = Path.Combine(dir, Release.weightsFile)
    let bytes = FileInfo(weights).Length
    Expect.isLessThan bytes 20_000_000L "the weights file is under 20 MB"
    Expect.equal bytes (card["weights_bytes"].GetValue<int64>()) "the card's size"
    use s = File.OpenRead weights
    Expect.equal (Convert.ToHexString(SHA256.HashData s).ToLowerInvariant()) (card["weights_sha256"].GetValue<string>()) "the card's SHA-256"
    let teacher = Teacher.read weights
    Expect.equal (Teacher.identity teacher) (card["identity"].GetValue<string>()) "the card's teacher"
    Expect.equal (Teacher.identity teacher) (card["run_identity"].GetValue<string>()) "the comparison's teacher, unchanged by the export"
    Expect.equal teacher.Spec.Model.Classes (card["model"].["classes"].GetValue<int>()) "the card's classes"
    match Nfm.Tests.DataTests.realMnistFolder () with
    | None -> skiptest "no MNIST folder (../shared/data/mnist) to measure the NLL on"
    | Some folder ->
        let rows = card["reference_rows"].GetValue<int>()
        let _, reference = Experiment.split (Nfm.Descriptions.DataSpec("mnist:" + folder)) rows
        Expect.equal reference.X.shape[0] (int64 rows) "the card's reference rows"
        let nll, bpd = Teacher.nll teacher reference
        Expect.floatClose { absolute = 0.01; relative = 0.0 } nll (card["test_nll_nats"].GetValue<float>()) "the card's test NLL"
        Expect.floatClose { absolute = 1e-4; relative = 0.0 } bpd (card["test_bpd"].GetValue<float>()) "the card's bits/dim"

[<Tests>]
let tests =
    testSequenced <| testList "release" [
        test "the released teachers are found: the unconditional and the class-conditional MNIST teacher" {
            let names = releaseFolders () |> List.map Path.GetFileName
            Expect.containsAll names [ "mnist-teacher"; "mnist-teacher-conditional" ] "both releases"
        }

        yield! [ for dir in releaseFolders () ->
                    test (sprintf "%s: the shipped teacher loads, is under 20 MB, matches its card's hash, identity and classes, and has the card's test NLL within 0.01 nats" (Path.GetFileName dir)) {
                        checkRelease dir
                    } ]

        test "Release.teacher writes the comparison's teacher with a card measured on the written file, and refuses a checkpoint that is not the run's" {
            let dir = Path.Combine(Path.GetTempPath(), "nfm-release-" + Guid.NewGuid().ToString("N"))
            let e = Experiment.create (Nfm.Descriptions.DataSpec("moons")) "12" dir
            let e = { e with Budget = { e.Budget with EvalCount = 200; Steps = [ 1 ]; TeacherEma = 0.9; TeacherHeldOut = 300 }
                             Methods = [ { Name = "independent"; Coupling = Independent } ]}
            let r = Experiment.run quiet e
            Experiment.write r |> ignore
            let out = Path.Combine(dir, "release")
            let card = Release.teacher dir out
            let released = Teacher.read (Path.Combine(out, Release.weightsFile))
            let _, reference = Experiment.split e.Data 200
            let nll, _ = Teacher.nll released reference
            Expect.floatClose Accuracy.high (card["test_nll_nats"].GetValue<float>()) nll "the card's NLL is the file's"
            Expect.floatClose Accuracy.medium nll r.Teacher.Nll "and the comparison's teacher's"
            Expect.equal (card["selected_step"].GetValue<int64>()) (Expect.wantSome r.Teacher.Selection "selected").Step "the held-out choice"
            Expect.isTrue (File.Exists(Path.Combine(out, "README.md"))) "a model card"
            // Another teacher in the folder's place: refused, naming both identities.
            let other = Teacher.trainIn RunOptions.silent { Teacher.settings with Width = Some 8; Blocks = Some 2; Layers = Some 1; HeadDim = Some 4; Steps = 2
                                                                                  Batch = Some 64 } (Data.toy "moons" 500L 0L)
            Teacher.save (Path.Combine(dir, "teacher-best.ckpt")) other
            Expect.throwsC (fun () -> Release.teacher dir (Path.Combine(dir, "again")) |> ignore)
                (fun ex -> Expect.stringContains ex.Message "describes teacher" "names the mismatch")
        }
    ]
