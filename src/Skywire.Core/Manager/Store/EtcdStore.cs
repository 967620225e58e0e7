using System.Runtime.CompilerServices;
using System.Threading.Channels;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;

namespace Skywire.Core.Manager.Store;

/// <summary>Settings of an <see cref="EtcdStore"/>.</summary>
public sealed record EtcdStoreOptions
{
    /// <summary>Client URLs of the etcd members (http://host:port); the client balances over them and skips dead ones.</summary>
    public IReadOnlyList<Uri> Endpoints { get; init; } = [];

    /// <summary>Every key of the mesh lives under this prefix (one etcd cluster may hold several meshes).</summary>
    public string Prefix { get; init; } = "/skywire/v1/";

    /// <summary>
    /// Lifetime of this process's session lease: its leased keys (presence, links, apps) vanish this long after the
    /// process stops renewing it (a crash, or a cut from etcd). Renewed every third of it. Default 6 s (etcd rounds very
    /// small values up to about 2 s).
    /// </summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>Deadline of one call to etcd (retries on another member included). Default 5 s.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether disposal revokes the session lease (a clean stop: its keys go at once). False leaves them to expire, as
    /// a crashed process does (tests).
    /// </summary>
    public bool RevokeOnDispose { get; init; } = true;

    /// <summary>Clock for the renewal and retry delays.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Parses <c>etcd://host:port[,host:port…][/prefix]</c> (the manager's <c>--store</c>).
    /// </summary>
    /// <exception cref="FormatException">Not an etcd store address.</exception>
    public static EtcdStoreOptions Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string scheme = "etcd://";
        if (!text.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new FormatException($"'{text}' is not an etcd address (etcd://host:port[,host:port...][/prefix])");
        }

        var rest = text[scheme.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var hosts = slash < 0 ? rest : rest[..slash];
        var prefix = slash < 0 ? "/skywire/v1/" : rest[slash..];
        if (!prefix.EndsWith('/'))
        {
            prefix += "/";
        }

        var endpoints = new List<Uri>();
        foreach (var host in hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = host.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(host.AsSpan(colon + 1), out var port) || port is < 1 or > 65535
                || !Uri.TryCreate($"http://{host}", UriKind.Absolute, out var uri))
            {
                throw new FormatException($"'{host}' in '{text}' is not host:port");
            }

            endpoints.Add(uri);
        }

        if (endpoints.Count == 0)
        {
            throw new FormatException($"'{text}' names no etcd member (etcd://host:port[,host:port...][/prefix])");
        }

        return new EtcdStoreOptions { Endpoints = endpoints, Prefix = prefix };
    }
}

/// <summary>
/// The store on an etcd v3 cluster (Debian's etcd-server; client: dotnet-etcd). One lease per process is its session
/// (granted in the background, renewed every third of its TTL over the keep-alive stream, granted again when lost);
/// transactions are etcd Txns; watches are this class's own streams over the client's balanced channel, resumed from the
/// last revision seen after a broken stream, and started over from a fresh read when etcd compacted that history
/// (docs/architecture.md "Manager state").
/// </summary>
public sealed partial class EtcdStore : IMeshStore
{
    private const int WatchCapacity = 1024;
    private const int ReadPage = 2000;
    private const int MaxMessageBytes = 64 * 1024 * 1024;

    private readonly EtcdStoreOptions _options;
    private readonly EtcdClient _client;
    private readonly GrpcChannel _channel;
    private readonly ServiceProvider _channelServices;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _cts = new();
    private readonly string _endpointsText;
    private Task? _session;
    private long _leaseId;
    private int _disposed;

    /// <param name="options">Members, prefix, lease.</param>
    /// <param name="logger">Logger (none when null).</param>
    public EtcdStore(EtcdStoreOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Endpoints.Count == 0)
        {
            throw new ArgumentException("at least one etcd member is needed", nameof(options));
        }

        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _endpointsText = string.Join(",", options.Endpoints.Select(e => e.GetLeftPart(UriPartial.Authority)));
        // The channel is ours, not the library's: EtcdClient.Dispose (dotnet-etcd 10.0.0) left the channel it made for a
        // connection string, and its resolver's service provider, undisposed (one leaked channel per store). With a call
        // invoker it makes none, and we dispose what we made. Same settings as the library's own channel: round robin over
        // the members (a dead member is skipped), calls retried on Unavailable, HTTP/2 keep-alive pings.
        var members = options.Endpoints.Select(e => new BalancerAddress(e.Host, e.Port)).ToArray();
        var services = new ServiceCollection();
        services.AddSingleton<ResolverFactory>(new StaticResolverFactory(_ => members));
        _channelServices = services.BuildServiceProvider();
        _channel = GrpcChannel.ForAddress("static:///etcd", new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Insecure,
            MaxReceiveMessageSize = MaxMessageBytes, // one watch response carries a whole revision (a lease's keys)
            ServiceProvider = _channelServices,
            HttpHandler = new SocketsHttpHandler
            {
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            },
            DisposeHttpClient = true,
            ThrowOperationCanceledOnCancellation = true,
            ServiceConfig = new ServiceConfig
            {
                LoadBalancingConfigs = { new RoundRobinConfig() },
                MethodConfigs =
                {
                    new MethodConfig
                    {
                        Names = { MethodName.Default },
                        RetryPolicy = new RetryPolicy
                        {
                            MaxAttempts = 5,
                            InitialBackoff = TimeSpan.FromSeconds(1),
                            MaxBackoff = TimeSpan.FromSeconds(5),
                            BackoffMultiplier = 1.5,
                            RetryableStatusCodes = { StatusCode.Unavailable },
                        },
                    },
                },
                RetryThrottling = new RetryThrottlingPolicy { MaxTokens = 10, TokenRatio = 0.1 },
            },
        });
        _client = new EtcdClient(_channel.CreateCallInvoker());
    }

    /// <summary>The gRPC channel to the members (tests: disposed with the store).</summary>
    internal GrpcChannel MembersChannel => _channel;

    /// <inheritdoc />
    public string Description => $"etcd {_endpointsText} under {_options.Prefix}";

    /// <inheritdoc />
    public event Action? SessionStarted;

    /// <summary>Whether a session lease is held now.</summary>
    public bool HasSession => Interlocked.Read(ref _leaseId) != 0;

    /// <inheritdoc />
    public void Start() => _session ??= Task.Run(SessionLoopAsync);

    /// <inheritdoc />
    public async Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken)
    {
        // In pages (a large mesh is more than one gRPC message), all at the revision of the first page.
        var key = _options.Prefix + prefix;
        var end = ByteString.CopyFromUtf8(RangeEnd(key));
        var from = ByteString.CopyFromUtf8(key);
        var entries = new List<StoreEntry>();
        var revision = 0L;
        while (true)
        {
            var request = new RangeRequest { Key = from, RangeEnd = end, Limit = ReadPage, Revision = revision };
            var response = await CallAsync(deadline => _client.GetAsync(request, deadline: deadline, cancellationToken: cancellationToken), "read");
            revision = revision == 0 ? response.Header.Revision : revision;
            entries.AddRange(response.Kvs.Select(kv => new StoreEntry(Relative(kv.Key), kv.Value.ToByteArray(), kv.ModRevision)));
            if (!response.More || response.Kvs.Count == 0)
            {
                return new StoreSnapshot(entries, revision);
            }

            var next = response.Kvs[^1].Key.ToByteArray();
            Array.Resize(ref next, next.Length + 1); // the smallest key after the last one read
            from = ByteString.CopyFrom(next);
        }
    }

    /// <inheritdoc />
    public async Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var request = new TxnRequest();
        foreach (var compare in transaction.Compares)
        {
            var c = new Compare { Key = ByteString.CopyFromUtf8(_options.Prefix + compare.Key), Result = Compare.Types.CompareResult.Equal };
            if (compare.Absent)
            {
                c.Target = Compare.Types.CompareTarget.Create;
                c.CreateRevision = 0;
            }
            else if (compare.Value is not null)
            {
                c.Target = Compare.Types.CompareTarget.Value;
                c.Value = ByteString.CopyFrom(compare.Value);
            }
            else
            {
                c.Target = Compare.Types.CompareTarget.Mod;
                c.ModRevision = compare.ModRevision;
            }

            request.Compare.Add(c);
        }

        foreach (var op in transaction.Operations)
        {
            var key = ByteString.CopyFromUtf8(_options.Prefix + op.Key);
            if (op.Value is null)
            {
                request.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
                continue;
            }

            var lease = 0L;
            if (op.Leased && (lease = Interlocked.Read(ref _leaseId)) == 0)
            {
                throw new StoreUnavailableException($"no session with etcd ({_endpointsText}) yet");
            }

            request.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFrom(op.Value), Lease = lease } });
        }

        var response = await CallAsync(deadline => _client.TransactionAsync(request, deadline: deadline, cancellationToken: cancellationToken), "transaction");
        return response.Succeeded;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<StoreChange> WatchAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        var changes = Channel.CreateBounded<StoreChange>(new BoundedChannelOptions(WatchCapacity) { SingleReader = true, SingleWriter = true });
        var pump = Task.Run(() => PumpAsync(prefix, changes.Writer, stop.Token), CancellationToken.None);
        try
        {
            await foreach (var change in changes.Reader.ReadAllAsync(stop.Token).WithCancellation(stop.Token))
            {
                yield return change;
            }
        }
        finally
        {
            await stop.CancelAsync();
            await pump.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    // A snapshot, then a watch from the revision after it; a broken stream resumes from the next revision, a compacted one
    // (or any cancellation by the server) starts over from a snapshot.
    private async Task PumpAsync(string prefix, ChannelWriter<StoreChange> writer, CancellationToken cancellationToken)
    {
        var key = _options.Prefix + prefix;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(3));
        var next = 0L;
        var needSnapshot = true;
        var broken = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (needSnapshot)
                {
                    var snapshot = await ReadAsync(prefix, cancellationToken);
                    await writer.WriteAsync(new StoreChange(StoreChangeKind.Snapshot, null, snapshot), cancellationToken);
                    next = snapshot.Revision + 1;
                    needSnapshot = false;
                }

                // A stream etcd does not answer is given up: until its watch is created within the call timeout, then
                // whenever nothing (an event, or the answer to the progress request sent every ProgressInterval) comes for
                // longer than that. Such a stream once hung for good after every member was restarted, and the manager
                // never saw another change (the answers to its commands among them).
                using var stream = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                stream.CancelAfter(_options.CallTimeout);
                using var call = _client.GetConnection().WatchClient.Watch(cancellationToken: stream.Token);
                await call.RequestStream.WriteAsync(new WatchRequest
                {
                    CreateRequest = new WatchCreateRequest
                    {
                        Key = ByteString.CopyFromUtf8(key),
                        RangeEnd = ByteString.CopyFromUtf8(RangeEnd(key)),
                        StartRevision = next,
                        PrevKv = true,
                        ProgressNotify = true,
                        Fragment = true,
                    },
                }, stream.Token);
                var progress = Task.CompletedTask;
                while (await call.ResponseStream.MoveNext(stream.Token))
                {
                    stream.CancelAfter(ProgressInterval + _options.CallTimeout);
                    if (progress.IsCompleted)
                    {
                        progress = RequestProgressAsync(call.RequestStream, stream.Token);
                    }

                    var response = call.ResponseStream.Current;
                    if (response.Canceled || response.CompactRevision > 0)
                    {
                        Log.WatchRestarted(_logger, prefix, response.CompactRevision, response.CancelReason);
                        needSnapshot = true;
                        break;
                    }

                    backoff.Reset();
                    if (response.Created && broken)
                    {
                        broken = false;
                        Log.WatchResumed(_logger, prefix, next);
                    }

                    foreach (var e in response.Events)
                    {
                        var entry = e.Type == Mvccpb.Event.Types.EventType.Delete
                            ? new StoreEntry(Relative(e.Kv.Key), e.PrevKv?.Value.ToByteArray() ?? [], e.Kv.ModRevision)
                            : new StoreEntry(Relative(e.Kv.Key), e.Kv.Value.ToByteArray(), e.Kv.ModRevision);
                        var kind = e.Type == Mvccpb.Event.Types.EventType.Delete ? StoreChangeKind.Delete : StoreChangeKind.Put;
                        await writer.WriteAsync(new StoreChange(kind, entry, null), cancellationToken);
                        next = Math.Max(next, e.Kv.ModRevision + 1);
                    }

                    if (response.Events.Count == 0 && !response.Created && response.Header is { } header)
                    {
                        next = Math.Max(next, header.Revision + 1); // progress notification: nothing up to there
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RpcException or StoreUnavailableException or IOException or InvalidOperationException or OperationCanceledException)
            {
                broken = true;
                if ((backoff.Attempts & (backoff.Attempts - 1)) == 0)
                {
                    Log.WatchBroken(_logger, prefix, ex.Message);
                }
            }

            try
            {
                await backoff.DelayAsync(_options.TimeProvider, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>How often a watch stream asks etcd for a progress answer (its liveness check).</summary>
    internal static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(2);

    // One progress request after ProgressInterval; the caller starts the next one after an answer, so one is in flight
    // at a time and writes to the stream never overlap.
    private async Task RequestProgressAsync(IClientStreamWriter<WatchRequest> requests, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(ProgressInterval, _options.TimeProvider, cancellationToken);
            await requests.WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() }, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException or InvalidOperationException or IOException or ObjectDisposedException)
        {
            // The stream is ending; its reader says why.
        }
    }

    // ------------------------------------------------------------------ session (lease)

    private async Task SessionLoopAsync()
    {
        var stopping = _cts.Token;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(3));
        var ttl = (long)Math.Max(2, Math.Ceiling(_options.LeaseTtl.TotalSeconds));
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var grant = await CallAsync(deadline => _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttl }, deadline: deadline, cancellationToken: stopping), "lease grant");
                Interlocked.Exchange(ref _leaseId, grant.ID);
                Log.SessionStarted(_logger, _endpointsText, grant.ID, grant.TTL);
                backoff.Reset();
                _ = Task.Run(() => SessionStarted?.Invoke(), CancellationToken.None);
                await KeepAliveAsync(grant.ID, stopping);
                Interlocked.Exchange(ref _leaseId, 0);
                if (!stopping.IsCancellationRequested)
                {
                    Log.SessionLost(_logger, _endpointsText);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (StoreUnavailableException ex)
            {
                if ((backoff.Attempts & (backoff.Attempts - 1)) == 0)
                {
                    Log.Unreachable(_logger, _endpointsText, ex.Message);
                }
            }

            try
            {
                await backoff.DelayAsync(_options.TimeProvider, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Renews the lease every third of its TTL; returns when etcd says it is gone (expired while we were cut off).</summary>
    private async Task KeepAliveAsync(long leaseId, CancellationToken stopping)
    {
        var interval = _options.LeaseTtl / 3;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                using var call = _client.GetConnection().LeaseClient.LeaseKeepAlive(cancellationToken: stopping);
                while (!stopping.IsCancellationRequested)
                {
                    using var answer = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    answer.CancelAfter(_options.CallTimeout);
                    await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = leaseId }, answer.Token);
                    if (!await call.ResponseStream.MoveNext(answer.Token))
                    {
                        break;
                    }

                    if (call.ResponseStream.Current.TTL <= 0)
                    {
                        return;
                    }

                    await Task.Delay(interval, _options.TimeProvider, stopping);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException or IOException or InvalidOperationException)
            {
                // The stream broke (a member died, etcd is away): renew over a new one. etcd keeps the lease alive
                // across leader changes and quorum loss; if it expired meanwhile, the next answer says TTL 0.
                Log.KeepAliveBroken(_logger, ex.Message);
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300), _options.TimeProvider, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private async Task<T> CallAsync<T>(Func<DateTime, Task<T>> call, string what)
    {
        var deadline = DateTime.UtcNow + _options.CallTimeout;
        try
        {
            return await call(deadline);
        }
        catch (RpcException ex) when (ex.StatusCode != StatusCode.Cancelled || !_cts.IsCancellationRequested)
        {
            throw new StoreUnavailableException($"etcd ({_endpointsText}) {what} failed: {ex.StatusCode}: {ex.Status.Detail}", ex);
        }
        catch (OperationCanceledException ex) when (!_cts.IsCancellationRequested && DateTime.UtcNow >= deadline)
        {
            // Grpc.Net's retrying call sometimes ends a passed deadline as a cancellation, not as DeadlineExceeded.
            throw new StoreUnavailableException($"etcd ({_endpointsText}) {what} failed: no answer within {_options.CallTimeout.TotalSeconds:0.#} s", ex);
        }
    }

    private string Relative(ByteString key)
    {
        var text = key.ToStringUtf8();
        return text.StartsWith(_options.Prefix, StringComparison.Ordinal) ? text[_options.Prefix.Length..] : text;
    }

    /// <summary>The end of the range of keys that start with <paramref name="prefix"/> (its last byte plus one).</summary>
    internal static string RangeEnd(string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        var chars = prefix.ToCharArray();
        chars[^1]++;
        return new string(chars);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        if (_session is not null)
        {
            await _session.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        var lease = Interlocked.Exchange(ref _leaseId, 0);
        if (lease != 0 && _options.RevokeOnDispose)
        {
            try
            {
                await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease }, deadline: DateTime.UtcNow + TimeSpan.FromSeconds(2));
            }
            catch (RpcException)
            {
                // It expires by itself.
            }
        }

        _client.Dispose();
        _channel.Dispose();
        await _channelServices.DisposeAsync();
        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2310, Level = LogLevel.Information, Message = "Mesh store session with etcd {Endpoints}: lease {Lease:x} (TTL {Ttl} s)")]
        public static partial void SessionStarted(ILogger logger, string endpoints, long lease, long ttl);

        [LoggerMessage(EventId = 2311, Level = LogLevel.Warning, Message = "Mesh store session with etcd {Endpoints} lost (the lease expired while etcd could not be reached); starting a new one")]
        public static partial void SessionLost(ILogger logger, string endpoints);

        [LoggerMessage(EventId = 2312, Level = LogLevel.Warning, Message = "etcd {Endpoints} cannot be reached (retrying with backoff): {Reason}")]
        public static partial void Unreachable(ILogger logger, string endpoints, string reason);

        [LoggerMessage(EventId = 2313, Level = LogLevel.Information, Message = "etcd lease keep-alive stream broke ({Reason}); renewing over a new one")]
        public static partial void KeepAliveBroken(ILogger logger, string reason);

        [LoggerMessage(EventId = 2314, Level = LogLevel.Information, Message = "etcd watch of '{Prefix}' broke ({Reason}); resuming from the last revision seen")]
        public static partial void WatchBroken(ILogger logger, string prefix, string reason);

        [LoggerMessage(EventId = 2316, Level = LogLevel.Information, Message = "etcd watch of '{Prefix}' running again from revision {Revision}")]
        public static partial void WatchResumed(ILogger logger, string prefix, long revision);

        [LoggerMessage(EventId = 2315, Level = LogLevel.Warning, Message = "etcd watch of '{Prefix}' cancelled by the server (compacted at {Compacted}: {Reason}); reading everything again")]
        public static partial void WatchRestarted(ILogger logger, string prefix, long compacted, string reason);
    }
}
