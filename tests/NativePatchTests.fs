/// The GLIBCXX fix (Nfm.GlibcxxPatch, the code the build's task and Native.load share): it marks exactly the
/// GLIBCXX_3.4.32 requirement of libLibTorchSharp.so weak, once, works on copies, and does nothing where the system
/// libstdc++ is new enough (forced here with NFM_GLIBCXX_PATCH).
module Nfm.Tests.NativePatchTests

open System
open System.IO
open Expecto
open Nfm.Tests.Cli

/// TorchSharp's own libLibTorchSharp.so in the NuGet package cache (read only).
let original =
    let root = match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages") | p -> p
    Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", Nfm.GlibcxxPatch.FileName)

let withPatch (value: string) (f: unit -> unit) =
    let before = Environment.GetEnvironmentVariable "NFM_GLIBCXX_PATCH"
    Environment.SetEnvironmentVariable("NFM_GLIBCXX_PATCH", value)
    try f () finally Environment.SetEnvironmentVariable("NFM_GLIBCXX_PATCH", before)

[<Tests>]
let tests =
    testSequenced <| testList "glibcxx patch" [
        test "marks the one requirement weak, one byte changed, and a second pass changes nothing" {
            if File.Exists original then
                let b = File.ReadAllBytes original
                let before = Array.copy b
                Expect.isTrue (Nfm.GlibcxxPatch.MarkWeak b) "the package's file has a non-weak GLIBCXX_3.4.32 requirement"
                let changed = Seq.zip before b |> Seq.filter (fun (x, y) -> x <> y) |> Seq.length
                Expect.equal changed 1 "one byte (the weak bit of vna_flags)"
                Expect.isFalse (Nfm.GlibcxxPatch.MarkWeak b) "idempotent"
        }
        test "other files are left alone" {
            Expect.isFalse (Nfm.GlibcxxPatch.MarkWeak(Text.Encoding.ASCII.GetBytes "not an ELF file, but long enough to have a header at all")) "not ELF"
        }
        test "Resolve: the file itself where the system is new enough, else a patched copy in the cache; the original untouched" {
            if File.Exists original then
                let cache = tempDir ()
                Environment.SetEnvironmentVariable("NFM_NATIVE_CACHE", cache)
                try
                    let hash = File.ReadAllBytes original |> Security.Cryptography.SHA256.HashData
                    withPatch "0" (fun () -> Expect.equal (Nfm.GlibcxxPatch.Resolve original) original "no-op when not needed")
                    withPatch "1" (fun () ->
                        let copy = Nfm.GlibcxxPatch.Resolve original
                        Expect.isTrue (copy.StartsWith cache) "a copy in the per-user cache"
                        Expect.isFalse (Nfm.GlibcxxPatch.NeedsWeakMark copy) "the copy is patched"
                        Expect.equal (Nfm.GlibcxxPatch.Resolve original) copy "the same copy next time")
                    Expect.equal (File.ReadAllBytes original |> Security.Cryptography.SHA256.HashData) hash "the package cache is not written"
                finally Environment.SetEnvironmentVariable("NFM_NATIVE_CACHE", null)
        }
        test "PatchFolder does nothing where the system is new enough" {
            if File.Exists original then
                let dir = tempDir ()
                let copy = Path.Combine(dir, "sub", Nfm.GlibcxxPatch.FileName)
                Directory.CreateDirectory(Path.GetDirectoryName copy) |> ignore
                File.Copy(original, copy)
                withPatch "0" (fun () -> Expect.isEmpty (Nfm.GlibcxxPatch.PatchFolder dir) "not needed: nothing changed")
                Expect.isTrue (Nfm.GlibcxxPatch.NeedsWeakMark copy) "still as shipped"
                withPatch "1" (fun () -> Expect.equal (Nfm.GlibcxxPatch.PatchFolder dir) [| copy |] "needed: the copy patched")
                Expect.isFalse (Nfm.GlibcxxPatch.NeedsWeakMark copy) "patched"
        }
    ]
