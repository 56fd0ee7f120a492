using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Broker.Hosting;

/// <summary>
/// The MQTT-over-TLS listener's OpenSSL context: the server certificate and key, Trellis's CA as the
/// only trust anchor, a client certificate required, TLS 1.2 and 1.3, and a server-side session
/// cache so that a reconnecting device resumes its session instead of repeating the full handshake.
/// One context serves every connection of the listener (as Mosquitto runs OpenSSL); its sessions
/// (<see cref="TlsSession"/>) run on the broker's event loops over memory buffers, never on the
/// runtime's socket engine. Where OpenSSL 3 or the event loops are not available the listener is
/// Kestrel's (see TrellisServer).
/// </summary>
public sealed unsafe class TlsServerContext : IDisposable
{
    /// <summary>Sessions kept for resumption (about 1.5 KiB each with the client's certificate).</summary>
    private const int SessionCacheSize = 20_000;

    private readonly Func<X509Certificate2, bool> _acceptsUntrusted;
    private GCHandle _self;
    private nint _ctx;

    /// <param name="serverCertificate">The server's certificate with its private key.</param>
    /// <param name="trustedCa">The CA whose certificates are trusted without asking the registry.</param>
    /// <param name="acceptsUntrusted">
    /// Asked about a client certificate that does not chain to <paramref name="trustedCa"/> (or
    /// fails its checks): a certificate registered on its own, or issued by a CA registered for
    /// just-in-time provisioning, is still welcome.
    /// </param>
    public TlsServerContext(X509Certificate2 serverCertificate, X509Certificate2 trustedCa, Func<X509Certificate2, bool> acceptsUntrusted)
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("the TLS listener needs OpenSSL 3 and the event loops (Linux)");
        }

        _acceptsUntrusted = acceptsUntrusted;
        var key = (serverCertificate.GetECDsaPrivateKey()?.ExportPkcs8PrivateKey() ?? serverCertificate.GetRSAPrivateKey()?.ExportPkcs8PrivateKey())
            ?? throw new ArgumentException("the server certificate has no ECDSA or RSA private key", nameof(serverCertificate));
        _ctx = OpenSsl.SSL_CTX_new(OpenSsl.TLS_server_method());
        if (_ctx == 0)
        {
            throw new InvalidOperationException("SSL_CTX_new failed: " + OpenSsl.TakeError());
        }

        try
        {
            Configure(serverCertificate.RawData, key, trustedCa.RawData);
        }
        catch
        {
            OpenSsl.SSL_CTX_free(_ctx);
            throw;
        }
        finally
        {
            Array.Clear(key);
        }

        _self = GCHandle.Alloc(this);
        _ = OpenSsl.SSL_CTX_set_ex_data(_ctx, 0, GCHandle.ToIntPtr(_self));
    }

    /// <summary>Whether this platform runs the broker's own TLS listener.</summary>
    public static bool IsSupported => Native.EventLoopsSupported && OpenSsl.IsAvailable;

    internal nint Handle => _ctx;

    public void Dispose()
    {
        // Sessions hold a reference to the context: OpenSSL frees it when the last one goes.
        if (_ctx != 0)
        {
            _ = OpenSsl.SSL_CTX_set_ex_data(_ctx, 0, 0); // a late handshake is refused, not sent to a freed handle
            OpenSsl.SSL_CTX_free(_ctx);
            _ctx = 0;
            _self.Free();
        }
    }

    /// <summary>
    /// OpenSSL's verdict on each certificate of the client's chain. A failing leaf (no path to
    /// Trellis's CA, expired, not yet valid) goes to the registry once per connection; the answer is
    /// kept on the connection for the other failures of the same chain.
    /// </summary>
    [UnmanagedCallersOnly]
    private static int Verify(int preverifyOk, nint store)
    {
        if (preverifyOk == 1)
        {
            return 1;
        }

        try
        {
            var ssl = OpenSsl.X509_STORE_CTX_get_ex_data(store, OpenSsl.SSL_get_ex_data_X509_STORE_CTX_idx());
            if (ssl == 0)
            {
                return 0;
            }

            var decided = OpenSsl.SSL_get_ex_data(ssl, 0);
            if (decided != 0)
            {
                return decided == 1 ? 1 : 0;
            }

            var handle = OpenSsl.SSL_CTX_get_ex_data(OpenSsl.SSL_get_SSL_CTX(ssl), 0);
            var leaf = OpenSsl.X509_STORE_CTX_get0_cert(store);
            if (handle == 0 || leaf == 0 || GCHandle.FromIntPtr(handle).Target is not TlsServerContext owner)
            {
                return 0;
            }

            using var certificate = new X509Certificate2(leaf); // its own reference to OpenSSL's parsed certificate
            var accepted = owner._acceptsUntrusted(certificate);
            _ = OpenSsl.SSL_set_ex_data(ssl, 0, accepted ? 1 : 2);
            return accepted ? 1 : 0;
        }
        catch (Exception)
        {
            return 0; // never let an exception cross into OpenSSL: refuse instead
        }
    }

    private void Configure(byte[] certificateDer, byte[] keyDer, byte[] caDer)
    {
        var certificate = OpenSsl.DecodeCertificate(certificateDer);
        var key = OpenSsl.DecodePrivateKey(keyDer);
        var ca = OpenSsl.DecodeCertificate(caDer);
        try
        {
            if (certificate == 0 || key == 0 || ca == 0)
            {
                throw new InvalidOperationException("the server certificate, its key or the CA did not decode: " + OpenSsl.TakeError());
            }

            if (OpenSsl.SSL_CTX_use_certificate(_ctx, certificate) != 1
                || OpenSsl.SSL_CTX_use_PrivateKey(_ctx, key) != 1
                || OpenSsl.SSL_CTX_check_private_key(_ctx) != 1
                || OpenSsl.X509_STORE_add_cert(OpenSsl.SSL_CTX_get_cert_store(_ctx), ca) != 1)
            {
                throw new InvalidOperationException("the server certificate or CA was refused: " + OpenSsl.TakeError());
            }
        }
        finally
        {
            OpenSsl.X509_free(certificate);
            OpenSsl.EVP_PKEY_free(key);
            OpenSsl.X509_free(ca);
        }

        _ = OpenSsl.SetMinProtocol(_ctx, OpenSsl.Tls12Version);

        // Stateful resumption: a TLS 1.3 ticket is then only a session id into this cache. With
        // stateless tickets every resumption decrypts and re-parses the session, client
        // certificate included, which cost more than the handshake it saved.
        _ = OpenSsl.SSL_CTX_set_options(_ctx, OpenSsl.OpNoTicket | OpenSsl.OpNoRenegotiation);
        _ = OpenSsl.SetSessionCacheMode(_ctx, OpenSsl.SessCacheServer);
        _ = OpenSsl.SetSessionCacheSize(_ctx, SessionCacheSize);

        // One TLS 1.3 ticket per handshake, not OpenSSL's default two: with stateful tickets each one
        // is a session of its own in the cache, and a device resumes one session at a time.
        _ = OpenSsl.SSL_CTX_set_num_tickets(_ctx, 1);
        var context = "trellis-mqtts"u8;
        fixed (byte* id = context)
        {
            _ = OpenSsl.SSL_CTX_set_session_id_context(_ctx, id, (uint)context.Length);
        }

        // An idle connection gives its record buffers back.
        _ = OpenSsl.SetMode(_ctx, OpenSsl.ModeReleaseBuffers);
        OpenSsl.SSL_CTX_set_verify(_ctx, OpenSsl.VerifyPeer | OpenSsl.VerifyFailIfNoPeerCert, &Verify);
    }
}
