using System.CommandLine;
using Skywire.Core.Crypto;

namespace Skywire.Commands;

internal static class KeygenCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Key file to write (JSON, mode 0600). Refuses to overwrite an existing file.", Required = true };
        var command = new Command("keygen", "Generate a secp256k1 key pair; prints the public key (66 hex) and its Skycoin address.") { output };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(output)!;
            try
            {
                using var key = KeyPair.Generate();
                KeyFile.Save(path, key, overwrite: false);
                Console.WriteLine(key.Public.ToString());
                Console.WriteLine(key.SkycoinAddress);
                return Common.Ok;
            }
            catch (Exception ex) when (ex is KeyFileException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return Common.Failure;
            }
        });
        return command;
    }
}
