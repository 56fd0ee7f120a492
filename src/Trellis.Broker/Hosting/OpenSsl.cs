using System.Runtime.InteropServices;

namespace Trellis.Broker.Hosting;

/// <summary>
/// The OpenSSL 3 calls the TLS listener makes (libssl and libcrypto, the same libraries .NET's own
/// TLS uses on Linux). Handles are raw pointers; <see cref="TlsServerContext"/> and
/// <see cref="TlsSession"/> own them.
/// </summary>
internal static unsafe partial class OpenSsl
{
    public const int SslErrorNone = 0;
    public const int SslErrorSsl = 1;
    public const int SslErrorWantRead = 2;
    public const int SslErrorWantWrite = 3;
    public const int SslErrorSyscall = 5;
    public const int SslErrorZeroReturn = 6;
    public const int VerifyPeer = 0x01;
    public const int VerifyFailIfNoPeerCert = 0x02;
    public const ulong OpNoTicket = 1UL << 14;
    public const ulong OpNoRenegotiation = 1UL << 30;
    public const long ModeReleaseBuffers = 0x10;
    public const long SessCacheServer = 0x0002;
    public const int Tls12Version = 0x0303;
    private const int SslCtrlMode = 33;
    private const int SslCtrlSetSessCacheSize = 42;
    private const int SslCtrlSetSessCacheMode = 44;
    private const int SslCtrlSetMinProtoVersion = 123;
    private const int BioCtrlPending = 10;
    private const string Ssl = "libssl.so.3";
    private const string Crypto = "libcrypto.so.3";

    /// <summary>Whether OpenSSL 3 loads here (Linux with libssl3, as .NET's own TLS needs).</summary>
    public static bool IsAvailable { get; } = Probe();

    public static long SetMode(nint ctx, long mode) => SSL_CTX_ctrl(ctx, SslCtrlMode, mode, 0);

    public static long SetSessionCacheSize(nint ctx, long size) => SSL_CTX_ctrl(ctx, SslCtrlSetSessCacheSize, size, 0);

    public static long SetSessionCacheMode(nint ctx, long mode) => SSL_CTX_ctrl(ctx, SslCtrlSetSessCacheMode, mode, 0);

    public static long SetMinProtocol(nint ctx, int version) => SSL_CTX_ctrl(ctx, SslCtrlSetMinProtoVersion, version, 0);

    public static long Pending(nint bio) => BIO_ctrl(bio, BioCtrlPending, 0, 0);

    public static nint DecodeCertificate(ReadOnlySpan<byte> der)
    {
        fixed (byte* start = der)
        {
            var cursor = start;
            return d2i_X509(0, &cursor, der.Length);
        }
    }

    public static nint DecodePrivateKey(ReadOnlySpan<byte> der)
    {
        fixed (byte* start = der)
        {
            var cursor = start;
            return d2i_AutoPrivateKey(0, &cursor, der.Length);
        }
    }

    /// <summary>The oldest error on this thread's OpenSSL queue, as text; the queue is cleared.</summary>
    public static string TakeError()
    {
        var code = ERR_get_error();
        ERR_clear_error();
        if (code == 0)
        {
            return "no error detail";
        }

        var buffer = stackalloc byte[256];
        ERR_error_string_n(code, buffer, 256);
        return Marshal.PtrToStringUTF8((nint)buffer) ?? "unknown error";
    }

    public static string VerifyErrorText(long code) => Marshal.PtrToStringUTF8(X509_verify_cert_error_string(code)) ?? $"error {code}";

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            return OpenSSL_version_num() >= 0x30000000UL;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

#pragma warning disable SA1300, IDE1006 // OpenSSL's own names
    [LibraryImport(Crypto)]
    public static partial ulong OpenSSL_version_num();

    [LibraryImport(Ssl)]
    public static partial nint TLS_server_method();

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_new(nint method);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_free(nint ctx);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_use_certificate(nint ctx, nint x509);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_use_PrivateKey(nint ctx, nint pkey);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_check_private_key(nint ctx);

    [LibraryImport(Ssl)]
    public static partial ulong SSL_CTX_set_options(nint ctx, ulong options);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_set_verify(nint ctx, int mode, delegate* unmanaged<int, nint, int> callback);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_set_num_tickets(nint ctx, nuint tickets);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_set_session_id_context(nint ctx, byte* context, uint length);

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_get_cert_store(nint ctx);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_set_ex_data(nint ctx, int index, nint data);

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_get_ex_data(nint ctx, int index);

    [LibraryImport(Ssl)]
    public static partial nint SSL_new(nint ctx);

    [LibraryImport(Ssl)]
    public static partial void SSL_free(nint ssl);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_bio(nint ssl, nint rbio, nint wbio);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_accept_state(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_do_handshake(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_read_ex(nint ssl, byte* buffer, nint length, nint* read);

    [LibraryImport(Ssl)]
    public static partial int SSL_write_ex(nint ssl, byte* buffer, nint length, nint* written);

    [LibraryImport(Ssl)]
    public static partial int SSL_get_error(nint ssl, int result);

    [LibraryImport(Ssl)]
    public static partial int SSL_shutdown(nint ssl);

    public const int SentShutdown = 1;
    public const int ReceivedShutdown = 2;

    [LibraryImport(Ssl)]
    public static partial void SSL_set_shutdown(nint ssl, int mode);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get1_peer_certificate(nint ssl);

    [LibraryImport(Ssl)]
    public static partial long SSL_get_verify_result(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_set_ex_data(nint ssl, int index, nint data);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get_ex_data(nint ssl, int index);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get_SSL_CTX(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_get_ex_data_X509_STORE_CTX_idx();

    [LibraryImport(Crypto)]
    public static partial nint BIO_s_mem();

    [LibraryImport(Crypto)]
    public static partial nint BIO_new(nint method);

    [LibraryImport(Crypto)]
    public static partial int BIO_write(nint bio, byte* data, int length);

    [LibraryImport(Crypto)]
    public static partial int BIO_read(nint bio, byte* data, int length);

    [LibraryImport(Crypto)]
    public static partial int X509_STORE_add_cert(nint store, nint x509);

    [LibraryImport(Crypto)]
    public static partial nint X509_STORE_CTX_get0_cert(nint storeCtx);

    [LibraryImport(Crypto)]
    public static partial nint X509_STORE_CTX_get_ex_data(nint storeCtx, int index);

    [LibraryImport(Crypto)]
    public static partial int X509_STORE_CTX_get_error(nint storeCtx);

    [LibraryImport(Crypto)]
    public static partial void X509_free(nint x509);

    [LibraryImport(Crypto)]
    public static partial void EVP_PKEY_free(nint pkey);

    [LibraryImport(Crypto)]
    public static partial void ERR_clear_error();

    [LibraryImport(Ssl)]
    private static partial long SSL_CTX_ctrl(nint ctx, int cmd, long larg, nint parg);

    [LibraryImport(Crypto)]
    private static partial long BIO_ctrl(nint bio, int cmd, long larg, nint parg);

    [LibraryImport(Crypto)]
    private static partial nint d2i_X509(nint reuse, byte** input, long length);

    [LibraryImport(Crypto)]
    private static partial nint d2i_AutoPrivateKey(nint reuse, byte** input, long length);

    [LibraryImport(Crypto)]
    private static partial ulong ERR_get_error();

    [LibraryImport(Crypto)]
    private static partial void ERR_error_string_n(ulong code, byte* buffer, nuint length);

    [LibraryImport(Crypto)]
    private static partial nint X509_verify_cert_error_string(long code);
#pragma warning restore SA1300, IDE1006
}
