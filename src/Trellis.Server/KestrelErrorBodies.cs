using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;

namespace Trellis.Server;

/// <summary>
/// Requests that Kestrel refuses before the application sees them (a request line longer than
/// its limit, a NUL or another forbidden byte in the target or a header, headers too large) are
/// answered by Kestrel itself with an empty body, and Kestrel offers no hook to change that. This
/// connection filter on the API listener recognises such an answer (a 4xx or 5xx status with
/// <c>Content-Length: 0</c> and <c>Connection: close</c>, which the application never sends) as it
/// is flushed and gives it the AWS-style JSON body and <c>x-amzn-ErrorType</c> of every other
/// error. Everything else passes through unchanged.
/// </summary>
internal static class KestrelErrorBodies
{
    public static IConnectionBuilder UseAwsErrorBodies(this IConnectionBuilder builder) => builder.Use(next => async context =>
    {
        var transport = context.Transport;
        await using var output = new RewritingWriter(transport.Output);
        context.Transport = new Duplex(transport.Input, output);
        try
        {
            await next(context);
        }
        finally
        {
            context.Transport = transport;
        }
    });

    /// <summary>The body and error type for one of Kestrel's own refusals.</summary>
    internal static (string Type, string Message) Describe(int status) => status switch
    {
        414 => ("RequestUriTooLongException", "The request target (path and query) is too long: use shorter names or send the values in the body."),
        431 => ("RequestHeaderFieldsTooLargeException", "The request headers are too large."),
        413 => ("RequestEntityTooLargeException", "The request body is too large."),
        411 => ("LengthRequiredException", "The request needs a Content-Length or chunked body."),
        408 => ("RequestTimeoutException", "The request did not arrive in time: the client sent its headers or body too slowly."),
        505 => ("HttpVersionNotSupportedException", "Only HTTP/1.1 and HTTP/2 are served."),
        _ when status >= 500 => ("InternalFailureException", "The server could not handle the request."),
        _ => ("InvalidRequestException", "The HTTP request is malformed: its request line or a header holds a byte that is not allowed (such as NUL or a control character), or it breaks HTTP/1.1 framing. Fix the client's request."),
    };

    /// <summary>The answer with a JSON body in place of Kestrel's empty one, or null when <paramref name="head"/> is not such an answer.</summary>
    internal static byte[]? Rewrite(ReadOnlySpan<byte> head)
    {
        if (!head.StartsWith("HTTP/1.1 "u8) || head.Length < 12 || head[9] is not ((byte)'4' or (byte)'5'))
        {
            return null;
        }

        var end = head.IndexOf("\r\n\r\n"u8);
        if (end < 0 || end + 4 != head.Length)
        {
            return null;
        }

        var headers = head[..(end + 2)];
        if (headers.IndexOf("\r\nContent-Length: 0\r\n"u8) < 0 || headers.IndexOf("\r\nConnection: close\r\n"u8) < 0)
        {
            return null;
        }

        var status = int.Parse(Encoding.ASCII.GetString(head.Slice(9, 3)), System.Globalization.CultureInfo.InvariantCulture);
        var (type, message) = Describe(status);
        var body = Encoding.UTF8.GetBytes(new System.Text.Json.Nodes.JsonObject { ["message"] = message }.ToJsonString());
        var text = Encoding.ASCII.GetString(headers).Replace("\r\nContent-Length: 0\r\n", $"\r\nContent-Length: {body.Length}\r\nContent-Type: application/json\r\nx-amzn-ErrorType: {type}\r\n", StringComparison.Ordinal);
        return [.. Encoding.ASCII.GetBytes(text + "\r\n"), .. body];
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>
    /// Gathers what is written until a flush, then passes it on (rewritten when it is one of
    /// Kestrel's empty refusals). Once the connection has switched protocols (a WebSocket's
    /// <c>101</c>), no HTTP answer can follow on it: from then on writes go straight to the
    /// transport, so MQTT over WebSocket is neither gathered nor copied.
    /// </summary>
    private sealed class RewritingWriter(PipeWriter inner) : PipeWriter, IAsyncDisposable
    {
        private System.Buffers.ArrayBufferWriter<byte>? _pending;
        private bool _switched;

        private System.Buffers.ArrayBufferWriter<byte> Pending => _pending ??= new(4096);

        public override void Advance(int bytes)
        {
            if (_switched)
            {
                inner.Advance(bytes);
            }
            else
            {
                Pending.Advance(bytes);
            }
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => _switched ? inner.GetMemory(sizeHint) : Pending.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => _switched ? inner.GetSpan(sizeHint) : Pending.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            Pass();
            inner.Complete(exception);
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            Pass();
            await inner.CompleteAsync(exception);
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Pass();
            return inner.FlushAsync(cancellationToken);
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private void Pass()
        {
            if (_switched || _pending is null || _pending.WrittenCount == 0)
            {
                return;
            }

            var written = _pending.WrittenSpan;
            if (Rewrite(written) is { } answer)
            {
                inner.Write(answer);
            }
            else
            {
                inner.Write(written);
                _switched = written.StartsWith("HTTP/1.1 101 "u8);
            }

            if (_switched || _pending.Capacity > 64 * 1024)
            {
                _pending = null; // nothing more to gather, or a large export's chunk is not kept for the connection's life
            }
            else
            {
                _pending.ResetWrittenCount();
            }
        }
    }
}
