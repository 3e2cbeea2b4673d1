/// Shared entry point of the test and property runners: runs every [<Tests>] value in the assembly
/// and ends with the line "N passed, N failed" that CI reads; exits non-zero on any failure.
module Nfm.Testing.Runner

open Expecto
open Expecto.Impl

/// The shard this process runs, from NFM_SHARD="I/N" (tests I, I + N, I + 2N, ... in the suite's order, 0 <= I < N), so
/// that N processes of one libtorch thread each share a machine's cores; None runs every test.
let shard () =
    match System.Environment.GetEnvironmentVariable "NFM_SHARD" with
    | null | "" -> None
    | text ->
        match text.Split '/' |> Array.map System.Int32.TryParse with
        | [| (true, i); (true, n) |] when n >= 1 && i >= 0 && i < n -> Some (i, n)
        | _ -> failwithf "NFM_SHARD '%s': expected I/N with 0 <= I < N (e.g. 0/2)" text

/// The tests of `shard` out of `all`, by position in the suite's order.
let select (shard: (int * int) option) (all: Test) =
    match shard with
    | None -> all
    | Some (i, n) ->
        let names = Test.toTestCodeList all |> List.map (fun t -> String.concat "." t.name)
        let position = names |> List.mapi (fun k name -> name, k) |> dict
        Test.filter "." (fun parts -> position[String.concat "." parts] % n = i) all

let run (argv: string[]) =
    // Suites use tiny tensors, where libtorch's intra-op threads only spin against each other
    // (measured: a teacher law took 40-75 s with the default threads on a loaded 2-core machine, 6-8 s with one).
    TorchSharp.torch.set_num_threads 1
    let mutable counts = (0, 0)
    let times = System.Collections.Concurrent.ConcurrentQueue<string * float>()
    let printer =
        { defaultConfig.printer with
            passed = fun name d -> async { times.Enqueue((name, d.TotalSeconds)); do! defaultConfig.printer.passed name d }
            failed = fun name m d -> async { times.Enqueue((name, d.TotalSeconds)); do! defaultConfig.printer.failed name m d }
            summary = fun config summary ->
                async {
                    do! defaultConfig.printer.summary config summary
                    counts <- (summary.passed.Length, summary.failed.Length + summary.errored.Length) }
    }
    let rc =
        try
            let tests = testFromThisAssembly () |> Option.defaultValue (testList "none" []) |> select (shard ())
            runTestsWithCLIArgs [ CLIArguments.Printer printer; CLIArguments.Sequenced; CLIArguments.No_Spinner; CLIArguments.Colours 0 ] argv tests
        with e ->
            // A suite that cannot start (a bad NFM_REPLAY, say) names the innermost cause on one line.
            let rec innermost (e: exn) = match e.InnerException with null -> e | inner -> innermost inner
            eprintfn "error: %s" (innermost e).Message
            counts <- (0, 1)
            1
    let passed, failed = counts
    // Where the time goes: the slowest tests of this run (CI's time is mostly theirs).
    if not times.IsEmpty then
        printfn "\nslowest tests (s):"
        for (name, secs) in times |> Seq.sortByDescending snd |> Seq.truncate 12 do printfn "%8.1f  %s" secs name
    // Alone on its own line, written past Expecto's console writer: CI reads it.
    System.Console.Out.Flush()
    use stdout = System.Console.OpenStandardOutput()
    let line = System.Text.Encoding.UTF8.GetBytes(sprintf "\n%d passed, %d failed\n" passed failed)
    stdout.Write(line, 0, line.Length)
    stdout.Flush()
    if rc <> 0 || failed > 0 then 1 else 0
