module Nfm.Cli.Program

open Argu
open Nfm.Cli.Args
open Nfm.Cli.Common

[<EntryPoint>]
let main argv =
    // libtorch by full path from this program's folder, and LibTorchSharp from a GLIBCXX-patched copy where the system
    // libstdc++ needs it and the build did not patch it (a tool package packed on a newer system, for example).
    Nfm.FSharp.Native.load ()
    let verbose = argv |> Array.contains "--verbose"
    let parser = ArgumentParser.Create<NfmArgs>(programName = "nfm", errorHandler = ProcessExiter())
    // The core does not print; an old-layout checkpoint still loads, with this one line on stderr.
    Nfm.Checkpoints.Checkpoint.add_OldFormatRead (fun notice -> eprintfn "note: %s" notice)
    guard verbose (fun () ->
        let args = parser.ParseCommandLine(argv |> Array.filter ((<>) "--verbose"))
        args.TryGetResult NfmArgs.Threads |> Option.iter (fun n -> TorchSharp.torch.set_num_threads (positive "threads" n))
        let smallModels =
            match args.TryGetSubCommand() with
            | Some (Demo _) -> true
            // Vectors (a built-in 2-D set or a user's .npy of rows): small models, where a second libtorch thread
            // only changes the rounding (and a two-worker run's figures would differ from a one-worker run's).
            | Some (Compare c) ->
                let data = c.GetResult CompareArgs.Data
                Nfm.Data.Toy2D.IsName data
                || (try not (Nfm.FSharp.Experiment.isImageData (Nfm.Descriptions.DataSpec(data))) with _ -> false)
            | _ -> false
        if smallModels && not (args.Contains NfmArgs.Threads) then TorchSharp.torch.set_num_threads 1
        if args.Contains NfmArgs.Version then
            printfn "nfm %s" (buildVersion ())
            0
        else
        match args.GetSubCommand() with
        | Demo a -> ExperimentCommands.demo a
        | Compare a -> ExperimentCommands.compare a
        | Student s ->
            match s.GetSubCommand() with
            | StudentArgs.Train a -> StudentCommands.train a
            | StudentArgs.Sample a -> StudentCommands.sample a
        | Teacher t ->
            match t.GetSubCommand() with
            | TeacherArgs.Train a -> TeacherCommands.train a
            | TeacherArgs.Encode a -> TeacherMapCommands.encode a
            | TeacherArgs.Decode a -> TeacherMapCommands.decode a
            | TeacherArgs.Sample a -> TeacherMapCommands.sample a
            | TeacherArgs.Nll a -> TeacherCommands.nll a
            | TeacherArgs.Import a -> TeacherInterop.importCommand a
            | TeacherArgs.Export a -> TeacherInterop.exportCommand a
            | TeacherArgs.Release a -> TeacherInterop.releaseCommand a
        | Couple a -> TeacherMapCommands.couple a
        | Eval a -> OtherCommands.eval a
        | Bench a -> OtherCommands.bench a
        | Report r ->
            match r.GetSubCommand() with
            | ReportArgs.Readme a -> ReportCommands.readme a
            | ReportArgs.Diff a -> ReportCommands.diff a
        | Verbose | Threads _ | Version -> 0)
