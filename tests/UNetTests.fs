module Nfm.Tests.UNetTests

open System
open Expecto
open TorchSharp
open Nfm.Descriptions
open Nfm.Nets
open Nfm.Regress
open Nfm.Training
open Nfm.Tests.NetHelpers
/// A U-Net spec for images [c, h, w] with the given base width, resolutions and classes.
let private unet (shape: int64 list) (width: int) (depth: int) (classes: int) =
    VelocityNetSpec(Array.ofList shape, width, depth, Classes = classes, Architecture = Architecture.UNet)

let private shape (t: torch.Tensor) = t.shape |> List.ofArray

/// Outputs of a network forward compared exactly (same weights, same inputs, same code path).
let private exact = 0.0

[<Tests>]
let tests =
    testList "unet" [
        test "sampling integrates fixed-step solvers in chunks of rows: the same samples as one pass over the batch, with guidance and labels" {
            torch.manual_seed 3L |> ignore
            use net = VelocityNets.Create(unet [ 1L; 8L; 8L ] 4 2 3)
            perturb net 5UL
            net.eval ()
            let n = int64 Nfm.Sampling.StudentSampler.ChunkRows * 2L + 17L
            let x0 = torch.randn(n, 1L, 8L, 8L)
            let labels = torch.arange(n).remainder(torch.tensor 3L)
            for solver in [ SolverSpec(SolverMethod.Euler, 3); SolverSpec(SolverMethod.Heun, 4, TimeGridKind.Quadratic) ] do
                let chunked = Nfm.Sampling.StudentSampler.FromNoise(net, x0, solver, labels, 1.5)
                let whole =
                    use _ = torch.no_grad ()
                    Nfm.Integrate.Integrator.Integrate(Nfm.Sampling.StudentSampler.Field(net, labels, 1.5), x0, solver, false)
                Expect.equal chunked.X.shape whole.X.shape "every row back"
                Expect.isTrue (chunked.X.allclose(whole.X, 1e-5, 1e-5)) (sprintf "%A: the same samples (max difference %g)" solver.Method ((chunked.X - whole.X).abs().max().item<float32>()))
                Expect.equal chunked.Nfe (2 * whole.Nfe) "NFE counts both guidance passes"
        }
        test "output shape equals input shape" {
            for (s, width, depth) in [ ([ 1L; 28L; 28L ], 4, 3); ([ 3L; 8L; 12L ], 4, 2); ([ 2L; 16L; 16L ], 8, 1); ([ 1L; 8L; 8L ], 4, 4) ] do
                torch.manual_seed 1L |> ignore
                use net = VelocityNets.Create(unet s width depth 0)
                let x = torch.randn(Array.ofList (3L :: s))
                let v = net.forward(x, torch.rand(3L), null)
                Expect.equal (shape v) (shape x) $"shape for {s} at depth {depth}"
        }
        test "the network is fully convolutional: other sizes divisible by 2^(depth-1) work" {
            use net = VelocityNets.Create(unet [ 1L; 28L; 28L ] 4 3 0)
            let x = torch.randn(2L, 1L, 12L, 20L)
            Expect.equal (shape (net.forward(x, torch.rand(2L), null))) [ 2L; 1L; 12L; 20L ] "12 x 20 at depth 3"
        }
        test "a fresh network predicts zero velocity" {
            torch.manual_seed 2L |> ignore
            use net = VelocityNets.Create(unet [ 1L; 28L; 28L ] 8 3 10)
            let x = torch.randn(4L, 1L, 28L, 28L)
            let v = net.forward(x, torch.rand(4L), torch.tensor([| 0L; 3L; 9L; 10L |]))
            Expect.equal (v.abs().max().item<float32>()) 0.0f "zero-initialised output conv"
            for struct (n, p) in net.named_parameters () do
                Expect.isTrue (p.isfinite().all().item<bool>()) $"{n} is finite at initialisation"
                if n.EndsWith "norm1.weight" then Expect.isTrue (p.eq(torch.tensor 1.0f).all().item<bool>()) $"{n} starts at one"
        }
        test "class-conditional forward: no labels and the null label -1 mean the null class, real labels change the output" {
            torch.manual_seed 3L |> ignore
            use net = VelocityNets.Create(unet [ 1L; 8L; 8L ] 4 2 3)
            perturb net 4UL
            let x = torch.randn(4L, 1L, 8L, 8L)
            let t = torch.rand(4L)
            let none = net.forward(x, t, null)
            let nulls = net.forward(x, t, torch.tensor([| 3L; 3L; 3L; 3L |]))
            let zeros = net.forward(x, t, torch.zeros(4L, dtype = torch.int64))
            Expect.isTrue (none.allclose(nulls, exact, exact)) "null labels = label Classes"
            let minusOne = net.forward(x, t, torch.full(4L, Nfm.Descriptions.Labels.Null, dtype = torch.int64))
            Expect.isTrue (none.allclose(minusOne, exact, exact)) "the null label (-1, the teacher's convention) = no labels"
            Expect.isFalse (none.allclose(zeros, 1e-6, 1e-6)) "label 0 differs from the null class"
            let mixed = net.forward(x, t, torch.tensor([| 0L; 3L; 0L; 3L |]))
            Expect.isTrue (mixed[0].allclose(zeros[0], 1e-6, 1e-6) && mixed[1].allclose(none[1], 1e-6, 1e-6)) "each row follows its own label"
            Expect.equal (shape (net.named_parameters() |> Seq.find (fun struct (n, _) -> n = "classEmbed.weight") |> fun struct (_, p) -> p))
                [ 4L; 16L ] "Classes + 1 rows of 4 x Width"
        }
        test "an unconditional network ignores labels" {
            torch.manual_seed 5L |> ignore
            use net = VelocityNets.Create(unet [ 1L; 8L; 8L ] 4 2 0)
            perturb net 6UL
            let x = torch.randn(2L, 1L, 8L, 8L)
            let t = torch.rand(2L)
            Expect.isTrue ((net.forward(x, t, null)).allclose(net.forward(x, t, torch.tensor([| 1L; 7L |])), exact, exact)) "same output"
        }
        test "time changes the output (the embedding reaches the blocks)" {
            torch.manual_seed 7L |> ignore
            use net = VelocityNets.Create(unet [ 1L; 8L; 8L ] 4 2 0)
            perturb net 8UL
            let x = torch.randn(2L, 1L, 8L, 8L)
            Expect.isFalse ((net.forward(x, torch.zeros(2L), null)).allclose(net.forward(x, torch.ones(2L), null), 1e-6, 1e-6)) "t = 0 vs t = 1"
        }
        test "float64 in, float64 out" {
            use net = VelocityNets.Create(unet [ 1L; 8L; 8L ] 4 2 3)
            net.``to``(torch.float64) |> ignore
            let v = net.forward(torch.randn(2L, 1L, 8L, 8L, dtype = torch.float64), torch.rand(2L, dtype = torch.float64), null)
            Expect.equal v.dtype torch.float64 "dtype follows x"
        }
        test "parameters are registered under their field names; size at Width 32, Depth 3 is 0.5-2 M" {
            use net = VelocityNets.Create(unet [ 1L; 28L; 28L ] 32 3 10)
            let names = net.named_parameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq
            for n in [ "stem.weight"; "down.0.conv1.weight"; "down.2.film.weight"; "downsample.1.weight"; "middle.conv2.weight"
                       "up.0.skip.weight"; "up.2.skip.weight"; "outConv.weight"; "timeIn.weight"; "classEmbed.weight" ] do
                Expect.isTrue (names.Contains n) $"{n} registered"
            let count = net.parameters() |> Seq.sumBy (fun p -> p.numel())
            Expect.isTrue (count > 500_000L && count < 2_000_000L) $"{count} parameters"
        }
        test "training on 256 random MNIST-shaped images lowers the flow-matching loss" {
            let g = new torch.Generator(11UL)
            // Sparse bright strokes on a dark background, like MNIST scaled to [-1, 1].
            let data = torch.where(torch.rand([| 256L; 1L; 28L; 28L |], generator = g).lt(torch.tensor 0.2f), torch.tensor(1.0f), torch.tensor(-1.0f))
            let net = unet [ 1L; 28L; 28L ] 8 3 0
            let training = TrainingSpec(Steps = 20, Batch = 16, LearningRate = 3e-3, EmaDecay = 0.0, Seed = 12L)
            let student = Student.Create(StudentSpec(net, PathSpec(), training, CouplingSpec.Independent, "random", DeviceSpec()))
            let before = fixedLoss student.Net data
            let trained = StudentTraining.Run(student, data, null, Nfm.Couple.Couplings.Independent)
            let after = fixedLoss trained.Net data
            Expect.equal trained.State.Step 20L "all steps taken"
            // A zero velocity scores E|x1 - x0|^2 = 2 here; learning the mean image alone gets to 1.64 (0.82 of it).
            Expect.isLessThan after (0.85 * before) $"loss {before} -> {after}"
        }
        test "bad specs and shapes give clear errors" {
            expectArgument "spec" "divisible by 2^(net.depth - 1) = 8" (fun () -> VelocityNets.Create(unet [ 1L; 28L; 28L ] 4 4 0) |> ignore)
            Expect.throwsT<ArgumentException> (fun () -> VelocityNets.Create(unet [ 28L; 28L ] 4 2 0) |> ignore) "not [C, H, W]"
            use net = VelocityNets.Create(unet [ 1L; 28L; 28L ] 4 3 10)
            let t = torch.rand(2L)
            expectArgument "x" "2 channels, the network expects 1" (fun () -> net.forward(torch.randn(2L, 2L, 28L, 28L), t, null) |> ignore)
            expectArgument "x" "divisible by 4" (fun () -> net.forward(torch.randn(2L, 1L, 30L, 28L), t, null) |> ignore)
            expectArgument "x" "got [2, 784]" (fun () -> net.forward(torch.randn(2L, 784L), t, null) |> ignore)
            expectArgument "t" "t must have shape [2]" (fun () -> net.forward(torch.randn(2L, 1L, 28L, 28L), torch.rand(3L), null) |> ignore)
            expectArgument "labels" "[0, 10) or be -1 (no label)" (fun () -> net.forward(torch.randn(2L, 1L, 28L, 28L), t, torch.tensor([| 0L; 11L |])) |> ignore)
            expectArgument "labels" "shape [2]" (fun () -> net.forward(torch.randn(2L, 1L, 28L, 28L), t, torch.zeros(3L, dtype = torch.int64)) |> ignore)
            expectArgument "labels" "integers" (fun () -> net.forward(torch.randn(2L, 1L, 28L, 28L), t, torch.zeros(2L)) |> ignore)
        }
        testList "benchmark" [
            test "multiply-adds of the MLP match the layer sizes" {
                let spec = VelocityNetSpec([| 1L; 8L; 8L |], 16, 2, TimeFeatures = 4)
                use net = VelocityNets.Create spec
                let macs = Nfm.Bench.StudentNetBenchmark.MultiplyAddsPerSample(net, torch.randn(3L, 1L, 8L, 8L), torch.rand(3L), null)
                Expect.equal macs ((64L + 4L) * 16L + 16L * 16L + 16L * 64L) "(D + time features) x W + W x W + W x D"
            }
            test "multiply-adds of a one-resolution U-Net match its convs" {
                let w, e, hw = 4L, 16L, 64L
                use net = VelocityNets.Create(VelocityNetSpec([| 1L; 8L; 8L |], 4, 1, TimeFeatures = 4, Architecture = Architecture.UNet))
                let macs = Nfm.Bench.StudentNetBenchmark.MultiplyAddsPerSample(net, torch.randn(2L, 1L, 8L, 8L), torch.rand(2L), null)
                let block cin cout = 9L * cin * cout * hw + 9L * cout * cout * hw + e * 2L * cout + (if cin <> cout then cin * cout * hw else 0L)
                let expected = 4L * e + e * e + 9L * 1L * w * hw + block w w + block w w + block (2L * w) w + 9L * w * 1L * hw
                Expect.equal macs expected "time MLP + stem + down, middle, up blocks + output conv"
            }
            test "a tiny run reports both nets at each thread count and restores the threads" {
                let before = torch.get_num_threads ()
                let r = Nfm.Bench.StudentNetBenchmark.Run(unetWidth = 4, unetDepth = 2, batch = 2, steps = 1, warmup = 0,
                                                           threads = [| 1 |], inputShape = [| 1L; 8L; 8L |])
                Expect.equal (r.Timings |> Seq.map (fun t -> t.Net) |> List.ofSeq) [ "mlp"; "unet" ] "both nets"
                for t in r.Timings do
                    Expect.isTrue (t.Parameters > 0L && t.TrainStepsPerSecond > 0.0 && t.ForwardPassesPerSecond > 0.0 && t.MultiplyAddsPerSample > 0L) $"{t}"
                Expect.equal (torch.get_num_threads ()) before "threads restored"
            }
        ]
    ]
