using System.Globalization;
using System.Text.Json;
using ScottPlot;

// Draws docs/img/decrypt-vs-size.png from the JSON of `modelseal bench --json`:
//   dotnet run -c Release --project bench/ModelSeal.Plot -- bench.json docs/img/decrypt-vs-size.png
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: ModelSeal.Plot BENCH.json OUTPUT.png   (BENCH.json from 'modelseal bench --json')");
    return 2;
}

using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(args[0]));
JsonElement root = document.RootElement;
int threads = root.GetProperty("threads").GetInt32();
// The ceiling for decryption: `openssl speed -decrypt` (older results only have the encryption figures).
double? oneCore = Number(root.GetProperty("openSslDecryptOneCoreMBps")) ?? Number(root.GetProperty("openSslOneCoreMBps"));
double? allCores = Number(root.GetProperty("openSslDecryptAllCoresMBps")) ?? Number(root.GetProperty("openSslAllCoresMBps"));
var models = root.GetProperty("models").EnumerateArray()
    .Select(m => (
        MiB: m.GetProperty("bytes").GetInt64() / 1048576.0,
        Paper: Number(m.GetProperty("paperDecryptMs")),
        One: m.GetProperty("decrypt1Ms").GetDouble(),
        All: m.GetProperty("decryptNMs").GetDouble(),
        Read: m.GetProperty("warmReadMs").GetDouble()))
    .OrderBy(m => m.MiB)
    .ToArray();
double[] sizes = [.. models.Select(m => m.MiB)];

// Decrypt time spans three orders of magnitude (a phone in the paper vs this machine): a log10 time axis.
var plot = new Plot();
void Series(double[] xs, double[] ms, string label, Color color, LinePattern pattern, MarkerShape marker)
{
    var scatter = plot.Add.Scatter(xs, ms.Select(Math.Log10).ToArray());
    scatter.LegendText = label;
    scatter.Color = color;
    scatter.LinePattern = pattern;
    scatter.MarkerShape = marker;
    scatter.MarkerSize = 7;
}

var paper = models.Where(m => m.Paper is not null).ToArray();
if (paper.Length > 0)
{
    Series([.. paper.Select(m => m.MiB)], [.. paper.Select(m => m.Paper!.Value)], "published design, 8-core phone (paper)", Colors.Red, LinePattern.Solid, MarkerShape.FilledSquare);
}

Series(sizes, [.. models.Select(m => m.One)], "ModelSeal, 1 thread", Colors.Blue, LinePattern.Solid, MarkerShape.FilledCircle);
Series(sizes, [.. models.Select(m => m.All)], $"ModelSeal, {threads} threads", Colors.Green, LinePattern.Solid, MarkerShape.FilledTriangleUp);
if (oneCore is { } c1)
{
    Series(sizes, [.. sizes.Select(s => s * 1048576 / (c1 * 1000))], "OpenSSL AES-256-GCM decryption ceiling, 1 core", Colors.Gray, LinePattern.Dashed, MarkerShape.None);
}

if (allCores is { } cN)
{
    Series(sizes, [.. sizes.Select(s => s * 1048576 / (cN * 1000))], $"OpenSSL ceiling, {threads} cores", Colors.Black, LinePattern.Dotted, MarkerShape.None);
}

var ticks = new ScottPlot.TickGenerators.NumericAutomatic
{
    MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
    IntegerTicksOnly = true,
    LabelFormatter = y => Math.Pow(10, y).ToString("0.###", CultureInfo.InvariantCulture),
};
plot.Axes.Left.TickGenerator = ticks;
plot.Axes.Left.Label.Text = "decrypt time, ms (log scale)";
plot.Axes.Bottom.Label.Text = "model size, MiB";
plot.Title("Decrypt time vs model size");
plot.ShowLegend(Alignment.LowerRight);
plot.Grid.MajorLineColor = Colors.Black.WithOpacity(0.12);
plot.SavePng(args[1], 900, 560);
Console.WriteLine($"wrote {args[1]}");

// How cost grows with size: a least-squares line through the measured points, and how well it fits (R²).
foreach ((string label, double[] ms) in new[] { ("1 thread", models.Select(m => m.One).ToArray()), ($"{threads} threads", models.Select(m => m.All).ToArray()) })
{
    (double slope, double intercept, double r2) = Fit(sizes, ms);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label}: time = {slope:F3} ms/MiB × size + {intercept:F3} ms, R² = {r2:F4}"));
}

return 0;

static (double Slope, double Intercept, double R2) Fit(double[] x, double[] y)
{
    double mx = x.Average(), my = y.Average();
    double sxy = x.Zip(y, (a, b) => (a - mx) * (b - my)).Sum();
    double sxx = x.Sum(a => (a - mx) * (a - mx));
    double slope = sxy / sxx, intercept = my - (slope * mx);
    double residual = x.Zip(y, (a, b) => Math.Pow(b - (intercept + (slope * a)), 2)).Sum();
    double total = y.Sum(b => (b - my) * (b - my));
    return (slope, intercept, 1 - (residual / total));
}

static double? Number(JsonElement element) => element.ValueKind == JsonValueKind.Number ? element.GetDouble() : null;
