/// `nfm report`: the README's tables regenerated from the results JSON, and a fresh run checked against saved figures.
module Nfm.Cli.ReportCommands

open System
open System.IO
open Argu
open Nfm.Cli.Args
open Nfm.Cli.Common
open Nfm.FSharp

/// Rewrites (or, with --check, verifies) every generated block of one markdown file; marker paths are relative to the
/// repository root, links relative to the file.
let private readmeFile (check: bool) (file: string) =
    let file = existing "markdown file" file
    let text = File.ReadAllText file
    let fresh =
        try Report.regenerateIn (Report.rootOf file) (Path.GetDirectoryName(Path.GetFullPath file)) text
        with :? ArgumentException as e -> fail (sprintf "%s: %s" file e.Message)
    let text = text.Replace("\r\n", "\n")
    if check then
        if fresh <> text then
            let a, b = text.Split '\n', fresh.Split '\n'
            let i = Seq.zip a b |> Seq.tryFindIndex (fun (x, y) -> x <> y) |> Option.defaultValue (min a.Length b.Length)
            fail (sprintf "%s line %d is stale: it says '%s', the results JSON gives '%s'; run 'nfm report readme --file %s'"
                      file (i + 1) (if i < a.Length then a[i] else "") (if i < b.Length then b[i] else "") file)
        printfn "%s: every generated block matches its results JSON" file
    elif fresh <> text then
        Nfm.Data.AtomicFile.WriteAllBytes(file, ReadOnlyMemory(Text.Encoding.UTF8.GetBytes fresh))
        printfn "%s: generated blocks rewritten" file
    else printfn "%s: generated blocks already current" file

/// Every --file given, or else the repository's documents (README.md, CONTRIBUTING.md, docs/*.md).
let readme (args: ParseResults<ReportReadmeArgs>) =
    let files =
        match args.GetResults ReportReadmeArgs.File with
        | [] -> Report.documents (Report.rootOf "README.md")
        | fs -> fs
    for f in files do readmeFile (args.Contains ReportReadmeArgs.Check) f
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
