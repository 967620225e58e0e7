using System.Reflection;
using Microsoft.Extensions.Logging;
using Viscript.Core.Supervision;

namespace Viscript.Tests.Supervision;

public class LogBufferTests
{
    [Fact]
    public void Ring_KeepsTheNewestLines()
    {
        var b = new LogBuffer(3);
        for (var i = 1; i <= 10; i++)
        {
            b.Append(LogStream.Stdout, $"l{i}");
        }
        Assert.Equal(["l8", "l9", "l10"], b.Tail(100).Select(l => l.Text));
        Assert.Equal(["l10"], b.Tail(1).Select(l => l.Text));
        Assert.Empty(b.Tail(0));
        Assert.Equal(10, b.TotalLines);
        Assert.Equal([8L, 9, 10], b.Tail(3).Select(l => l.Seq));
    }

    [Fact]
    public async Task Follow_GivesTailThenNewLines_WithoutGapOrRepeat()
    {
        var b = new LogBuffer(100);
        b.Append(LogStream.Stdout, "old1");
        b.Append(LogStream.Stderr, "old2");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<string>();
        var reader = Task.Run(async () =>
        {
            await foreach (var l in b.FollowAsync(1, cts.Token))
            {
                seen.Add(l.Text);
                if (l.Text == "new500")
                {
                    return;
                }
            }
        });
        var writer = Task.Run(() =>
        {
            for (var i = 1; i <= 500; i++)
            {
                b.Append(LogStream.Stdout, $"new{i}");
            }
        });
        await Task.WhenAll(reader, writer);
        // The follower may start before or after some writes, but whatever it sees is contiguous and ends at new500.
        var first = seen.FindIndex(s => s.StartsWith("new", StringComparison.Ordinal));
        var news = seen.Skip(first).ToList();
        var start = int.Parse(news[0][3..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(Enumerable.Range(start, 501 - start).Select(i => $"new{i}"), news);
        Assert.True(first <= 1);
    }

    [Fact]
    public void LogEventIds_AreUniqueAndInTheViscriptRange()
    {
        var ids = typeof(Supervisor).Assembly.GetTypes().Concat(typeof(Viscript.Daemon.DaemonHost).Assembly.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>()
            .Select(a => a.EventId)
            .ToList();
        Assert.True(ids.Count >= 10);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 4000, 4999));
    }
}
