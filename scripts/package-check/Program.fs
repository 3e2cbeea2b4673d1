/// The scratch project's entry point (scripts/package-check.sh copies this folder (Scratch.fsproj.in as Scratch.fsproj) into a temporary project outside
/// the repository that references Nfm.FSharp and libtorch-cpu-linux-x64 from the local feed). The run is TinyNfm.fs.
[<EntryPoint>]
let main _ =
    let result = TinyNfm.run ()
    if TinyNfm.passes result then 0
    else eprintfn "tiny NFM: W2 %.4f is not below 0.6 times the W2 of plain noise (%.4f)" (fst result) (snd result); 1
