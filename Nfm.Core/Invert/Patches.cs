using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Images to token sequences and back. The layout is that of an unfold with kernel and stride p:
/// tokens run over the patch grid row by row; inside a token the values run channel first, then the row
/// inside the patch, then the column (so an ml-tarflow checkpoint sees the same token vectors).
/// </summary>
public static class Patches
{
    /// <summary>[N, C, H, W] to [N, (H/p)(W/p), C p^2].</summary>
    public static Tensor Patchify(Tensor images, long patch)
    {
        if (images.dim() != 4)
            throw new ArgumentException($"expected images [N, C, H, W], got {Shapes.Show(images.shape)}", nameof(images));
        var (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3]);
        if (patch < 1 || h % patch != 0 || w % patch != 0)
            throw new ArgumentException($"patch size {patch} must divide the image size {h} x {w}", nameof(patch));
        return images
            .reshape(n, c, h / patch, patch, w / patch, patch)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(n, (h / patch) * (w / patch), c * patch * patch);
    }

    /// <summary>[N, (H/p)(W/p), C p^2] back to [N, C, H, W]; the exact inverse of <see cref="Patchify"/>.</summary>
    public static Tensor Unpatchify(Tensor tokens, long channels, long height, long width, long patch)
    {
        if (patch < 1 || height % patch != 0 || width % patch != 0)
            throw new ArgumentException($"patch size {patch} must divide the image size {height} x {width}", nameof(patch));
        var (gh, gw) = (height / patch, width / patch);
        if (tokens.dim() != 3 || tokens.shape[1] != gh * gw || tokens.shape[2] != channels * patch * patch)
            throw new ArgumentException(
                $"expected tokens [N, {gh * gw}, {channels * patch * patch}], got {Shapes.Show(tokens.shape)}", nameof(tokens));
        return tokens
            .reshape(tokens.shape[0], gh, gw, channels, patch, patch)
            .permute(0, 3, 1, 4, 2, 5)
            .reshape(tokens.shape[0], channels, height, width);
    }
}
