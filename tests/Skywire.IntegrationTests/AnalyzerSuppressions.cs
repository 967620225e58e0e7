using System.Diagnostics.CodeAnalysis;

// Every wait in these tests is bounded by an explicit limit (WaitAsync); TestContext tokens add noise, not safety.
[assembly: SuppressMessage("Usage", "xUnit1051", Justification = "Waits are bounded by explicit limits.")]
