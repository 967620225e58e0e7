using Viscript.Core.Supervision;

namespace Viscript.Tests.Supervision;

public class ProcessStateTests
{
    private static readonly (ProcessState From, ProcessState To)[] s_allowed =
    [
        (ProcessState.Created, ProcessState.Starting),
        (ProcessState.Starting, ProcessState.Running),
        (ProcessState.Starting, ProcessState.Backoff),
        (ProcessState.Starting, ProcessState.Exited),
        (ProcessState.Starting, ProcessState.Fatal),
        (ProcessState.Starting, ProcessState.Stopping),
        (ProcessState.Running, ProcessState.Backoff),
        (ProcessState.Running, ProcessState.Exited),
        (ProcessState.Running, ProcessState.Fatal),
        (ProcessState.Running, ProcessState.Stopping),
        (ProcessState.Backoff, ProcessState.Starting),
        (ProcessState.Backoff, ProcessState.Exited),
        (ProcessState.Backoff, ProcessState.Fatal),
        (ProcessState.Stopping, ProcessState.Exited),
        (ProcessState.Exited, ProcessState.Starting),
        (ProcessState.Fatal, ProcessState.Starting),
    ];

    public static TheoryData<ProcessState, ProcessState> Allowed
    {
        get
        {
            var data = new TheoryData<ProcessState, ProcessState>();
            foreach (var (from, to) in s_allowed)
            {
                data.Add(from, to);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Allowed))]
    public void Table_AllowsDocumentedTransitions(ProcessState from, ProcessState to) => Assert.True(ProcessStates.IsAllowed(from, to));

    [Fact]
    public void Table_RefusesEverythingElse()
    {
        var allowed = s_allowed.ToHashSet();
        foreach (var from in Enum.GetValues<ProcessState>())
        {
            foreach (var to in Enum.GetValues<ProcessState>())
            {
                Assert.Equal(allowed.Contains((from, to)), ProcessStates.IsAllowed(from, to));
            }
        }
    }

    [Fact]
    public void Values_AreStable() =>
        Assert.Equal([0, 10, 20, 30, 40, 100, 200, 1000], Enum.GetValues<ProcessState>().Select(s => (int)s));

    [Theory]
    [InlineData(ProcessState.Exited, 3, "Exited(3)")]
    [InlineData(ProcessState.Exited, 143, "Exited(143)")]
    [InlineData(ProcessState.Exited, null, "Exited")]
    [InlineData(ProcessState.Stopping, 143, "Stopping")]
    [InlineData(ProcessState.Running, null, "Running")]
    [InlineData(ProcessState.Unknown, null, "Remote")]
    public void Display_ShowsExitCode(ProcessState state, int? code, string expected) => Assert.Equal(expected, ProcessStates.Display(state, code));
}
