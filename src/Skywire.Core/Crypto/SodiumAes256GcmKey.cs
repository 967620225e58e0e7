using System.Runtime.InteropServices;

namespace Skywire.Core.Crypto;

/// <summary>
/// AES-256-GCM with the key schedule computed once per key (libsodium's <c>crypto_aead_aes256gcm_beforenm</c>, then
/// <c>_encrypt_afternm</c> / <c>_decrypt_afternm</c> per message). NSec's <c>AeadAlgorithm.Aes256Gcm</c> expands the
/// key on every call, which a profile of a 1-hop transfer showed at ~5 % of the nodes' CPU (docs/benchmarks.md
/// "Mesh"); the data path seals and opens each packet with a long-lived key, so the expansion belongs to the key.
/// Same libsodium (the one NSec loads), same wire bytes: tests check both against each other.
/// </summary>
/// <remarks>
/// The expanded state (<c>crypto_aead_aes256gcm_state</c>, 512 bytes, 16-byte aligned) lives in native memory owned
/// by a <see cref="SafeHandle"/>: every call holds a reference, so a dispose racing a seal on another thread waits
/// for nothing and frees nothing in use (the call throws <see cref="ObjectDisposedException"/> instead, as NSec's
/// keys do). The state is zeroed before it is freed. Safe for concurrent use: the state is read-only after set-up.
/// </remarks>
internal sealed unsafe partial class SodiumAes256GcmKey : AeadKey
{
    private const int StateBytes = 512;
    private const int StateAlignment = 16;

    private readonly StateHandle _state;

    public SodiumAes256GcmKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException("An AEAD key is 32 bytes.", nameof(key));
        }

        // NSec's check also runs sodium_init (CPU feature detection), which libsodium's AES-GCM needs first.
        if (!NSec.Cryptography.Aes256Gcm.IsSupported || Native.IsAvailable() == 0)
        {
            throw new PlatformNotSupportedException("AES-256-GCM needs AES-NI and CLMUL on this CPU; use ChaCha20-Poly1305.");
        }

        _state = StateHandle.Allocate();
        fixed (byte* k = key)
        {
            if (Native.BeforeNm(_state.Pointer, k) != 0)
            {
                _state.Dispose();
                throw new System.Security.Cryptography.CryptographicException("crypto_aead_aes256gcm_beforenm failed");
            }
        }
    }

    public override AeadAlgorithmId Algorithm => AeadAlgorithmId.Aes256Gcm;

    public override void WriteNonce(ulong n, Span<byte> nonce) => WriteNonceFor(AeadAlgorithmId.Aes256Gcm, n, nonce);

    public override void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        CheckNonce(nonce);
        var outputLength = plaintext.Length + TagLength;
        if (output.Length < outputLength)
        {
            throw new ArgumentException("The output is shorter than the plaintext plus the tag.", nameof(output));
        }

        var added = false;
        try
        {
            _state.DangerousAddRef(ref added);
            fixed (byte* c = output)
            fixed (byte* m = plaintext)
            fixed (byte* ad = associatedData)
            fixed (byte* npub = nonce)
            {
                ulong written;
                if (Native.EncryptAfterNm(c, &written, m, (ulong)plaintext.Length, ad, (ulong)associatedData.Length, null, npub, _state.Pointer) != 0)
                {
                    // libsodium refuses only a message longer than AES-GCM allows (64 GiB): never on this path.
                    throw new ArgumentException("The plaintext is too long for AES-256-GCM.", nameof(plaintext));
                }
            }
        }
        finally
        {
            if (added)
            {
                _state.DangerousRelease();
            }
        }
    }

    public override bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output)
    {
        CheckNonce(nonce);
        if (ciphertext.Length < TagLength)
        {
            return false;
        }

        if (output.Length < ciphertext.Length - TagLength)
        {
            throw new ArgumentException("The output is shorter than the plaintext.", nameof(output));
        }

        var added = false;
        try
        {
            _state.DangerousAddRef(ref added);
            fixed (byte* m = output)
            fixed (byte* c = ciphertext)
            fixed (byte* ad = associatedData)
            fixed (byte* npub = nonce)
            {
                ulong written;
                return Native.DecryptAfterNm(m, &written, null, c, (ulong)ciphertext.Length, ad, (ulong)associatedData.Length, npub, _state.Pointer) == 0;
            }
        }
        finally
        {
            if (added)
            {
                _state.DangerousRelease();
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _state.Dispose();
        }
    }

    private static void CheckNonce(ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != NonceLength)
        {
            throw new ArgumentException("An AES-GCM nonce is 12 bytes.", nameof(nonce));
        }
    }

    /// <summary>The aligned native state; zeroed and freed when the last call using it returns.</summary>
    private sealed class StateHandle : SafeHandle
    {
        private StateHandle()
            : base(IntPtr.Zero, ownsHandle: true)
        {
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        public void* Pointer => (void*)handle;

        public static StateHandle Allocate()
        {
            var h = new StateHandle();
            var p = NativeMemory.AlignedAlloc(StateBytes, StateAlignment);
            NativeMemory.Clear(p, StateBytes);
            h.SetHandle((IntPtr)p);
            return h;
        }

        protected override bool ReleaseHandle()
        {
            NativeMemory.Clear((void*)handle, StateBytes);
            NativeMemory.AlignedFree((void*)handle);
            return true;
        }
    }

    /// <summary>The libsodium NSec ships and loads (package <c>libsodium</c>, native asset "libsodium").</summary>
    private static partial class Native
    {
        private const string Library = "libsodium";

        [LibraryImport(Library, EntryPoint = "crypto_aead_aes256gcm_is_available")]
        public static partial int IsAvailable();

        [LibraryImport(Library, EntryPoint = "crypto_aead_aes256gcm_beforenm")]
        public static partial int BeforeNm(void* state, byte* key);

        [LibraryImport(Library, EntryPoint = "crypto_aead_aes256gcm_encrypt_afternm")]
        public static partial int EncryptAfterNm(byte* c, ulong* clen, byte* m, ulong mlen, byte* ad, ulong adlen, byte* nsec, byte* npub, void* state);

        [LibraryImport(Library, EntryPoint = "crypto_aead_aes256gcm_decrypt_afternm")]
        public static partial int DecryptAfterNm(byte* m, ulong* mlen, byte* nsec, byte* c, ulong clen, byte* ad, ulong adlen, byte* npub, void* state);
    }
}
