using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Demo;

/// <summary><c>skywire demo --metering</c>: the manager keeps a ledger, node A (the SOCKS client's node) pays (docs/metering.md "Live path").</summary>
internal sealed partial class DemoRunner
{
    /// <summary>What node A is granted when its balance is below it (droplets: 100 SKY).</summary>
    private const long DemoGrant = 100_000_000;

    private string LedgerDir => Path.Combine(_dir, "ledger");

    /// <summary>Before the manager starts (the ledger's one writer): pin the ledger to the demo's manager and top up node A.</summary>
    private void PrepareLedger()
    {
        Directory.CreateDirectory(LedgerDir);
        var pub = Path.Combine(LedgerDir, MeteringHub.ManagerFile);
        if (!File.Exists(pub))
        {
            File.WriteAllText(pub, _managerKey + "\n");
        }

        using var store = FileLedgerStore.Open(LedgerDir, writable: true);
        var ledger = Ledger.Open(store, _managerKey);
        var source = _nodes[0].Key;
        var balance = ledger.Balance(Ledger.ConsumerAccount(source));
        if (balance < DemoGrant)
        {
            ledger.Grant(source, DemoGrant - balance, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), "skywire demo");
        }
    }

    /// <summary>The manager's metering flags: a short epoch, so balances show settled figures within seconds.</summary>
    private IReadOnlyList<string> MeteringArgs() => _options.Metering ? ["--ledger", LedgerDir, "--epoch", "5"] : [];

    /// <summary>Waits until every hop of the SOCKS route has a co-signed forward receipt in the ledger and an epoch settled it.</summary>
    private async Task<string> ReadLedgerAsync(CancellationToken cancellationToken)
    {
        var source = _nodes[0].Key;
        return await Bounded(async ct =>
        {
            while (true)
            {
                using (var store = FileLedgerStore.Open(LedgerDir, writable: false))
                {
                    var ledger = Ledger.Open(store, _managerKey);
                    var route = ledger.Routes.LastOrDefault(r => r.Terms.Source == source);
                    if (route is not null && Enumerable.Range(0, route.Terms.HopCount).All(h => route.Bytes(h, MeteringDirection.Forward) > 0) && route.Spent > 0)
                    {
                        var credited = Enumerable.Range(1, route.Terms.HopCount).Select(p => route.Terms.NodeAt(p))
                            .Sum(n => ledger.Balance(Ledger.ProviderAccount(n)));
                        return $"route {route.Id[..12]}: {route.Terms.HopCount} hops co-signed, {route.Spent} droplets spent, {credited} credited to relays and exit";
                    }
                }

                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }, "co-signed receipts of every hop in the ledger (they come every 4 MiB or 10 s)", cancellationToken);
    }

    /// <summary>
    /// With metering the nodes stop before the manager: each ends its metered routes while the manager still hears it,
    /// so every hop's final receipts reach the ledger and the manager's last epoch close releases the source's reserve
    /// (docs/metering.md "Clean stop"). Without metering viscript stops everything at once, as before.
    /// </summary>
    private async Task StopNodesFirstAsync()
    {
        if (!_options.Metering || _viscript is not { } viscript)
        {
            return;
        }

        List<Component> nodes;
        lock (_components)
        {
            nodes = [.. _components.Where(c => c.App == DemoConfig.Node)];
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await Task.WhenAll(nodes.Select(n => viscript.StopProcessAsync(n.Id, timeout.Token)));
        }
        catch (Exception ex) when (ex is Viscript.Core.Control.ViscriptApiException or HttpRequestException or IOException or OperationCanceledException)
        {
            // viscript stops whatever is left next; the ledger settles routes without finals by its rules.
        }
    }

    private void PrintMeteringSummary(TextWriter o, string skywire)
    {
        if (!_options.Metering)
        {
            return;
        }

        o.WriteLine($"Metering: the manager keeps the ledger in {Absolute(LedgerDir)} (epoch every 5 s); node {_nodes[0].Label} pays, relays and the exit earn:");
        o.WriteLine($"  {skywire} ledger balances {Absolute(LedgerDir)}");
        o.WriteLine($"  {skywire} ledger routes {Absolute(LedgerDir)}");
        o.WriteLine($"  {skywire} ledger verify {Absolute(LedgerDir)}");
        o.WriteLine($"  {skywire} ledger epochs {Absolute(LedgerDir)}      (per node and epoch; viscript --ledger {Absolute(LedgerDir)} charts it)");
        o.WriteLine("The payout file and signed manifest (through the running manager, the ledger's one writer; without --manager once the demo stopped):");
        o.WriteLine($"  {skywire} ledger export {Absolute(LedgerDir)} --key {Absolute(Path.Combine(_dir, "keys", "manager.json"))} --min 1000 --manager {_managerKey}@{_managerEndPoint}");
        o.WriteLine();
    }
}
