/// A progress bar on stderr: redrawn in place on a terminal, a line every tenth of the work otherwise (logs, CI).
module Nfm.Cli.Progress

open System
open System.Diagnostics

/// Set when several bars advance at once (work on two threads): each then prints lines instead of redrawing.
let mutable linesOnly = false

type Bar(label: string, total: int64) =
    let watch = Stopwatch.StartNew()
    let interactive = not Console.IsErrorRedirected && not linesOnly
    let mutable lastDraw = -1.0
    let mutable lastDecile = -1L
    // Work done before this process (a resumed run) does not count towards the rate.
    let mutable baseline = -1L

    member _.Update(current: int64, info: string) =
        if baseline < 0L then baseline <- max 0L (current - 1L)
        let secs = watch.Elapsed.TotalSeconds
        let rate = if secs > 0.0 then float (current - baseline) / secs else 0.0
        let eta = if rate > 0.0 then float (total - current) / rate else 0.0
        let frac = if total > 0L then float current / float total else 1.0
        let line () =
            let width = 24
            let filled = int (frac * float width) |> min width
            sprintf "%s [%s%s] %d/%d %s %.1f it/s ETA %.0fs" label (String('#', filled)) (String('.', width - filled))
                current total info rate eta
        if interactive then
            if secs - lastDraw >= 0.1 || current = total then
                lastDraw <- secs
                eprintf "\r%s   " (line ())
                if current = total then eprintfn ""
        else
            let decile = if total > 0L then current * 10L / total else 10L
            if decile <> lastDecile then
                lastDecile <- decile
                eprintfn "%s" (line ())

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
                let b = Bar(label, total)
                bar <- Some b
                b
        b.Update(done_, "blocks"))
