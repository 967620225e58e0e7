using System.Diagnostics.CodeAnalysis;

// Tests bound every wait with WaitAsync(limit); passing TestContext's token everywhere adds noise, not safety.
[assembly: SuppressMessage("Usage", "xUnit1051", Justification = "Waits are bounded by explicit limits.", Scope = "namespaceanddescendants", Target = "~N:Skywire.Tests.Control")]
[assembly: SuppressMessage("Usage", "xUnit1051", Justification = "Waits are bounded by explicit limits.", Scope = "namespaceanddescendants", Target = "~N:Skywire.Tests.AppApi")]
[assembly: SuppressMessage("Usage", "xUnit1051", Justification = "Waits are bounded by explicit limits.", Scope = "namespaceanddescendants", Target = "~N:Skywire.Tests.Manager")]
