namespace Skywire.Core.Crypto.Noise;

/// <summary>A handshake or transport message failed: bad length, bad tag, invalid key, or wrong state.</summary>
public sealed class NoiseException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NoiseException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public NoiseException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public NoiseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
