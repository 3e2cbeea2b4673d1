/// `nfm report`: the README's tables regenerated from the results JSON, and a fresh run checked against saved figures.
module Nfm.Cli.ReportCommands

open System
open System.IO
open Argu
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.FSharp

/// Rewrites (or, with --check, verifies) every generated block of a markdown file.
let readme (args: ParseResults<ReportReadmeArgs>) =
    let file = existing "markdown file" (args.GetResult(ReportReadmeArgs.File, "README.md"))
    let text = File.ReadAllText file
    let fresh =
        try Report.regenerate (Path.GetDirectoryName(Path.GetFullPath file)) text
        with :? ArgumentException as e -> fail (sprintf "%s: %s" file e.Message)
    let text = text.Replace("\r\n", "\n")
    if args.Contains ReportReadmeArgs.Check then
        if fresh <> text then
            let a, b = text.Split '\n', fresh.Split '\n'
            let i = Seq.zip a b |> Seq.tryFindIndex (fun (x, y) -> x <> y) |> Option.defaultValue (min a.Length b.Length)
            fail (sprintf "%s line %d is stale: it says '%s', the results JSON gives '%s'; run 'nfm report readme --file %s'"
                      file (i + 1) (if i < a.Length then a[i] else "") (if i < b.Length then b[i] else "") file)
        printfn "%s: every generated block matches its results JSON" file
    else
        Nfm.Data.AtomicFile.WriteAllBytes(file, ReadOnlyMemory(Text.Encoding.UTF8.GetBytes fresh))
        printfn "%s: generated blocks rewritten" file
    0

/// Compares a fresh run's results.json with a saved one.
let diff (args: ParseResults<ReportDiffArgs>) =
    let tolerance = nonNegative "tolerance" (args.GetResult(ReportDiffArgs.Tolerance, 1e-6))
    let read p = try Report.read p with :? ArgumentException as e -> fail e.Message
    let expected = read (args.GetResult ReportDiffArgs.Expected)
    let actual = read (args.GetResult ReportDiffArgs.Actual)
    match Report.diff expected actual tolerance with
    | [] ->
        printfn "%d rows and the teacher's figures agree within %g" expected.Rows.Length tolerance
        0
    | problems ->
        for p in problems do eprintfn "%s" p
        fail (sprintf "%d figures of %s differ from %s by more than %g: regenerate the saved results (and the README) if the change is intended"
                  problems.Length actual.Path expected.Path tolerance)
