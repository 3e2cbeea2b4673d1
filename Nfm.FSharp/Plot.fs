namespace Nfm.FSharp

open TorchSharp
open Nfm.Plots

/// Charts and sample grids as PNG. The chart builders hand back the ScottPlot `Plot`, to restyle with ScottPlot's own
/// API and then write with `Plot.save`; the one-call helpers build and save in one go.
[<RequireQualifiedAccess>]
module Plot =
    /// A scatter chart of named 2-D point sets [N, 2] with equal aspect; series take palette colours in order.
    let scatterChart (title: string) (series: (string * torch.Tensor) list) : ScottPlot.Plot =
        ScatterChart.Create(title, ResizeArray(series |> List.map (fun (n, t) -> ScatterSeries(n, t))))

    /// A line chart of the series (`LineSeries(name, xs, ys)`), with base-10 log axes where asked.
    let lineChart (title: string) (xLabel: string) (yLabel: string) (logX: bool) (logY: bool) (series: LineSeries list) : ScottPlot.Plot =
        LineChart.Create(title, xLabel, yLabel, ResizeArray series, logX, logY)

    /// A chart of training losses against step, one curve per run (`LossSeries(name, losses, firstStep)`).
    let lossChart (title: string) (logY: bool) (series: LossSeries list) : ScottPlot.Plot =
        LossChart.Create(title, ResizeArray series, logY)

    /// Writes a plot as a PNG of width x height pixels (atomically).
    let saveSized (width: int) (height: int) (path: string) (plot: ScottPlot.Plot) = ChartFile.Save(plot, path, width, height)

    /// Writes a plot as a PNG of the default size, 800 x 560 pixels (atomically).
    let save (path: string) (plot: ScottPlot.Plot) = saveSized ChartFile.DefaultWidth ChartFile.DefaultHeight path plot

    /// A scatter plot of named 2-D point sets, 640 x 640 pixels.
    let scatter (path: string) (title: string) (series: (string * torch.Tensor) list) =
        use plot = scatterChart title series
        saveSized 640 640 path plot

    /// A line chart of the series, with base-10 log axes where asked.
    let lines (path: string) (title: string) (xLabel: string) (yLabel: string) (logX: bool) (logY: bool) (series: LineSeries list) =
        use plot = lineChart title xLabel yLabel logX logY series
        save path plot

    /// Training losses against step (linear axes: a flow's loss may be negative).
    let losses (path: string) (title: string) (series: LossSeries list) =
        use plot = lossChart title false series
        save path plot

    /// True when `samples` can be drawn by `Plot.samples`: 2-D points [N, 2] or images [N, C, H, W].
    let canDraw (samples: torch.Tensor) = (samples.dim() = 2L && samples.shape[1] = 2L) || samples.dim() = 4L

    /// Samples as a PNG: a scatter of 2-D points, or a grid of (up to 256) images; anything else is not drawn.
    let samples (path: string) (title: string) (x: torch.Tensor) =
        if x.dim() = 2L && x.shape[1] = 2L then scatter path title [ "samples", x ]
        elif x.dim() = 4L then ImageGrid.Save(path, x.narrow(0L, 0L, min x.shape[0] 256L), 16)

    /// A grid of images in [-1, 1].
    let grid (path: string) (columns: int) (images: torch.Tensor) = ImageGrid.Save(path, images, columns)
