module Nfm.Cli.Program

open Argu
open Nfm.Cli.Args
open Nfm.Cli.Common

[<EntryPoint>]
let main argv =
    let verbose = argv |> Array.contains "--verbose"
    let parser = ArgumentParser.Create<NfmArgs>(programName = "nfm", errorHandler = ProcessExiter())
    guard verbose (fun () ->
        let args = parser.ParseCommandLine(argv |> Array.filter ((<>) "--verbose"))
        match args.GetSubCommand() with
        | Demo a -> OtherCommands.demo a
        | Compare _ -> fail "compare: the teacher arrives with the NFM commands"
        | Student s ->
            match s.GetSubCommand() with
            | Train a -> StudentCommands.train a
            | Sample a -> StudentCommands.sample a
        | Eval a -> OtherCommands.eval a
        | Bench a -> OtherCommands.bench a
        | Verbose -> 0)
