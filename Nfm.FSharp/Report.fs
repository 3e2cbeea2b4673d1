namespace Nfm.FSharp

open System
open System.IO
open System.Text.Json.Nodes

/// The paper's claims, checked on a comparison's measured ratios: one place that says what each ratio claims and
/// what value makes the claim hold, used by `compare` (printed and saved) and by the README tables.
module Claims =
    /// Whether a claim holds beyond the spread of its ratio: its ratio is on the target's side by more than two standard
    /// errors (Holds), on the other side by more (Fails), or within two standard errors of the target (Undecided).
    type Verdict =
        | Holds
        | Fails
        | Undecided

    /// One claim as measured: the ratio's key in results.json, what it states, the ratio with its standard error (0
    /// where it has none), the target and the verdict; Holds is true for the verdict Holds only.
    type Claim = { Key: string; Statement: string; Ratio: float; StandardError: float; Target: string; Verdict: Verdict; Holds: bool }

    /// Standard errors a ratio must clear the target by to decide a claim.
    let decisiveErrors = 2.0

    let verdictText = function Holds -> "holds" | Fails -> "does not hold" | Undecided -> "undecided"

    let private stepsOf (key: string) (prefix: string) =
        match Int32.TryParse(key.Substring(prefix.Length).Replace("step", "")) with
        | true, s -> Some s
        | _ -> None

    let private plural s = if s = 1 then "1 step" else sprintf "%d steps" s

    /// The claim a ratio with its standard error stands for, or None for a key this module does not know.
    let checkWith (key: string) (ratio: float) (standardError: float) : Claim option =
        let margin = decisiveErrors * (if Double.IsFinite standardError then standardError else 0.0)
        // below: the target is "ratio below c" (strict or not); above: "ratio at least c".
        let below strict c = if (if strict then ratio + margin < c else ratio + margin <= c) then Holds
                             elif (if strict then ratio - margin >= c else ratio - margin > c) then Fails
                             else Undecided
        let above c = if ratio - margin >= c then Holds elif ratio + margin < c then Fails else Undecided
        let make statement target verdict =
            Some { Key = key; Statement = statement; Ratio = ratio; StandardError = standardError; Target = target; Verdict = verdict; Holds = (verdict = Holds) }
        if key.StartsWith "nfm_over_independent_" then
            match stepsOf key "nfm_over_independent_" with
            | Some s when s <= 4 -> make (sprintf "NFM at most half the independent student's value at %s" (plural s)) "<= 0.5" (below false 0.5)
            | Some s -> make (sprintf "NFM below the independent student at %s" (plural s)) "< 1" (below true 1.0)
            | None -> None
        elif key.StartsWith "nfm_over_ot_" then
            stepsOf key "nfm_over_ot_" |> Option.bind (fun s -> make (sprintf "NFM below minibatch OT at %s" (plural s)) "< 1" (below true 1.0))
        elif key = "nfm_best_at_most_16_steps_over_teacher" then
            make "NFM (best at 16 steps or fewer) below its own teacher" "< 1" (below true 1.0)
        elif key.StartsWith "teacher_latency_over_nfm_" then
            stepsOf key "teacher_latency_over_nfm_"
            |> Option.bind (fun s -> make (sprintf "one NFM sample at %s at least 10x faster than the KV-cached teacher" (plural s)) ">= 10" (above 10.0))
        else None

    /// The claim a ratio stands for, with no spread known.
    let check (key: string) (ratio: float) : Claim option = checkWith key ratio 0.0

    /// Every known claim among named ratios, in their order (with no spread known).
    let checkAll (ratios: (string * float) list) = ratios |> List.choose (fun (k, v) -> check k v)

    /// Every known claim among named ratios, each with its standard error from `errors` (0 where it has none).
    let checkAllWith (errors: (string * float) list) (ratios: (string * float) list) =
        let errorOf k = errors |> List.tryFind (fun (e, _) -> e = k) |> Option.map snd |> Option.defaultValue 0.0
        ratios |> List.choose (fun (k, v) -> checkWith k v (errorOf k))

    /// One line per claim: statement, measured ratio (with its standard error), target and the verdict.
    let describe (c: Claim) =
        let ratio = if c.StandardError > 0.0 then sprintf "%.3f ± %.3f" c.Ratio c.StandardError else sprintf "%.3f" c.Ratio
        sprintf "%s: ratio %s (target %s): %s" c.Statement ratio c.Target (verdictText c.Verdict)

/// Whose figures a results row holds: a student's (solver steps from noise or from encodings) or a teacher's
/// (autoregressive sampling, `Steps` = its sequential passes).
[<RequireQualifiedAccess>]
type RowKind =
    | Student
    | Teacher
    /// The spelling of results.json's `kind` field.
    member k.Name = match k with Student -> "student" | Teacher -> "teacher"

/// One row of results.json: a method's metric at a step count (CLI.md fixes these fields). The one row type of the
/// comparison that writes it and of the reports that read it.
type ResultRow =
    { Method: string; Kind: RowKind; Solver: string; Grid: string; Steps: int; Nfe: int
      /// The metric, the mean over `Draws` samples (different noise).
      Value: float
      /// The sample standard deviation of the metric over the draws (0 for one draw; NaN in files written before rows
      /// carried it).
      Spread: float
      Draws: int
      /// Seconds per 1,000 samples at the evaluation's batch (NaN when the file does not record it).
      SecondsPer1000: float
      /// The classifier-free guidance weight the samples were drawn with (0 for unconditional runs).
      Guidance: float }

/// Tables for the README made from the results JSON under results/ (so the figures there are never typed by hand), and
/// the comparison of a fresh run's results with saved ones.
module Report =
    /// One row of a results.json (the fields CLI.md fixes).
    type Row = ResultRow

    /// The format results.json is written in: 3 adds each row's `kind` and each latency's `nfe` to format 2 (rows as
    /// means over noise draws with their spread, claims with standard errors, the diagnostics); every older format reads.
    let formatVersion = 3

    /// A results.json of `compare` or `demo`, read.
    type Results = { Path: string; Data: string; Metric: string; Rows: Row list; Json: JsonObject }

    let private num (n: JsonNode) =
        match n with
        | null -> nan
        | n ->
            match n.GetValueKind() with
            | Text.Json.JsonValueKind.Number -> n.GetValue<float>()
            | Text.Json.JsonValueKind.String -> (match Double.TryParse(n.GetValue<string>(), Globalization.CultureInfo.InvariantCulture) with
                                                 | true, v -> v
                                                 | _ -> nan)
            | _ -> nan

    let private str (n: JsonNode) = if isNull n then "" else n.ToString()

    /// A row as results.json writes it (`guidance` only for a conditional run).
    let rowJson (conditional: bool) (x: ResultRow) : JsonNode =
        JsonFile.obj ([ "method", JsonFile.str x.Method; "kind", JsonFile.str x.Kind.Name; "solver", JsonFile.str x.Solver
                        "grid", JsonFile.str x.Grid; "steps", JsonFile.int (int64 x.Steps); "nfe", JsonFile.int (int64 x.Nfe)
                        "value", JsonFile.num x.Value; "spread", JsonFile.num x.Spread; "draws", JsonFile.int (int64 x.Draws)
                        "seconds_per_1000", JsonFile.num x.SecondsPer1000 ]
                      @ (if conditional then [ "guidance", JsonFile.num x.Guidance ] else []))

    /// A row read from results.json of any format: files before format 3 name no kind (a teacher's rows are those
    /// named teacher...), before format 2 no spread (NaN) or draws (1).
    let rowOfJson (r: JsonNode) : ResultRow =
        let nfe = int (num r["nfe"])
        let name = str r["method"]
        let kind =
            match str r["kind"] with
            | "teacher" -> RowKind.Teacher
            | "student" -> RowKind.Student
            | _ -> if name.StartsWith "teacher" then RowKind.Teacher else RowKind.Student
        { Method = name; Kind = kind; Solver = str r["solver"]; Grid = str r["grid"]; Nfe = nfe
          Steps = (match r["steps"] with null -> nfe | s -> int (num s)); Value = num r["value"]
          Spread = num r["spread"]; Draws = (match r["draws"] with null -> 1 | d -> int (num d))
          SecondsPer1000 = num r["seconds_per_1000"]; Guidance = (match r["guidance"] with null -> 0.0 | g -> num g) }

    /// Reads a results.json; a missing or malformed file is an error naming it.
    let read (path: string) : Results =
        if not (File.Exists path) then invalidArg "path" (sprintf "results file '%s' not found" path)
        let json =
            try JsonNode.Parse(File.ReadAllText path).AsObject()
            with e -> invalidArg "path" (sprintf "'%s' is not a results JSON object: %s" path e.Message)
        let rows =
            match json["rows"] with
            | :? JsonArray as a ->
                [ for r in a -> rowOfJson r ]
            | _ -> invalidArg "path" (sprintf "'%s' has no rows[] array" path)
        { Path = path; Data = str json["data"]; Metric = str json["metric"]; Rows = rows; Json = json }

    let private isTeacher (r: Row) = r.Kind = RowKind.Teacher

    /// Figures of a metric at the precision they are reported in.
    let format (metric: string) (v: float) = if Double.IsNaN v then "n/a" elif metric = "fd" then sprintf "%.1f" v else sprintf "%.4f" v

    /// Where a table's figures come from: the command and commit the JSON records, and the file.
    let provenance (link: string) (r: Results) =
        let commit = match str r.Json["commit"] with "" -> "not recorded" | c -> c
        let command = match str r.Json["command"] with "" -> "not recorded" | c -> c
        sprintf "Generated by `nfm report readme` from [%s](%s); made by `%s` at commit %s." r.Path link command commit

    let private table (header: string list) (right: bool list) (lines: string list list) =
        let row cells = "| " + String.concat " | " cells + " |"
        let sep = "|" + String.concat "|" (right |> List.map (fun r -> if r then "---:" else "---")) + "|"
        String.concat "\n" ([ row header; sep ] @ (lines |> List.map row))

    /// Students' metric per method (rows) and step count (columns); teacher rows left out.
    let methodTable (r: Results) =
        let rows = r.Rows |> List.filter (isTeacher >> not)
        let steps = rows |> List.map (fun x -> x.Steps) |> List.distinct |> List.sort
        let methods = rows |> List.map (fun x -> x.Method) |> List.distinct
        let cell m s = match rows |> List.tryFind (fun x -> x.Method = m && x.Steps = s) with
                       | Some x when x.Draws > 1 && Double.IsFinite x.Spread -> sprintf "%s ± %s" (format r.Metric x.Value) (format r.Metric x.Spread)
                       | Some x -> format r.Metric x.Value
                       | None -> ""
        table ("method" :: (steps |> List.map (fun s -> if s = 1 then "1 step" else sprintf "%d steps" s))) (false :: (steps |> List.map (fun _ -> true)))
              [ for m in methods -> m :: (steps |> List.map (cell m)) ]

    /// A training figure that checkpoints written before it was recorded do not carry (NaN in results.json).
    let private recorded (show: float -> string) (v: float) = if Double.IsFinite v then show v else "not recorded"

    /// The Gaussianity of a teacher's encodings as results.json and model cards record it.
    let gaussianityJson (g: Nfm.Metrics.GaussianityExcess) : JsonNode =
        let ranges (d: Nfm.Metrics.DimensionSummary) =
            JsonFile.obj [ "mean", JsonFile.arr [ JsonFile.num d.MeanMin; JsonFile.num d.MeanMax ]
                           "variance", JsonFile.arr [ JsonFile.num d.VarianceMin; JsonFile.num d.VarianceMax ]
                           "excess_kurtosis", JsonFile.arr [ JsonFile.num d.KurtosisMin; JsonFile.num d.KurtosisMax ] ]
        JsonFile.obj
            [ "rows", JsonFile.int g.Count; "dimension", JsonFile.int g.Dimension
              "frechet_to_standard_normal", JsonFile.num g.Statistic
              "floor_mean", JsonFile.num g.FloorMean; "floor_spread", JsonFile.num g.FloorSpread; "floor_draws", JsonFile.int (int64 g.Draws)
              "excess", JsonFile.num g.Excess; "excess_spread", JsonFile.num g.Spread
              "covariance_eigenvalues", JsonFile.arr [ JsonFile.num g.Gap.MinEigenvalue; JsonFile.num g.Gap.MaxEigenvalue ]
              "floor_covariance_eigenvalues", JsonFile.arr [ JsonFile.num g.FloorGap.MinEigenvalue; JsonFile.num g.FloorGap.MaxEigenvalue ]
              "per_dimension", ranges g.Dimensions; "floor_per_dimension", ranges g.FloorDimensions ]

    /// Per teacher budget: training steps, the metric of its samples (and denoised), held-out NLL and bits/dim, and
    /// how Gaussian its encodings are: the excess over the floor of exact N(0, I) samples of the same size, or, in a
    /// file written before that was measured, the raw Fréchet distance (which that floor alone explains at this size).
    let teacherTable (r: Results) =
        let teachers =
            match r.Json["teachers"] with
            | :? JsonArray as a -> [ for t in a -> t ]
            | _ -> match r.Json["teacher"] with null -> [] | t -> [ t ]
        let isImage = teachers |> List.exists (fun t -> not (Double.IsNaN(num t["test_bpd"])))
        let measured = teachers |> List.forall (fun t -> not (isNull t["encodings_gaussianity"]))
        let pair (n: JsonNode) = sprintf "%.3f .. %.3f" (num n[0]) (num n[1])
        table ([ "teacher"; r.Metric; r.Metric + " denoised"; "held-out NLL (nats)" ] @ (if isImage then [ "bits/dim" ] else [])
               @ (if measured then [ "encodings of held-out rows: Fréchet to N(0, I)"; "exact N(0, I), same size"; "excess"; "covariance eigenvalues (exact)" ]
                  else [ "encodings: Fréchet to N(0, I), raw (no floor)"; "covariance eigenvalues" ])
               @ [ "training (s)" ])
              ([ false; true; true; true ] @ (if isImage then [ true ] else []) @ (if measured then [ true; true; true; false ] else [ true; false ]) @ [ true ])
              [ for t in teachers ->
                  [ sprintf "%d steps%s" (int (num t["steps"]))
                        (match t["selected_step"] with null -> "" | k -> sprintf " (step %d chosen by held-out NLL)" (int (num k))); format r.Metric (num t["value"]); format r.Metric (num t["value_denoised"])
                    sprintf "%.3f" (num t["test_nll_nats"]) ]
                  @ (if isImage then [ sprintf "%.2f" (num t["test_bpd"]) ] else [])
                  @ (if measured then
                        let g = t["encodings_gaussianity"]
                        // Two decimals for image-sized figures, four for the small ones of 2-D encodings.
                        let f v = if abs (num g["floor_mean"]) >= 1.0 then sprintf "%.2f" v else sprintf "%.4f" v
                        [ f (num g["frechet_to_standard_normal"])
                          sprintf "%s ± %s" (f (num g["floor_mean"])) (f (num g["floor_spread"]))
                          sprintf "%s ± %s" (f (num g["excess"])) (f (num g["excess_spread"]))
                          sprintf "%s (%s)" (pair g["covariance_eigenvalues"]) (pair g["floor_covariance_eigenvalues"]) ]
                     else
                        [ sprintf "%.2f" (num t["encodings_frechet_to_standard_normal"])
                          sprintf "%.3f .. %.3f" (num t["encodings_covariance_min_eigenvalue"]) (num t["encodings_covariance_max_eigenvalue"]) ])
                  @ [ recorded (sprintf "%.0f") (num t["train_seconds"]) ] ]

    /// Per student: final training loss, training time, path curvature and held-out NLL per dimension.
    let studentTable (r: Results) =
        let students =
            match r.Json["students"] with
            | :? JsonObject as o -> [ for kv in o -> kv.Key, kv.Value ]
            | _ -> []
        table [ "student"; "final loss"; "path curvature per dimension"; "held-out NLL per dimension (nats)"; "training (s)" ]
              [ false; true; true; true; true ]
              [ for (name, s) in students ->
                  [ name; recorded (sprintf "%.4f") (num s["final_loss"]); sprintf "%.4f" (num s["path_curvature_per_dim"])
                    sprintf "%.3f" (num s["nll_nats_per_dim"]); recorded (sprintf "%.0f") (num s["train_seconds"]) ] ]

    /// A conditional run's classifier-free guidance sweep: per method and step count (the teacher at its sequential
    /// steps) the metric at every guidance weight, the method's best weight (the one its rows use) in bold.
    let guidanceTable (r: Results) =
        let g = r.Json["guidance"]
        if isNull g then invalidArg "path" (sprintf "'%s' has no guidance sweep (not a conditional run)" r.Path)
        let weights = match g["weights"] with :? JsonArray as a -> [ for w in a -> num w ] | _ -> []
        let methods = match g["methods"] with :? JsonObject as o -> [ for kv in o -> kv.Key, kv.Value ] | _ -> []
        if List.isEmpty weights || List.isEmpty methods then invalidArg "path" (sprintf "'%s' has an empty guidance sweep" r.Path)
        let lines =
            [ for (name, m) in methods do
                let best = num m["best"]
                let points = match m["curve"] with
                             | :? JsonArray as a -> [ for p in a -> num p["weight"], int (num p["steps"]), num p["value"] ]
                             | _ -> []
                for steps in points |> List.map (fun (_, s, _) -> s) |> List.distinct |> List.sort ->
                    let teacherCurve =
                        match r.Rows |> List.tryFind (fun x -> x.Method = name) with
                        | Some x -> isTeacher x
                        | None -> name.StartsWith "teacher"
                    [ name; (if teacherCurve then sprintf "%d sequential" steps else string steps) ]
                    @ [ for w in weights ->
                          match points |> List.tryFind (fun (pw, s, _) -> pw = w && s = steps) with
                          | Some (_, _, v) -> if w = best then sprintf "**%s**" (format r.Metric v) else format r.Metric v
                          | None -> "" ]
                    @ [ sprintf "%g" best ] ]
        table ([ "method"; "steps" ] @ [ for w in weights -> sprintf "guidance %g" w ] @ [ "best weight" ])
              ([ false; true ] @ (weights |> List.map (fun _ -> true)) @ [ true ]) lines

    /// The claims of a run: measured ratio (± its standard error, where the rows carried spreads), target and verdict.
    let claimsTable (r: Results) =
        let named (key: string) =
            match r.Json[key] with
            | :? JsonObject as o -> [ for kv in o -> kv.Key, num kv.Value ]
            | _ -> []
        let checks = Claims.checkAllWith (named "claims_standard_error") (named "claims")
        let withErrors = checks |> List.exists (fun c -> c.StandardError > 0.0)
        table [ "claim"; (if withErrors then "measured ratio ± standard error" else "measured ratio"); "target"; "holds" ] [ false; true; false; false ]
              [ for c in checks ->
                  [ c.Statement
                    (if c.StandardError > 0.0 then sprintf "%.3f ± %.3f" c.Ratio c.StandardError else sprintf "%.3f" c.Ratio)
                    c.Target
                    (match c.Verdict with
                     | Claims.Holds -> "**holds**"
                     | Claims.Fails -> "does not hold"
                     | Claims.Undecided -> sprintf "undecided (within %g standard errors)" Claims.decisiveErrors) ] ]

    /// Mean and sample standard deviation.
    let meanSd (xs: float list) =
        let m = List.average xs
        m, (if xs.Length < 2 then 0.0 else sqrt ((xs |> List.sumBy (fun x -> (x - m) ** 2.0)) / float (xs.Length - 1)))

    /// The results.json of each seed of a seed study: FOLDER/seed-*/results.json, by seed.
    let seedRuns (folder: string) =
        if not (Directory.Exists folder) then invalidArg "folder" (sprintf "seed-study folder '%s' not found" folder)
        [ for d in Directory.GetDirectories(folder, "seed-*") do
            let p = Path.Combine(d, "results.json")
            if File.Exists p then yield read p ]
        |> List.sortBy (fun r -> num r.Json["seed"])

    /// A seed study: per seed and as mean ± standard deviation, the teacher's metric and held-out NLL and each student's
    /// metric at each step count.
    let seedsTable (folder: string) =
        let runs = seedRuns folder
        if runs.IsEmpty then invalidArg "folder" (sprintf "'%s' holds no seed-*/results.json" folder)
        let metric = runs.Head.Metric
        let columns =
            [ "teacher", (fun (r: Results) -> num r.Json["teacher"].["value"])
              "teacher NLL", (fun (r: Results) -> num r.Json["teacher"].["test_nll_nats"]) ]
            @ [ for m in [ "independent"; "ot"; "nfm" ] do
                  for s in [ 1; 4; 32 ] do
                      if runs.Head.Rows |> List.exists (fun x -> x.Method = m && x.Steps = s) then
                          yield sprintf "%s %d" m s,
                                (fun (r: Results) -> match r.Rows |> List.tryFind (fun x -> x.Method = m && x.Steps = s) with
                                                     | Some x -> x.Value
                                                     | None -> nan) ]
        let fmt (name: string) v = if name = "teacher NLL" then sprintf "%.3f" v else format metric v
        table ("seed" :: (columns |> List.map fst)) (false :: (columns |> List.map (fun _ -> true)))
              ([ for r in runs -> sprintf "%d" (int (num r.Json["seed"])) :: [ for (n, f) in columns -> fmt n (f r) ] ]
               @ [ "mean ± sd" :: [ for (n, f) in columns -> let m, sd = meanSd [ for r in runs -> f r ] in sprintf "%s ± %s" (fmt n m) (fmt n sd) ] ])

    /// The teacher recipe study (scripts/teacher-recipes.fsx): per recipe its settings, held-out NLL (on a part held out
    /// of the training rows, the selection criterion) and W2 as mean ± standard deviation over seeds, and each seed's NLL.
    let recipesTable (folder: string) =
        if not (Directory.Exists folder) then invalidArg "folder" (sprintf "recipe-study folder '%s' not found" folder)
        let studies =
            [ for f in Directory.GetFiles(folder, "*.json") |> Array.sort ->
                try JsonNode.Parse(File.ReadAllText f).AsObject()
                with e -> invalidArg "folder" (sprintf "'%s' is not a recipe JSON: %s" f e.Message) ]
        if studies.IsEmpty then invalidArg "folder" (sprintf "'%s' holds no recipe JSON" folder)
        let seedsOf (o: JsonObject) = match o["seeds"] with :? JsonArray as a -> [ for x in a -> x ] | _ -> []
        table [ "recipe"; "steps"; "batch"; "lr"; "warm-up"; "EMA"; "held-out NLL (nats)"; "W2"; "NLL per seed" ]
              [ false; true; true; true; true; true; true; true; false ]
              [ for o in studies ->
                  let seeds = seedsOf o
                  let nll, nllSd = meanSd [ for x in seeds -> num x["heldout_nll"] ]
                  let w2, w2Sd = meanSd [ for x in seeds -> num x["w2"] ]
                  [ str o["recipe"]; sprintf "%d" (int (num o["steps"])); sprintf "%d" (int (num o["batch"])); sprintf "%g" (num o["lr"])
                    sprintf "%d" (int (num o["warmup"])); sprintf "%g" (num o["ema"]); sprintf "%.4f ± %.4f" nll nllSd
                    sprintf "%.4f ± %.4f" w2 w2Sd
                    String.concat ", " [ for x in seeds -> sprintf "%d: %.3f" (int (num x["seed"])) (num x["heldout_nll"]) ] ] ]

    let private seedsProvenance (folder: string) (shown: string) =
        let runs = seedRuns folder
        let commits = runs |> List.map (fun r -> match str r.Json["commit"] with "" -> "not recorded" | c -> c) |> List.distinct
        sprintf "Generated by `nfm report readme` from %s/seed-*/results.json; made by `%s` (one run per seed) at commit %s."
            shown (match str runs.Head.Json["command"] with "" -> "not recorded" | c -> c) (String.concat ", " commits)

    /// The text of one generated block: KIND is methods, teachers, students, claims, guidance (a results.json), seeds (a
    /// seed-study folder) or recipes (a recipe-study folder).
    /// PATH is read below `root` and named as written (so the text does not depend on where the checkout lies); the
    /// link to it is relative to `fileDir`, the folder of the markdown file that holds the block.
    let blockIn (root: string) (fileDir: string) (kind: string) (path: string) =
        let full = Path.Combine(root, path)
        let link = Path.GetRelativePath(fileDir, full).Replace('\\', '/')
        let results () = { read full with Path = path }
        match kind with
        | "methods" -> let r = results () in provenance link r + "\n\n" + methodTable r
        | "teachers" -> let r = results () in provenance link r + "\n\n" + teacherTable r
        | "claims" -> let r = results () in provenance link r + "\n\n" + claimsTable r
        | "students" -> let r = results () in provenance link r + "\n\n" + studentTable r
        | "guidance" -> let r = results () in provenance link r + "\n\n" + guidanceTable r
        | "seeds" -> seedsProvenance full path + "\n\n" + seedsTable full
        | "recipes" ->
            sprintf "Generated by `nfm report readme` from %s/*.json; made by `dotnet fsi scripts/teacher-recipes.fsx NAME key=value ...` (one file per recipe)." path
            + "\n\n" + recipesTable full
        | k -> invalidArg "kind" (sprintf "unknown generated block kind '%s' (expected methods, teachers, students, claims, guidance, seeds or recipes)" k)

    /// One generated block with PATH and its link relative to the same folder.
    let block (kind: string) (baseDir: string) (path: string) = blockIn baseDir baseDir kind path

    let private startMarker = "<!-- generated: "
    let private endMarker = "<!-- end generated -->"

    /// Regenerates every block between `<!-- generated: KIND PATH -->` and `<!-- end generated -->` of a markdown text
    /// held in `fileDir`, PATH relative to `root` (the repository), links relative to `fileDir`. Returns the new text.
    let regenerateIn (root: string) (fileDir: string) (text: string) =
        let lines = text.Replace("\r\n", "\n").Split('\n') |> List.ofArray
        let rec go (acc: string list) (rest: string list) =
            match rest with
            | [] -> List.rev acc
            | l :: tail when l.StartsWith startMarker ->
                let words = l.Substring(startMarker.Length).Replace("-->", "").Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)
                if words.Length <> 2 then invalidArg "text" (sprintf "malformed marker '%s' (expected KIND PATH)" l)
                let afterEnd = tail |> List.skipWhile (fun x -> x.Trim() <> endMarker)
                if afterEnd.IsEmpty then invalidArg "text" (sprintf "marker '%s' has no '%s'" l endMarker)
                let body = blockIn root fileDir words[0] words[1]
                let bodyLines = [ "" ] @ (body.Split('\n') |> List.ofArray) @ [ "" ]
                go (endMarker :: (List.rev bodyLines) @ (l :: acc)) afterEnd.Tail
            | l :: tail -> go (l :: acc) tail
        String.concat "\n" (go [] lines)

    /// `regenerateIn` for a markdown file whose marker paths are relative to its own folder.
    let regenerate (baseDir: string) (text: string) = regenerateIn baseDir baseDir text

    /// The repository root above a markdown file: the nearest folder holding Nfm.Functional.sln, else the file's folder.
    let rootOf (file: string) =
        let dir = Path.GetDirectoryName(Path.GetFullPath file)
        let rec up (d: DirectoryInfo) =
            if isNull d then dir
            elif File.Exists(Path.Combine(d.FullName, "Nfm.Functional.sln")) then d.FullName
            else up d.Parent
        up (DirectoryInfo dir)

    /// The markdown files whose generated blocks the repository keeps current: README.md, CONTRIBUTING.md and docs/*.md.
    let documents (root: string) =
        [ yield! [ "README.md"; "CONTRIBUTING.md" ] |> List.map (fun f -> Path.Combine(root, f)) |> List.filter File.Exists
          let docs = Path.Combine(root, "docs")
          if Directory.Exists docs then yield! Directory.GetFiles(docs, "*.md") |> Array.sort |> List.ofArray ]

    /// A figure of the run's main teacher (NaN when absent).
    let private teacherFigure (r: Results) (field: string) =
        match r.Json["teacher"] with
        | null -> nan
        | t -> num t[field]

    /// How to read a 2-D comparison, with the run's own path curvatures (printed at the end of `nfm demo`).
    let twoDReading (r: Results) =
        let curvature (m: string) =
            match r.Json["students"] with
            | null -> nan
            | s -> match s[m] with null -> nan | x -> num x["path_curvature_per_dim"]
        String.concat "\n"
            [ "Reading these figures (2-D):"
              sprintf "- With two tokens of one value the teacher's autoregressive flow is a triangular (Knothe-Rosenblatt-like) map, not a straight one: the NFM student's paths curve (path curvature %.4f per dimension against %.4f for minibatch OT)." (curvature "nfm") (curvature "ot")
              "- In 2-D a batch of 256 minibatch OT pairs is already close to the true optimal plan, which makes OT a very hard baseline here."
              "- NFM is expected to beat OT in high dimensions, where minibatch OT is a poor stand-in for the true plan: see the MNIST table in the README." ]

    /// Differences between the rows (metric values) and teacher figures of two runs beyond a tolerance; empty when they
    /// agree. Timings are not compared.
    let diff (expected: Results) (actual: Results) (tolerance: float) =
        let key (r: Row) = r.Method, r.Solver, r.Grid, r.Nfe
        let e = expected.Rows |> List.map (fun r -> key r, r.Value) |> Map.ofList
        let a = actual.Rows |> List.map (fun r -> key r, r.Value) |> Map.ofList
        let name (m, s, g, n) = sprintf "%s %s/%s nfe %d" m s g n
        let close x y = (Double.IsNaN x && Double.IsNaN y) || abs (x - y) <= tolerance
        let processor (r: Results) = match r.Json["machine"] with null -> "" | m -> str m["processor"]
        let problems =
            [ for KeyValue(k, v) in e do
                match a.TryFind k with
                | None -> yield sprintf "row %s: missing from %s" (name k) actual.Path
                | Some w when not (close v w) -> yield sprintf "row %s: %s has %.9g, %s has %.9g" (name k) expected.Path v actual.Path w
                | _ -> ()
              for KeyValue(k, _) in a do
                if not (e.ContainsKey k) then yield sprintf "row %s: not in %s" (name k) expected.Path
              for field in [ "test_nll_nats"; "value"; "sigma_f" ] do
                let x, y = teacherFigure expected field, teacherFigure actual field
                if not (close x y) then yield sprintf "teacher %s: %s has %.9g, %s has %.9g" field expected.Path x actual.Path y ]
        // libtorch chooses its kernels by processor: figures agree bit for bit only on the same processor model.
        if not problems.IsEmpty && processor expected <> processor actual then
            sprintf "note: %s was made on '%s' and %s on '%s'; on another processor the rounding differs, so regenerate the saved results on this machine kind"
                expected.Path (processor expected) actual.Path (processor actual) :: problems
        else problems
