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
