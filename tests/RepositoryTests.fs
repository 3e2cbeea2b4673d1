/// The repository as a newcomer meets it: a short README, relative links in the docs that resolve, model files with
/// cards, and no large tracked files outside models/ (training checkpoints stay out of git once a run finishes).
module Nfm.Tests.RepositoryTests

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Expecto
open Nfm.Tests.DataTests

/// The README is a front door: at most this many lines (the rest lives in docs/).
let readmeLines = 200
/// A tracked file outside models/ may be at most this large, unless its run folder is marked unfinished.
let largeFileBytes = 5L * 1024L * 1024L
/// Everything tracked outside models/ together stays under this.
let trackedBytesOutsideModels = 10L * 1024L * 1024L
/// A run folder holding this file is unfinished: its resumable checkpoints may be tracked until it finishes (only git
/// survives a session); the file says what is left and the command that continues it.
let unfinishedMarker = "UNFINISHED.md"
/// Weights files a model folder may hold; each folder needs a card.
let weightExtensions = [ ".safetensors"; ".pt"; ".pth"; ".ckpt"; ".bin" ]

/// The markdown files whose links are checked: README.md, CONTRIBUTING.md, docs/*.md and the model cards.
let documents (root: string) =
    [ yield! [ "README.md"; "CONTRIBUTING.md" ] |> List.map (fun f -> Path.Combine(root, f)) |> List.filter File.Exists
      for dir in [ "docs"; "models" ] do
          let d = Path.Combine(root, dir)
          if Directory.Exists d then yield! Directory.GetFiles(d, "*.md", SearchOption.AllDirectories) |> Array.sort ]

/// GitHub's anchor for a heading: lower case, punctuation other than hyphens and spaces dropped, spaces to hyphens.
let slug (heading: string) =
    let lower = heading.Trim().ToLowerInvariant()
    let kept = lower |> String.filter (fun c -> Char.IsLetterOrDigit c || c = ' ' || c = '-' || c = '_')
    kept.Replace(' ', '-')

/// The anchors of a markdown file's headings (outside fenced code).
let anchors (file: string) =
    let mutable fenced = false
    [ for line in File.ReadAllLines file do
        if line.TrimStart().StartsWith "```" then fenced <- not fenced
        elif not fenced && line.StartsWith "#" then yield slug (line.TrimStart('#')) ]

/// Every relative link `](target)` of a markdown file (outside fenced code) that does not resolve, as "file: target (why)".
let brokenLinks (file: string) =
    let dir = Path.GetDirectoryName file
    let mutable fenced = false
    [ for line in File.ReadAllLines file do
        if line.TrimStart().StartsWith "```" then fenced <- not fenced
        elif not fenced then
            for m in Regex.Matches(line, @"\]\(([^)\s]+)\)") do
                let target = m.Groups[1].Value
                if not (target.Contains "://" || target.StartsWith "mailto:") then
                    let path, anchor =
                        match target.IndexOf '#' with
                        | -1 -> target, None
                        | i -> target.Substring(0, i), Some (target.Substring(i + 1))
                    let full = if path = "" then file else Path.GetFullPath(Path.Combine(dir, Uri.UnescapeDataString path))
                    if not (File.Exists full || Directory.Exists full) then yield sprintf "%s: %s (no such file)" file target
                    else
                        match anchor with
                        | Some a when File.Exists full && full.EndsWith ".md" && not (List.contains a (anchors full)) ->
                            yield sprintf "%s: %s (no heading #%s in %s)" file target a (Path.GetFileName full)
                        | _ -> () ]

/// The files git tracks, with their sizes, or None where this is not a git checkout.
let tracked (root: string) =
    try
        let psi = ProcessStartInfo("git", "ls-files -z", WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true)
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        p.WaitForExit()
        if p.ExitCode <> 0 then None
        else
            Some [ for f in out.Split('\000', StringSplitOptions.RemoveEmptyEntries) do
                     let full = Path.Combine(root, f)
                     if File.Exists full then yield f, FileInfo(full).Length ]
    with _ -> None

/// The folders (relative, '/'-separated) holding an unfinished marker.
let unfinishedRuns (files: (string * int64) list) =
    files |> List.choose (fun (f, _) -> if Path.GetFileName f = unfinishedMarker then Some (f.Substring(0, f.Length - unfinishedMarker.Length)) else None)

/// Large tracked files outside models/ that no unfinished run accounts for.
let largeFiles (files: (string * int64) list) =
    let unfinished = unfinishedRuns files
    files |> List.filter (fun (f, bytes) ->
        bytes > largeFileBytes && not (f.StartsWith "models/") && not (unfinished |> List.exists (fun d -> f.StartsWith d)))

/// Model folders (models/NAME/) holding weights but not both a README.md and a card.json.
let uncardedModels (root: string) =
    let models = Path.Combine(root, "models")
    if not (Directory.Exists models) then []
    else
        [ for d in Directory.GetDirectories models do
            let hasWeights = Directory.GetFiles d |> Array.exists (fun f -> List.contains (Path.GetExtension(f).ToLowerInvariant()) weightExtensions)
            if hasWeights && not (File.Exists(Path.Combine(d, "README.md")) && File.Exists(Path.Combine(d, "card.json"))) then yield d ]

[<Tests>]
let tests =
    testList "repository" [
        test "the README is a front door of at most 200 lines holding the two commands" {
            let root = Expect.wantSome (repoRoot ()) "the repository root"
            let lines = File.ReadAllLines(Path.Combine(root, "README.md"))
            Expect.isLessThanOrEqual lines.Length readmeLines "README.md lines"
            let text = String.concat "\n" lines
            for command in [ "bash scripts/demo.sh"; "bash scripts/test.sh" ] do
                Expect.stringContains text command "the README holds the two commands"
        }

        test "every relative link and anchor in README.md, CONTRIBUTING.md, docs/ and the model cards resolves" {
            let root = Expect.wantSome (repoRoot ()) "the repository root"
            let files = documents root
            Expect.isGreaterThan files.Length 3 "the documents are found"
            Expect.isEmpty (files |> List.collect brokenLinks) "broken links"
        }

        test "the link checker finds a missing file and a missing anchor, and accepts good ones" {
            let dir = Path.Combine(Path.GetTempPath(), "nfm-links-" + Guid.NewGuid().ToString("N"))
            Directory.CreateDirectory(Path.Combine(dir, "docs")) |> ignore
            File.WriteAllText(Path.Combine(dir, "docs", "b.md"), "# B title\n\n## Some Section, here\n")
            let a = Path.Combine(dir, "a.md")
            File.WriteAllText(a, "[ok](docs/b.md) [ok](docs/b.md#some-section-here) [web](https://x.org/y) [self](#a)\n# A\n```\n[not a link](nowhere.md)\n```\n[bad](docs/c.md) [bad](docs/b.md#nope)\n")
            let broken = brokenLinks a
            Expect.equal broken.Length 2 (sprintf "two broken links: %A" broken)
            Expect.stringContains broken[0] "docs/c.md (no such file)" "a missing file"
            Expect.stringContains broken[1] "no heading #nope" "a missing anchor"
        }

        test "every model folder with weights has a card (README.md and card.json)" {
            let root = Expect.wantSome (repoRoot ()) "the repository root"
            Expect.isEmpty (uncardedModels root) "model folders without a card"
        }

        test "no tracked file outside models/ is over 5 MB unless its run is marked unfinished, and all of them together stay under 10 MB" {
            let root = Expect.wantSome (repoRoot ()) "the repository root"
            match tracked root with
            | None -> skiptest "not a git checkout"
            | Some files ->
                Expect.isEmpty (largeFiles files) (sprintf "large tracked files %A (finished runs keep JSON, Markdown, plots and logs; mark a run in progress with %s)" (largeFiles files) unfinishedMarker)
                let outside = files |> List.filter (fun (f, _) -> not (f.StartsWith "models/") && not (unfinishedRuns files |> List.exists (fun d -> f.StartsWith d)))
                let total = outside |> List.sumBy snd
                Expect.isLessThan total trackedBytesOutsideModels (sprintf "tracked bytes outside models/ (%d)" total)
        }

        test "the size rule: a large file fails unless its folder is marked unfinished; models/ is exempt" {
            let big = largeFileBytes + 1L
            Expect.equal (largeFiles [ "results/run/teacher.ckpt", big ]) [ "results/run/teacher.ckpt", big ] "a finished run's checkpoint"
            Expect.isEmpty (largeFiles [ "results/run/teacher.ckpt", big; "results/run/" + unfinishedMarker, 100L ]) "an unfinished run's checkpoint"
            Expect.equal (largeFiles [ "results/run/teacher.ckpt", big; "results/other/" + unfinishedMarker, 100L ]).Length 1 "another run's marker does not count"
            Expect.isEmpty (largeFiles [ "models/m/teacher.safetensors", big ]) "released weights live in models/"
        }
    ]
