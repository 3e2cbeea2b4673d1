namespace Nfm.FSharp

open System
open System.IO
open System.Reflection

/// Where a figure comes from: the build's version and git commit, and the processor, recorded in results files.
[<RequireQualifiedAccess>]
module Provenance =
    /// An assembly's informational version: "0.1.0+<commit>" ("-dirty" when the build's working tree had uncommitted
    /// changes outside results/), or "unknown".
    let versionOf (a: Assembly) =
        match CustomAttributeExtensions.GetCustomAttribute<AssemblyInformationalVersionAttribute>(a) with
        | null -> "unknown"
        | v -> v.InformationalVersion

    /// The git commit in an assembly's informational version, or "unknown" when it was built outside a git checkout.
    let commitOf (a: Assembly) =
        let v = versionOf a
        match v.IndexOf '+' with
        | -1 -> "unknown"
        | i -> v.Substring(i + 1)

    /// The git commit this library was built from.
    let commit () = commitOf typeof<Reporter>.Assembly

    /// The processor this process runs on (its model name on Linux): libtorch picks its CPU kernels by instruction set,
    /// so bit-for-bit figures hold on the same processor model only.
    let processor () =
        let fromCpuinfo () =
            if File.Exists "/proc/cpuinfo" then
                File.ReadLines "/proc/cpuinfo" |> Seq.tryFind (fun l -> l.StartsWith "model name")
                |> Option.map (fun l -> l.Substring(l.IndexOf ':' + 1).Trim())
            else None
        match (try fromCpuinfo () with _ -> None) with
        | Some name -> name
        | None -> string Runtime.InteropServices.RuntimeInformation.ProcessArchitecture
