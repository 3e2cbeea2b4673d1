namespace Nfm.FSharp

open System
open System.IO
open System.Runtime.InteropServices

/// Loading libtorch's native libraries by full path before first use, for F# Interactive and any host whose
/// native lookup by bare name could pick a system libtorch of another version (Debian's python3-torch installs 1.13).
/// Scripts call `Native.load ()` before touching a tensor. It also applies the GLIBCXX fix where no MSBuild target
/// ran (`#r "nuget: Nfm.FSharp"`): libLibTorchSharp.so is loaded from a patched copy in a per-user cache folder
/// (Nfm.GlibcxxPatch.Resolve, the same code the build's task runs), never from a modified NuGet package cache.
module Native =
    let private torchOrder = [ "libc10.so"; "libtorch_cpu.so"; "libtorch.so" ]
    let mutable private loaded = false

    /// The folder holding an application's native libraries, next to the given assembly folder (a build or a
    /// RID-less publish: runtimes/linux-x64/native).
    let nativeFolder (assemblyFolder: string) =
        Path.Combine(assemblyFolder, "runtimes", "linux-x64", "native")

    /// The application layout: the folder beside Nfm.Core.dll (or that folder itself, for a RID-specific publish)
    /// that holds libLibTorchSharp.so, if any.
    let private applicationFolder () =
        let here = Path.GetDirectoryName(typeof<Nfm.Couple.Batch>.Assembly.Location)
        [ nativeFolder here; here ] |> List.tryFind (fun f -> File.Exists(Path.Combine(f, Nfm.GlibcxxPatch.FileName)))

    /// The NuGet layout (F# Interactive's `#r "nuget: ..."`): TorchSharp's own package folder holds libLibTorchSharp.so.
    let private torchSharpPackageFile () =
        let lib = Path.GetDirectoryName(typeof<TorchSharp.torch>.Assembly.Location) // <root>/torchsharp/<v>/lib/net8.0
        let path = Path.Combine(lib, "..", "..", "runtimes", "linux-x64", "native", Nfm.GlibcxxPatch.FileName) |> Path.GetFullPath
        if File.Exists path then Some path else None

    /// Loads one libtorch library of the NuGet layout through the host's resolver (F# Interactive answers with the
    /// referenced libtorch package's file by full path; the assembly-directory-only search keeps a system libtorch
    /// out), else from a libtorch-* package beside TorchSharp's in the package root.
    let private loadFromPackages (name: string) =
        let torch = typeof<TorchSharp.torch>.Assembly
        let ok, _ = NativeLibrary.TryLoad(name, torch, Nullable DllImportSearchPath.AssemblyDirectory)
        if not ok then
            let root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName torch.Location, "..", "..", ".."))
            let found =
                if Directory.Exists root then
                    Directory.GetDirectories(root, "libtorch-*")
                    |> Seq.collect Directory.GetDirectories
                    |> Seq.map (fun v -> Path.Combine(v, "runtimes", "linux-x64", "native", name))
                    |> Seq.filter File.Exists
                    |> Seq.sortDescending
                    |> Seq.tryHead
                else None
            found |> Option.iter (NativeLibrary.Load >> ignore)

    /// Preloads c10, torch_cpu, torch and LibTorchSharp by full path, in that order, from the application's native
    /// folder or, under F# Interactive, from the NuGet packages (LibTorchSharp from a GLIBCXX-patched copy where the
    /// system libstdc++ needs it), and points SkiaSharp and HarfBuzzSharp at the application's libSkiaSharp and
    /// libHarfBuzzSharp (idempotent). On other platforms it does nothing and TorchSharp's own loader applies.
    let load () =
        if not loaded && RuntimeInformation.IsOSPlatform OSPlatform.Linux then
            match applicationFolder () with
            | Some folder ->
                for lib in torchOrder do
                    let path = Path.Combine(folder, lib)
                    if File.Exists path then NativeLibrary.Load path |> ignore
                NativeLibrary.Load(Nfm.GlibcxxPatch.Resolve(Path.Combine(folder, Nfm.GlibcxxPatch.FileName))) |> ignore
                // SkiaSharp (PNG output) and HarfBuzzSharp (chart text) ask for their natives by bare name: answer with
                // the application's copies.
                let answer (assembly: Reflection.Assembly) (lib: string) (name: string) =
                    let path = Path.Combine(folder, lib)
                    if File.Exists path then
                        let handle = NativeLibrary.Load path
                        NativeLibrary.SetDllImportResolver(assembly,
                            DllImportResolver(fun asked _ _ -> if asked.Contains name then handle else IntPtr.Zero))
                answer typeof<SkiaSharp.SKImageInfo>.Assembly "libSkiaSharp.so" "SkiaSharp"
                answer typeof<HarfBuzzSharp.Blob>.Assembly "libHarfBuzzSharp.so" "HarfBuzzSharp"
            | None ->
                match torchSharpPackageFile () with
                | Some libTorchSharp ->
                    torchOrder |> List.iter loadFromPackages
                    NativeLibrary.Load(Nfm.GlibcxxPatch.Resolve libTorchSharp) |> ignore
                | None -> ()
            loaded <- true
