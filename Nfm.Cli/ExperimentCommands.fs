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

/// The command line's run environment: progress on this terminal, Ctrl+C, the command recorded, `workers` workers.
let environment (workers: int) (log: Nfm.Training.TensorBoardLog option) : RunEnvironment =
    { Workers = workers; Log = log; Reporter = Progress.reporter; Cancel = cancellation; Command = commandLine () }

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
    // One worker: with two training threads at once, the garbage collector can finalise a temporary TorchSharp Scalar
    // while libtorch still reads it (CONTRIBUTING.md), which stopped about one demo in four; the figures are the same.
    let e = describe (Nfm.Descriptions.DataSpec("checkerboard", Seed = seed)) budget outDir []
    let json = runAndPrint (environment 1 None) e
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
    let e = match args.TryGetResult CompareArgs.Teacher with
            | Some f -> Experiment.withTeacher (existing "teacher" f) e
            | None -> e
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
    runAndPrint (environment workers None) e
