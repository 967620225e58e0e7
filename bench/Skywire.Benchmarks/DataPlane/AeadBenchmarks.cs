using BenchmarkDotNet.Attributes;
using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;

namespace Skywire.Benchmarks.DataPlane;

/// <summary>
/// Cost of sealing and opening one 1400-byte packet (no associated data, counter nonce), per
/// library, and of the link tag a relay computes per routed packet (verify + seal over 38 bytes
/// of associated data, empty plaintext).
/// </summary>
[MemoryDiagnoser]
public class AeadBenchmarks
{
    private const int PacketLength = 1400;
    private readonly byte[] _plaintext = new byte[PacketLength];
    private readonly byte[] _sealed = new byte[PacketLength + 16];
    private readonly byte[] _opened = new byte[PacketLength];
    private readonly byte[] _routed = new byte[20 + 1384 + 16];
    private AeadKey _key = null!;
    private ulong _counter;

    [Params("AES256GCM-kept-schedule", "NSec-AES256GCM", "NSec-ChaCha20Poly1305", "DotNet-AesGcm", "DotNet-ChaCha20Poly1305")]
    public string Implementation { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var key = new byte[32];
        Random.Shared.NextBytes(key);
        Random.Shared.NextBytes(_plaintext);
        Random.Shared.NextBytes(_routed);
        _key = Implementation switch
        {
            "AES256GCM-kept-schedule" => AeadKey.Create(AeadAlgorithmId.Aes256Gcm, key),
            "NSec-AES256GCM" => new NSecAeadKey(NSec.Cryptography.AeadAlgorithm.Aes256Gcm, AeadAlgorithmId.Aes256Gcm, key),
            "NSec-ChaCha20Poly1305" => AeadKey.Create(AeadAlgorithmId.ChaCha20Poly1305, key),
            "DotNet-AesGcm" => new DotNetAeadKey(AeadAlgorithmId.Aes256Gcm, key),
            _ => new DotNetAeadKey(AeadAlgorithmId.ChaCha20Poly1305, key),
        };
        _key.Seal(7, [], _plaintext, _sealed);
        RoutedPacket.SealTag(_key, 9, _routed, 1384);
    }

    [GlobalCleanup]
    public void Cleanup() => _key.Dispose();

    [Benchmark]
    public void Seal1400() => _key.Seal(++_counter, [], _plaintext, _sealed);

    [Benchmark]
    public bool Open1400() => _key.Open(7, [], _sealed, _opened);

    /// <summary>What a relay adds per packet: verify the incoming link tag, seal the outgoing one.</summary>
    [Benchmark]
    public bool RelayLinkTag()
    {
        var ok = RoutedPacket.VerifyTag(_key, 9, _routed, 1384);
        RoutedPacket.SealTag(_key, 9, _routed, 1384);
        return ok;
    }
}
