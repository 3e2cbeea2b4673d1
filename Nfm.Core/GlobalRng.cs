namespace Nfm;

/// <summary>
/// The lock held while a network is initialised from libtorch's global generator (seeded with manual_seed, then drawn
/// by the module constructors). Holding it makes initialisation reproducible when several threads build networks at
/// once, as the comparison does when it trains students beside the teacher.
/// </summary>
public static class GlobalRng
{
    /// <summary>Lock this object around manual_seed and the constructors that draw from the global generator.</summary>
    public static readonly object Lock = new();
}
