namespace Nfm.FSharp

/// Placeholder replaced below.
module Native =
    let x = 1
