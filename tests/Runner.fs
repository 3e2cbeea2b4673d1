/// Shared entry point of the test and property runners: runs every [<Tests>] value in the assembly
/// and ends with the line "N passed, N failed" that CI reads; exits non-zero on any failure.
module Nfm.Testing.Runner

open Expecto
open Expecto.Impl

let run (argv: string[]) =
    // Suites use tiny tensors, where libtorch's intra-op threads only spin against each other
    // (measured: a teacher law took 40-75 s with the default threads on a loaded 2-core machine, 6-8 s with one).
    TorchSharp.torch.set_num_threads 1
    let mutable counts = (0, 0)
    let printer =
        { defaultConfig.printer with
            summary = fun config summary ->
                async {
                    do! defaultConfig.printer.summary config summary
                    counts <- (summary.passed.Length, summary.failed.Length + summary.errored.Length) }
    }
    let rc =
        try runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer printer; CLIArguments.Sequenced; CLIArguments.No_Spinner; CLIArguments.Colours 0 ] argv
        with e ->
            // A suite that cannot start (a bad NFM_REPLAY, say) names the innermost cause on one line.
            let rec innermost (e: exn) = match e.InnerException with null -> e | inner -> innermost inner
            eprintfn "error: %s" (innermost e).Message
            counts <- (0, 1)
            1
    let passed, failed = counts
    // Alone on its own line, written past Expecto's console writer: CI reads it.
    System.Console.Out.Flush()
    use stdout = System.Console.OpenStandardOutput()
    let line = System.Text.Encoding.UTF8.GetBytes(sprintf "\n%d passed, %d failed\n" passed failed)
    stdout.Write(line, 0, line.Length)
    stdout.Flush()
    if rc <> 0 || failed > 0 then 1 else 0
