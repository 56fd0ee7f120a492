using System.Buffers;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Broker.Hosting;

/// <summary>
/// One TLS connection's OpenSSL state over two memory buffers: what the socket delivered goes in
/// (<see cref="Feed"/>), plaintext comes out (<see cref="Read"/>); plaintext to send goes in and
/// records come out (<see cref="Encrypt"/>). The transport does all socket I/O itself, so OpenSSL
/// never blocks and never touches the descriptor. The reader (loop or pool thread) and the writer
/// (whichever thread flushes) share the connection: every call holds the session's lock.
/// </summary>
internal sealed unsafe class TlsSession : IDisposable
{
    private readonly Lock _lock = new();
    private nint _ssl;
    private nint _writeBio;

    public TlsSession(TlsServerContext context)
    {
        _ssl = OpenSsl.SSL_new(context.Handle);
        var readBio = OpenSsl.BIO_new(OpenSsl.BIO_s_mem());
        _writeBio = OpenSsl.BIO_new(OpenSsl.BIO_s_mem());
        if (_ssl == 0 || readBio == 0 || _writeBio == 0)
        {
            throw new IOException("could not start a TLS session: " + OpenSsl.TakeError());
        }

        ReadBio = readBio;
        OpenSsl.SSL_set_bio(_ssl, readBio, _writeBio); // the session owns both buffers from here
        OpenSsl.SSL_set_accept_state(_ssl);
    }

    /// <summary>What a step of the handshake came to.</summary>
    public enum Step
    {
        /// <summary>More of the client's flight is needed.</summary>
        More,

        /// <summary>The handshake is complete: application data follows.</summary>
        Done,

        /// <summary>The handshake failed (see the failure text); the connection is to be closed.</summary>
        Failed,
    }

    /// <summary>Whether the handshake has completed.</summary>
    public bool Secured { get; private set; }

    private nint ReadBio { get; }

    /// <summary>Hands OpenSSL what the socket delivered; false once the session is closed.</summary>
    public bool Feed(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            if (_ssl == 0)
            {
                return false;
            }

            fixed (byte* start = data)
            {
                return OpenSsl.BIO_write(ReadBio, start, data.Length) == data.Length;
            }
        }
    }

    /// <summary>Advances the handshake with what was fed; its answer waits in <see cref="TakeOutput"/>.</summary>
    public Step Handshake(out string? failure)
    {
        failure = null;
        lock (_lock)
        {
            if (_ssl == 0)
            {
                failure = "the connection was closed";
                return Step.Failed;
            }

            OpenSsl.ERR_clear_error();
            var result = OpenSsl.SSL_do_handshake(_ssl);
            if (result == 1)
            {
                Secured = true;
                return Step.Done;
            }

            var error = OpenSsl.SSL_get_error(_ssl, result);
            if (error == OpenSsl.SslErrorWantRead)
            {
                return Step.More;
            }

            var verify = OpenSsl.SSL_get_verify_result(_ssl);
            failure = verify != 0
                ? "client certificate refused: " + OpenSsl.VerifyErrorText(verify)
                : error == OpenSsl.SslErrorSyscall ? "the client closed the connection during the handshake" : OpenSsl.TakeError();
            OpenSsl.ERR_clear_error();
            return Step.Failed;
        }
    }

    /// <summary>
    /// Decrypts into <paramref name="destination"/>: the byte count, 0 when more input is needed,
    /// -1 when the stream ended (the client's close_notify, a bad record, a closed session).
    /// </summary>
    public int Read(Span<byte> destination, out string? failure)
    {
        failure = null;
        lock (_lock)
        {
            if (_ssl == 0)
            {
                return -1;
            }

            OpenSsl.ERR_clear_error();
            nint read = 0;
            int result;
            fixed (byte* start = destination)
            {
                result = OpenSsl.SSL_read_ex(_ssl, start, destination.Length, &read);
            }

            if (result == 1)
            {
                return (int)read;
            }

            var error = OpenSsl.SSL_get_error(_ssl, result);
            if (error == OpenSsl.SslErrorWantRead)
            {
                return 0;
            }

            if (error != OpenSsl.SslErrorZeroReturn)
            {
                failure = error == OpenSsl.SslErrorSyscall ? "the client closed the connection without close_notify" : OpenSsl.TakeError();
            }

            OpenSsl.ERR_clear_error();
            return -1;
        }
    }

    /// <summary>
    /// Encrypts <paramref name="buffer"/>[<paramref name="prefix"/>..<paramref name="length"/>] into a
    /// buffer rented from the shared pool, after the first <paramref name="prefix"/> bytes (records
    /// already made and not yet sent), and after whatever OpenSSL itself had waiting to go out.
    /// Returns the new buffer; <paramref name="total"/> is its length in use.
    /// </summary>
    public byte[] Encrypt(byte[] buffer, int prefix, int length, out int total)
    {
        lock (_lock)
        {
            if (_ssl == 0)
            {
                throw new IOException("the connection is closed");
            }

            if (length > prefix)
            {
                OpenSsl.ERR_clear_error();
                nint written = 0;
                int result;
                fixed (byte* start = buffer)
                {
                    result = OpenSsl.SSL_write_ex(_ssl, start + prefix, length - prefix, &written);
                }

                if (result != 1 || written != length - prefix)
                {
                    throw new IOException("TLS write failed: " + OpenSsl.TakeError());
                }
            }

            var pending = (int)OpenSsl.Pending(_writeBio);
            var output = ArrayPool<byte>.Shared.Rent(Math.Max(prefix + pending, 1));
            buffer.AsSpan(0, prefix).CopyTo(output);
            total = prefix + Drain(output.AsSpan(prefix, pending));
            return output;
        }
    }

    /// <summary>What OpenSSL wrote on its own (handshake flights, alerts) and the socket must carry, or null.</summary>
    public byte[]? TakeOutput(out int length)
    {
        lock (_lock)
        {
            length = 0;
            if (_ssl == 0)
            {
                return null;
            }

            var pending = (int)OpenSsl.Pending(_writeBio);
            if (pending == 0)
            {
                return null;
            }

            var output = ArrayPool<byte>.Shared.Rent(pending);
            length = Drain(output.AsSpan(0, pending));
            return output;
        }
    }

    /// <summary>The client's certificate (also on a resumed session), or null.</summary>
    public X509Certificate2? PeerCertificate()
    {
        lock (_lock)
        {
            var peer = _ssl == 0 ? 0 : OpenSsl.SSL_get1_peer_certificate(_ssl);
            if (peer == 0)
            {
                return null;
            }

            try
            {
                // The runtime takes its own reference to OpenSSL's parsed certificate: decoding the
                // DER again (OpenSSL 3's key decoders) cost about as much as the rest of a connect.
                return new X509Certificate2(peer);
            }
            finally
            {
                OpenSsl.X509_free(peer);
            }
        }
    }

    /// <summary>Queues the close_notify alert (taken with <see cref="TakeOutput"/>); only once the handshake is done.</summary>
    public void Shutdown()
    {
        lock (_lock)
        {
            if (_ssl != 0 && Secured)
            {
                OpenSsl.ERR_clear_error();
                _ = OpenSsl.SSL_shutdown(_ssl);
                OpenSsl.ERR_clear_error();
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_ssl != 0)
            {
                if (Secured)
                {
                    // Devices often hang up without a close_notify (or before ours arrives). OpenSSL
                    // would then drop the session from the cache as if the connection had failed, and
                    // the device's next connect would be a full handshake. Marking the close as done
                    // keeps it resumable (as nginx does); a fatal TLS error removes it regardless, and a
                    // resumed session's certificate is still checked at CONNECT.
                    OpenSsl.SSL_set_shutdown(_ssl, OpenSsl.SentShutdown | OpenSsl.ReceivedShutdown);
                }

                OpenSsl.SSL_free(_ssl); // frees both memory buffers
                _ssl = 0;
                _writeBio = 0;
            }
        }
    }

    private int Drain(Span<byte> destination)
    {
        var total = 0;
        fixed (byte* start = destination)
        {
            while (total < destination.Length)
            {
                var n = OpenSsl.BIO_read(_writeBio, start + total, destination.Length - total);
                if (n <= 0)
                {
                    break;
                }

                total += n;
            }
        }

        return total;
    }
}
