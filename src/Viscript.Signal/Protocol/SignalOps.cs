namespace Viscript.Signal.Protocol;

/// <summary>Op codes and wire constants of the signal protocol (reference §4.2-4.3). Spec values only.</summary>
public static class SignalOps
{
    /// <summary>Client to server: register (<c>{"Id":n}</c>); the server answers <c>Reg | ReplyFlag</c>.</summary>
    public const byte Reg = 0x00;

    /// <summary>Server to client: resource usage request.</summary>
    public const byte Top = 0x00;

    /// <summary>Server to client: liveness request.</summary>
    public const byte Ping = 0x01;

    /// <summary>Server to client: ask the process to stop; the reply carries its pid.</summary>
    public const byte Shutdown = 0x02;

    /// <summary>Set on the op byte of every reply.</summary>
    public const byte ReplyFlag = 0x80;

    /// <summary>Header size of a NORMAL frame: type, seq, length.</summary>
    public const int NormalHeaderSize = 9;

    /// <summary>Size of an ACK frame.</summary>
    public const int AckSize = 5;

    /// <summary>Size of PING and PONG frames.</summary>
    public const int PingSize = 9;

    /// <summary>Largest body a Go peer accepts (10241 closes its connection).</summary>
    public const int GoMaxBody = 10240;

    /// <summary>Default port of the viscript signal server.</summary>
    public const int DefaultPort = 7999;

    /// <summary>Our extension level announced in REG and the REG reply (field <c>Ext</c>); see docs/signal.md.</summary>
    public const int ExtensionVersion = 1;
}
