namespace Nfm.FSharp

open System.IO
open System.Text.Json.Nodes
open Nfm.Checkpoints

/// Resumable runs: a checkpoint continues only the run that made it.
[<RequireQualifiedAccess>]
module Runs =
    /// The description's JSON with the training step count taken out: a run continued to more steps is the same run.
    let private withoutSteps (json: string) =
        let node = JsonNode.Parse json
        match node with
        | :? JsonObject as o ->
            match o["training"] with
            | :? JsonObject as t -> t.Remove "steps" |> ignore
            | _ -> ()
        | _ -> ()
        node.ToJsonString()

    /// True when two descriptions (as JSON) describe the same run, up to the number of training steps (a checkpoint
    /// may be continued to more steps).
    let same (saved: string) (wanted: string) = withoutSteps saved = withoutSteps wanted

    /// The run saved at `path` (a checkpoint of `kind`) when the file exists, continued by `continueFrom`; it must hold
    /// the same run as the description `wanted` (`described` gives a checkpoint's description in the same JSON form),
    /// else InvalidDataException naming the file. `create ()` when there is no file. `what` names the run in messages.
    let resumeOrCreate (reporter: Reporter) (what: string) (kind: string) (path: string option) (wanted: string)
                       (described: Checkpoint -> string) (continueFrom: Checkpoint -> 'T) (create: unit -> 'T) : 'T =
        match path with
        | Some p when File.Exists p ->
            let c = Checkpoint.Load(p, kind)
            if not (same (described c) wanted) then
                raise (InvalidDataException(sprintf "%s holds a %s made with other settings than this run; use another output folder or remove the file" p what))
            reporter.Message(sprintf "%s: continuing from %s" what p)
            continueFrom c
        | _ -> create ()
