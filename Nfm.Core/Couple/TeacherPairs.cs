using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Nfm.Checkpoints;
using Nfm.Descriptions;
using Nfm.Invert;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// What a pair file holds: whose encodings (teacher identity), of which data (data identity, row count), which rows
/// (a shard [RowStart, RowEnd)), how many noise draws per row, eta, sigma_f and the seed.
/// </summary>
public sealed record PairsSpec(string TeacherId, string DataId, long Rows, int Draws, double Eta, double SigmaF, long Seed,
    long RowStart, long RowEnd);

/// <summary>
/// NFM pairs precomputed for a whole data set: x0 [Draws, RowEnd - RowStart, ...] with x0 = f(x1 + eta eps) / sigma_f.
/// The noise of each block of <see cref="TeacherCoupling.EncodeBatch"/> rows and each draw comes from its own generator
/// seeded from (seed, draw, block), and shards are whole blocks, so shards computed anywhere, in any order, together
/// equal a single run exactly. Students refuse pairs whose teacher or data identity differ from theirs.
/// </summary>
public sealed record TeacherPairs(PairsSpec Spec, Tensor X0)
{
    /// <summary>Checkpoint kind of a complete pair file (or shard).</summary>
    public const string Kind = "pairs";
    /// <summary>Checkpoint kind of an unfinished one, kept to resume.</summary>
    public const string PartialKind = "pairs-partial";

    /// <summary>SHA-256 (hex, 16 characters) of the data values and labels: the data's identity.</summary>
    public static string DataIdentity(Tensor x, Tensor? labels)
    {
        using var values = x.detach().cpu().to(ScalarType.Float32);
        if (labels is null) return Checkpoints.Identity.OfTensors(values);
        using var l = labels.cpu().to(ScalarType.Int64);
        return Checkpoints.Identity.OfTensors(values, l);
    }

    /// <summary>Rows [start, end) of shard <paramref name="shard"/> of <paramref name="shards"/> (whole encode blocks).</summary>
    public static (long Start, long End) ShardRows(long rows, int shard, int shards)
    {
        if (shards < 1 || shard < 0 || shard >= shards) throw new ArgumentException($"shard must be I/N with 0 <= I < N, got {shard}/{shards}");
        long blocks = (rows + TeacherCoupling.EncodeBatch - 1) / TeacherCoupling.EncodeBatch;
        long b0 = blocks * shard / shards, b1 = blocks * (shard + 1) / shards;
        return (Math.Min(rows, b0 * TeacherCoupling.EncodeBatch), Math.Min(rows, b1 * TeacherCoupling.EncodeBatch));
    }

    /// <summary>
    /// Computes the pairs of one shard. sigma_f is estimated over the whole data with a generator seeded from
    /// <paramref name="seed"/> (so every shard finds the same value) unless given. With <paramref name="partialPath"/>,
    /// progress is saved there every few blocks and picked up again by a later call with the same arguments.
    /// </summary>
    public static TeacherPairs Compute(TrainedTeacher teacher, Tensor data, Tensor? labels, double eta, int draws, long seed,
        int shard = 0, int shards = 1, double? sigmaF = null, string? partialPath = null,
        Action<long, long>? progress = null, CancellationToken cancel = default)
    {
        TeacherCoupling.CheckEta(eta);
        if (draws < 1) throw new ArgumentException($"draws must be >= 1, got {draws}");
        var model = teacher.InferenceModel();
        model.CheckData(data.narrow(0, 0, Math.Min(1, data.shape[0])), "data");
        long rows = data.shape[0];
        var (start, end) = ShardRows(rows, shard, shards);
        var device = teacher.Spec.Device.ToDevice();
        using var dev = data.to(device);
        using var devLabels = labels?.to(device);
        double s = sigmaF ?? TeacherCoupling.EstimateScale(model, dev, devLabels, eta, new Generator((ulong)seed, device));
        var spec = new PairsSpec(teacher.Identity(), DataIdentity(data, labels), rows, draws, eta, s, seed, start, end);
        var shape = new[] { (long)draws, end - start }.Concat(data.shape.Skip(1)).ToArray();
        var x0 = zeros(shape, dtype: ScalarType.Float32);
        long blocksDone = 0;
        if (partialPath is not null && File.Exists(partialPath))
        {
            var c = Checkpoint.Load(partialPath, PartialKind);
            if (Json.Write(c.DescriptionAs<PairsSpec>()) == Json.Write(spec))
            {
                x0.copy_(c.Tensors["x0"]);
                blocksDone = long.Parse(c.Meta["blocksDone"]);
            }
        }
        long blockCount = (end - start + TeacherCoupling.EncodeBatch - 1) / TeacherCoupling.EncodeBatch;
        var lastSave = System.Diagnostics.Stopwatch.StartNew();
        for (long b = blocksDone; b < blockCount && !cancel.IsCancellationRequested; b++)
        {
            using (var scope = NewDisposeScope())
            {
                long r0 = start + b * TeacherCoupling.EncodeBatch, len = Math.Min(TeacherCoupling.EncodeBatch, end - r0);
                var x1 = dev.narrow(0, r0, len);
                var y = devLabels?.narrow(0, r0, len);
                long block = r0 / TeacherCoupling.EncodeBatch;
                for (int d = 0; d < draws; d++)
                {
                    var g = new Generator(BlockSeed(seed, d, block), device);
                    var z = TeacherCoupling.Encode(model, x1, y, eta, s, g);
                    x0[d].narrow(0, r0 - start, len).copy_(z.cpu().to(ScalarType.Float32));
                }
            }
            blocksDone = b + 1;
            progress?.Invoke(blocksDone, blockCount);
            if (partialPath is not null && (lastSave.Elapsed.TotalSeconds > 20 || cancel.IsCancellationRequested) && blocksDone < blockCount)
            {
                SavePartial(partialPath, spec, x0, blocksDone);
                lastSave.Restart();
            }
        }
        if (blocksDone < blockCount)
        {
            if (partialPath is not null) SavePartial(partialPath, spec, x0, blocksDone);
            throw new OperationCanceledException($"pair computation interrupted after {blocksDone} of {blockCount} blocks");
        }
        return new TeacherPairs(spec, x0);
    }

    private static ulong BlockSeed(long seed, int draw, long block) =>
        unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)draw * 0xBF58476D1CE4E5B9UL + (ulong)block * 0x94D049BB133111EBUL);

    private static void SavePartial(string path, PairsSpec spec, Tensor x0, long blocksDone) =>
        Checkpoint.Save(path, new Checkpoint(PartialKind, JsonNode.Parse(Json.Write(spec))!,
            new Dictionary<string, string>(Identities(spec)) { ["blocksDone"] = blocksDone.ToString() }, new Dictionary<string, Tensor> { ["x0"] = x0 }));

    /// <summary>The teacher and data identities, as metadata that tools can read without parsing the description.</summary>
    private static Dictionary<string, string> Identities(PairsSpec spec) =>
        new() { [Checkpoint.TeacherIdKey] = spec.TeacherId, [Checkpoint.DataIdKey] = spec.DataId };

    /// <summary>Writes the pair file atomically.</summary>
    public void Save(string path) =>
        Checkpoint.Save(path, new Checkpoint(Kind, JsonNode.Parse(Json.Write(Spec))!, Identities(Spec),
            new Dictionary<string, Tensor> { ["x0"] = X0 }));

    /// <summary>
    /// Loads a pair file, or every pair file (*.pairs, *.ckpt of kind pairs) in a folder merged into one: the shards
    /// must share teacher, data, eta, sigma_f, draws and seed and cover every row exactly once.
    /// </summary>
    public static TeacherPairs Load(string fileOrFolder)
    {
        if (File.Exists(fileOrFolder)) return FromCheckpoint(Checkpoint.Load(fileOrFolder, Kind));
        if (!Directory.Exists(fileOrFolder)) throw new FileNotFoundException($"{fileOrFolder}: pair file or folder not found");
        var parts = Directory.GetFiles(fileOrFolder).Where(f => f.EndsWith(".pairs") || f.EndsWith(".ckpt")).Order()
            .Select(f => FromCheckpoint(Checkpoint.Load(f, Kind))).OrderBy(p => p.Spec.RowStart).ToList();
        if (parts.Count == 0) throw new FileNotFoundException($"{fileOrFolder}: no pair files (*.pairs) in the folder");
        var first = parts[0].Spec;
        long at = 0;
        foreach (var p in parts)
        {
            var s = p.Spec;
            if (s with { RowStart = 0, RowEnd = 0 } != first with { RowStart = 0, RowEnd = 0 })
                throw new InvalidDataException($"{fileOrFolder}: shards were made with different teachers, data or options");
            if (s.RowStart != at) throw new InvalidDataException($"{fileOrFolder}: shards leave rows {at}..{s.RowStart - 1} uncovered or overlap");
            at = s.RowEnd;
        }
        if (at != first.Rows) throw new InvalidDataException($"{fileOrFolder}: shards cover rows 0..{at - 1} of {first.Rows}");
        var x0 = cat(parts.Select(p => p.X0).ToArray(), 1);
        return new TeacherPairs(first with { RowStart = 0, RowEnd = first.Rows }, x0);
    }

    private static TeacherPairs FromCheckpoint(Checkpoint c) => new(c.DescriptionAs<PairsSpec>(), c.Tensors["x0"]);

    /// <summary>
    /// The coupling that looks up each batch row's noise by its index in the data (one of the draws, chosen with the
    /// generator). Refuses data whose identity differs from the one the pairs were made for, and incomplete shards.
    /// </summary>
    public Coupling ToCoupling(Tensor data, Tensor? labels, string? teacherId = null)
    {
        if (Spec.RowStart != 0 || Spec.RowEnd != Spec.Rows) throw new InvalidDataException($"pairs cover rows {Spec.RowStart}..{Spec.RowEnd - 1} of {Spec.Rows}: merge every shard first");
        var dataId = DataIdentity(data, labels);
        if (dataId != Spec.DataId) throw new InvalidDataException($"the pairs were made for other data (data identity {Spec.DataId}, this data {dataId})");
        if (teacherId is not null && teacherId != Spec.TeacherId) throw new InvalidDataException($"the pairs were made by another teacher ({Spec.TeacherId}, expected {teacherId})");
        var table = X0;
        return (batch, g) =>
        {
            if (batch.Indices is null) throw new ArgumentException("precomputed pairs need the batch's row indices");
            using var scope = NewDisposeScope();
            var idx = batch.Indices.cpu();
            var draw = randint(0, Spec.Draws, idx.shape, dtype: ScalarType.Int64, device: batch.X1.device, generator: g).cpu();
            var flat = table.reshape(Spec.Draws * Spec.Rows, -1);
            var x0 = flat.index_select(0, draw * Spec.Rows + idx).reshape(batch.X1.shape).to(batch.X1.dtype).to(batch.X1.device);
            return new CoupledBatch(x0.MoveToOuterDisposeScope(), batch.X1, batch.Labels);
        };
    }
}
