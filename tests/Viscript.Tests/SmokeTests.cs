namespace Viscript.Tests;

public class SmokeTests
{
    [Fact]
    public void Assembly_Loads() => Assert.Equal("Viscript.Tests", typeof(SmokeTests).Assembly.GetName().Name);
}
