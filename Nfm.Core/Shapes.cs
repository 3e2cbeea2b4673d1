using static TorchSharp.torch;

namespace Nfm;

/// <summary>Small shape utilities used by argument checks and broadcasting across the core.</summary>
public static class Shapes
{
    /// <summary>"[a, b, c]" for error messages.</summary>
    public static string Show(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>"[a, b, c]" of a tensor's shape.</summary>
    public static string Show(Tensor t) => Show(t.shape);

    /// <summary>The shape [N, 1, ..., 1] that broadcasts one value per row over a batch like <paramref name="x"/>.</summary>
    public static long[] RowShape(Tensor x)
    {
        var s = new long[x.dim()];
        s[0] = x.shape[0];
        for (int i = 1; i < s.Length; i++) s[i] = 1;
        return s;
    }
}
