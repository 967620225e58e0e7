using Skywire.Commands;

namespace Skywire.Demo;

/// <summary>
/// <c>skywire demo topology --dir DIR</c>: the topology command the interactive demo gives viscript's GUI
/// (docs/gui.md "Topology source"). viscript starts before the demo's manager, whose port is picked by the OS, so this
/// command waits for <c>DIR/manager.address</c> (written by the demo once the manager listens), then runs
/// <c>skywire cli --manager ADDRESS --key DIR/keys/operator.json topology --json --watch</c> in-process.
/// </summary>
internal static class DemoTopology
{
    /// <summary>File in the demo folder holding the manager's <c>PUBKEY@host:port</c>.</summary>
    public const string AddressFile = "manager.address";

    public static async Task<int> RunAsync(string dir, double interval, TextWriter output, CancellationToken cancellationToken)
    {
        var path = Path.Combine(dir, AddressFile);
        if (!File.Exists(path))
        {
            await output.WriteLineAsync(TopologyCommand.ErrorLine(null, "waiting for the demo's manager to start"));
            await output.FlushAsync(cancellationToken);
        }

        // A start-up wait on a file the demo writes once (atomically, by rename): polling is simplest and portable.
        while (!File.Exists(path))
        {
            await Task.Delay(250, cancellationToken);
        }

        var address = (await File.ReadAllTextAsync(path, cancellationToken)).Trim();
        string[] args = ["cli", "--manager", address, "--key", Path.Combine(dir, "keys", "operator.json"), "topology", "--json", "--watch",
            "--interval", interval.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        return await SkywireRoot.Create().Parse(args).InvokeAsync(cancellationToken: cancellationToken);
    }

    /// <summary>Writes the manager's address for <see cref="RunAsync"/> (temp file + rename, so a reader never sees half).</summary>
    public static void WriteAddress(string dir, string address)
    {
        var path = Path.Combine(dir, AddressFile);
        var temp = path + ".tmp";
        File.WriteAllText(temp, address + "\n");
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Removes a previous run's address, so the GUI never draws a stale manager.</summary>
    public static void ClearAddress(string dir) => File.Delete(Path.Combine(dir, AddressFile));
}
