namespace Nfm.FSharp

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes

/// Figures a long evaluation has already measured, kept in a JSON file of its output folder so that an interrupted
/// evaluation continues where it stopped instead of from the start. Each entry is a key naming what was measured and
/// everything it depends on (the model's identity, the metric's, the seed, the weight, the step count, the draw), and
/// its figures. A key that matches is reused; anything changed makes another key. The file is rewritten atomically
/// after every new entry; entries are safe to add from two threads.
type EvaluationCache private (path: string option) =
    let values = Dictionary<string, float[]>()
    let gate = obj ()
    do
        match path with
        | Some p when File.Exists p ->
            let fail (why: string) = raise (InvalidDataException(sprintf "%s: %s (remove the file to measure again)" p why))
            let node = try JsonNode.Parse(File.ReadAllText p) with ex -> fail ("not JSON: " + ex.Message)
            match node with
            | :? JsonObject as o ->
                for kv in o do
                    match kv.Value with
                    | :? JsonArray as a ->
                        values[kv.Key] <-
                            [| for v in a ->
                                 match v with
                                 | :? JsonValue as j ->
                                     match j.TryGetValue<float>() with
                                     | true, x -> x
                                     | _ -> match j.TryGetValue<string>() with
                                            | true, s -> (match Double.TryParse(s, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
                                                          | true, x -> x
                                                          | _ -> fail (sprintf "entry '%s' holds '%s', not a number" kv.Key s))
                                            | _ -> fail (sprintf "entry '%s' holds a value that is not a number" kv.Key)
                                 | _ -> fail (sprintf "entry '%s' holds a value that is not a number" kv.Key) |]
                    | _ -> fail (sprintf "entry '%s' is not a list of numbers" kv.Key)
            | _ -> fail "expected an object of measured figures"
        | _ -> ()

    let save () =
        match path with
        | None -> ()
        | Some p ->
            let o = JsonObject()
            for kv in values |> Seq.sortBy (fun kv -> kv.Key) do
                o[kv.Key] <- JsonArray([| for v in kv.Value -> JsonFile.num v |])
            JsonFile.write p o

    /// A cache kept in `file` (read when it exists).
    static member Open(file: string) = EvaluationCache(Some file)

    /// A cache kept in memory only.
    static member InMemory() = EvaluationCache(None)

    /// The figures stored under `key`, if any.
    member _.TryFind(key: string) : float[] option =
        lock gate (fun () -> match values.TryGetValue key with | true, v -> Some v | _ -> None)

    /// The figures under `key`: stored ones, or `measure ()` stored first; and whether they were measured now.
    member this.GetOrMeasure(key: string, measure: unit -> float[]) : float[] * bool =
        match this.TryFind key with
        | Some v -> v, false
        | None ->
            let v = measure ()
            lock gate (fun () -> values[key] <- v; save ())
            v, true

    /// Adds the entries of another cache file that this one lacks (none when the file is missing) and saves; returns
    /// how many it added. A comparison's second process measures into its own file, which the first merges.
    member _.Merge(file: string) =
        if not (File.Exists file) then 0
        else
            let other = EvaluationCache(Some file)
            lock gate (fun () ->
                let added = [ for kv in other.Entries do if not (values.ContainsKey kv.Key) then values[kv.Key] <- kv.Value; yield kv.Key ]
                if not added.IsEmpty then save ()
                added.Length)

    /// Every entry (a copy).
    member _.Entries : KeyValuePair<string, float[]> list = lock gate (fun () -> List.ofSeq values)

    /// How many entries the cache holds.
    member _.Count = lock gate (fun () -> values.Count)
