using Viscript.Core;
using Viscript.Core.Cluster;

namespace Viscript.Cli;

/// <summary><c>viscript key [--cluster-key FILE]</c>: prints this host's cluster public key (creating the key file on first use).</summary>
public static class ClusterKeyCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        Usage: viscript key [--cluster-key FILE]

        Prints this host's cluster public key (64 hex characters), creating the key file (0600) if it does not
        exist. A primary's allow-list names each agent by this key ('NAME PUBLIC-KEY'); an agent pins the
        primary's key with --primary-key. The private key never leaves the file.

        Options:
          --cluster-key FILE  Key file (default ~/.viscript/cluster.key)
          -h, --help          Show this help
        """;

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        string? file = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-h" or "--help":
                    output.WriteLine(Usage);
                    return 0;
                case "--cluster-key" when i + 1 < args.Length:
                    file = args[++i];
                    break;
                default:
                    if (args[i].StartsWith("--cluster-key=", StringComparison.Ordinal))
                    {
                        file = args[i]["--cluster-key=".Length..];
                        break;
                    }
                    error.WriteLine($"viscript key: unexpected argument '{args[i]}'. Usage: viscript key [--cluster-key FILE]");
                    return (int)ErrorCode.Usage;
            }
        }
        try
        {
            using var key = ClusterKey.LoadOrCreate(file ?? ClusterKey.DefaultPath());
            output.WriteLine(key.PublicKey);
            return 0;
        }
        catch (ViscriptException ex)
        {
            error.WriteLine("viscript key: " + ex.Message);
            return (int)ex.Code;
        }
    }
}
