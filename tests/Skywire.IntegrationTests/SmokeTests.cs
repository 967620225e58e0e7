namespace Skywire.IntegrationTests;

public class SmokeTests
{
    [Fact]
    public void Assembly_Loads() => Assert.Equal("Skywire.IntegrationTests", typeof(SmokeTests).Assembly.GetName().Name);
}
