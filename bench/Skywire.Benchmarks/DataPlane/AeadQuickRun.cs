using System.Diagnostics;
using System.Globalization;
using NSec.Cryptography;
using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;

namespace Skywire.Benchmarks.DataPlane;

/// <summary>
/// <c>Skywire.Benchmarks.dll aead-quick [rounds]</c>: the data path's AES-256-GCM (key schedule expanded once,
/// <see cref="AeadKey.Create"/>) beside NSec's per-call AES-256-GCM (key expanded on every call, what the data path
/// used before) and .NET's AesGcm, interleaved round by round, CPU time per operation (thread CPU time, so other
/// jobs on the machine inflate it less than wall time). Minimum and median over the rounds.
/// </summary>
internal static class AeadQuickRun
{
    private const int Operations = 200_000;

    public static void Run(int rounds)
    {
        var raw = new byte[32];
        Random.Shared.NextBytes(raw);
        (string Name, AeadKey Key)[] keys =
        [
            ("AES-256-GCM, schedule kept (AeadKey.Create)", AeadKey.Create(AeadAlgorithmId.Aes256Gcm, raw)),
            ("AES-256-GCM, NSec (schedule per call)", new NSecAeadKey(AeadAlgorithm.Aes256Gcm, AeadAlgorithmId.Aes256Gcm, raw)),
            ("AES-256-GCM, .NET AesGcm", new DotNetAeadKey(AeadAlgorithmId.Aes256Gcm, raw)),
        ];
        var plaintext = new byte[1400];
        var sealedBytes = new byte[1416];
        var routed = new byte[20 + 1384 + 16];
        var results = new Dictionary<(string, string), List<double>>();
        for (var round = 0; round <= rounds; round++)
        {
            foreach (var (name, key) in keys)
            {
                Measure(results, round, name, "seal 1400 B", () =>
                {
                    for (var i = 0; i < Operations; i++)
                    {
                        key.Seal((ulong)i, [], plaintext, sealedBytes);
                    }
                });
                key.Seal(7, [], plaintext, sealedBytes);
                Measure(results, round, name, "open 1400 B", () =>
                {
                    for (var i = 0; i < Operations; i++)
                    {
                        key.Open(7, [], sealedBytes, plaintext);
                    }
                });
                Measure(results, round, name, "link tag seal (38 B AD)", () =>
                {
                    for (var i = 0; i < Operations; i++)
                    {
                        RoutedPacket.SealTag(key, (ulong)i, routed, 1384);
                    }
                });
            }
        }

        Console.WriteLine("| implementation | operation | min ns/op | median ns/op |");
        Console.WriteLine("|---|---|---:|---:|");
        foreach (var ((name, op), samples) in results)
        {
            samples.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {op} | {samples[0]:0} | {samples[samples.Count / 2]:0} |"));
        }

        foreach (var (_, key) in keys)
        {
            key.Dispose();
        }
    }

    private static void Measure(Dictionary<(string, string), List<double>> results, int round, string name, string op, Action body)
    {
        var cpu0 = ThreadCpu();
        body();
        var ns = (ThreadCpu() - cpu0).TotalNanoseconds / Operations;
        if (round == 0)
        {
            return; // warm-up
        }

        if (!results.TryGetValue((name, op), out var list))
        {
            results[(name, op)] = list = [];
        }

        list.Add(ns);
    }

    private static TimeSpan ThreadCpu()
    {
        // CLOCK_THREAD_CPUTIME_ID through /proc would be slower; the process figure is fine: one busy thread.
        return Process.GetCurrentProcess().TotalProcessorTime;
    }
}
