using System.Security.Cryptography;
using System.Text.Json;
using Skywire.Protocol;

namespace Skywire.Core.Crypto;

/// <summary>
/// The key file: <c>{"public_key": "&lt;66 hex&gt;", "secret_key": "&lt;64 hex&gt;"}</c>, UTF-8 JSON,
/// file mode 0600 (its folder is created 0700 when missing). The public key is stored for
/// people and tools; on load it must match the secret.
/// </summary>
public static class KeyFile
{
    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Loads the key pair from <paramref name="path"/>, or creates a new one there when the file does not exist.</summary>
    /// <exception cref="KeyFileException">The file exists but is unreadable, malformed or too open.</exception>
    public static KeyPair LoadOrCreate(string path) => LoadOrCreate(path, out _);

    /// <summary>As <see cref="LoadOrCreate(string)"/>; <paramref name="created"/> tells whether a new key was written.</summary>
    public static KeyPair LoadOrCreate(string path, out bool created)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (File.Exists(path))
        {
            created = false;
            return Load(path);
        }

        var pair = KeyPair.Generate();
        try
        {
            Save(path, pair, overwrite: false);
        }
        catch (KeyFileException) when (File.Exists(path))
        {
            // Another process created it first: use theirs.
            pair.Dispose();
            created = false;
            return Load(path);
        }

        created = true;
        return pair;
    }

    /// <summary>Loads a key pair.</summary>
    /// <exception cref="KeyFileException">Missing, unreadable, malformed, mismatched, or readable by group/others.</exception>
    public static KeyPair Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        byte[] json;
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                var mode = File.GetUnixFileMode(path);
                if ((mode & GroupOrOther) != 0)
                {
                    throw new KeyFileException(path, $"permissions are too open ({Convert.ToString((int)mode, 8)}); the key must be readable by its owner only: chmod 600 {path}");
                }
            }

            json = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new KeyFileException(path, "file not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new KeyFileException(path, "file not found");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KeyFileException(path, $"cannot read: {ex.Message}");
        }

        string? publicHex = null;
        string? secretHex = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new KeyFileException(path, "not a JSON object");
            }

            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.NameEquals("public_key") && property.Value.ValueKind == JsonValueKind.String)
                {
                    publicHex = property.Value.GetString();
                }
                else if (property.NameEquals("secret_key") && property.Value.ValueKind == JsonValueKind.String)
                {
                    secretHex = property.Value.GetString();
                }
            }
        }
        catch (JsonException ex)
        {
            throw new KeyFileException(path, $"not valid JSON (line {ex.LineNumber + 1})");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(json);
        }

        if (secretHex is null)
        {
            throw new KeyFileException(path, "missing \"secret_key\"");
        }

        Span<byte> secret = stackalloc byte[KeyPair.SecretLength];
        try
        {
            if (secretHex.Length != KeyPair.SecretLength * 2 ||
                Convert.FromHexString(secretHex, secret, out _, out _) != System.Buffers.OperationStatus.Done)
            {
                throw new KeyFileException(path, "\"secret_key\" must be 64 hex characters");
            }

            KeyPair pair;
            try
            {
                pair = KeyPair.FromSecret(secret);
            }
            catch (ArgumentException)
            {
                throw new KeyFileException(path, "\"secret_key\" is not a valid secp256k1 secret");
            }

            if (publicHex is not null && (!PubKey.TryParse(publicHex, out var stored) || stored != pair.Public))
            {
                pair.Dispose();
                throw new KeyFileException(path, "\"public_key\" does not match \"secret_key\"");
            }

            return pair;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Writes <paramref name="pair"/> to <paramref name="path"/> (mode 0600, atomically through a temporary file).</summary>
    /// <exception cref="KeyFileException">The file exists and <paramref name="overwrite"/> is false, or it cannot be written.</exception>
    public static void Save(string path, KeyPair pair, bool overwrite = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(pair);
        Span<byte> secret = stackalloc byte[KeyPair.SecretLength];
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        try
        {
            pair.WriteSecret(secret);
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            {
                writer.WriteStartObject();
                writer.WriteString("public_key", pair.Public.ToString());
                writer.WriteString("secret_key", Convert.ToHexStringLower(secret));
                writer.WriteEndObject();
            }

            SecretFile.Write(path, buffer.WrittenSpan, overwrite ? _ => null : null);
        }
        catch (SecretFileException ex)
        {
            throw new KeyFileException(path, ex.Reason);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
            buffer.Clear();
        }
    }
}

/// <summary>A key file could not be loaded or saved. The message names the file and the reason, never key material.</summary>
public sealed class KeyFileException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KeyFileException(string path, string reason)
        : base($"key file {path}: {reason}")
    {
        FilePath = path;
        Reason = reason;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }
}
