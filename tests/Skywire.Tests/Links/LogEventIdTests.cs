using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Skywire.Tests.Links;

public class LogEventIdTests
{
    [Fact]
    public void DataPlaneEventIds_AreUnique_AndInTheTransportRange()
    {
        var ids = typeof(Skywire.Core.DataPlane.NodeDataPlane).Assembly
            .GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .Select(x => (Name: $"{x.Method.DeclaringType!.FullName}.{x.Method.Name}", x.Attribute!.EventId))
            .ToList();
        var duplicates = ids.GroupBy(x => x.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => x.Name))}").ToList();
        Assert.Empty(duplicates);
        var dataPlane = ids.Where(x => x.Name.Contains(".DataPlane.", StringComparison.Ordinal) || x.Name.Contains(".Links.", StringComparison.Ordinal) || x.Name.Contains("SecureSession", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(dataPlane);
        Assert.All(dataPlane, x => Assert.InRange(x.EventId, 1000, 1099));
    }
}
