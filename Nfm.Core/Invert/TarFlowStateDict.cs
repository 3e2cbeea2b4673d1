using System.Collections;
using System.Text.RegularExpressions;
using Nfm.Checkpoints;
using Nfm.Descriptions;
using Nfm.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// What an ml-tarflow state_dict does not say about its model. Every field is optional:
/// the image geometry (any one of <see cref="ImageSize"/>, <see cref="Channels"/>, <see cref="PatchSize"/> fixes the
/// other two through the tensor shapes; a file written by <see cref="TarFlowStateDict.Export"/> carries them itself),
/// the attention head dimension (ml-tarflow's Model always uses 64), the training noise and dequantisation
/// (ml-tarflow's <c>--noise_std</c> and <c>--noise_type</c>), and the device to load onto.
/// </summary>
public sealed record ImportOptions(int? ImageSize = null, int? Channels = null, int? PatchSize = null, int? HeadDim = null,
    double? NoiseSigma = null, Dequantisation? Dequantisation = null, string Device = "cpu")
{
    /// <summary>ml-tarflow's <c>MetaBlock</c> default head dimension, the one its <c>Model</c> always builds.</summary>
    public const int TarFlowHeadDim = 64;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of its range.</summary>
    public ImportOptions Validate()
    {
        if (ImageSize is < 1) throw new ArgumentException($"image size must be >= 1, got {ImageSize}", nameof(ImageSize));
        if (Channels is < 1) throw new ArgumentException($"channels must be >= 1, got {Channels}", nameof(Channels));
        if (PatchSize is < 1) throw new ArgumentException($"patch size must be >= 1, got {PatchSize}", nameof(PatchSize));
        if (HeadDim is < 1) throw new ArgumentException($"head dim must be >= 1, got {HeadDim}", nameof(HeadDim));
        if (NoiseSigma is double s && !(double.IsFinite(s) && s >= 0))
            throw new ArgumentException($"noise sigma must be finite and >= 0, got {s}", nameof(NoiseSigma));
        new DeviceSpec(Device).Validate();
        return this;
    }
}

/// <summary>
/// Interoperability with apple/ml-tarflow: a <c>transformer_flow.Model</c> state_dict (a <c>.pt</c>/<c>.pth</c> file
/// from <c>torch.save(model.state_dict(), ...)</c>, or <c>.safetensors</c>) to a <see cref="TrainedTeacher"/> and back.
/// The teacher's parameter names are ml-tarflow's, and its conventions match (position embeddings stored in data
/// order and flipped with the tokens in reversed blocks, qkv as [q heads | k heads | v heads], a before b in
/// proj_out, unfold patch layout, the <c>var</c> prior buffer), so the mapping is one-to-one by name; what this
/// class adds is reading the files, inferring the description from the shapes, and checking everything on the way.
/// </summary>
/// <remarks>
/// Log-determinants: ml-tarflow's blocks return -mean(a) per dimension; <see cref="Teacher.Encode"/> returns the total
/// -sum(a) in nats, D times as large. Encoded z: ml-tarflow's Model.forward returns tokens [N, T, C p^2]; Encode
/// returns them unpatchified to [N, C, H, W] (<see cref="TeacherModel.ToTokens"/> gives the tokens).
/// </remarks>
public static class TarFlowStateDict
{
    /// <summary>Metadata key of exported safetensors files: the <see cref="TeacherSpec"/> as JSON.</summary>
    public const string SpecMetadataKey = "nfm.teacher_spec";

    /// <summary>Metadata key naming the layout of exported safetensors files.</summary>
    public const string FormatMetadataKey = "format";

    /// <summary>The <see cref="FormatMetadataKey"/> value: PyTorch tensors in ml-tarflow's layout.</summary>
    public const string FormatValue = "pt";

    // Wrappers that add a prefix to every key: DistributedDataParallel ("module.") and torch.compile ("_orig_mod.").
    static readonly string[] WrapperPrefixes = ["module.", "_orig_mod."];

    /// <summary>
    /// Reads an ml-tarflow state_dict and returns a teacher whose encode and decode are those of the PyTorch model.
    /// Blocks, layers per block, width, tokens, values per token, MLP expansion, classes and affine/shift-only come
    /// from the tensor shapes; the rest from <paramref name="options"/>, then from the file's own metadata (files
    /// written by <see cref="Export"/>), then defaults (head dim 64, noise 0.05 Gaussian).
    /// Throws <see cref="InvalidDataException"/> naming missing or unexpected keys, or a tensor whose shape
    /// contradicts the options (with both shapes); <see cref="ArgumentException"/> for options out of range.
    /// </summary>
    public static TrainedTeacher Import(string path, ImportOptions options)
    {
        options.Validate();
        if (!File.Exists(path)) throw new FileNotFoundException($"state_dict '{path}' not found", path);
        // The file's tensors are freed here by hand: a dispose scope would also own the new model's parameters.
        var (tensors, metadata) = Read(path);
        try
        {
            var spec = Describe(tensors, options, SavedSpec(metadata));
            CheckKeys(tensors, spec);
            var run = new TeacherRunSpec(spec, TeacherRunSpec.DefaultTraining(steps: 1, batch: 64, lr: 1e-4, seed: 0),
                $"imported:{Path.GetFileName(path)}", new DeviceSpec(options.Device)).Validate();
            var teacher = TrainedTeacher.Create(run);
            CheckShapes(tensors, teacher.Model, options);
            CheckValues(tensors);
            Parameters.Copy(tensors, teacher.Model);
            teacher.Model.eval();
            return teacher;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Writes the teacher's inference weights (EMA when the run kept them) in ml-tarflow's layout: <c>.safetensors</c>
    /// (with the teacher's description in the metadata, so importing it needs no options), or <c>.pt</c>/<c>.pth</c>
    /// (a pickled state_dict that <c>torch.load</c> reads). The file loads into an ml-tarflow Model built with the same
    /// sizes (see <see cref="CompatibilityNotes"/> for sizes its Model cannot express). Written atomically.
    /// </summary>
    public static void Export(TrainedTeacher teacher, string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".safetensors" or ".pt" or ".pth"))
            throw new ArgumentException($"export writes .safetensors, .pt or .pth; got '{path}'", nameof(path));
        using var scope = NewDisposeScope();
        var model = teacher.InferenceModel();
        var entries = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(model.named_buffers())
            // A copy of each: a trained model's parameters are views into one shared buffer (FlatParameters), and the
            // .pt pickler writes a tensor's storage, which would be the whole buffer at an offset.
            .Select(e => KeyValuePair.Create(e.Item1, e.Item2.detach().cpu().contiguous().clone()))
            .ToList();
        if (ext == ".safetensors")
        {
            var meta = new Dictionary<string, string>
            {
                [FormatMetadataKey] = FormatValue,
                [SpecMetadataKey] = Json.Write(teacher.Spec.Model),
            };
            Data.AtomicFile.Write(path, s => SafetensorsFile.Write(s, entries, meta));
        }
        else
        {
            // Ordered, so that torch.load gives the keys in the model's order (as model.state_dict() would).
            var dict = new System.Collections.Specialized.OrderedDictionary();
            foreach (var (name, t) in entries) dict[name] = t;
            Data.AtomicFile.Write(path, s => PyTorchPickler.PickleStateDict(s, dict, leaveOpen: true));
        }
    }

    /// <summary>
    /// Why ml-tarflow's <c>transformer_flow.Model</c> constructor cannot build a model of this description as it
    /// stands (the weights are still in its layout; a MetaBlock built by hand with these sizes loads them). Empty when
    /// <c>Model(in_channels=C, img_size=H, patch_size=p, channels=Width, num_blocks=K, layers_per_block=L,
    /// nvp=Affine, num_classes=Classes)</c> loads the exported file as it is.
    /// </summary>
    public static IReadOnlyList<string> CompatibilityNotes(TeacherSpec spec)
    {
        var notes = new List<string>();
        if (!spec.IsImage)
            notes.Add($"the input is a vector [{spec.InputShape[0]}], not an image: ml-tarflow's Model patchifies images");
        else if (spec.InputShape[1] != spec.InputShape[2])
            notes.Add($"the image is {spec.InputShape[1]} x {spec.InputShape[2]}: ml-tarflow's Model takes square images");
        if (spec.HeadDim != ImportOptions.TarFlowHeadDim)
            notes.Add($"head dim {spec.HeadDim}: ml-tarflow's Model builds its attention with head dim {ImportOptions.TarFlowHeadDim}");
        if (spec.Expansion != 4)
            notes.Add($"MLP expansion {spec.Expansion}: ml-tarflow's Model uses 4");
        return notes;
    }

    /// <summary>
    /// The named tensors of a .pt/.pth or .safetensors state_dict, wrapper prefixes removed, and the safetensors
    /// metadata (empty for .pt/.pth).
    /// </summary>
    static (Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        Dictionary<string, Tensor> tensors;
        IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
        if (Path.GetExtension(path).Equals(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var file = SafetensorsFile.Read(path);
            if (file.Header.Metadata.ContainsKey(Checkpoint.KindKey))
            {
                foreach (var t in file.Tensors.Values) t.Dispose();
                throw new InvalidDataException(
                    $"{path}: is an nfm {file.Header.Metadata[Checkpoint.KindKey]} checkpoint, not an ml-tarflow state_dict; use it as it is");
            }
            (tensors, metadata) = (file.Tensors, file.Header.Metadata);
        }
        else
        {
            Hashtable table;
            try { table = PyTorchUnpickler.UnpickleStateDict(path); }
            catch (Exception e) when (e is not IOException and not OutOfMemoryException)
            {
                throw new InvalidDataException(
                    $"'{path}' is not a PyTorch state_dict written by torch.save(model.state_dict(), ...): {e.Message}", e);
            }
            tensors = [];
            foreach (DictionaryEntry entry in table)
            {
                var key = entry.Key?.ToString() ?? "";
                if (entry.Value is not Tensor t)
                    throw new InvalidDataException(
                        $"'{path}': entry '{key}' is a {entry.Value?.GetType().Name ?? "null"}, not a tensor; save model.state_dict() itself");
                tensors[key] = t;
            }
        }
        foreach (var prefix in WrapperPrefixes)
            if (tensors.Count > 0 && tensors.Keys.All(k => k.StartsWith(prefix, StringComparison.Ordinal)))
                tensors = tensors.ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
        return (tensors, metadata);
    }

    /// <summary>The description stored in an exported safetensors file's metadata, or null.</summary>
    static TeacherSpec? SavedSpec(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue(SpecMetadataKey, out var json) ? Json.Read<TeacherSpec>(json) : null;

    /// <summary>The tensor of that name, or an error naming it as missing.</summary>
    static Tensor Need(IReadOnlyDictionary<string, Tensor> tensors, string name) =>
        tensors.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"the state_dict lacks '{name}' (not an ml-tarflow transformer_flow.Model state_dict?)");

    /// <summary>Indices {i} of keys that start with <paramref name="prefix"/> followed by "{i}.".</summary>
    static SortedSet<int> Indices(IEnumerable<string> keys, string prefix)
    {
        var pattern = new Regex("^" + Regex.Escape(prefix) + @"(\d+)\.");
        return new SortedSet<int>(keys.Select(k => pattern.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)));
    }

    /// <summary>The teacher description: sizes from the tensors, geometry and training noise from the options or the metadata.</summary>
    static TeacherSpec Describe(IReadOnlyDictionary<string, Tensor> tensors, ImportOptions o, TeacherSpec? saved)
    {
        var blockIds = Indices(tensors.Keys, "blocks.");
        if (blockIds.Count == 0)
            throw new InvalidDataException(
                $"the state_dict has no 'blocks.{{k}}.' tensors (keys: {Listing(tensors.Keys)}); not an ml-tarflow transformer_flow.Model");
        int blocks = blockIds.Max + 1;
        int layers = Indices(tensors.Keys, "blocks.0.attn_blocks.").Select(i => i + 1).DefaultIfEmpty(0).Max();
        var projIn = Need(tensors, "blocks.0.proj_in.weight");
        var pos = Need(tensors, "blocks.0.pos_embed");
        var projOut = Need(tensors, "blocks.0.proj_out.weight");
        if (projIn.dim() != 2) throw new InvalidDataException($"blocks.0.proj_in.weight has shape {Shapes.Show(projIn)}, expected [width, values per token]");
        if (pos.dim() != 2) throw new InvalidDataException($"blocks.0.pos_embed has shape {Shapes.Show(pos)}, expected [tokens, width]");
        if (projOut.dim() != 2) throw new InvalidDataException($"blocks.0.proj_out.weight has shape {Shapes.Show(projOut)}, expected [2 d or d, width]");
        long width = projIn.shape[0], d = projIn.shape[1], tokens = pos.shape[0];
        bool affine = projOut.shape[0] == 2 * d;
        if (!affine && projOut.shape[0] != d)
            throw new InvalidDataException(
                $"blocks.0.proj_out.weight has shape {Shapes.Show(projOut)}; blocks.0.proj_in.weight {Shapes.Show(projIn)} gives [{2 * d}, {width}] (affine) or [{d}, {width}] (shift only)");
        int expansion = 4;
        if (layers > 0)
        {
            var expand = Need(tensors, "blocks.0.attn_blocks.0.mlp.main.0.weight");
            if (expand.dim() != 2 || expand.shape[0] % width != 0)
                throw new InvalidDataException(
                    $"blocks.0.attn_blocks.0.mlp.main.0.weight has shape {Shapes.Show(expand)}, expected [e * {width}, {width}] for an MLP expansion e");
            expansion = (int)(expand.shape[0] / width);
        }
        int classes = 0;
        if (tensors.TryGetValue("blocks.0.class_embed", out var ce))
            classes = ce.dim() == 3 ? (int)ce.shape[0]
                : throw new InvalidDataException($"blocks.0.class_embed has shape {Shapes.Show(ce)}, expected [classes, 1, {width}]");
        int headDim = o.HeadDim ?? saved?.HeadDim ?? ImportOptions.TarFlowHeadDim;
        if (width % headDim != 0)
            throw new ArgumentException(
                $"width {width} (from blocks.0.proj_in.weight {Shapes.Show(projIn)}) is not divisible by head dim {headDim}; pass the head dim the model was trained with",
                nameof(ImportOptions.HeadDim));
        var (inputShape, tokenSize) = Geometry(o, saved, tokens, d);
        return new TeacherSpec(inputShape, tokenSize, (int)width, blocks, layers, headDim, expansion, affine, classes,
            o.NoiseSigma ?? saved?.NoiseSigma ?? 0.05,
            o.Dequantisation ?? saved?.Dequantisation ?? Dequantisation.Gaussian).Validate();
    }

    /// <summary>
    /// Input shape and token size. With any image option, the geometry is a square C x H x H image in p x p patches:
    /// T = (H/p)^2 tokens of d = C p^2 values, the missing options solved from T and d (the given ones are kept as
    /// they are, so a contradiction shows up as a tensor of the wrong shape). Without options, the file's metadata.
    /// </summary>
    static (long[] InputShape, int TokenSize) Geometry(ImportOptions o, TeacherSpec? saved, long tokens, long d)
    {
        if (o.ImageSize is null && o.Channels is null && o.PatchSize is null)
        {
            if (saved is not null) return (saved.InputShape, saved.TokenSize);
            throw new ArgumentException(
                $"the state_dict holds {tokens} tokens of {d} values but not the image geometry; give the image size, channels or patch size",
                nameof(ImportOptions.ImageSize));
        }
        long grid = (long)Math.Round(Math.Sqrt(tokens));
        bool square = grid * grid == tokens;
        long? p = o.PatchSize;
        if (p is null && o.ImageSize is int h && square && h % grid == 0) p = h / grid;
        if (p is null && o.Channels is int c && d % c == 0)
        {
            long pp = (long)Math.Round(Math.Sqrt(d / c));
            if (pp * pp * c == d) p = pp;
        }
        long? channels = o.Channels is int gc ? gc : p is long q && d % (q * q) == 0 ? d / (q * q) : null;
        long? size = o.ImageSize is int gs ? gs : p is long r && square ? r * grid : null;
        if (p is null || channels is null || size is null)
            throw new ArgumentException(
                $"cannot solve the image geometry from {Given(o)}: the state_dict has {tokens} tokens (blocks.0.pos_embed) of {d} values " +
                "(blocks.0.proj_in.weight), and an image of C channels, size H and patch p has (H/p)^2 tokens of C p^2 values",
                nameof(ImportOptions.ImageSize));
        long s = size.Value, ps = p.Value;
        if (ps > s || s % ps != 0)
            throw new ArgumentException($"patch size {ps} does not divide image size {s}", nameof(ImportOptions.PatchSize));
        return ([channels.Value, s, s], (int)ps);
    }

    static string Given(ImportOptions o) => string.Join(", ", new[]
    {
        o.ImageSize is int h ? $"image size {h}" : null,
        o.Channels is int c ? $"channels {c}" : null,
        o.PatchSize is int p ? $"patch size {p}" : null,
    }.Where(s => s is not null));

    /// <summary>The first few names of a set, and how many more.</summary>
    static string Listing(IEnumerable<string> names)
    {
        var all = names.Order(StringComparer.Ordinal).ToList();
        var shown = string.Join(", ", all.Take(6));
        return all.Count > 6 ? $"{shown} and {all.Count - 6} more" : shown;
    }

    /// <summary>Every parameter and buffer of the described model must be in the file, and nothing else.</summary>
    static void CheckKeys(IReadOnlyDictionary<string, Tensor> tensors, TeacherSpec spec)
    {
        var expected = ExpectedNames(spec);
        var missing = expected.Where(n => !tensors.ContainsKey(n)).ToList();
        var unexpected = tensors.Keys.Where(n => !expected.Contains(n)).ToList();
        if (missing.Count == 0 && unexpected.Count == 0) return;
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing keys: {Listing(missing)}");
        if (unexpected.Count > 0) parts.Add($"unexpected keys: {Listing(unexpected)}");
        throw new InvalidDataException(
            $"the state_dict does not match a TarFlow of {spec.Blocks} blocks x {spec.LayersPerBlock} layers{(spec.IsConditional ? $", {spec.Classes} classes" : "")}: {string.Join("; ", parts)}");
    }

    /// <summary>The state_dict names of a model of this description (those of <see cref="TeacherModel"/>).</summary>
    static HashSet<string> ExpectedNames(TeacherSpec spec)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "var" };
        for (int k = 0; k < spec.Blocks; k++)
        {
            var b = $"blocks.{k}.";
            names.UnionWith([b + "proj_in.weight", b + "proj_in.bias", b + "pos_embed", b + "proj_out.weight", b + "proj_out.bias", b + "attn_mask"]);
            if (spec.IsConditional) names.Add(b + "class_embed");
            for (int l = 0; l < spec.LayersPerBlock; l++)
                foreach (var part in new[] { "attention.norm", "attention.qkv", "attention.proj", "mlp.norm", "mlp.main.0", "mlp.main.2" })
                    names.UnionWith([$"{b}attn_blocks.{l}.{part}.weight", $"{b}attn_blocks.{l}.{part}.bias"]);
        }
        return names;
    }

    /// <summary>Every tensor must have the shape the model gives it; a mismatch names the tensor, both shapes and the options behind it.</summary>
    static void CheckShapes(IReadOnlyDictionary<string, Tensor> tensors, TeacherModel model, ImportOptions o)
    {
        // Token count and values per token first: their tensors say best which option is off.
        string[] first = ["blocks.0.pos_embed", "blocks.0.proj_in.weight"];
        var slots = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(model.named_buffers())
            .OrderBy(s => Array.IndexOf(first, s.Item1) is var i && i >= 0 ? i : first.Length);
        foreach (var (name, slot) in slots)
        {
            var t = tensors[name];
            if (t.shape.SequenceEqual(slot.shape)) continue;
            var s = model.Spec;
            var from = Given(o) is { Length: > 0 } g ? g : "the file's metadata";
            throw new InvalidDataException(
                $"tensor '{name}' has shape {Shapes.Show(t)}, but {from} give {Shapes.Show(slot)} " +
                $"(input {Shapes.Show(s.InputShape)}, token size {s.TokenSize}: {s.Tokens} tokens of {s.TokenDim} values, width {s.Width})");
        }
    }

    /// <summary>Floating, finite values; a causal mask; a positive prior variance.</summary>
    static void CheckValues(IReadOnlyDictionary<string, Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        foreach (var (name, t) in tensors)
        {
            if (!t.is_floating_point())
                throw new InvalidDataException($"tensor '{name}' is {t.dtype}, expected a floating-point type");
            if (!t.isfinite().all().item<bool>())
                throw new InvalidDataException($"tensor '{name}' holds non-finite values");
            if (name.EndsWith(".attn_mask", StringComparison.Ordinal) && !t.eq(ones_like(t).tril()).all().item<bool>())
                throw new InvalidDataException($"tensor '{name}' is not the causal (lower-triangular ones) mask a TarFlow block uses");
        }
        if (!tensors["var"].gt(0).all().item<bool>())
            throw new InvalidDataException("tensor 'var' (the prior variance) must be positive");
    }
}
