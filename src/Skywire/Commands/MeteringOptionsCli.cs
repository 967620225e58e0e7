using System.CommandLine;
using Skywire.Core.Metering;

namespace Skywire.Commands;

/// <summary>The metering flags of <c>skywire manager</c> and <c>skywire node</c> (docs/metering.md "Live path").</summary>
internal static class MeteringOptionsCli
{
    private static readonly ManagerMeteringOptions ManagerDefaults = new() { LedgerDirectory = "" };

    /// <summary>The manager's flags; metering is on only with --ledger.</summary>
    public sealed class Manager
    {
        private readonly Option<string?> _ledger = new("--ledger") { Description = "Meter every route and keep the ledger in this directory (journal.jsonl, manager.pub; read it with `skywire ledger`). Off without it." };
        private readonly Option<ulong> _relayPrice = new("--price-relay") { Description = "Droplets per GiB every relay charges, each direction (1 SKY = 1000000).", DefaultValueFactory = _ => ManagerDefaults.RelayPricePerGiB };
        private readonly Option<ulong> _exitPrice = new("--price-exit") { Description = "Droplets per GiB the destination charges, each direction.", DefaultValueFactory = _ => ManagerDefaults.DestinationPricePerGiB };
        private readonly Option<ushort> _fee = new("--fee-bps") { Description = "Operator fee in basis points of the providers' charge (at most 5000).", DefaultValueFactory = _ => ManagerDefaults.FeeBps };
        private readonly Option<ulong> _window = new("--window") { Description = "Credit window in bytes per direction: what a source authorizes ahead of delivery; a route needs funds for one window.", DefaultValueFactory = _ => ManagerDefaults.WindowBytes };
        private readonly Option<ulong> _maxSpend = new("--max-spend") { Description = "Most a route may cost its source, droplets (reserved at setup).", DefaultValueFactory = _ => ManagerDefaults.MaxSpend };
        private readonly Option<int> _epoch = new("--epoch") { Description = "Seconds between ledger epochs (settle, sign a root); one more closes when the manager stops.", DefaultValueFactory = _ => (int)ManagerDefaults.EpochInterval.TotalSeconds };

        public void AddTo(Command command)
        {
            foreach (var option in (Option[])[_ledger, _relayPrice, _exitPrice, _fee, _window, _maxSpend, _epoch])
            {
                command.Options.Add(option);
            }
        }

        /// <summary>The metering options (null without --ledger); false with a message on stderr for values out of range.</summary>
        public bool TryGet(ParseResult parse, out ManagerMeteringOptions? options)
        {
            options = null;
            if (parse.GetValue(_ledger) is not { } ledger)
            {
                return true;
            }

            options = new ManagerMeteringOptions
            {
                LedgerDirectory = Path.GetFullPath(ledger),
                RelayPricePerGiB = parse.GetValue(_relayPrice),
                DestinationPricePerGiB = parse.GetValue(_exitPrice),
                FeeBps = parse.GetValue(_fee),
                WindowBytes = parse.GetValue(_window),
                MaxSpend = parse.GetValue(_maxSpend),
                EpochInterval = TimeSpan.FromSeconds(parse.GetValue(_epoch)),
            };
            string? problem = options.RelayPricePerGiB > Protocol.Metering.MeteringWire.MaxPricePerGiB || options.DestinationPricePerGiB > Protocol.Metering.MeteringWire.MaxPricePerGiB
                    ? $"--price-relay and --price-exit are at most {Protocol.Metering.MeteringWire.MaxPricePerGiB} droplets per GiB"
                : options.FeeBps > Protocol.Metering.MeteringWire.MaxFeeBps ? $"--fee-bps is at most {Protocol.Metering.MeteringWire.MaxFeeBps}"
                : options.WindowBytes is 0 or > Protocol.Metering.MeteringWire.MaxCounter ? "--window must be positive"
                : options.MaxSpend is 0 or > Protocol.Metering.MeteringWire.MaxSpendDroplets ? $"--max-spend must be 1..{Protocol.Metering.MeteringWire.MaxSpendDroplets}"
                : options.EpochInterval < TimeSpan.FromSeconds(1) ? "--epoch must be at least 1 second"
                : null;
            if (problem is not null)
            {
                Console.Error.WriteLine("error: " + problem);
                return false;
            }

            return true;
        }
    }

    /// <summary>The node's flags: what it accepts as a source, where it journals.</summary>
    public sealed class Node
    {
        private readonly Option<string?> _journal = new("--metering-journal") { Description = "File the node appends every metering message it signs or takes to (hex per line, the shape `skywire ledger submit` reads). Default: beside the key file, KEY.metering.hex (created on the first metered route)." };
        private readonly Option<ulong> _maxPrice = new("--max-price") { Description = "As a source, refuse metered routes where a position charges more droplets per GiB than this.", DefaultValueFactory = _ => NodeMeteringOptions.Default.MaxPricePerGiB };
        private readonly Option<ushort> _maxFee = new("--max-fee-bps") { Description = "As a source, refuse metered routes with a higher operator fee (basis points).", DefaultValueFactory = _ => NodeMeteringOptions.Default.MaxFeeBps };

        public void AddTo(Command command)
        {
            foreach (var option in (Option[])[_journal, _maxPrice, _maxFee])
            {
                command.Options.Add(option);
            }
        }

        public NodeMeteringOptions Get(ParseResult parse, string keyFile) => NodeMeteringOptions.Default with
        {
            JournalFile = Path.GetFullPath(parse.GetValue(_journal) ?? Path.ChangeExtension(keyFile, ".metering.hex")),
            MaxPricePerGiB = parse.GetValue(_maxPrice),
            MaxFeeBps = parse.GetValue(_maxFee),
        };
    }
}
