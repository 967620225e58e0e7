using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Viscript.Core.Hosting;

namespace Viscript.Core.Cluster;

/// <summary>
/// The identity of a viscript in a cluster (docs/viscript.md "Cluster"): an ECDSA P-256 private key in a PEM file
/// (PKCS#8, 0600, written through <see cref="SecretFile"/>), created on first use. Peers know each other by the
/// <see cref="PublicKey"/>: the SHA-256 of the key's SubjectPublicKeyInfo in hex, pinned like an SSH host key. The TLS
/// certificate is only a carrier for the key: self-signed, made at load time, never checked against a CA.
/// <see cref="ToString"/> shows the public key only.
/// </summary>
public sealed class ClusterKey : IDisposable
{
    /// <summary>Length of a public key in hex.</summary>
    public const int PublicKeyLength = 64;

    private ClusterKey(ECDsa key, string path)
    {
        Path = path;
        var request = new CertificateRequest("CN=viscript", key, HashAlgorithmName.SHA256);
        var now = DateTimeOffset.UtcNow;
        // The validity window is not what is checked (the pin is); it is wide so clock skew between hosts never matters.
        Certificate = request.CreateSelfSigned(now.AddDays(-7), now.AddYears(50));
        PublicKey = Fingerprint(Certificate);
        key.Dispose();
    }

    /// <summary>The key file.</summary>
    public string Path { get; }

    /// <summary>The self-signed certificate carrying the key (with its private key), for TLS.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The public key as peers pin it: 64 lowercase hex characters.</summary>
    public string PublicKey { get; }

    /// <summary>Default key file: <c>~/.viscript/cluster.key</c>.</summary>
    public static string DefaultPath()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home))
        {
            throw new ViscriptException(ErrorCode.Usage, "No home folder for the cluster key file: pass --cluster-key FILE.");
        }
        return System.IO.Path.Combine(home, ".viscript", "cluster.key");
    }

    /// <summary>Loads <paramref name="path"/>, or creates it (0600) with a new key when it does not exist.</summary>
    /// <exception cref="ViscriptException">Usage: the file is not a key this code wrote, is readable by others, or cannot be written.</exception>
    public static ClusterKey LoadOrCreate(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            using var created = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var pem = PemEncoding.Write("PRIVATE KEY", created.ExportPkcs8PrivateKey());
            SecretFile.WriteAtomic(full, Encoding.ASCII.GetBytes(new string(pem) + "\n"), "the cluster key");
        }
        return Load(full);
    }

    /// <summary>Loads an existing key file.</summary>
    /// <exception cref="ViscriptException">Usage: missing, unreadable, readable by other users, or not an EC private key.</exception>
    public static ClusterKey Load(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        string text;
        try
        {
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(full) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            {
                throw new ViscriptException(ErrorCode.Usage, $"the cluster key file {full} is readable or writable by other users: chmod 600 it (or delete it to make a new key).");
            }
            if (new FileInfo(full).Length > 16 * 1024)
            {
                throw new ViscriptException(ErrorCode.Usage, $"{full} is not a cluster key file (too large).");
            }
            text = File.ReadAllText(full);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ViscriptException(ErrorCode.Usage, $"cannot read the cluster key file {full}: {ex.Message}", ex);
        }
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(text);
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new ViscriptException(ErrorCode.Usage, $"{full} is not a cluster key file (expected an EC private key in PEM): {ex.Message}", ex);
        }
        return new ClusterKey(key, full);
    }

    /// <summary>The public key (pin) of a certificate: SHA-256 of its SubjectPublicKeyInfo, lowercase hex.</summary>
    public static string Fingerprint(X509Certificate certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        if (certificate is X509Certificate2 c2)
        {
            return Convert.ToHexStringLower(SHA256.HashData(c2.PublicKey.ExportSubjectPublicKeyInfo()));
        }
        using var copy = new X509Certificate2(certificate);
        return Convert.ToHexStringLower(SHA256.HashData(copy.PublicKey.ExportSubjectPublicKeyInfo()));
    }

    /// <summary>Whether <paramref name="text"/> has the shape of a public key (64 hex characters).</summary>
    public static bool IsPublicKey(string text) => text.Length == PublicKeyLength && text.All(Uri.IsHexDigit);

    /// <inheritdoc/>
    public override string ToString() => $"ClusterKey {{ PublicKey = {PublicKey}, Path = {Path} }}";

    /// <inheritdoc/>
    public void Dispose() => Certificate.Dispose();
}
