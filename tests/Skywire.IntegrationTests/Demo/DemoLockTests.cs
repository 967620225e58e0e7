using System.Globalization;
using Skywire.Demo;

namespace Skywire.IntegrationTests.Demo;

/// <summary>Issue 18.8: two interactive demos do not share one folder (DIR/demo.lock).</summary>
public sealed class DemoLockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-demolock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SecondDemo_OnTheSameFolder_IsRefused_AndNamesTheHolder_UntilTheFirstEnds()
    {
        using (var first = DemoLock.TryAcquire(_dir, out _))
        {
            Assert.NotNull(first);
            Assert.Null(DemoLock.TryAcquire(_dir, out var holder));
            Assert.Equal(Environment.ProcessId.ToString(CultureInfo.InvariantCulture), holder);

            // Another folder is another demo.
            using var other = DemoLock.TryAcquire(Path.Combine(_dir, "other"), out _);
            Assert.NotNull(other);
        }

        using var again = DemoLock.TryAcquire(_dir, out _);
        Assert.NotNull(again);
    }
}
