/// Progress on stderr. On a terminal: live bars with rate and ETA that redraw in place (Spectre.Console), one per
/// piece of work running at once, so the two workers of `compare` show two bars. Otherwise (CI, a pipe, a log file):
/// a line every tenth of the work, which reads well in logs.
module Nfm.Cli.Progress

open System
open System.Collections.Generic
open System.Diagnostics
open System.Threading
open Spectre.Console

/// Forces the line-per-tenth output even on a terminal (also set by NFM_PROGRESS=lines).
let mutable linesOnly = Environment.GetEnvironmentVariable "NFM_PROGRESS" = "lines"

/// One bar's state, read by the live display.
type private LiveBar = { Label: string; Total: int64; mutable Current: int64; mutable Text: string; mutable Done: bool }

/// The live display: started by the first bar, it shows every bar added while it runs and ends when all are done.
module private Live =
    let gate = obj ()
    let bars = List<LiveBar>()
    let mutable running : Threading.Tasks.Task option = None

    let console =
        lazy (AnsiConsole.Create(AnsiConsoleSettings(Out = AnsiConsoleOutput(Console.Error), Ansi = AnsiSupport.Detect,
                                                     Interactive = InteractionSupport.Yes)))

    let private show (ctx: ProgressContext) =
        let tasks = Dictionary<LiveBar, ProgressTask>(HashIdentity.Reference)
        let mutable finished = false
        while not finished do
            lock gate (fun () ->
                for b in bars do
                    if not (tasks.ContainsKey b) then tasks[b] <- ctx.AddTask(Markup.Escape b.Label, true, float (max 1L b.Total))
                    let t = tasks[b]
                    t.Value <- float b.Current
                    t.Description <- Markup.Escape(b.Label + " " + b.Text)
                finished <- bars |> Seq.forall (fun b -> b.Done)
                if finished then
                    bars.Clear()
                    running <- None)
            if not finished then Thread.Sleep 100

    /// Adds a bar, starting the display when none runs.
    let add (b: LiveBar) =
        lock gate (fun () ->
            bars.Add b
            if running.IsNone then
                let progress =
                    console.Value.Progress()
                        .AutoClear(false)
                        .HideCompleted(false)
                        .Columns([| TaskDescriptionColumn(Alignment = Justify.Left) :> ProgressColumn; ProgressBarColumn()
                                    PercentageColumn(); RemainingTimeColumn(); SpinnerColumn() |])
                running <- Some(Threading.Tasks.Task.Run(fun () -> progress.Start(fun ctx -> show ctx))))

    /// Waits until the display has drawn its last frame, when every bar is done (so what is printed next comes after it).
    let settle () =
        let pending = lock gate (fun () -> if bars |> Seq.forall (fun b -> b.Done) then running else None)
        pending |> Option.iter (fun t -> t.Wait(TimeSpan.FromSeconds 5.0) |> ignore)

/// A bar for work of a known total. Update after each unit of work with the units done and a short text (the loss).
type Bar(label: string, total: int64) =
    let watch = Stopwatch.StartNew()
    let interactive = not Console.IsErrorRedirected && not linesOnly
    let live = { Label = label; Total = total; Current = 0L; Text = ""; Done = false }
    // Shown from its first update: a bar whose work is already done (a finished run continued) never appears.
    let mutable shown = false
    let mutable lastDecile = -1L
    // Work done before this process (a resumed run) does not count towards the rate.
    let mutable baseline = -1L

    member _.Update(current: int64, info: string) =
        if baseline < 0L then baseline <- max 0L (current - 1L)
        let secs = watch.Elapsed.TotalSeconds
        let rate = if secs > 0.0 then float (current - baseline) / secs else 0.0
        let eta = if rate > 0.0 then float (total - current) / rate else 0.0
        if interactive then
            if not shown then
                shown <- true
                Live.add live
            live.Current <- current
            live.Text <- sprintf "%d/%d %s %.1f it/s" current total info rate
            if current >= total && not live.Done then
                live.Done <- true
                Live.settle ()
        else
            let decile = if total > 0L then current * 10L / total else 10L
            if decile <> lastDecile then
                lastDecile <- decile
                let width = 24
                let frac = if total > 0L then float current / float total else 1.0
                let filled = int (frac * float width) |> min width
                eprintfn "%s [%s%s] %d/%d %s %.1f it/s ETA %.0fs" label (String('#', filled)) (String('.', width - filled))
                    current total info rate eta

    /// Ends the bar where it stands (work stopped early, e.g. by Ctrl-C), so the live display can finish.
    member _.Stop() =
        if interactive && shown && not live.Done then
            live.Done <- true
            Live.settle ()

    member _.Elapsed = watch.Elapsed

/// A progress callback for work counted in blocks whose total is known only once it starts (pair files): the bar is
/// made on the first call, and again when the work starts over at block 1.
let blocks (label: string) =
    let mutable bar : Bar option = None
    Action<int64, int64>(fun done_ total ->
        let b =
            match bar with
            | Some b when done_ > 1L -> b
            | _ ->
                bar |> Option.iter (fun b -> b.Stop())
                let b = Bar(label, total)
                bar <- Some b
                b
        b.Update(done_, "blocks"))

/// The library's reporter on this terminal: a live bar per stage (lines when stderr is not a terminal), messages on
/// stderr.
let reporter : Nfm.FSharp.Reporter =
    { Stage = fun label total -> let b = Bar(label, total) in fun current info -> b.Update(current, info)
      Message = fun m -> eprintfn "%s" m }
