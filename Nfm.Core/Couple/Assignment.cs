using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>An optimal pairing: row <c>i</c> goes to column <c>Permutation[i]</c>; <c>Cost</c> is the summed cost of those pairs.</summary>
public sealed record AssignmentResult(int[] Permutation, double Cost);

/// <summary>
/// Exact linear assignment (minimum-cost perfect matching on a square cost matrix) by shortest augmenting
/// paths with row and column potentials (the Jonker–Volgenant scheme: column reduction and augmenting row reduction
/// match most rows first, then Dijkstra on reduced costs for the rest), O(n^3)
/// in the worst case and far less on typical geometric costs. Costs are float64; any finite values up to
/// <see cref="MaxAbsCost"/> work, including negative costs, ties and duplicate points. Rows are assigned one at a
/// time, each by a Dijkstra search that sweeps all columns with SIMD (see <c>Augment</c>); memory is a handful of
/// length-n arrays besides the cost matrix, allocated once per solve.
/// </summary>
public static class Assignment
{
    /// <summary>Largest accepted |cost|: sums of potentials must stay far from overflow.</summary>
    public const double MaxAbsCost = 1e150;

    /// <summary>Solve for a square <paramref name="n"/> x <paramref name="n"/> cost matrix stored row-major in <paramref name="cost"/>.</summary>
    /// <exception cref="ArgumentException">The length is not n*n, n is negative, or a cost is NaN or infinite.</exception>
    public static AssignmentResult Solve(ReadOnlySpan<double> cost, int n) => Solve(cost, n, initialise: true);

    /// <summary>
    /// The same optimum by the shortest-path search alone, every row from zero potentials, without the initial
    /// reductions of <see cref="Solve(ReadOnlySpan{double}, int)"/>: slower on most inputs; kept as the reference that
    /// the properties and the <c>ot</c> benchmark compare the full solver against.
    /// </summary>
    public static AssignmentResult SolveBySearchOnly(ReadOnlySpan<double> cost, int n) => Solve(cost, n, initialise: false);

    static AssignmentResult Solve(ReadOnlySpan<double> cost, int n, bool initialise)
    {
        if (n < 0) throw new ArgumentException($"n must be >= 0, got {n}", nameof(n));
        if (cost.Length != (long)n * n)
            throw new ArgumentException($"cost must hold n*n = {(long)n * n} values (row-major), got {cost.Length}", nameof(cost));
        for (int k = 0; k < cost.Length; k++)
            if (!(Math.Abs(cost[k]) <= MaxAbsCost))
                throw new ArgumentException($"cost[{k / n}, {k % n}] is {cost[k]}; every cost must be finite with |cost| <= {MaxAbsCost:g}", nameof(cost));
        if (n == 0) return new AssignmentResult([], 0.0);

        var colOfRow = new int[n];
        var rowOfCol = new int[n];
        Array.Fill(colOfRow, -1);
        Array.Fill(rowOfCol, -1);
        var u = new double[n];        // row potentials
        var v = new double[n];        // column potentials
        var vScan = new double[n];    // v, or -inf for columns already scanned in this search (their d becomes +inf)
        var open = new double[n];     // tentative path length to each unscanned column; +inf once scanned
        var dist = new double[n];     // final path length of each scanned column
        var via = new double[n];      // row that last lowered open[j] (a row index held as a double, so it vectorises)
        var scanned = new int[n];     // columns scanned in the current search, in order
        var rowsSeen = new int[n];    // rows entered in the current search
        var free = new int[n];        // the free columns are free[0 .. n - start)
        var freeAt = new int[n];      // position of a free column in free
        for (int j = 0; j < n; j++) { free[j] = j; freeAt[j] = j; }
        Array.Fill(open, double.PositiveInfinity);
        unsafe
        {
            fixed (double* c0 = cost, pu = u, pv = v, pvScan = vScan, popen = open, pdist = dist, pvia = via)
            fixed (int* pcolOfRow = colOfRow, prowOfCol = rowOfCol, pscanned = scanned, pseen = rowsSeen, pfree = free, pfreeAt = freeAt)
            {
                var w = new Workspace(n, c0, pu, pv, pvScan, popen, pdist, pvia, pscanned, pseen, pcolOfRow, prowOfCol, pfree, pfreeAt);
                // Most rows are matched cheaply first (column reduction, then augmenting row reduction, as in
                // Jonker and Volgenant's LAPJV); the shortest-path search then runs only for the rows left free.
                int freeRows = n;
                if (initialise) freeRows = Initialise(in w);
                else for (int i = 0; i < n; i++) rowsSeen[i] = i;
                int freeCols = 0;
                for (int j = 0; j < n; j++)
                    if (rowOfCol[j] < 0) { free[freeCols] = j; freeAt[j] = freeCols++; }
                Array.Copy(v, vScan, n);
                var pending = new int[freeRows];
                Array.Copy(rowsSeen, pending, freeRows);
                for (int k = 0; k < freeRows; k++) Augment(pending[k], freeCols - k, in w);
            }
        }

        double total = 0.0;
        for (int i = 0; i < n; i++) total += cost[i * n + colOfRow[i]];
        return new AssignmentResult(colOfRow, total);
    }

    /// <summary>The solver's arrays, pinned for the whole solve (no allocation per augmentation).</summary>
    unsafe readonly struct Workspace(int n, double* cost, double* u, double* v, double* vScan, double* open,
        double* dist, double* via, int* scanned, int* rowsSeen, int* colOfRow, int* rowOfCol, int* free, int* freeAt)
    {
        public readonly int N = n;
        public readonly double* Cost = cost, U = u, V = v, VScan = vScan, Open = open, Dist = dist, Via = via;
        public readonly int* Scanned = scanned, RowsSeen = rowsSeen, ColOfRow = colOfRow, RowOfCol = rowOfCol, Free = free, FreeAt = freeAt;
    }

    /// <summary>
    /// Assign row <paramref name="start"/>: Dijkstra over the columns on reduced costs c[i, j] - u[i] - v[j] (all >= 0)
    /// until a free column is reached, then update the potentials and flip the path. Every step sweeps all columns
    /// with SIMD over contiguous arrays: scanned columns are neutralised by vScan = -inf instead of being skipped,
    /// which is cheaper than gathering the unscanned ones. On ties a free column wins, so the search ends sooner
    /// (this keeps degenerate inputs such as all-equal costs at O(n^2)).
    /// </summary>
    static unsafe void Augment(int start, int freeCount, in Workspace w)
    {
        int n = w.N, seen = 0, nScanned = 0, row = start, sink = -1;
        int width = Vector<double>.Count, bulk = n - n % width;
        double reach = 0.0;           // length of the shortest path found so far
        while (sink < 0)
        {
            w.RowsSeen[seen++] = row;
            double* costRow = w.Cost + (long)row * n;
            double shift = reach - w.U[row];
            var vShift = new Vector<double>(shift);
            var vRow = new Vector<double>(row);
            var low = new Vector<double>(double.PositiveInfinity);
            int j = 0;
            for (; j < bulk; j += width)
            {
                var d = vShift + *(Vector<double>*)(costRow + j) - *(Vector<double>*)(w.VScan + j);
                var o = *(Vector<double>*)(w.Open + j);
                var lower = Vector.LessThan(d, o);
                o = Vector.ConditionalSelect(lower, d, o);
                *(Vector<double>*)(w.Open + j) = o;
                *(Vector<double>*)(w.Via + j) = Vector.ConditionalSelect(lower, vRow, *(Vector<double>*)(w.Via + j));
                low = Vector.Min(low, o);
            }
            double best = double.PositiveInfinity;
            for (int k = 0; k < width; k++) best = Math.Min(best, low[k]);
            for (; j < n; j++)
            {
                double d = shift + costRow[j] - w.VScan[j];
                if (d < w.Open[j]) { w.Open[j] = d; w.Via[j] = row; }
                best = Math.Min(best, w.Open[j]);
            }

            // A free column at the minimum ends the search now; otherwise take the first column at the minimum.
            int col = -1;
            for (int k = 0; k < freeCount; k++)
                if (w.Open[w.Free[k]] == best) { col = w.Free[k]; break; }
            if (col < 0) col = FirstAt(w.Open, best, n);
            reach = best;
            w.Dist[col] = best;
            w.Open[col] = double.PositiveInfinity;
            w.VScan[col] = double.NegativeInfinity;
            w.Scanned[nScanned++] = col;
            if (w.RowOfCol[col] < 0) sink = col;
            else row = w.RowOfCol[col];
        }

        // Potentials keep every reduced cost >= 0 and the matched edges (and the new path) at exactly 0.
        w.U[start] += reach;
        for (int s = 1; s < seen; s++) { int r = w.RowsSeen[s]; w.U[r] += reach - w.Dist[w.ColOfRow[r]]; }
        for (int k = 0; k < nScanned; k++)
        {
            int c = w.Scanned[k];
            w.V[c] -= reach - w.Dist[c];
            w.VScan[c] = w.V[c];
        }
        new Span<double>(w.Open, n).Fill(double.PositiveInfinity);

        // The sink is no longer free; then flip the path from the sink back to the start row.
        int last = w.Free[freeCount - 1], at = w.FreeAt[sink];
        w.Free[at] = last;
        w.FreeAt[last] = at;
        for (int c = sink; ;)
        {
            int r = (int)w.Via[c];
            w.RowOfCol[c] = r;
            (w.ColOfRow[r], c) = (c, w.ColOfRow[r]);
            if (r == start) break;
        }
    }

    /// <summary>
    /// Matches most rows before any shortest-path search and sets feasible potentials for the rest; returns how many
    /// rows are left free (listed at the start of <c>RowsSeen</c>).
    /// Column reduction: v[j] is column j's smallest cost, and each column goes to its cheapest row while that row is
    /// free. Augmenting row reduction (two passes): a free row takes the column of its smallest reduced cost
    /// c[i, j] - v[j], lowering that column's v by the gap to its second smallest so that the row stays at a minimum; a
    /// row it displaces is tried again at once when v moved, else in the next pass. v only decreases, so a matched
    /// row's column stays a minimum of its reduced costs, and u[i] = that minimum makes every reduced cost
    /// c[i, j] - u[i] - v[j] >= 0 with the matched edges at 0: the state the search (<see cref="Augment"/>) needs.
    /// Each pass is capped at 4n row updates (ties could otherwise cycle); what the cap leaves is left to the search.
    /// </summary>
    static unsafe int Initialise(in Workspace w)
    {
        int n = w.N;
        // Column minima, row by row (contiguous reads); the first cheapest row of each column.
        for (int j = 0; j < n; j++) { w.V[j] = double.PositiveInfinity; w.Via[j] = -1; }
        for (int i = 0; i < n; i++)
        {
            double* row = w.Cost + (long)i * n;
            for (int j = 0; j < n; j++)
                if (row[j] < w.V[j]) { w.V[j] = row[j]; w.Via[j] = i; }
        }
        for (int j = n - 1; j >= 0; j--)
        {
            int i = (int)w.Via[j];
            if (w.ColOfRow[i] < 0) { w.ColOfRow[i] = j; w.RowOfCol[j] = i; }
        }
        int* freeRows = w.RowsSeen;
        int count = 0;
        for (int i = 0; i < n; i++) if (w.ColOfRow[i] < 0) freeRows[count++] = i;

        for (int pass = 0; pass < 2 && count > 0; pass++)
        {
            int k = 0, previous = count, budget = 4 * n;
            count = 0;
            while (k < previous)
            {
                if (budget-- == 0)
                {
                    while (k < previous) freeRows[count++] = freeRows[k++];
                    break;
                }
                int i = freeRows[k++];
                double* row = w.Cost + (long)i * n;
                // Smallest and second smallest reduced cost of row i, and their columns.
                double first = double.PositiveInfinity, second = double.PositiveInfinity;
                int j1 = -1, j2 = -1;
                for (int j = 0; j < n; j++)
                {
                    double h = row[j] - w.V[j];
                    if (h < second)
                    {
                        if (h >= first) { second = h; j2 = j; }
                        else { second = first; j2 = j1; first = h; j1 = j; }
                    }
                }
                if (j2 < 0) j2 = j1; // n = 1
                int displaced = w.RowOfCol[j1];
                bool lowered = first < second;
                if (lowered) w.V[j1] -= second - first;
                else if (displaced >= 0) { j1 = j2; displaced = w.RowOfCol[j2]; }
                if (displaced >= 0) w.ColOfRow[displaced] = -1;
                w.ColOfRow[i] = j1;
                w.RowOfCol[j1] = i;
                if (displaced >= 0)
                {
                    if (lowered) freeRows[--k] = displaced;
                    else freeRows[count++] = displaced;
                }
            }
        }

        // Row potentials: the matched edge's reduced cost (exactly 0 after it), or the smallest one of a free row.
        for (int i = 0; i < n; i++)
        {
            double* row = w.Cost + (long)i * n;
            int j = w.ColOfRow[i];
            if (j >= 0) { w.U[i] = row[j] - w.V[j]; continue; }
            double best = double.PositiveInfinity;
            for (int c = 0; c < n; c++) best = Math.Min(best, row[c] - w.V[c]);
            w.U[i] = best;
        }
        return count;
    }

    /// <summary>First index k with a[k] == value; the value is known to occur.</summary>
    static unsafe int FirstAt(double* a, double value, int n)
    {
        int width = Vector<double>.Count, k = 0;
        var target = new Vector<double>(value);
        for (; k <= n - width; k += width)
            if (Vector.EqualsAny(*(Vector<double>*)(a + k), target)) break;
        for (; k < n; k++)
            if (a[k] == value) return k;
        throw new InvalidOperationException("assignment search lost its minimum (non-finite costs?)");
    }

    /// <summary>Solve for a square <paramref name="n"/> x <paramref name="n"/> cost matrix stored row-major in <paramref name="cost"/>.</summary>
    public static AssignmentResult Solve(double[] cost, int n) => Solve(new ReadOnlySpan<double>(cost), n);

    /// <summary>Solve for a square cost matrix given as a 2-D array.</summary>
    public static AssignmentResult Solve(double[,] cost)
    {
        int n = cost.GetLength(0);
        if (cost.GetLength(1) != n)
            throw new ArgumentException($"cost must be square, got {n} x {cost.GetLength(1)}", nameof(cost));
        var flat = new double[(long)n * n];
        Buffer.BlockCopy(cost, 0, flat, 0, flat.Length * sizeof(double));
        return Solve(flat, n);
    }

    /// <summary>
    /// Solve for a square cost matrix tensor [n, n] (any floating dtype and device; solved in float64 on the CPU).
    /// </summary>
    public static AssignmentResult Solve(Tensor cost)
    {
        if (cost.dim() != 2 || cost.shape[0] != cost.shape[1])
            throw new ArgumentException($"cost must have shape [n, n], got {Shapes.Show(cost)}", nameof(cost));
        using var scope = NewDisposeScope();
        var flat = cost.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
        return Solve(flat, (int)cost.shape[0]);
    }

    /// <summary>
    /// Pair the rows of <paramref name="rows"/> [N, ...] with the rows of <paramref name="columns"/> [N, ...]
    /// so that the summed squared Euclidean distance (rows flattened, computed in float64) is least; the result's cost
    /// is that sum for the original points.
    /// The optimal pairing of squared distances does not change when either set is translated or scaled by a positive
    /// number (sum ||a_i - b_p(i)||^2 is a constant minus 2 sum a_i . b_p(i), and both moves change that sum by a
    /// constant or a positive factor), so each set is first centred and scaled to unit RMS. Two clouds far apart or of
    /// different spreads (a one-step student's samples against the data, noise against data) otherwise make every row
    /// want the same columns, and the search runs many times longer: 14x at n = 2,000 in 2-D, the same pairing.
    /// </summary>
    public static AssignmentResult Solve(Tensor rows, Tensor columns)
    {
        if (rows.dim() < 1 || columns.dim() < 1 || rows.shape[0] != columns.shape[0])
            throw new ArgumentException(
                $"rows and columns must hold the same number of points, got {Shapes.Show(rows)} and {Shapes.Show(columns)}",
                nameof(columns));
        long n = rows.shape[0];
        if (n == 0) return new AssignmentResult([], 0.0);
        using var scope = NewDisposeScope();
        var a = rows.detach().reshape(n, -1).to(ScalarType.Float64);
        var b = columns.detach().reshape(n, -1).to(ScalarType.Float64).to(a.device);
        var perm = Solve(SquaredDistances.Pairwise(Standardised(a), Standardised(b))).Permutation;
        var index = tensor(Array.ConvertAll(perm, p => (long)p), ScalarType.Int64).to(b.device);
        double cost = (a - b.index_select(0, index)).square().sum().item<double>();
        return new AssignmentResult(perm, cost);
    }

    /// <summary>Rows [N, D] centred and scaled to unit RMS (left unscaled when every row is the same point).</summary>
    static Tensor Standardised(Tensor x)
    {
        var centred = x - x.mean([0], keepdim: true);
        double rms = Math.Sqrt(centred.square().mean().item<double>());
        return rms > 0 && double.IsFinite(rms) ? centred / rms : centred;
    }
}
