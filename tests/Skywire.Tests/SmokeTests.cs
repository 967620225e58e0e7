namespace Skywire.Tests;

public class SmokeTests
{
    [Fact]
    public void Assembly_Loads() => Assert.Equal("Skywire.Tests", typeof(SmokeTests).Assembly.GetName().Name);
}
