/// Charts and sample grids as a reader sees them: text in the title and axis-label bands, one colour per series,
/// log axes that read 1, 10, 100, round points that stay round. Every check is on the decoded PNG.
module Nfm.Tests.PlotTests

open System
open System.IO
open Expecto
open SkiaSharp
open TorchSharp
open Nfm.Plots
open Nfm.FSharp
open Nfm.Tests.DataTests

/// Decode a PNG written by a chart; fails the test when it does not decode.
let decode (path: string) =
    Expect.isTrue (File.Exists path) "file written"
    let bitmap = SKBitmap.Decode path
    Expect.isNotNull bitmap "decodes as an image"
    bitmap

let inRect (x0, y0, x1, y1) = seq { for y in y0 .. y1 - 1 do for x in x0 .. x1 - 1 -> x, y }

let near (tolerance: int) (c: SKColor) (p: SKColor) =
    abs (int p.Red - int c.Red) <= tolerance && abs (int p.Green - int c.Green) <= tolerance && abs (int p.Blue - int c.Blue) <= tolerance

/// Pixels in a rectangle whose colour is within `tolerance` (per channel) of `color`.
let countNear (bitmap: SKBitmap) (color: SKColor) (tolerance: int) rect =
    inRect rect |> Seq.filter (fun (x, y) -> near tolerance color (bitmap.GetPixel(x, y))) |> Seq.length

let isDark (p: SKColor) = p.Red < 110uy && p.Green < 110uy && p.Blue < 110uy

/// Dark pixels in a band that belong to letters: rows and columns that are dark over half the band are lines (the
/// frame, a tick row), not text, and are left out.
let textPixels (bitmap: SKBitmap) (x0, y0, x1, y1) =
    let dark = inRect (x0, y0, x1, y1) |> Seq.filter (fun (x, y) -> isDark (bitmap.GetPixel(x, y))) |> Set.ofSeq
    let lineRows = dark |> Seq.countBy snd |> Seq.filter (fun (_, n) -> n > (x1 - x0) / 2) |> Seq.map fst |> Set.ofSeq
    let lineCols = dark |> Seq.countBy fst |> Seq.filter (fun (_, n) -> n > (y1 - y0) / 2) |> Seq.map fst |> Set.ofSeq
    dark |> Seq.filter (fun (x, y) -> not (lineRows.Contains y) && not (lineCols.Contains x)) |> Seq.length

let sk (c: ScottPlot.Color) = SKColor(c.R, c.G, c.B)

/// Per-channel slack when looking for a series colour (antialiasing blends edges).
let colourTolerance = 12

/// Palette colours that cover more than `least` pixels of the rectangle. The palette's grey (7) is left out: the
/// antialiased edges of black text and the legend's shadow are grey too.
let seriesColours (bitmap: SKBitmap) rect least =
    [ for i in [ 0 .. 6 ] @ [ 8; 9 ] do
        if countNear bitmap (sk (ChartStyle.ColorAt i)) colourTolerance rect > least then yield i ]

let steps = [| 1.0; 2.0; 4.0; 8.0; 16.0; 32.0 |]

/// The bounding box of the pixels near `color`.
let boxOf (bitmap: SKBitmap) (color: SKColor) =
    let hits = inRect (0, 0, bitmap.Width, bitmap.Height) |> Seq.filter (fun (x, y) -> near 30 color (bitmap.GetPixel(x, y))) |> Array.ofSeq
    let xs, ys = hits |> Array.map fst, hits |> Array.map snd
    Array.min xs, Array.min ys, Array.max xs, Array.max ys

let circle (n: int) (radius: float) (cx: float) (cy: float) =
    Array2D.init n 2 (fun i j ->
        let a = float i / float n * 2.0 * Math.PI
        float32 (if j = 0 then cx + radius * cos a else cy + radius * sin a))

[<Tests>]
let plotTests =
    testList "plots" [
        test "fonts: a regular and a bold TrueType file are found and registered" {
            let struct (regular, bold) = ChartFonts.Ensure()
            Expect.isTrue (File.Exists regular && File.Exists bold) "both files exist"
            Expect.notEqual regular bold "two different faces"
            let boldFace = ScottPlot.Fonts.GetTypeface(ChartFonts.Family, true, false)
            Expect.isGreaterThanOrEqual boldFace.FontWeight 600 "the bold face is registered"
            Expect.isGreaterThan boldFace.GlyphCount 100 "and has glyphs"
            Expect.equal ScottPlot.Fonts.Default ChartFonts.Family "charts use it by default"
        }

        test "fonts: none found is a one-line error naming the folders searched" {
            use dir = new TempDir()
            expectError<FileNotFoundException> [ dir.Path; "DejaVuSans.ttf"; "fonts-dejavu-core" ] (fun () -> box (ChartFonts.Find([| dir.Path |])))
            let message = try ChartFonts.Find([| dir.Path |]) |> ignore; "" with e -> e.Message
            Expect.isFalse (message.Contains "\n") "one line"
        }

        test "line chart: title and axis labels are drawn in their bands" {
            use dir = new TempDir()
            // Unnamed, so that no legend text falls in the bands.
            let series = [ LineSeries("", steps, steps |> Array.map (fun s -> 1.0 / s)) ]
            Plot.lines (dir.File "text.png") "Quality against sampling steps" "sampling steps" "W2" true true series
            // The control: blank texts keep the layout, with no letters to draw.
            Plot.lines (dir.File "bare.png") " " " " " " true true series
            use text = decode (dir.File "text.png")
            use bare = decode (dir.File "bare.png")
            Expect.equal (text.Width, text.Height) (ChartFile.DefaultWidth, ChartFile.DefaultHeight) "default size"
            let w, h = text.Width, text.Height
            let bands = [ "title", (w / 4, 0, 3 * w / 4, 30); "x label", (0, h - 26, w, h); "y label", (0, 0, 18, h) ]
            for name, band in bands do
                let withText, without = textPixels text band, textPixels bare band
                Expect.isGreaterThan withText 60 $"letters in the {name} band"
                Expect.isLessThan without 15 $"the {name} band is empty when the {name} is blank"
        }

        test "line chart: one colour per series, a dashed level for a reference" {
            use dir = new TempDir()
            let series =
                [ for k in 0 .. 3 -> LineSeries(sprintf "method %d" k, steps, steps |> Array.map (fun s -> float (k + 1) / s)) ]
                @ [ LineSeries("teacher", [| 1.0; 32.0 |], [| 0.05; 0.05 |], Reference = true) ]
            Plot.lines (dir.File "q.png") "quality" "steps" "W2" true true series
            use bmp = decode (dir.File "q.png")
            let area = (60, 40, bmp.Width - 10, bmp.Height - 50)
            Expect.equal (seriesColours bmp area 150) [ 0; 1; 2; 3; 4 ] "five series, the first five palette colours, no other"
        }

        test "line chart: log axes read 1, 10, 100, 1000 at even spacing, and a power law is a straight line" {
            use dir = new TempDir()
            let xs = Array.init 120 (fun i -> Math.Pow(10.0, 3.0 * float i / 119.0))
            use plot = Plot.lineChart "" "x" "y" true true [ LineSeries("power law", xs, xs |> Array.map (fun x -> 100.0 / x)) ]
            Plot.save (dir.File "log.png") plot
            let major = plot.Axes.Bottom.TickGenerator.Ticks |> Array.filter (fun t -> t.IsMajor)
            Expect.equal (major |> Array.map (fun t -> t.Label)) [| "1"; "10"; "100"; "1000" |] "x tick labels are the real values"
            let px = major |> Array.map (fun t -> float (plot.GetPixel(ScottPlot.Coordinates(t.Position, 0.0)).X))
            let gaps = px |> Array.pairwise |> Array.map (fun (a, b) -> b - a)
            Expect.isLessThan (Array.max gaps - Array.min gaps) 1.5 $"decades equally wide: {gaps}"
            let yLabels = plot.Axes.Left.TickGenerator.Ticks |> Array.filter (fun t -> t.IsMajor) |> Array.map (fun t -> t.Label)
            Expect.equal yLabels [| "0.1"; "1"; "10"; "100" |] "y tick labels"
            // On the PNG: the curve's mean height in columns across the plot lies on one straight line.
            use bmp = decode (dir.File "log.png")
            let colour = sk (ChartStyle.ColorAt 0)
            let columns = [ for x in 120 .. 60 .. bmp.Width - 120 -> x ]
            let heights =
                [ for x in columns ->
                    let ys = [ for y in 0 .. bmp.Height - 1 do if near colourTolerance colour (bmp.GetPixel(x, y)) then yield float y ]
                    float x, List.average ys ]
            let (x0, y0), (x1, y1) = List.head heights, List.last heights
            for x, y in heights do
                Expect.isLessThan (abs (y - (y0 + (y1 - y0) * (x - x0) / (x1 - x0)))) 2.5 $"column {x} on the straight line"
        }

        test "line chart: a range under a decade is labelled 1-2-5, with real values" {
            use plot = Plot.lineChart "" "" "" true true [ LineSeries("s", steps, steps |> Array.map (fun s -> 0.04 + 0.2 / s)) ]
            plot.GetImageBytes(800, 560, ScottPlot.ImageFormat.Png) |> ignore
            let labels = plot.Axes.Left.TickGenerator.Ticks |> Array.filter (fun t -> t.IsMajor) |> Array.map (fun t -> t.Label)
            Expect.isGreaterThanOrEqual labels.Length 3 $"at least three labels: {labels}"
            for l in labels do Expect.contains [ "0.02"; "0.05"; "0.1"; "0.2"; "0.5" ] l "a 1-2-5 value"
        }

        test "line chart: points a log axis cannot show are skipped, bad input refused, nothing half-written" {
            use dir = new TempDir()
            Plot.lines (dir.File "skip.png") "t" "x" "y" true false [ LineSeries("s", [| 0.0; 1.0; 10.0; nan |], [| 1.0; 2.0; 3.0; 4.0 |]) ]
            use _ = decode (dir.File "skip.png")
            Expect.equal (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| "skip.png" |] "no temporary file left"
            expectError<ArgumentException> [ "'s'"; "3 x values but 2 y values" ] (fun () ->
                box (LineChart.Create("", "", "", [| LineSeries("s", [| 1.0; 2.0; 3.0 |], [| 1.0; 2.0 |]) |])))
            expectError<ArgumentException> [ "at least one series" ] (fun () -> box (LineChart.Create("", "", "", [||])))
            expectError<DirectoryNotFoundException> [ "does not exist" ] (fun () ->
                Plot.lines (Path.Combine(dir.Path, "missing", "p.png")) "" "" "" false false [ LineSeries("s", [| 1.0 |], [| 1.0 |]) ]; box ())
        }

        test "scatter chart: equal aspect keeps a circle round, one colour per series" {
            use dir = new TempDir()
            // A wide canvas: a circle must still come out round. Unnamed series: no legend swatch to measure.
            use plot =
                Plot.scatterChart "rings" [ "", torch.tensor(circle 600 1.0 3.0 0.0); "", torch.tensor(circle 400 0.5 3.0 0.0) ]
            Plot.saveSized 900 500 (dir.File "s.png") plot
            use bmp = decode (dir.File "s.png")
            let x0, y0, x1, y1 = boxOf bmp (sk (ChartStyle.ColorAt 0))
            let w, h = x1 - x0, y1 - y0
            Expect.isLessThan (abs (w - h)) (max 3 (h / 40)) $"the outer circle is round: {w} x {h} pixels"
            let ix0, iy0, ix1, iy1 = boxOf bmp (sk (ChartStyle.ColorAt 1))
            Expect.isLessThan (abs ((ix1 - ix0) * 2 - w)) 6 "the inner circle is half as wide"
            Expect.equal (seriesColours bmp (0, 40, bmp.Width, bmp.Height) 100) [ 0; 1 ] "two series, two colours"
        }

        test "scatter chart: fixed limits cut points off; shape and input errors" {
            use dir = new TempDir()
            let pts = Array2D.init 50 2 (fun i _ -> float32 i)
            use plot = ScatterChart.Create("", [| ScatterSeries("", pts) |], limits = AxisRange(-4.0, 4.0))
            ChartFile.Save(plot, dir.File "lim.png", 400, 400)
            use bmp = decode (dir.File "lim.png")
            let x0, y0, x1, y1 = boxOf bmp (sk (ChartStyle.ColorAt 0))
            Expect.isLessThan (x1 - x0) (bmp.Width * 2 / 3) "only the points inside [-4, 4] show"
            expectError<ArgumentException> [ "[N, 2]"; "[4, 3]" ] (fun () -> box (ScatterSeries("x", torch.zeros(4L, 3L))))
            expectError<ArgumentException> [ "at least one series" ] (fun () -> box (ScatterChart.Create("", [||])))
            expectError<ArgumentException> [ "Min < Max" ] (fun () ->
                box (ScatterChart.Create("", [| ScatterSeries("", Array2D.zeroCreate 1 2) |], limits = AxisRange(1.0, 1.0))))
        }

        test "loss chart: a curve per run, titled and labelled" {
            use dir = new TempDir()
            let rnd = Random 3
            let run scale = Array.init 5000 (fun i -> scale / (1.0 + float i / 500.0) + 0.05 * rnd.NextDouble())
            Plot.losses (dir.File "loss.png") "training loss" [ LossSeries("independent", run 2.0); LossSeries("nfm", run 1.0, 101L) ]
            use bmp = decode (dir.File "loss.png")
            Expect.equal (seriesColours bmp (60, 40, bmp.Width - 10, bmp.Height - 50) 150) [ 0; 1 ] "two runs, two colours"
            Expect.isGreaterThan (textPixels bmp (0, 0, bmp.Width, 30)) 60 "the title is drawn"
            Expect.isGreaterThan (textPixels bmp (0, bmp.Height - 26, bmp.Width, bmp.Height)) 60 "the step label is drawn"
        }

        test "F# layer: the chart comes back as a ScottPlot plot to restyle before saving" {
            use dir = new TempDir()
            use plot = Plot.lineChart "restyled" "x" "y" false false [ LineSeries("s", steps, steps) ]
            let magenta = ScottPlot.Color(255uy, 0uy, 255uy)
            for s in plot.GetPlottables<ScottPlot.Plottables.Scatter>() do s.Color <- magenta
            Plot.save (dir.File "r.png") plot
            use bmp = decode (dir.File "r.png")
            Expect.isGreaterThan (countNear bmp (sk magenta) colourTolerance (0, 0, bmp.Width, bmp.Height)) 200 "the new colour shows"
            Expect.equal (seriesColours bmp (0, 0, bmp.Width, bmp.Height) 20) [] "the palette colour is gone"
        }

        test "image grid: size from the layout, pixel levels from [-1, 1]" {
            use dir = new TempDir()
            // 10 grey images 28 x 28: image k is constant (k / 4.5 - 1), so image 0 is black and image 9 white.
            let images = torch.arange(10L, dtype = torch.ScalarType.Float32).div((4.5).ToScalar()).sub((1.0).ToScalar())
                             .reshape(10L, 1L, 1L, 1L).expand(10L, 1L, 28L, 28L).contiguous()
            let path = dir.File "g.png"
            ImageGrid.Save(path, images, columns = 4, scale = 2, padding = 2)
            use bmp = decode path
            Expect.equal (bmp.Width, bmp.Height) (2 + 4 * (56 + 2), 2 + 3 * (56 + 2)) "layout size"
            Expect.equal (bmp.GetPixel(10, 10)) (SKColor(0uy, 0uy, 0uy)) "image 0 is black"
            let x9, y9 = 2 + 1 * 58 + 10, 2 + 2 * 58 + 10
            Expect.equal (bmp.GetPixel(x9, y9)) (SKColor(255uy, 255uy, 255uy)) "image 9 is white"
            Expect.equal (bmp.GetPixel(0, 0)) (SKColor(128uy, 128uy, 128uy)) "padding is mid grey"
            // PNG colour type (byte 25 of the file, in IHDR): 0 is grey, one byte per pixel.
            Expect.equal (File.ReadAllBytes(path)[25]) 0uy "grey images make a one-channel PNG"
        }

        test "image grid: RGB channels, clamping, bad shapes" {
            use dir = new TempDir()
            let rgb = torch.zeros(1L, 3L, 4L, 4L)
            rgb[0L, 0L] <- torch.tensor(5.0f) // clamped to 1: full red
            rgb[0L, 1L] <- torch.tensor(-1.0f)
            rgb[0L, 2L] <- torch.tensor(-3.0f)
            ImageGrid.Save(dir.File "rgb.png", rgb, columns = 8, scale = 1, padding = 0)
            use bmp = decode (dir.File "rgb.png")
            Expect.equal (bmp.Width, bmp.Height) (4, 4) "one image, no padding"
            Expect.equal (bmp.GetPixel(2, 2)) (SKColor(255uy, 0uy, 0uy)) "red"
            Expect.equal (File.ReadAllBytes(dir.File "rgb.png")[25]) 2uy "colour images make an RGB PNG (opaque)"
            expectError<ArgumentException> [ "[N >= 1, C = 1 or 3, H, W]"; "[2, 2, 4, 4]" ] (fun () ->
                ImageGrid.Save(dir.File "bad.png", torch.zeros(2L, 2L, 4L, 4L)); box ())
            Expect.isFalse (File.Exists(dir.File "bad.png")) "nothing written"
        }

    ]
