/// Evaluation on real images: the FD-MNIST feature classifier (shapes, checkpoints, augmentation, FD on MNIST with a
/// classifier trained for a few steps here, never the full recipe) and the argument checks of the metrics.
module Nfm.Tests.EvalMetricTests

open System
open System.IO
open Expecto
open TorchSharp
open Nfm.Data
open Nfm.Descriptions
open Nfm.Integrate
open Nfm.Metrics
open Nfm.Tests.DataTests

/// A classifier small enough to train for a few steps inside a test: 8 channels, 64 features.
let private tinySpec seed steps =
    let r = FeatureClassifierSpec.Recipe(seed, steps)
    FeatureClassifierSpec(r.Training, r.Device, 8, 64, 2)

/// Random "digits" in [-1, 1].
let private fakeDigits (n: int64) (seed: uint64) =
    use g = new torch.Generator(seed)
    torch.rand([| n; 1L; 28L; 28L |], generator = g) * 2.0 - 1.0

let private fakeDataset n seed =
    use g = new torch.Generator(seed + 1UL)
    Dataset(fakeDigits n seed, torch.randint(0L, 10L, [| n |], dtype = torch.int64, generator = g), "fake")

[<Tests>]
let tests =
    testList "eval metrics" [
        testList "classifier" [
            test "features are [N, F], logits [N, 10]; rows of 784 values are accepted; other shapes are refused" {
                use _ = torch.NewDisposeScope()
                let c = FeatureClassifier.Create(tinySpec 1L 10)
                let x = fakeDigits 3L 2UL
                Expect.sequenceEqual (c.Features x).shape [| 3L; 64L |] "features"
                Expect.sequenceEqual (c.Logits x).shape [| 3L; 10L |] "logits"
                Expect.isTrue (same (c.Features(x.reshape(3L, 784L))) (c.Features x)) "flat rows give the same features"
                Expect.throwsT<ArgumentException> (fun () -> c.Features(torch.zeros(3L, 100L)) |> ignore) "100 values per row"
                Expect.throwsT<ArgumentException> (fun () -> c.Accuracy(Dataset(x, null, "unlabelled")) |> ignore) "accuracy needs labels"
            }

            test "features are computed in chunks of 500 with the same values as one pass" {
                use _ = torch.NewDisposeScope()
                let c = FeatureClassifier.Create(tinySpec 2L 10)
                let x = fakeDigits 1203L 3UL
                let whole = c.Features x
                let direct =
                    use _ng = torch.no_grad ()
                    c.Net.Features x
                Expect.sequenceEqual whole.shape [| 1203L; 64L |] "all rows"
                Expect.isTrue (whole.allclose(direct, 1e-5, 1e-6)) "chunked = one pass"
            }

            test "the spec names a bad field, survives JSON, and the recipe is the documented one" {
                let r = FeatureClassifierSpec.Recipe(5L)
                Expect.equal (r.Training.Steps, r.Training.Batch, r.Training.LearningRate, r.MaxShift, r.Channels, r.Features) (1500, 128, 1e-3, 2, 32, 128) "recipe"
                let back = Json.Read<FeatureClassifierSpec>(Json.Write r)
                Expect.equal back.Training r.Training "training survives JSON"
                Expect.equal (back.Channels, back.Features, back.MaxShift) (r.Channels, r.Features, r.MaxShift) "sizes survive JSON"
                Expect.throwsT<ArgumentException> (fun () -> FeatureClassifierSpec(r.Training, r.Device, 0).Validate() |> ignore) "channels"
                Expect.throwsT<ArgumentException> (fun () -> FeatureClassifierSpec(r.Training, r.Device, MaxShift = 9).Validate() |> ignore) "shift"
            }

            test "checkpoint round trip gives identical features and the same identity" {
                use _ = torch.NewDisposeScope()
                use dir = new TempDir()
                let c = FeatureClassifierTraining.Run(tinySpec 3L 3, fakeDataset 64L 4UL)
                let path = dir.File "classifier.ckpt"
                c.Save(path, readOnlyDict [ "note", "test" ])
                let back = FeatureClassifier.Load path
                let x = fakeDigits 7L 5UL
                Expect.isTrue (same (back.Features x) (c.Features x)) "identical features"
                Expect.equal (back.Identity()) (c.Identity()) "identity"
                Expect.equal ((c.Identity()).Length) 16 "16 hex characters"
                Expect.notEqual (FeatureClassifier.Create(tinySpec 4L 3).Identity()) (c.Identity()) "other weights, other identity"
                Expect.throwsT<InvalidDataException> (fun () -> Nfm.Checkpoints.Checkpoint.Load(path, "teacher") |> ignore) "kind is classifier"
            }

            test "the same seed trains the same classifier" {
                use _ = torch.NewDisposeScope()
                let data = fakeDataset 64L 6UL
                let a = FeatureClassifierTraining.Run(tinySpec 9L 2, data)
                let b = FeatureClassifierTraining.Run(tinySpec 9L 2, data)
                Expect.equal (a.Identity()) (b.Identity()) "identity"
            }

            test "shift moves a digit by whole pixels within the bound and fills with background" {
                use _ = torch.NewDisposeScope()
                let x = torch.ones([| 50L; 1L; 28L; 28L |]) * -1.0
                x.select(2L, 14L).select(2L, 14L).fill_(sc 1.0) |> ignore
                use g = new torch.Generator(11UL)
                let moved = FeatureClassifierTraining.Shift(x, 2, g)
                Expect.isTrue ((moved.eq(sc 1.0).sum([| 1L; 2L; 3L |])).eq(sci 1L).all().item<bool>()) "one bright pixel per digit"
                Expect.isTrue ((moved.eq(sc 1.0).logical_or(moved.eq(sc -1.0))).all().item<bool>()) "no other values"
                let at = moved.reshape(50L, 784L).argmax(1L)
                let rows, cols = at.div(sci 28L, rounding_mode = torch.RoundingMode.floor), at.remainder(sci 28L)
                Expect.isTrue (((rows - sci 14L).abs().le(sci 2L)).logical_and((cols - sci 14L).abs().le(sci 2L)).all().item<bool>()) "within 2 pixels"
                Expect.isTrue ((rows.ne(sci 14L)).logical_or(cols.ne(sci 14L)).any().item<bool>()) "some digit moved"
                Expect.isTrue (same (FeatureClassifierTraining.Shift(x, 0, g)) x) "shift 0 is the identity"
            }

            let mnist = realMnistFolder ()
            let name = "FD-MNIST of test digits is ~0 against themselves and large against noise (classifier trained 50 steps)"
            match mnist with
            | None -> ptest name { () }
            | Some folder ->
                test name {
                    use _ = torch.NewDisposeScope()
                    let train = (Mnist.Load(folder, DataSplit.Train)).Take 2000L
                    let testSet = Mnist.Load(folder, DataSplit.Test)
                    let c = FeatureClassifierTraining.Run(tinySpec 12L 50, train)
                    let acc = c.Accuracy testSet
                    Expect.isGreaterThan acc 0.5 $"better than chance after 50 steps (accuracy {acc})"
                    let self = FeatureClassifier.FdMnist(c, testSet.X, testSet.X)
                    let halves = FeatureClassifier.FdMnist(c, testSet.X.narrow(0L, 0L, 1000L), testSet.X.narrow(0L, 1000L, 1000L))
                    let noise = FeatureClassifier.FdMnist(c, fakeDigits 1000L 13UL, testSet.X)
                    Expect.isLessThan self 1e-6 $"FD(test, test) = {self}"
                    Expect.isGreaterThan noise (20.0 * halves) $"FD(noise, test) = {noise} vs FD(half, other half) = {halves}"
                    let reference = c.FeatureStatistics testSet.X
                    Expect.floatClose Accuracy.high (FeatureClassifier.FdMnist(c, fakeDigits 1000L 13UL, reference)) noise "a reference fit gives the same FD"
                }
        ]

        testList "argument checks" [
            test "Fréchet needs two rows and equal feature sizes" {
                use _ = torch.NewDisposeScope()
                Expect.throwsT<ArgumentException> (fun () -> Frechet.Distance(torch.zeros(1L, 3L), torch.zeros(5L, 3L)) |> ignore) "one row"
                Expect.throwsT<ArgumentException> (fun () -> Frechet.Distance(torch.zeros(4L, 3L), torch.zeros(5L, 2L)) |> ignore) "F differs"
                Expect.throwsT<ArgumentException> (fun () -> Frechet.FromStatistics(torch.zeros 3L, torch.eye 3L, torch.zeros 3L, torch.eye 2L) |> ignore) "cov2 shape"
            }

            test "curvature needs a step; the log-likelihood needs a generator for Hutchinson and a fixed-step method" {
                use _ = torch.NewDisposeScope()
                let v = VelocityField(fun x _ -> x)
                let x = torch.randn(4L, 2L)
                Expect.throwsT<ArgumentException> (fun () -> PathCurvature.Measure(v, x, SolverSpec(SolverMethod.Euler, 0)) |> ignore) "zero steps"
                Expect.throwsT<ArgumentException> (fun () -> Divergence.StudentLogLikelihood(v, x, 4, DivergenceEstimator.HutchinsonGaussian) |> ignore) "no generator"
                Expect.throwsT<ArgumentException> (fun () -> Divergence.StudentLogLikelihood(v, x, 4, DivergenceEstimator.Exact, method = SolverMethod.Dopri5) |> ignore) "dopri5"
                Expect.throwsT<ArgumentException> (fun () -> Divergence.Exact(VelocityField(fun x _ -> x.sum(1L)), x, 0.0) |> ignore) "field shape"
            }

            test "the divergence works on image-shaped states and under an outer no_grad" {
                use _ = torch.NewDisposeScope()
                use ng = torch.no_grad ()
                let x = torch.randn([| 2L; 1L; 2L; 2L |], dtype = torch.float64)
                let div = Divergence.Exact(VelocityField(fun x _ -> x * 3.0), x, 0.5)
                Expect.isTrue (div.allclose(torch.ones([| 2L |], dtype = torch.float64) * 12.0)) "3 * 4 dimensions"
            }
        ]
    ]
