module Main

[<EntryPoint>]
let main argv = Nfm.Testing.Runner.run argv
