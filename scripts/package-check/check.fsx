// The scratch script of the package check: the packages from the local feed, as a user's script outside the
// repository would reference them. scripts/package-check.sh copies it (with @ARTIFACTS@ replaced by the feed folder)
// next to TinyNfm.fs into a temporary folder and runs `dotnet fsi check.fsx`.
#i "nuget: @ARTIFACTS@"
#r "nuget: Nfm.FSharp, 0.1.0"
#r "nuget: libtorch-cpu-linux-x64, 2.10.0"
#load "TinyNfm.fs"

let result = TinyNfm.run ()
exit (if TinyNfm.passes result then 0 else 1)
