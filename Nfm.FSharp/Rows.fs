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
