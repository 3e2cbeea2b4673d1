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

    /// The processor this process runs on: its model name on Linux and the widest vector units libtorch can use
    /// ("AMD EPYC (avx2)"; amx, avx512, avx2 or sse). libtorch picks its CPU kernels by instruction set, so bit-for-bit
    /// figures hold on the same kind only, and a model name alone does not say it: two virtual machines both named
    /// "AMD EPYC", one with AVX-512 and one without, trained the demo's teacher to different figures.
    let processor () =
        let fromCpuinfo () =
            if File.Exists "/proc/cpuinfo" then
                let lines = File.ReadLines "/proc/cpuinfo" |> Seq.truncate 64 |> List.ofSeq
                let field (name: string) =
                    lines |> List.tryFind (fun l -> l.StartsWith name) |> Option.map (fun l -> l.Substring(l.IndexOf ':' + 1).Trim())
                let flags = field "flags" |> Option.map (fun f -> Set.ofArray (f.Split ' ')) |> Option.defaultValue Set.empty
                let isa =
                    if flags.Contains "amx_tile" then "amx" elif flags.Contains "avx512f" then "avx512"
                    elif flags.Contains "avx2" then "avx2" else "sse"
                field "model name" |> Option.map (fun name -> sprintf "%s (%s)" name isa)
            else None
        match (try fromCpuinfo () with _ -> None) with
        | Some name -> name
        | None -> string Runtime.InteropServices.RuntimeInformation.ProcessArchitecture
