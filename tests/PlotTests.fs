/// PNG plots: files are written atomically, decode, have the promised size, and show what they were given.
module Nfm.Tests.PlotTests

open System
open System.IO
open Expecto
open SkiaSharp
open TorchSharp
open Nfm.Plots
open Nfm.Tests.DataTests

/// Decode a PNG written by a plot; fails the test when it does not decode.
let decode (path: string) =
    Expect.isTrue (File.Exists path) "file written"
    let bitmap = SKBitmap.Decode path
    Expect.isNotNull bitmap "decodes as an image"
    bitmap

/// Pixels in a rectangle whose colour is within `tolerance` (per channel) of `color`.
let countNear (bitmap: SKBitmap) (color: SKColor) (tolerance: int) (x0, y0, x1, y1) =
    let mutable n = 0
    for y in y0 .. y1 - 1 do
        for x in x0 .. x1 - 1 do
            let p = bitmap.GetPixel(x, y)
            if abs (int p.Red - int color.Red) <= tolerance && abs (int p.Green - int color.Green) <= tolerance
               && abs (int p.Blue - int color.Blue) <= tolerance then
                n <- n + 1
    n

/// Per-channel slack when looking for a series colour (antialiasing blends edges).
let colourTolerance = 12

let red = SKColor(220uy, 20uy, 20uy)
let blue = SKColor(20uy, 20uy, 220uy)

[<Tests>]
let plotTests =
    testList "plots" [
        test "scatter: decodes, height as asked, square data area, both series drawn" {
            use dir = new TempDir()
            let a = Array2D.init 200 2 (fun i j -> float32 (Math.Sin(float (i * 2 + j))) * 2.0f)
            let b = torch.randn(300L, 2L).add((1.0).ToScalar())
            let path = dir.File "s.png"
            Scatter.Save(path, [| ScatterSeries("data", a, red); ScatterSeries("samples", b, blue) |], title = "moons")
            use bmp = decode path
            Expect.equal bmp.Height 640 "height"
            Expect.equal bmp.Width (Scatter.CanvasWidth(640, "moons")) "width for a square data area"
            // The frame is drawn in ink: walk out from the centre to its edges (points and grid lines are not ink).
            let ink (x, y) = let p = bmp.GetPixel(x, y) in p.Red < 140uy && p.Green < 140uy && p.Blue < 140uy
            let cx, cy = bmp.Width / 2 + 3, bmp.Height / 2 + 3
            let edge step start isInk = Seq.initInfinite (fun i -> start + step * i) |> Seq.find isInk
            let left, right = edge -1 cx (fun x -> ink (x, cy)), edge 1 cx (fun x -> ink (x, cy))
            let top, bottom = edge -1 cy (fun y -> ink (cx, y)), edge 1 cy (fun y -> ink (cx, y))
            let w, h = right - left, bottom - top
            Expect.isLessThanOrEqual (abs (w - h)) 2 $"square frame: {w} x {h}"
            let whole = (0, 0, bmp.Width, bmp.Height)
            Expect.isGreaterThan (countNear bmp red colourTolerance whole) 100 "red points"
            Expect.isGreaterThan (countNear bmp blue colourTolerance whole) 100 "blue points"
        }

        test "scatter: fixed limits cut points off, title text is drawn" {
            use dir = new TempDir()
            let pts = Array2D.init 50 2 (fun i _ -> float32 i)
            Scatter.Save(dir.File "lim.png", [| ScatterSeries("", pts, red) |], limits = AxisRange(-4.0, 4.0), size = 300)
            Scatter.Save(dir.File "titled.png", [| ScatterSeries("", pts, red) |], title = "A TITLE", limits = AxisRange(-4.0, 4.0), size = 300)
            use plain = decode (dir.File "lim.png")
            use titled = decode (dir.File "titled.png")
            Expect.equal plain.Height 300 "height"
            // Only points 0..4 fall in [-4, 4]^2: a few dots, not fifty.
            let dots = countNear plain red colourTolerance (0, 0, plain.Width, plain.Height)
            Expect.isGreaterThan dots 5 "some points"
            Expect.isLessThan dots 250 "points outside the limits are cut off"
            let dark (b: SKBitmap) = countNear b (SKColor(0x20uy, 0x20uy, 0x20uy)) 60 (0, 0, b.Width, 40)
            Expect.isGreaterThan (dark titled) (dark plain + 20) "the title's letters are drawn"
        }

        test "scatter: wrong tensor shape and empty input are errors" {
            expectError<ArgumentException> [ "[N, 2]"; "[4, 3]" ] (fun () -> ScatterSeries("x", torch.zeros(4L, 3L), red))
            expectError<ArgumentException> [ "at least one series" ] (fun () -> Scatter.Save("x.png", [||]); box ())
            expectError<ArgumentException> [ "Min < Max" ] (fun () ->
                Scatter.Save("x.png", [| ScatterSeries("", Array2D.zeroCreate 1 2, red) |], limits = AxisRange(1.0, 1.0)); box ())
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
            expectError<ArgumentException> [ "[N >= 1, C = 1 or 3, H, W]"; "[2, 2, 4, 4]" ] (fun () ->
                ImageGrid.Save(dir.File "bad.png", torch.zeros(2L, 2L, 4L, 4L)); box ())
            Expect.isFalse (File.Exists(dir.File "bad.png")) "nothing written"
        }

        test "line plot: decodes at the asked size, log axes, legend" {
            use dir = new TempDir()
            let steps = [| 1.0; 2.0; 4.0; 8.0; 16.0; 32.0 |]
            let series =
                [| LineSeries("independent", steps, steps |> Array.map (fun s -> 2.0 / s))
                   LineSeries("nfm", steps, steps |> Array.map (fun s -> 0.5 / s), red) |]
            let path = dir.File "q.png"
            LinePlot.Save(path, "quality vs steps", "NFE", "W2", series, logX = true, logY = true)
            use bmp = decode path
            Expect.equal (bmp.Width, bmp.Height) (800, 560) "size"
            Expect.isGreaterThan (countNear bmp red colourTolerance (0, 0, bmp.Width, bmp.Height)) 200 "the red curve"
            Expect.isGreaterThan (countNear bmp (PlotStyle.ColorAt 0) colourTolerance (0, 0, bmp.Width, bmp.Height)) 200 "the palette's first colour"
            LinePlot.Save(dir.File "lin.png", "", "", "", [| LineSeries("flat", [| 0.0; 1.0 |], [| 3.0; 3.0 |]) |], width = 300, height = 200)
            use lin = decode (dir.File "lin.png")
            Expect.equal (lin.Width, lin.Height) (300, 200) "small linear plot"
        }

        test "line plot: non-positive values on a log axis are skipped, bad input refused" {
            use dir = new TempDir()
            LinePlot.Save(dir.File "skip.png", "t", "x", "y", [| LineSeries("s", [| 0.0; 1.0; 10.0; nan |], [| 1.0; 2.0; 3.0; 4.0 |]) |], logX = true)
            use _ = decode (dir.File "skip.png")
            expectError<ArgumentException> [ "'s'"; "3 x values but 2 y values" ] (fun () ->
                LinePlot.Save(dir.File "bad.png", "", "", "", [| LineSeries("s", [| 1.0; 2.0; 3.0 |], [| 1.0; 2.0 |]) |]); box ())
            expectError<DirectoryNotFoundException> [ "does not exist" ] (fun () ->
                LinePlot.Save(Path.Combine(dir.Path, "missing", "p.png"), "", "", "", [| LineSeries("s", [| 1.0 |], [| 1.0 |]) |]); box ())
        }
    ]
