/// Generators and the run configuration every property suite shares.
module Nfm.Properties.Generators

open System
open Expecto
open FsCheck.FSharp

/// Every property is checked on 200 generated cases. NFM_REPLAY="A,B" replays the run a failure printed as
/// "Original seed: (A, B)"; "A,B,SIZE" replays the case under "Focus on error" (select one property with
/// --filter-test-case NAME).
let config =
    let replay =
        match Environment.GetEnvironmentVariable "NFM_REPLAY" with
        | null | "" -> None
        | text ->
            // Accepts the printed form too: "(AUL, BUL, Some SIZE)".
            let plain = text.Replace("UL", "").Replace("Some", "").Trim('(', ')', ' ')
            match plain.Split(',') |> Array.map (fun p -> UInt64.TryParse(p.Trim())) with
            | [| true, a; true, b |] -> Some (a, b, None)
            | [| true, a; true, b; true, size |] -> Some (a, b, Some (int size))
            | _ -> failwithf "NFM_REPLAY: expected \"A,B\" or \"A,B,SIZE\" (unsigned integers), got \"%s\"" text
    { FsCheckConfig.defaultConfig with maxTest = 200; replay = replay }

/// A seed for System.Random / torch generators, with room for the small offsets the suites add to it.
let seed = Gen.choose (0, Int32.MaxValue / 2)

/// A square cost matrix n x n (n in 0..maxN), row-major: either continuous values or small integers (many ties).
let cost maxN =
    gen {
        let! n = Gen.choose (0, maxN)
        let! ties = Gen.elements [ false; true ]
        let value =
            if ties then Gen.choose (0, 3) |> Gen.map float
            else Gen.choose (-1_000_000, 1_000_000) |> Gen.map (fun k -> float k / 1000.0)
        let! c = Gen.arrayOfLength (n * n) value
        return n, c
    }

/// A batch shape [N, ...]: vectors [N, D] or images [N, C, H, W], N in 1..maxN.
let batchShape maxN =
    gen {
        let! n = Gen.choose (1, maxN)
        let! image = Gen.elements [ false; true ]
        if image then
            let! c = Gen.choose (1, 3)
            let! h = Gen.choose (1, 4)
            let! w = Gen.choose (1, 4)
            return [| int64 n; int64 c; int64 h; int64 w |]
        else
            let! d = Gen.choose (1, 5)
            return [| int64 n; int64 d |]
    }
