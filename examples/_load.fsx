// Shared by the examples: references the Release build of the project and loads libtorch's native libraries by full
// path (F# Interactive looks them up by bare name and could pick a system libtorch of another version).
// Build once first:  dotnet build Nfm.Cli -c Release   (scripts/nfm.sh and scripts/demo.sh do it for you)
#r "../Nfm.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../Nfm.Cli/bin/Release/net10.0/SkiaSharp.dll"
#r "../Nfm.Cli/bin/Release/net10.0/HarfBuzzSharp.dll"
#r "../Nfm.Cli/bin/Release/net10.0/SkiaSharp.HarfBuzz.dll"
#r "../Nfm.Cli/bin/Release/net10.0/ScottPlot.dll"
#r "../Nfm.Cli/bin/Release/net10.0/FsCheck.dll"
#r "../Nfm.Cli/bin/Release/net10.0/Nfm.Core.dll"
#r "../Nfm.Cli/bin/Release/net10.0/Nfm.Plots.dll"
#r "../Nfm.Cli/bin/Release/net10.0/Nfm.FSharp.dll"
#r "../Nfm.Cli/bin/Release/net10.0/Nfm.Laws.dll"

Nfm.FSharp.Native.load ()

/// True when NFM_EXAMPLE_STEPS is set: CI runs every example at that small budget so that none can rot.
let exampleSmall = not (System.String.IsNullOrEmpty(System.Environment.GetEnvironmentVariable "NFM_EXAMPLE_STEPS"))

/// Training steps for an example: `full`, or at most NFM_EXAMPLE_STEPS when it is set.
let exampleSteps (full: int) =
    if exampleSmall then min full (int (System.Environment.GetEnvironmentVariable "NFM_EXAMPLE_STEPS")) else full

/// A size (rows, reference points) for an example: `full`, or `small` at CI's small budget.
let exampleSize (full: int) (small: int) = if exampleSmall then small else full

/// Where an example writes: the folder in NFM_EXAMPLE_OUT, else the current folder.
let exampleOut (file: string) =
    match System.Environment.GetEnvironmentVariable "NFM_EXAMPLE_OUT" with
    | null | "" -> file
    | d -> System.IO.Path.Combine(d, file)

/// The MNIST data of the MNIST examples: mnist:FOLDER, the folder in NFM_MNIST, else ../shared/data/mnist beside the
/// repository (the original IDX files work too). scripts/examples-check.sh skips a script that uses it on a machine
/// with neither.
let mnistFolder =
    match System.Environment.GetEnvironmentVariable "NFM_MNIST" with
    | null | "" -> "mnist:../shared/data/mnist"
    | d -> "mnist:" + d
