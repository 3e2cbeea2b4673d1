module Main
[<EntryPoint>]
let main _ = 0
