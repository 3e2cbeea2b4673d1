/// `nfm demo`, `nfm compare` and `nfm bench mnist-compare`: each builds an Experiment from its arguments, runs it with
/// the library's Experiment.run, writes it with Experiment.write and prints the summary.
module Nfm.Cli.ExperimentCommands

open System
open System.IO
open Argu
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.FSharp

/// Parses an option holding one number or a comma-separated list of distinct numbers, each >= 0.
let parseList (name: string) (text: string) =
    let values =
        text.Split(',', StringSplitOptions.TrimEntries ||| StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun v ->
            match Double.TryParse(v, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, x -> nonNegative name x
            | _ -> fail (sprintf "--%s '%s': expected a number or a comma-separated list of numbers" name text))
        |> List.ofArray
    if List.isEmpty values then fail (sprintf "--%s: expected a number or a comma-separated list of numbers" name)
    if List.length (List.distinct values) <> List.length values then fail (sprintf "--%s '%s' repeats a value" name text)
    values

/// A comparison as the command line describes it.
let describe (data: Nfm.Descriptions.DataSpec) (budget: string) (outDir: string) (etas: float list) =
    Experiment.create data budget outDir |> Experiment.withEtas etas

/// The second process of a comparison on two workers: this program again, on the same arguments plus
/// `--baselines-only NAMES`, with one libtorch thread and its output in a temporary log. The task ends when it exits;
/// it fails with the log's last lines when the process does.
let sideProcess (names: string list) : Threading.Tasks.Task =
    let args = Environment.GetCommandLineArgs()
    let exe = Environment.ProcessPath
    let psi = Diagnostics.ProcessStartInfo(exe, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    // Under `dotnet nfm.dll` the program is the host: name the assembly; an apphost or a published program is itself.
    if Path.GetFileNameWithoutExtension(exe) = "dotnet" then psi.ArgumentList.Add(Reflection.Assembly.GetEntryAssembly().Location)
    for a in Array.skip 1 args do psi.ArgumentList.Add a
    psi.ArgumentList.Add "--baselines-only"
    psi.ArgumentList.Add(String.concat "," names)
    psi.Environment["OMP_NUM_THREADS"] <- "1"
    let log = Path.Combine(Path.GetTempPath(), sprintf "nfm-second-process-%d.log" Environment.ProcessId)
    task {
        use p = Diagnostics.Process.Start psi
        // It does not outlive this process (a failed teacher, an interrupt): killed here, it continues from its
        // checkpoints when the comparison runs again. Ctrl-C on a terminal reaches both processes already.
        AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try (if not p.HasExited then p.Kill true) with _ -> ())
        // Its bars and messages (Reporter.relay) are replayed on this terminal; anything else goes to the log.
        let replay = Reporter.replayer Progress.reporter
        let other = Text.StringBuilder()
        let out =
            task {
                let mutable line = ""
                let! first = p.StandardOutput.ReadLineAsync()
                line <- first
                while not (isNull line) do
                    if line.StartsWith "nfm-" then replay line else other.AppendLine line |> ignore
                    let! l = p.StandardOutput.ReadLineAsync()
                    line <- l
            }
        let err = p.StandardError.ReadToEndAsync()
        do! p.WaitForExitAsync()
        do! out
        let! e = err
        let text = other.ToString() + e
        if p.ExitCode <> 0 then
            File.WriteAllText(log, text)
            let tail = text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.rev |> Array.truncate 3 |> Array.rev
            failwithf "exit code %d: %s (log %s)" p.ExitCode (String.concat " | " tail) log
    } :> Threading.Tasks.Task

/// The command line's run environment: progress on this terminal, Ctrl+C, the command recorded, `workers` workers (with
/// two, the students that need no teacher train in a second process: `sideProcess`).
let environment (workers: int) (log: Nfm.Training.TensorBoardLog option) : RunEnvironment =
    { Workers = workers; SideProcess = (if workers = 2 then Some sideProcess else None); Log = log; Reporter = Progress.reporter
      Cancel = cancellation; Command = commandLine () }

/// The second process's part (`--baselines-only NAMES`): train and evaluate those students on one libtorch thread,
/// reporting through `Reporter.relay` (the first process shows it).
let trainBaselines (names: string) (e: Experiment) =
    TorchSharp.torch.set_num_threads 1
    let env = { RunEnvironment.silent with Reporter = Reporter.relay; Cancel = cancellation; Command = commandLine () }
    Experiment.runBaselines env e (names.Split(',', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray)
    0

/// Says why an image comparison took the precision it did: the folder's comparison continues in its own, a new one
/// takes the probe's (measured in Experiment.create).
let printPreferred (e: Experiment) =
    if Experiment.isImageData e.Data then
        match Experiment.savedPrecision e.OutDir with
        | Some p -> printfn "precision: %s (as the comparison in %s started)" (Nfm.Descriptions.Precisions.Name p) e.OutDir
        | None -> printfn "precision: %O" (Nfm.PrecisionProbe.Of "cpu")

/// Runs and writes a comparison (with two workers, each on one libtorch thread), prints its summary; returns the
/// path of results.json.
let runAndPrint (env: RunEnvironment) (e: Experiment) =
    if env.Workers = 2 then TorchSharp.torch.set_num_threads 1
    printfn "\n%s" (Experiment.write (Experiment.run env e))
    Path.Combine(e.OutDir, "results.json")

let demo (args: ParseResults<DemoArgs>) =
    let outDir = outputFolder (args.GetResult(DemoArgs.Out, "demo-out"))
    let seed = int64 (args.GetResult(DemoArgs.Seed, 0))
    let budget = args.TryGetResult DemoArgs.Steps |> Option.map (positive "steps" >> string) |> Option.defaultValue "quick"
    // Two workers in two processes (not two threads of one: CONTRIBUTING.md); the figures are the same with one.
    let workers = args.GetResult(DemoArgs.Workers, (if Environment.ProcessorCount >= 2 then 2 else 1))
    if workers < 1 || workers > 2 then fail (sprintf "--workers must be 1 or 2, got %d" workers)
    let e = describe (Nfm.Descriptions.DataSpec("checkerboard", Seed = seed)) budget outDir []
    match args.TryGetResult DemoArgs.Baselines_Only with
    | Some names -> trainBaselines names e
    | None ->
    let json = runAndPrint (environment workers None) e
    printfn "%s" (Report.twoDReading (Report.read json))
    printfn "wrote %s" json
    args.TryGetResult DemoArgs.Json |> Option.iter (fun p -> File.Copy(json, outputPath p, true))
    0

let compare (args: ParseResults<CompareArgs>) =
    let outDir = outputFolder (args.GetResult CompareArgs.Out)
    let workers = args.GetResult(CompareArgs.Workers, 1)
    let data = Nfm.Descriptions.DataSpec(args.GetResult CompareArgs.Data, Seed = int64 (args.GetResult(CompareArgs.Seed, 0)),
                                         Labels = Option.toObj (args.TryGetResult CompareArgs.Labels))
    data.Validate()
    let etas = args.TryGetResult CompareArgs.Eta |> Option.map (parseList "eta") |> Option.defaultValue []
    let e = describe data (args.GetResult(CompareArgs.Budget, "quick")) outDir etas
    let e = match args.TryGetResult CompareArgs.Student_Steps with
            | Some n -> Experiment.withStudentSteps (positive "student-steps" n) e
            | None -> e
    let e = { e with Grid = Spec.parseGrid (args.GetResult(CompareArgs.Grid, "quadratic"))
                     Precision = args.TryGetResult CompareArgs.Precision |> Option.map (Some >> precision) |> Option.defaultValue e.Precision
                     Classifier = args.GetResult(CompareArgs.Classifier, "fd-classifier.ckpt")
                     StudentNet =
                        match args.GetResult(CompareArgs.Student_Net, "unet").ToLowerInvariant() with
                        | "unet" | "u-net" -> Nfm.Descriptions.Architecture.UNet
                        | "sit" -> Nfm.Descriptions.Architecture.Sit
                        | other -> fail (sprintf "--student-net '%s': expected unet or sit" other)
                     StudentWidth = args.TryGetResult CompareArgs.Student_Width |> Option.map (positive "student-width")
                     StudentDepth = args.TryGetResult CompareArgs.Student_Depth |> Option.map (positive "student-depth") }
    let guidance = args.TryGetResult CompareArgs.Guidance |> Option.map (parseList "guidance")
    if guidance.IsSome && not (args.Contains CompareArgs.Conditional) then fail "--guidance needs --conditional"
    let e = if args.Contains CompareArgs.Conditional then Experiment.conditional (defaultArg guidance Experiment.defaultGuidance) e else e
    if args.Contains CompareArgs.Guidance_Per_Steps && not (args.Contains CompareArgs.Conditional) then fail "--guidance-per-steps needs --conditional"
    let e = { e with GuidancePerSteps = args.Contains CompareArgs.Guidance_Per_Steps }
    let e = match args.TryGetResult CompareArgs.Guidance_From with
            | Some f when not (args.Contains CompareArgs.Conditional) -> fail "--guidance-from needs --conditional"
            | Some f ->
                let chosen = try Experiment.guidanceFrom (existing "results" f) with :? IO.InvalidDataException as ex -> fail ex.Message
                if chosen.IsEmpty then fail (sprintf "--guidance-from %s: the file has no student or teacher rows" f)
                { e with ChosenGuidance = chosen; GuidancePerSteps = true }
            | None -> e
    let e = match args.TryGetResult CompareArgs.Teacher with
            | Some f -> Experiment.withTeacher (existing "teacher" f) e
            | None -> e
    match args.TryGetResult CompareArgs.Baselines_Only with
    | Some names -> trainBaselines names e
    | None ->
    if not (args.Contains CompareArgs.Precision) then printPreferred e
    let json = runAndPrint (environment workers (tensorBoard (args.TryGetResult CompareArgs.Logdir))) e
    printfn "wrote %s" json
    args.TryGetResult CompareArgs.Json |> Option.iter (fun p -> File.Copy(json, outputPath p, true))
    0

/// `nfm bench mnist-compare`: the MNIST comparison at the standard budget with two workers, into results/mnist-compare.
let mnistCompare (data: string) (budget: string) (outDir: string) (workers: int) (precisionName: string option) =
    let e = describe (Nfm.Descriptions.DataSpec(data)) budget outDir []
    let e = { e with Precision = precisionName |> Option.map (Some >> precision) |> Option.defaultValue e.Precision }
    if precisionName.IsNone then printPreferred e
    // Its second worker stays a thread: `bench` has no --baselines-only for a second process to run.
    runAndPrint { environment workers None with SideProcess = None } e
