/// What every command shares: option checks, JSON output, Ctrl-C handling, data loading and the error frame.
module Nfm.Cli.Common

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading

/// A user's mistake: reported as one line on stderr with a non-zero exit.
exception UserError of string

let fail msg = raise (UserError msg)

/// An option that must be > 0.
let positive (name: string) (v: int) = if v <= 0 then fail (sprintf "--%s must be a positive integer, got %d" name v) else v

/// An option that must be >= 0.
let nonNegative (name: string) (v: float) =
    if not (v >= 0.0) || Double.IsInfinity v then fail (sprintf "--%s must be a finite number >= 0, got %g" name v) else v

/// --precision: float32 (when not given) or bfloat16; anything else is a one-line error naming the value.
let precision (given: string option) =
    match given with
    | None -> Nfm.Descriptions.Precision.Float32
    | Some name ->
        try Nfm.Descriptions.Precisions.Parse name
        with :? ArgumentException -> fail (sprintf "--precision: unknown precision '%s'; valid: %s" name Nfm.Descriptions.Precisions.Names)

/// A file given as input must exist.
let existing (what: string) (path: string) =
    if not (File.Exists path) then fail (sprintf "%s '%s' not found" what path) else path

/// The folder of an output path must exist (nothing is created silently in a mistyped place).
let outputPath (path: string) =
    let dir = Path.GetDirectoryName(Path.GetFullPath path)
    if not (Directory.Exists dir) then fail (sprintf "cannot write '%s': folder '%s' does not exist" path dir) else path

/// Rows to load from a data spec: --n draws that many from a built-in set (default builtIn);
/// for mnist:DIR or FILE.npy an explicit --n takes the first rows and no --n takes them all.
let dataRows (spec: string) (given: int option) (builtIn: int) =
    match given with
    | Some n -> int64 (positive "n" n)
    | None -> if Nfm.Data.Toy2D.IsName spec then int64 builtIn else 0L

/// Creates an output folder (its parent must exist).
let outputFolder (dir: string) =
    let full = Path.GetFullPath dir
    let parent = Path.GetDirectoryName full
    if not (Directory.Exists parent) then fail (sprintf "cannot create '%s': folder '%s' does not exist" dir parent)
    Directory.CreateDirectory full |> ignore
    full

/// Writes a JSON value (atomically) to a path whose folder must exist.
let writeJson (path: string) (node: JsonNode) = Nfm.FSharp.JsonFile.write (outputPath path) node

// The library's JSON builders, by the short names the commands use.
let jobj = Nfm.FSharp.JsonFile.obj
let jnum = Nfm.FSharp.JsonFile.num
let jint = Nfm.FSharp.JsonFile.int
let jstr = Nfm.FSharp.JsonFile.str
let jarr = Nfm.FSharp.JsonFile.arr

/// The version of this build and the git commit it was built from ("0.1.0+1a2b3c4d5e6f", "-dirty" when the working
/// tree had uncommitted changes), recorded by the build in the assembly's informational version.
let buildVersion () = Nfm.FSharp.Provenance.versionOf (Reflection.Assembly.GetExecutingAssembly())

/// This process's command line as a user would type it ("nfm demo --out x"), recorded in results files.
let commandLine () =
    "nfm " + String.Join(" ", Environment.GetCommandLineArgs() |> Array.skip 1)

/// The TensorBoard log of a --logdir option, if given (its parent folder must exist).
let tensorBoard (dir: string option) =
    dir |> Option.map (fun d -> try Nfm.Training.TensorBoardLog(d) with :? ArgumentException as e -> raise (UserError e.Message))

/// Cancelled by the first Ctrl-C (long commands stop after saving what they can); a second one exits at once.
let cancellation =
    let cts = new CancellationTokenSource()
    Console.CancelKeyPress.Add(fun e ->
        if not cts.IsCancellationRequested then
            e.Cancel <- true
            eprintfn "\ninterrupted: stopping after the current step and saving what is done (Ctrl-C again to abort)"
            cts.Cancel())
    cts.Token

/// Draws a training command's loss of every step, from step firstStep on, against the step as a PNG.
let saveLosses (path: string) (title: string) (name: string) (firstStep: int64) (losses: float seq) =
    Nfm.FSharp.Plot.losses path title [ Nfm.Plots.LossSeries(name, Array.ofSeq losses, firstStep) ]
    printfn "loss curve: %s" path

/// Runs a command body, turning every expected failure into one line on stderr and exit code 1
/// (2 for command-line usage); stack traces only with --verbose.
let guard (verbose: bool) (body: unit -> int) =
    // ArgumentException appends " (Parameter 'name')" to its message: the user has no such parameter.
    let argumentMessage (e: ArgumentException) =
        if isNull e.ParamName then e.Message else e.Message.Replace(sprintf " (Parameter '%s')" e.ParamName, "")
    let report (msg: string) (e: exn) code =
        eprintfn "nfm: error: %s" (msg.Replace("\n", " "))
        if verbose then eprintfn "%O" e
        code
    try body ()
    with
    | UserError msg as e -> report msg e 1
    | :? Argu.ArguParseException as e -> eprintfn "%s" e.Message; 2
    | :? ArgumentException as e -> report (argumentMessage e) e 1
    | :? FileNotFoundException as e -> report e.Message e 1
    | :? DirectoryNotFoundException as e -> report e.Message e 1
    | :? InvalidDataException as e -> report e.Message e 1
    | :? UnauthorizedAccessException as e -> report e.Message e 1
    | :? IOException as e -> report e.Message e 1
    | :? FormatException as e -> report e.Message e 1
    | :? NotSupportedException as e -> report e.Message e 1
    | :? Nfm.Training.NonFiniteTrainingException as e -> report e.Message e 1
    | :? OperationCanceledException as e -> report "interrupted" e 130
    | e -> report (sprintf "%s: %s" (e.GetType().Name) e.Message) e 1

/// Training data as every training command reads it: n rows of a built-in set (default 20,000), or the first n rows
/// of a file or MNIST folder (default: all), with optional labels.
let loadTraining (spec: string) (n: int option) (seed: int64) (labels: string option) =
    Nfm.Data.DataSource.Load(spec, dataRows spec n 20000, seed, Nfm.Descriptions.DataSplit.Train, Option.toObj labels)
