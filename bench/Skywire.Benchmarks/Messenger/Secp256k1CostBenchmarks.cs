using BenchmarkDotNet.Attributes;
using Skywire.Core.Crypto;
using Skywire.Protocol;

namespace Skywire.Benchmarks.Messenger;

/// <summary>The secp256k1 operations a sealed message costs (one ephemeral key, two DH on each side).</summary>
public class Secp256k1CostBenchmarks
{
    private readonly KeyPair _a = KeyPair.Generate();
    private readonly PubKey _b = KeyPair.Generate().Public;

    [Benchmark(Description = "KeyPair.Generate")]
    public PubKey Generate() => KeyPair.Generate().Public;

    [Benchmark(Description = "ECDH (SharedSecret)")]
    public byte[] Ecdh() => _a.SharedSecret(_b);

    [Benchmark(Description = "point validation (decompress)")]
    public bool Validate() => KeyPair.IsValidPoint(_b);
}
