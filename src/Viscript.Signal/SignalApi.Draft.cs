// Public surface of Viscript.Signal agreed between the signal library and the viscript daemon.
// The signal helper replaces these stubs with the real implementation (keeping or extending the
// signatures); the daemon codes against them meanwhile.
using System.Net;
using System.Text.Json;

namespace Viscript.Signal;

/// <summary>Options of a <see cref="SignalServer"/>.</summary>
public sealed record SignalServerOptions
{
    /// <summary>Address to listen on; port 0 picks a free port (read it back from <see cref="SignalServer.LocalEndPoint"/>).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 7999);

    /// <summary>How long PingAsync/TopAsync/ShutdownAsync wait for a reply.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest frame body accepted (the Go peer accepts 10240; its TOP replies can exceed that).</summary>
    public int MaxFrameSize { get; init; } = 1024 * 1024;

    /// <summary>Token that clients from non-loopback addresses must present (required when Listen is not loopback).</summary>
    public string? Token { get; init; }

    /// <summary>Clock used for timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Default options.</summary>
    public static SignalServerOptions Default { get; } = new();
}

/// <summary>A registered signal client as the server sees it.</summary>
/// <param name="Id">Registered id (viscript's sequence id for apps it launched).</param>
/// <param name="RemoteEndPoint">Peer address of the connection.</param>
/// <param name="RegisteredAt">When the registration was accepted.</param>
/// <param name="IsLoopback">Whether the client connected from this host.</param>
public sealed record SignalClientInfo(ulong Id, EndPoint RemoteEndPoint, DateTimeOffset RegisteredAt, bool IsLoopback);

/// <summary>Resource usage reported by a client in reply to TOP.</summary>
public sealed record ResourceUsage
{
    /// <summary>The reply JSON as received (Go MemStats fields, plus our extensions when the client is ours).</summary>
    public required JsonElement Raw { get; init; }
    public ulong HeapAlloc { get; init; }
    public ulong HeapSys { get; init; }
    public ulong HeapIdle { get; init; }
    public ulong HeapInuse { get; init; }
    public ulong StackSys { get; init; }
    public ulong StackInuse { get; init; }
    /// <summary>Resident set size in bytes, when the client reports it (our extension).</summary>
    public ulong? Rss { get; init; }
    /// <summary>Total CPU time, when reported (our extension).</summary>
    public TimeSpan? CpuTime { get; init; }
    /// <summary>Thread count, when reported (our extension).</summary>
    public int? Threads { get; init; }
}

/// <summary>Why a signal call failed.</summary>
public enum SignalErrorKind
{
    /// <summary>No client is registered under that id.</summary>
    NotRegistered = 10,
    /// <summary>The client did not answer within the timeout.</summary>
    Timeout = 20,
    /// <summary>The client disconnected while the call waited.</summary>
    Disconnected = 30,
    /// <summary>The client answered with something that is not a valid reply.</summary>
    BadReply = 40,
}

/// <summary>A signal call that did not get a valid reply.</summary>
public sealed class SignalException : Exception
{
    public SignalException(SignalErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;
    public SignalException() : this(SignalErrorKind.BadReply, "signal call failed") { }
    public SignalException(string message) : this(SignalErrorKind.BadReply, message) { }
    public SignalException(string message, Exception inner) : this(SignalErrorKind.BadReply, message, inner) { }

    /// <summary>The failure category.</summary>
    public SignalErrorKind Kind { get; }
}
