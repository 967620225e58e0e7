using System.Reflection;
using Microsoft.Extensions.Logging;
using Skywire.Core.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class MessengerLogEventTests
{
    [Fact]
    public void EventIds_AreUniqueAndInTheMessengerRange()
    {
        var ids = typeof(MessengerServer).Assembly.GetTypes()
            .Where(t => t.Namespace?.StartsWith("Skywire.Core.Messenger", StringComparison.Ordinal) == true)
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .Where(a => a is not null)
            .Select(a => a!.EventId)
            .ToList();
        Assert.True(ids.Count >= 10);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 3000, 3999));
    }
}
