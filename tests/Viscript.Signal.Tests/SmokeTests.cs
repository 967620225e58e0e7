namespace Viscript.Signal.Tests;

public class SmokeTests
{
    [Fact]
    public void Assembly_Loads() => Assert.Equal("Viscript.Signal.Tests", typeof(SmokeTests).Assembly.GetName().Name);
}
