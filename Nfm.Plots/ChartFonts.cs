namespace Nfm.Plots;

/// <summary>
/// The typefaces chart text is drawn with. SkiaSharp's Linux native without dependencies has no fontconfig, so it
/// finds no system font, and ScottPlot then draws no text at all, without an error. We hand ScottPlot a regular and a
/// bold TrueType file (titles and axis labels use the bold one) found in the usual font folders.
/// </summary>
public static class ChartFonts
{
    /// <summary>The family name the fonts are registered under; every chart's text uses it.</summary>
    public const string Family = "Nfm Sans";

    /// <summary>Regular and bold files of common sans-serif families, in order of preference.</summary>
    public static IReadOnlyList<(string Regular, string Bold)> Candidates { get; } =
    [
        ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
        ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
        ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
        ("FreeSans.ttf", "FreeSansBold.ttf"),
        ("Arial.ttf", "Arial Bold.ttf"),
        ("arial.ttf", "arialbd.ttf"),
    ];

    /// <summary>The folders searched (with their subfolders), in order.</summary>
    public static IReadOnlyList<string> Folders { get; } = BuildFolders();

    static IReadOnlyList<string> BuildFolders()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var folders = new List<string> { "/usr/share/fonts", "/usr/local/share/fonts" };
        if (!string.IsNullOrEmpty(home))
            folders.AddRange([Path.Combine(home, ".local", "share", "fonts"), Path.Combine(home, ".fonts")]);
        folders.AddRange(["/Library/Fonts", "/System/Library/Fonts/Supplemental", "C:\\Windows\\Fonts"]);
        return folders;
    }

    static readonly Lazy<(string Regular, string Bold)> registered = new(() =>
    {
        var (regular, bold) = Find(Folders);
        Register(regular, bold);
        return (regular, bold);
    });

    /// <summary>
    /// Registers the fonts once (later calls return at once) and returns the two files used. Every chart function
    /// calls this before it builds a plot; call it yourself before building a <c>ScottPlot.Plot</c> of your own.
    /// </summary>
    /// <exception cref="FileNotFoundException">no regular and bold pair of a known family in any of <see cref="Folders"/>.</exception>
    public static (string Regular, string Bold) Ensure() => registered.Value;

    /// <summary>The first family in <see cref="Candidates"/> with both files in one of <paramref name="folders"/> (subfolders included).</summary>
    /// <exception cref="FileNotFoundException">none found; the message names the folders searched.</exception>
    public static (string Regular, string Bold) Find(IReadOnlyList<string> folders)
    {
        ArgumentNullException.ThrowIfNull(folders);
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var folder in folders.Where(Directory.Exists))
        {
            IEnumerable<string> found;
            try { found = Directory.EnumerateFiles(folder, "*.ttf", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, MatchCasing = MatchCasing.CaseInsensitive }).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var f in found) files.TryAdd(Path.GetFileName(f), f);
        }
        foreach (var (regular, bold) in Candidates)
            if (files.TryGetValue(regular, out var r) && files.TryGetValue(bold, out var b)) return (r, b);
        throw new FileNotFoundException(
            $"no TrueType font for chart text: looked for a regular and bold pair ({string.Join(", ", Candidates.Select(c => c.Regular))}) in "
            + $"{string.Join(", ", folders)}; install one (Debian: fonts-dejavu-core)");
    }

    /// <summary>Registers a regular and a bold TrueType file as <see cref="Family"/> and makes it ScottPlot's default.</summary>
    /// <exception cref="FileNotFoundException">either file is missing.</exception>
    public static void Register(string regular, string bold)
    {
        foreach (var f in new[] { regular, bold })
            if (!File.Exists(f)) throw new FileNotFoundException($"font file '{f}' does not exist", f);
        ScottPlot.Fonts.AddFontFile(Family, regular, bold: false, italic: false);
        ScottPlot.Fonts.AddFontFile(Family, bold, bold: true, italic: false);
        ScottPlot.Fonts.Default = Family;
        ScottPlot.Fonts.Sans = Family;
    }
}
