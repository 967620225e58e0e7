using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace Skywire.Commands;

/// <summary>Adds the app commands (socks-server, socks-client and chat under <c>app</c>), <c>messenger</c>, <c>chat</c> and <c>demo</c> to the root.</summary>
internal static class AppsWiring
{
    public static void AddTo(RootCommand root)
    {
        var app = root.Subcommands.First(c => c.Name == "app");
        foreach (var command in SocksCommands.Create(() => Common.Logging()))
        {
            app.Subcommands.Add(command);
        }

        foreach (var command in VpnCommands.Create(() => Common.Logging()))
        {
            app.Subcommands.Add(command);
        }

        app.Subcommands.Add(NodeChatCommand.CreateCommand());

        var logging = new LazyLoggerFactory();
        root.Subcommands.Add(MessengerCommands.CreateMessengerCommand(logging));
        root.Subcommands.Add(MessengerCommands.CreateChatCommand());
        root.Subcommands.Add(DemoCommand.Create());
    }

    /// <summary>Creates the console logger only when a command logs (building the command tree must stay cheap).</summary>
    private sealed class LazyLoggerFactory : ILoggerFactory
    {
        private readonly Lazy<ILoggerFactory> _inner = new(() => Common.Logging());

        public ILogger CreateLogger(string categoryName) => _inner.Value.CreateLogger(categoryName);

        public void AddProvider(ILoggerProvider provider) => _inner.Value.AddProvider(provider);

        public void Dispose()
        {
            if (_inner.IsValueCreated)
            {
                _inner.Value.Dispose();
            }
        }
    }
}
