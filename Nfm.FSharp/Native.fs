namespace Nfm.FSharp

open System
open System.IO
open System.Runtime.InteropServices

/// Loading libtorch's native libraries by full path, for F# Interactive: fsi looks native libraries up by bare name
/// and can pick a system libtorch of another version, so scripts call `Native.load ()` before touching a tensor.
module Native =
    let private order = [ "libc10.so"; "libtorch_cpu.so"; "libtorch.so"; "libLibTorchSharp.so" ]
    let mutable private loaded = false

    /// The folder holding the build's (patched) native libraries, next to the given assembly folder.
    let nativeFolder (assemblyFolder: string) =
        Path.Combine(assemblyFolder, "runtimes", "linux-x64", "native")

    /// Preloads c10, torch_cpu, torch and LibTorchSharp from the build output, in that order, and points SkiaSharp and
    /// HarfBuzzSharp at the build's libSkiaSharp and libHarfBuzzSharp (idempotent).
    /// On other platforms, or when the folder is absent, it does nothing and TorchSharp's own loader applies.
    let load () =
        if not loaded && RuntimeInformation.IsOSPlatform OSPlatform.Linux then
            let folder = nativeFolder (Path.GetDirectoryName(typeof<Nfm.Couple.Batch>.Assembly.Location))
            if Directory.Exists folder then
                for lib in order do
                    let path = Path.Combine(folder, lib)
                    if File.Exists path then NativeLibrary.Load path |> ignore
                // SkiaSharp (PNG output) and HarfBuzzSharp (chart text) ask for their natives by bare name: answer with
                // the build's copies.
                let answer (assembly: Reflection.Assembly) (lib: string) (name: string) =
                    let path = Path.Combine(folder, lib)
                    if File.Exists path then
                        let handle = NativeLibrary.Load path
                        NativeLibrary.SetDllImportResolver(assembly,
                            DllImportResolver(fun asked _ _ -> if asked.Contains name then handle else IntPtr.Zero))
                answer typeof<SkiaSharp.SKImageInfo>.Assembly "libSkiaSharp.so" "SkiaSharp"
                answer typeof<HarfBuzzSharp.Blob>.Assembly "libHarfBuzzSharp.so" "HarfBuzzSharp"
            loaded <- true
