namespace Nfm.Descriptions;

/// <summary>
/// The label convention of every class-conditional model here, teacher and student alike (ml-tarflow's): class labels
/// are 0 .. classes - 1, and <see cref="Null"/> means "no label" (label dropout in training, the unconditional pass of
/// classifier-free guidance).
/// </summary>
public static class Labels
{
    /// <summary>The null label: -1.</summary>
    public const long Null = -1;
}
