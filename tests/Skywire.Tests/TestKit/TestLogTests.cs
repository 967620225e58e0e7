using Microsoft.Extensions.Logging;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.TestKit;

public class TestLogTests
{
    [Fact]
    public void Dispose_UnexpectedError_Throws()
    {
        var log = new TestLog();
        log.CreateLogger("x").LogError(new EventId(42), "boom {What}", "here");
        var ex = Assert.Throws<UnexpectedErrorLogException>(log.Dispose);
        Assert.Contains("boom here", ex.Message, StringComparison.Ordinal);
        Assert.Single(ex.Entries);
    }

    [Fact]
    public void Dispose_ExpectedErrorOrWarning_DoesNotThrow()
    {
        var log = new TestLog().ExpectError(42);
        var logger = log.CreateLogger("x");
        logger.LogError(new EventId(42), "expected");
        logger.LogWarning(new EventId(7), "a warning is not a failure");
        log.Dispose();
        Assert.Equal(2, log.Entries.Count);
        Assert.Empty(log.UnexpectedErrors);
    }

    [Fact]
    public void Dispose_CriticalWithOtherId_Throws()
    {
        var log = new TestLog().ExpectError(42);
        log.CreateLogger("x").LogCritical(new EventId(43), "not that one");
        Assert.Throws<UnexpectedErrorLogException>(log.Dispose);
    }

    [Fact]
    public void Entries_BelowMinimum_AreNotKept_ButErrorsAlwaysAre()
    {
        using var log = new TestLog(minimum: LogLevel.Warning).ExpectError(_ => true);
        var logger = log.CreateLogger("x");
        Assert.False(logger.IsEnabled(LogLevel.Information));
        logger.LogInformation("dropped");
        logger.LogError("kept");
        Assert.Equal(["kept"], log.Entries.Select(e => e.Message));
    }

    [Fact]
    public void Dispose_AfterAFailedAssertion_KeepsTheAssertionsMessage()
    {
        var log = new TestLog();
        log.CreateLogger("x").LogError("a consequence of the failure");
        try
        {
            Assert.Equal(1, 2);
        }
        catch (Exception ex) when (ex is Xunit.Sdk.IAssertionException)
        {
            // What `using var log` sees: the assertion unwinds, then Dispose runs.
        }

        var thrown = Assert.Throws<UnexpectedErrorLogException>(log.Dispose);
        Assert.StartsWith("The test failed first: ", thrown.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<Xunit.Sdk.IAssertionException>(thrown.InnerException);
    }
}
