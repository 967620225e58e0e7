namespace Skywire.Core.Crypto.Noise;

/// <summary>A token of a Noise message pattern (spec §7).</summary>
public enum NoiseToken : byte
{
    /// <summary>Ephemeral public key.</summary>
    E = 1,

    /// <summary>Static public key (encrypted once a key exists).</summary>
    S = 2,

    /// <summary>DH(e, re).</summary>
    EE = 3,

    /// <summary>DH of the initiator's ephemeral and the responder's static key.</summary>
    ES = 4,

    /// <summary>DH of the initiator's static and the responder's ephemeral key.</summary>
    SE = 5,

    /// <summary>DH(s, rs).</summary>
    SS = 6,
}

/// <summary>A Noise handshake pattern: pre-messages and messages, alternating from the initiator.</summary>
public sealed class HandshakePattern
{
    private HandshakePattern(string name, NoiseToken[] initiatorPre, NoiseToken[] responderPre, NoiseToken[][] messages)
    {
        Name = name;
        InitiatorPreMessage = initiatorPre;
        ResponderPreMessage = responderPre;
        Messages = messages;
    }

    /// <summary>Pattern name as in the protocol name ("XK").</summary>
    public string Name { get; }

    /// <summary>Keys of the initiator known to the responder in advance.</summary>
    public IReadOnlyList<NoiseToken> InitiatorPreMessage { get; }

    /// <summary>Keys of the responder known to the initiator in advance.</summary>
    public IReadOnlyList<NoiseToken> ResponderPreMessage { get; }

    /// <summary>Message token lists; even indices go initiator to responder.</summary>
    public IReadOnlyList<NoiseToken[]> Messages { get; }

    /// <summary>NN: no static keys (tests only).</summary>
    public static HandshakePattern NN { get; } = new("NN", [], [], [[NoiseToken.E], [NoiseToken.E, NoiseToken.EE]]);

    /// <summary>
    /// XK: the initiator knows the responder's static key; the initiator's static key is sent in
    /// the third message, encrypted and with forward secrecy (hidden from active probing).
    /// </summary>
    public static HandshakePattern XK { get; } = new(
        "XK",
        [],
        [NoiseToken.S],
        [[NoiseToken.E, NoiseToken.ES], [NoiseToken.E, NoiseToken.EE], [NoiseToken.S, NoiseToken.SE]]);

    /// <summary>IK: one round trip; the initiator knows the responder's static key and sends its own in the first message.</summary>
    public static HandshakePattern IK { get; } = new(
        "IK",
        [],
        [NoiseToken.S],
        [[NoiseToken.E, NoiseToken.ES, NoiseToken.S, NoiseToken.SS], [NoiseToken.E, NoiseToken.EE, NoiseToken.SE]]);

    /// <summary>
    /// K (one-way, Noise spec §7.4): both static keys known in advance, one message from the sender, no answer. Used by
    /// the messenger's session envelopes, where the recipient may be offline.
    /// </summary>
    public static HandshakePattern K { get; } = new(
        "K",
        [NoiseToken.S],
        [NoiseToken.S],
        [[NoiseToken.E, NoiseToken.ES, NoiseToken.SS]]);

    /// <summary>KK: both static keys are known in advance by both sides.</summary>
    public static HandshakePattern KK { get; } = new(
        "KK",
        [NoiseToken.S],
        [NoiseToken.S],
        [[NoiseToken.E, NoiseToken.ES, NoiseToken.SS], [NoiseToken.E, NoiseToken.EE, NoiseToken.SE]]);

    /// <summary>XX: neither side knows the other's static key in advance.</summary>
    public static HandshakePattern XX { get; } = new(
        "XX",
        [],
        [],
        [[NoiseToken.E], [NoiseToken.E, NoiseToken.EE, NoiseToken.S, NoiseToken.ES], [NoiseToken.S, NoiseToken.SE]]);

    /// <summary>Looks a pattern up by name (XK, IK, KK, K, XX, NN).</summary>
    public static HandshakePattern Parse(string name) => name switch
    {
        "XK" => XK,
        "IK" => IK,
        "KK" => KK,
        "K" => K,
        "XX" => XX,
        "NN" => NN,
        _ => throw new ArgumentException($"unsupported Noise pattern '{name}'", nameof(name)),
    };

    /// <inheritdoc/>
    public override string ToString() => Name;
}
