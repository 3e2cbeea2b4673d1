namespace Nfm.Descriptions;

/// <summary>Which part of a data set with a fixed split (MNIST) to load.</summary>
public enum DataSplit
{
    /// <summary>The training part.</summary>
    Train,

    /// <summary>The held-out test part.</summary>
    Test,
}
