/// Running the real `nfm` executable in a child process, as users and scripts do.
module Nfm.Tests.Cli

open System
open System.Diagnostics
open System.IO

/// The repository root: the folder above the test assembly that holds Nfm.Functional.sln.
let repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "cannot find Nfm.Functional.sln above the test assembly"
        elif File.Exists(Path.Combine(d.FullName, "Nfm.Functional.sln")) then d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// nfm.dll of the same configuration as this test assembly (the solution build makes both).
let nfmDll =
    let config = if AppContext.BaseDirectory.Contains("/Debug/") then "Debug" else "Release"
    Path.Combine(repoRoot, "Nfm.Cli", "bin", config, "net10.0", "nfm.dll")

/// Result of one run: exit code, stdout, stderr.
type Run = { Code: int; Out: string; Err: string }

/// Runs nfm with arguments in a working folder; kills it after timeoutSeconds.
let runIn (dir: string) (timeoutSeconds: int) (args: string list) =
    let psi = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir)
    psi.ArgumentList.Add nfmDll
    for a in args do psi.ArgumentList.Add a
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(timeoutSeconds * 1000)) then
        p.Kill true
        failwithf "nfm %s did not finish in %d s" (String.Join(" ", args)) timeoutSeconds
    { Code = p.ExitCode; Out = out.Result; Err = err.Result }

/// A fresh temporary folder.
let tempDir () =
    let d = Path.Combine(Path.GetTempPath(), "nfm-tests-" + Guid.NewGuid().ToString("N").Substring(0, 8))
    Directory.CreateDirectory d |> ignore
    d

/// Runs nfm in a fresh temporary folder with a 120 s limit.
let run (args: string list) = runIn (tempDir ()) 120 args
