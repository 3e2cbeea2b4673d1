namespace Nfm.FSharp

open System
open System.Text.Json
open System.Text.Json.Nodes

/// Building and writing the JSON that results files hold (System.Text.Json nodes).
[<RequireQualifiedAccess>]
module JsonFile =
    /// An object from name/value pairs, in order.
    let obj (pairs: (string * JsonNode) list) =
        let o = JsonObject()
        for (k, v) in pairs do o[k] <- v
        o

    /// A number; NaN and infinities become their names as strings (JSON has no such numbers).
    let num (v: float) : JsonNode = if Double.IsFinite v then JsonValue.Create v else JsonValue.Create(string v)
    /// An integer.
    let int (v: int64) : JsonNode = JsonValue.Create v
    /// A string.
    let str (v: string) : JsonNode = JsonValue.Create v
    /// A boolean.
    let bool (v: bool) : JsonNode = JsonValue.Create v
    /// An array.
    let arr (items: JsonNode seq) : JsonNode = JsonArray(Seq.toArray items)

    /// Writes a JSON value, indented, atomically (a crash leaves the old file or the new one, never half of one).
    let write (path: string) (node: JsonNode) =
        let text = node.ToJsonString(JsonSerializerOptions(WriteIndented = true))
        Nfm.Data.AtomicFile.WriteAllBytes(path, ReadOnlyMemory(Text.Encoding.UTF8.GetBytes(text + "\n")))

/// How long-running library functions report: a progress bar per stage and free-text messages. The command line
/// passes live terminal bars; scripts get `Reporter.lines` (a line per tenth of each stage on stderr) by default.
type Reporter =
    { /// Starts a stage of `total` steps named `label`; returns the update function (current step, short status).
      Stage: string -> int64 -> (int64 -> string -> unit)
      /// A message for the user (one line).
      Message: string -> unit }

[<RequireQualifiedAccess>]
module Reporter =
    /// Nothing is printed.
    let silent = { Stage = (fun _ _ -> fun _ _ -> ()); Message = ignore }

    /// Messages and one line per tenth of every stage (with its rate) on stderr.
    let lines =
        { Stage =
            fun label total ->
                let watch = Diagnostics.Stopwatch.StartNew()
                let mutable last = -1L
                fun current info ->
                    let tenth = if total > 0L then current * 10L / total else 10L
                    if tenth <> last then
                        last <- tenth
                        let rate = float current / max watch.Elapsed.TotalSeconds 1e-9
                        eprintfn "%s %d/%d %s %.1f it/s" label current total info rate
          Message = fun m -> eprintfn "%s" m }

    /// Events as lines on stdout for another process to replay onto its own reporter (`replayer`): a comparison's
    /// second process reports through this, so that its bars and messages show in the first one's terminal.
    /// Lines: "nfm-stage TAB ID TAB LABEL TAB TOTAL", "nfm-step TAB ID TAB CURRENT TAB INFO", "nfm-message TAB TEXT".
    let relay : Reporter =
        let gate = obj ()
        let mutable next = 0
        let clean (s: string) = s.Replace('\t', ' ').Replace('\n', ' ')
        let write (line: string) = lock gate (fun () -> Console.Out.WriteLine line; Console.Out.Flush())
        { Stage =
            fun label total ->
                let id = lock gate (fun () -> next <- next + 1; next)
                write (sprintf "nfm-stage\t%d\t%s\t%d" id (clean label) total)
                fun current info -> write (sprintf "nfm-step\t%d\t%d\t%s" id current (clean info))
          Message = fun m -> write ("nfm-message\t" + clean m) }

    /// Replays lines written by `relay` onto `reporter` (each relayed stage becomes one of its stages); other lines
    /// are ignored. Call it from one thread.
    let replayer (reporter: Reporter) : string -> unit =
        let stages = Collections.Generic.Dictionary<string, int64 -> string -> unit>()
        fun line ->
            match line.Split('\t') with
            | [| "nfm-stage"; id; label; total |] ->
                match Int64.TryParse total with
                | true, t -> stages[id] <- reporter.Stage label t
                | _ -> ()
            | [| "nfm-step"; id; current; info |] ->
                match stages.TryGetValue id, Int64.TryParse current with
                | (true, update), (true, c) -> update c info
                | _ -> ()
            | [| "nfm-message"; text |] -> reporter.Message text
            | _ -> ()

    /// The same reporter with every stage named `label` (e.g. a comparison's method name instead of the trainer's own).
    let labelled (label: string) (reporter: Reporter) = { reporter with Stage = fun _ total -> reporter.Stage label total }

    /// A progress callback (blocks done, blocks in all) of the core's block-wise work (pairs, encodings) as a stage;
    /// a count that starts again from 1 starts a new stage.
    let blocks (reporter: Reporter) (label: string) =
        let mutable update : (int64 -> string -> unit) option = None
        Action<int64, int64>(fun done_ total ->
            let u =
                match update with
                | Some u when done_ > 1L -> u
                | _ ->
                    let u = reporter.Stage label total
                    update <- Some u
                    u
            u done_ "blocks")

/// How a training run is kept and watched, never what it learns: where it is saved (an existing checkpoint of the same
/// run is continued), the reporter, cancellation, and an observer called after every step (e.g. a TensorBoard log).
/// The hyperparameters are the settings records (`Student.settings`, `Teacher.settings`); these are passed beside them
/// (`Student.trainIn`, `Teacher.trainIn`).
type RunOptions =
    { /// Where the run is saved (every `SaveEvery` steps of its settings and at the end); None: not saved.
      Checkpoint: string option
      Reporter: Reporter
      Cancel: Threading.CancellationToken
      /// Called after every training step.
      OnStep: Nfm.Training.TrainingProgress -> unit }

[<RequireQualifiedAccess>]
module RunOptions =
    /// Not saved, nothing printed, not cancellable.
    let silent = { Checkpoint = None; Reporter = Reporter.silent; Cancel = Threading.CancellationToken.None; OnStep = ignore }
    /// Not saved, progress lines on stderr (`Reporter.lines`).
    let lines = { silent with Reporter = Reporter.lines }
    /// Progress lines on stderr, saved to (and continued from) `path`.
    let saved (path: string) = { lines with Checkpoint = Some path }
