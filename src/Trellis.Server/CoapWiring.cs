using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Trellis.Api;
using Trellis.Broker;
using Trellis.Coap;
using Trellis.Shadows;

namespace Trellis.Server;

/// <summary>
/// The CoAP resources (docs/coap.md): <c>POST /topics/{topic…}</c> publishes, <c>GET|POST|DELETE
/// /things/{thing}/shadow[?name=…]</c> are the shadow's get, update and delete, and
/// <c>/.well-known/core</c> lists what the caller may use. A device names itself in the query
/// (<c>thing=NAME&amp;token=TOKEN</c>, its device token, as MQTT's user name and password); plain
/// CoAP without them only with <c>--allow-anonymous</c>. Every request is checked against the
/// device's policies on the MQTT topic it stands for, exactly as the broker checks that topic.
/// </summary>
internal sealed class CoapResources(
    IBrokerAuthenticator authenticator,
    Trellis.Registry.RegistryService registry,
    ShadowService shadows,
    IMessagePublisher publisher,
    Microsoft.Extensions.Options.IOptions<BrokerOptions> broker,
    Trellis.Jobs.Firmware.FileStreams streams,
    CoapObservations observations,
    Trellis.Jobs.JobService jobs,
    CoapPresence presence) : ICoapHandler
{
    /// <summary>The largest body a CoAP request may assemble from blocks: the largest message a device may publish.</summary>
    public int MaxBodyBytes => broker.Value.MaxPacketBytes;

    /// <summary>AWS IoT's limit on a topic name, in UTF-8 bytes.</summary>
    private const int MaxTopicBytes = 256;

    public async ValueTask<CoapResponse> HandleAsync(CoapRequest request, CancellationToken cancellationToken)
    {
        var message = request.Message;
        var segments = message.All(CoapOption.UriPath).Select(o => o.AsText()).ToArray();
        var (principal, clientId, refusal) = Identify(request);
        if (segments is [".well-known", "core"])
        {
            return message.Code == CoapCode.Get ? Discovery(principal, clientId) : CoapResponse.Text(CoapCode.MethodNotAllowed, "Discovery answers GET only.");
        }

        if (refusal is not null)
        {
            return refusal;
        }

        presence.Seen(clientId!, principal!, request.Remote, request.Peer is not null);
        return segments switch
        {
            ["topics", .. var topic] when topic.Length > 0 && message.Code == CoapCode.Get => Observe(request, string.Join('/', topic), principal!),
            ["topics", .. var topic] when topic.Length > 0 => await TopicAsync(message, string.Join('/', topic), principal!),
            ["things", var thing, "shadow"] => await ShadowAsync(request, thing, principal!, clientId!),
            ["things", var thing, "streams", var stream, var file] => await StreamFileAsync(request, thing, stream, file, principal!),
            ["things", var thing, "jobs"] => Jobs(request, thing, null, principal!),
            ["things", var thing, "jobs", var jobId] => Jobs(request, thing, jobId, principal!),
            _ => CoapResponse.Text(CoapCode.NotFound, $"No resource at /{string.Join('/', segments)}: see /.well-known/core."),
        };
    }

    /// <summary>The first block of an upload: the caller must be who it says, and the whole must fit where it goes.</summary>
    public CoapResponse? Admit(CoapRequest firstBlock, long? announcedSize)
    {
        var message = firstBlock.Message;
        var (principal, _, refusal) = Identify(firstBlock);
        if (refusal is not null)
        {
            return refusal;
        }

        var segments = message.All(CoapOption.UriPath).Select(o => o.AsText()).ToArray();
        return segments switch
        {
            ["topics", .. var topic] when topic.Length > 0 && message.Code == CoapCode.Post => Publishing(message, string.Join('/', topic), principal!).Refusal,
            ["things", _, "shadow"] when announcedSize > shadows.Options.MaxDocumentBytes =>
                TooLarge(shadows.Options.MaxDocumentBytes),
            ["things", _, "shadow"] => null,
            _ => CoapResponse.Text(CoapCode.NotFound, "Block-wise uploads go to /topics/… (POST) or a shadow (POST)."),
        };
    }

    /// <summary>
    /// A file of a stream (CreateStream), in Block2 blocks read from the image on disk: what AWS's
    /// MQTT file streams give a constrained device, checked as the MQTT stream request it stands for.
    /// </summary>
    private async Task<CoapResponse> StreamFileAsync(CoapRequest request, string thing, string streamId, string file, ClientPrincipal principal)
    {
        if (request.Message.Code != CoapCode.Get)
        {
            return CoapResponse.Text(CoapCode.MethodNotAllowed, "A stream's file answers GET.");
        }

        var topic = $"$aws/things/{thing}/streams/{streamId}/get/json";
        if (!principal.Policy.CanPublish(topic))
        {
            return CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this device allows iot:Publish on '{topic}', which this request stands for.");
        }

        if (!int.TryParse(file, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var fileId)
            || streams.ImageOf(streamId, fileId) is not { } image)
        {
            return CoapResponse.Text(CoapCode.NotFound, $"Stream '{streamId}' has no file {file}, or its image is no longer stored.");
        }

        var block = request.Block2 ?? new CoapBlock(0, false, 6);
        var buffer = new byte[block.Size];
        var read = await streams.ReadAsync(image, block.Offset, buffer);
        return new CoapResponse(CoapCode.Content, buffer.AsMemory(0, read), [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.OctetStream)], image.Size);
    }

    /// <summary>
    /// The caller's principal from <c>thing</c> and <c>token</c> in the query, or the anonymous one
    /// where the server allows it. A refusal to a caller that proved nothing carries no payload, so
    /// that it is never larger than the request (RFC 7252 §11.3).
    /// </summary>
    private (ClientPrincipal? Principal, string? ClientId, CoapResponse? Refusal) Identify(CoapRequest request)
    {
        var (message, remote) = (request.Message, request.Remote);
        var query = message.Query;
        query.TryGetValue("thing", out var thing);
        query.TryGetValue("token", out var token);
        string clientId;
        ConnectRequest connect;
        if (request.Peer is { } peer)
        {
            // CoAPS: the session is the identity, checked again on every request (a token revoked or
            // a certificate deactivated since the handshake is refused at once).
            if (token is not null)
            {
                return (null, null, CoapResponse.Text(CoapCode.BadRequest, "Over DTLS the session proves who the device is: leave token= out of the query."));
            }

            if (peer.Certificate is { } certificate)
            {
                clientId = thing ?? CertificateClientId(certificate);
                connect = new ConnectRequest(clientId, null, null, certificate, true, remote.Address.ToString());
            }
            else
            {
                if (thing is not null && thing != peer.PskIdentity)
                {
                    return (null, null, CoapResponse.Text(CoapCode.Forbidden, $"This DTLS session is thing '{peer.PskIdentity}' (its PSK identity), not '{thing}'."));
                }

                clientId = peer.PskIdentity!;
                connect = new ConnectRequest(clientId, clientId, Encoding.UTF8.GetBytes(peer.PskCredential as string ?? string.Empty), null, false, remote.Address.ToString());
            }
        }
        else
        {
            if ((thing is null) != (token is null))
            {
                return (null, null, CoapResponse.Text(CoapCode.BadRequest, "Give both thing=NAME and token=TOKEN in the query, or neither."));
            }

            clientId = thing ?? $"coap:{remote}";
            connect = new ConnectRequest(clientId, thing, token is null ? null : Encoding.UTF8.GetBytes(token), null, false, remote.Address.ToString());
        }

        var verdict = authenticator.Authenticate(connect);
        if (verdict.Principal is not { } principal)
        {
            return (null, null, new CoapResponse(CoapCode.Unauthorized));
        }

        if (principal.IsOperator)
        {
            return (null, null, CoapResponse.Text(CoapCode.Forbidden, "An API key is not a device: use the thing's name and one of its device tokens."));
        }

        if (!principal.Policy.CanConnect(clientId))
        {
            return (null, null, CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this token allows iot:Connect for client id '{clientId}'."));
        }

        return (principal, clientId, null);
    }

    /// <summary>
    /// The client id of a CoAPS device that proved a certificate and named no thing: the thing the
    /// certificate is attached to when there is exactly one (so that policies written for
    /// <c>${iot:Connection.Thing.ThingName}</c> apply), else the certificate's id.
    /// </summary>
    private string CertificateClientId(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
    {
        var id = Trellis.Security.Pki.CertificateAuthority.CertificateId(certificate);
        var generation = registry.PolicyGeneration;
        if (_certificateClientIds.TryGetValue(id, out var known) && known.Generation == generation)
        {
            return known.ClientId;
        }

        var clientId = id;
        if (registry.FindCertificate(id) is { } record && registry.ListPrincipalThings(record.Arn, null, 2) is { IsSuccess: true } things && things.Value!.Items.Count == 1)
        {
            clientId = things.Value.Items[0];
        }

        if (_certificateClientIds.Count > 100_000)
        {
            _certificateClientIds.Clear();
        }

        _certificateClientIds[id] = (generation, clientId);
        return clientId;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Generation, string ClientId)> _certificateClientIds = new(StringComparer.Ordinal);

    private static CoapResponse Discovery(ClientPrincipal? principal, string? thing)
    {
        if (principal is null)
        {
            return new CoapResponse(CoapCode.Content, default, [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.LinkFormat)]);
        }

        var links = new List<string> { "</topics>;rt=\"trellis.publish\";ct=42" };
        if (thing is not null && principal.Policy.CanPublish($"$aws/things/{thing}/shadow/get"))
        {
            links.Add($"</things/{thing}/shadow>;rt=\"aws.shadow\";ct=50;obs");
        }

        if (thing is not null && principal.Policy.CanPublish($"$aws/things/{thing}/jobs/$next/get"))
        {
            links.Add($"</things/{thing}/jobs>;rt=\"aws.jobs\";ct=50");
            links.Add($"</things/{thing}/jobs/$next>;rt=\"aws.jobs.next\";ct=50;obs");
        }

        return new CoapResponse(CoapCode.Content, Encoding.UTF8.GetBytes(string.Join(',', links)), [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.LinkFormat)]);
    }

    /// <summary>GET with Observe 0 on a topic filter: each message the same MQTT subscription would get, as a notification; Observe 1 ends it.</summary>
    private CoapResponse Observe(CoapRequest request, string filter, ClientPrincipal principal)
    {
        var message = request.Message;
        switch (message.First(CoapOption.Observe)?.AsValue())
        {
            case 1:
                observations.Deregister(request);
                return new CoapResponse(CoapCode.Content);
            case 0:
                if (!principal.Policy.CanSubscribe(filter))
                {
                    return CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this device allows iot:Subscribe on '{filter}'.");
                }

                return observations.Register(request, filter, principal, json: false, out var sequence)
                    ? new CoapResponse(CoapCode.Content, default, [CoapOption.Of(CoapOption.Observe, sequence)])
                    : CoapResponse.Text(CoapCode.ServiceUnavailable, $"This source holds {CoapObservations.MaxPerSource} observations (or the server its limit): end one first.");
            default:
                return CoapResponse.Text(CoapCode.MethodNotAllowed, "GET on a topic observes it (Observe 0) or stops (Observe 1); POST publishes.");
        }
    }

    private async Task<CoapResponse> TopicAsync(CoapMessage message, string topic, ClientPrincipal principal)
    {
        if (message.Code != CoapCode.Post)
        {
            return CoapResponse.Text(CoapCode.MethodNotAllowed, "POST publishes to a topic; GET with Observe observes it.");
        }

        var (refusal, qos, retain) = Publishing(message, topic, principal);
        if (refusal is not null)
        {
            return refusal;
        }

        if (message.Payload.Length > MaxBodyBytes)
        {
            return TooLarge(MaxBodyBytes);
        }

        // Answered once routed (and, at QoS 1, as durable as the broker makes a PUBACKed message).
        await publisher.PublishAsync(topic, message.Payload, qos, retain);
        return new CoapResponse(CoapCode.Changed);
    }

    /// <summary>
    /// A publish's topic, its <c>qos</c> and <c>retain</c>, and the device's right to it: checked for
    /// the request, and for a block-wise one already at its first block, before any of it is kept.
    /// </summary>
    private static (CoapResponse? Refusal, byte Qos, bool Retain) Publishing(CoapMessage message, string topic, ClientPrincipal principal)
    {
        if (topic.Contains('+', StringComparison.Ordinal) || topic.Contains('#', StringComparison.Ordinal) || Encoding.UTF8.GetByteCount(topic) > MaxTopicBytes)
        {
            return (CoapResponse.Text(CoapCode.BadRequest, $"'{topic}' is not a topic one can publish to: no wildcards, at most {MaxTopicBytes} bytes."), 0, false);
        }

        var query = message.Query;
        var qos = query.GetValueOrDefault("qos", "0");
        var retain = query.GetValueOrDefault("retain", "false");
        if (qos is not ("0" or "1") || retain is not ("true" or "false"))
        {
            return (CoapResponse.Text(CoapCode.BadRequest, "qos is 0 or 1, retain is true or false."), 0, false);
        }

        if (!principal.Policy.CanPublish(topic) || (retain == "true" && !principal.Policy.CanRetainPublish(topic)))
        {
            return (CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this device allows iot:{(retain == "true" ? "RetainPublish" : "Publish")} on '{topic}'."), 0, false);
        }

        return (null, qos == "1" ? (byte)1 : (byte)0, retain == "true");
    }

    /// <summary>
    /// The device side of jobs (docs/jobs.md), each request standing for the MQTT request topic it
    /// names and answered with the body MQTT's <c>…/accepted</c> or <c>…/rejected</c> would carry:
    /// <c>GET /things/{t}/jobs</c> (pending executions), <c>GET …/jobs/$next</c> (the next one; with
    /// Observe, each notify-next), <c>POST …/jobs/$next</c> (start it), <c>GET …/jobs/{id}</c>,
    /// <c>PUT|POST …/jobs/{id}</c> (update its status).
    /// </summary>
    private CoapResponse Jobs(CoapRequest request, string thing, string? jobId, ClientPrincipal principal)
    {
        var message = request.Message;
        var read = message.Code == CoapCode.Get;
        var write = message.Code == CoapCode.Post || message.Code == CoapCode.Put;
        var topic = (jobId, read, write) switch
        {
            (null, true, _) => $"$aws/things/{thing}/jobs/get",
            ("$next", true, _) => $"$aws/things/{thing}/jobs/$next/get",
            ("$next", _, true) => $"$aws/things/{thing}/jobs/start-next",
            (not null and not "$next", true, _) => $"$aws/things/{thing}/jobs/{jobId}/get",
            (not null and not "$next", _, true) => $"$aws/things/{thing}/jobs/{jobId}/update",
            _ => null,
        };
        if (topic is null)
        {
            return CoapResponse.Text(CoapCode.MethodNotAllowed, "/jobs answers GET; /jobs/$next GET (Observe for notify-next) and POST (start it); /jobs/{jobId} GET and PUT (update).");
        }

        if (!principal.Policy.CanPublish(topic))
        {
            return CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this device allows iot:Publish on '{topic}', which this request stands for.");
        }

        if (message.Payload.Length > MaxBodyBytes)
        {
            return TooLarge(MaxBodyBytes);
        }

        var (accepted, body) = jobs.Answer(topic, message.Payload)!.Value;
        var json = CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.Json);
        var payload = Encoding.UTF8.GetBytes(body.ToJsonString());
        if (!accepted)
        {
            var code = body["code"]?.GetValue<string>() switch
            {
                "InvalidRequest" or "InvalidJson" => CoapCode.BadRequest,
                "ResourceNotFound" => CoapCode.NotFound,
                "VersionMismatch" or "InvalidStateTransition" or "TerminalStateReached" => CoapCode.Conflict,
                "RequestThrottled" => CoapCode.ServiceUnavailable,
                _ => CoapCode.InternalServerError,
            };
            return new CoapResponse(code, payload, [json]);
        }

        var observing = jobId == "$next" && read ? Follow(request, $"$aws/things/{thing}/jobs/notify-next", principal) : null;
        return new CoapResponse(write ? CoapCode.Changed : CoapCode.Content, payload, observing is { } observe ? [json, observe] : [json]);
    }

    private async Task<CoapResponse> ShadowAsync(CoapRequest request, string thing, ClientPrincipal principal, string clientId)
    {
        var message = request.Message;
        var name = message.Query.GetValueOrDefault("name");
        var operation = message.Code == CoapCode.Get ? "get"
            : message.Code == CoapCode.Post || message.Code == CoapCode.Put ? "update"
            : message.Code == CoapCode.Delete ? "delete"
            : null;
        if (operation is null)
        {
            return CoapResponse.Text(CoapCode.MethodNotAllowed, "A shadow answers GET, POST (update) and DELETE.");
        }

        var topic = $"$aws/things/{thing}/shadow{(name is null ? string.Empty : "/name/" + name)}/{operation}";
        if (!principal.Policy.CanPublish(topic))
        {
            return CoapResponse.Text(CoapCode.Forbidden, $"No policy attached to this device allows iot:Publish on '{topic}', which this request stands for.");
        }

        var key = new ShadowKey(thing, name ?? string.Empty);
        var result = operation switch
        {
            "get" => await shadows.GetAsync(key, ReadOnlyMemory<byte>.Empty),
            "update" when message.Payload.Length > shadows.Options.MaxDocumentBytes => ShadowResult.Fail(ShadowError.TooLarge),
            "update" => await shadows.UpdateAsync(key, message.Payload, clientId),
            _ => await shadows.DeleteAsync(key, ReadOnlyMemory<byte>.Empty, clientId),
        };
        var json = CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.Json);
        if (result.Error is { } error)
        {
            var body = new JsonObject { ["code"] = error.Code, ["message"] = error.Message }.ToJsonString();
            return new CoapResponse(CoapCode.Of(error.Code / 100, error.Code % 100), Encoding.UTF8.GetBytes(body), [json]);
        }

        var code = operation switch { "get" => CoapCode.Content, "update" => CoapCode.Changed, _ => CoapCode.Deleted };

        // Observing a shadow is observing its deltas, as a subscription to …/update/delta would.
        var observing = operation == "get" ? Follow(request, $"$aws/things/{thing}/shadow{(name is null ? string.Empty : "/name/" + name)}/update/delta", principal) : null;
        return new CoapResponse(code, result.Document, observing is { } observe ? [json, observe] : [json]);
    }

    /// <summary>
    /// Observe on a GET whose answer is a JSON document (a shadow, a thing's next job): Observe 1
    /// ends the source's observation; Observe 0 registers one on <paramref name="topic"/> when the
    /// policies allow iot:Subscribe there and the source has room, and gives the Observe option to
    /// answer with. Otherwise the GET is answered once, without Observe (RFC 7641 §4.1).
    /// </summary>
    private CoapOption? Follow(CoapRequest request, string topic, ClientPrincipal principal)
    {
        switch (request.Message.First(CoapOption.Observe)?.AsValue())
        {
            case 1:
                observations.Deregister(request);
                return null;
            case 0 when principal.Policy.CanSubscribe(topic) && observations.Register(request, topic, principal, json: true, out var sequence):
                return CoapOption.Of(CoapOption.Observe, sequence);
            default:
                return null;
        }
    }

    /// <summary>4.13 with Size1 naming the largest body the resource takes (RFC 7959 §4).</summary>
    private static CoapResponse TooLarge(int maxBytes) => new(CoapCode.RequestEntityTooLarge, default, [CoapOption.Of(CoapOption.Size1, (uint)maxBytes)]);
}

/// <summary>The DTLS side of CoAP: where its keys and certificates come from.</summary>
internal static class CoapWiring
{
    /// <summary>
    /// PSK mode: the identity is a thing's name, the key its newest device token created with
    /// <c>dtlsPsk</c>. Certificate mode: the server's certificate (issued by Trellis's CA, sent with
    /// it), and a client certificate is let through as the MQTT TLS listener lets it through, its
    /// status and policies then decided on each request.
    /// </summary>
    public static Trellis.Coap.Dtls.CoapDtlsOptions DtlsOptions(Trellis.Registry.RegistryService registry, System.Security.Cryptography.X509Certificates.X509Certificate2 serverCertificate,
        System.Security.Cryptography.X509Certificates.X509Certificate2 ca) => new()
        {
            Certificate = serverCertificate,
            Chain = [ca],
            PskOf = identity => registry.DtlsPskOf(identity) is { } psk ? (Encoding.UTF8.GetBytes(psk.Token), psk.Token) : null,
            CheckClientCertificate = certificate => registry.AcceptsClientCertificate(certificate)
                ? null
                : $"certificate {Trellis.Security.Pki.CertificateAuthority.CertificateId(certificate)} ('{certificate.Subject}') is outside its validity, or neither issued by Trellis's CA or a registered CA nor registered itself: issue one with CreateKeysAndCertificate or register it (RegisterCertificate, RegisterCACertificate)",
        };
}

/// <summary>Runs the CoAP endpoints (plain and DTLS) for the life of the server; a port it cannot bind stops start-up.</summary>
internal sealed class CoapWorker(IPEndPoint? at, (IPEndPoint At, Trellis.Coap.Dtls.CoapDtlsOptions Options)? secure, CoapResources resources, CoapObservations observations, CoapPresence presence,
    ILogger<CoapEndpoint> logger)
    : IHostedService, IAsyncDisposable
{
    private CoapEndpoint? _endpoint;
    private CoapEndpoint? _secure;

    public int Port => _endpoint?.LocalEndPoint.Port ?? 0;

    public int SecurePort => _secure?.LocalEndPoint.Port ?? 0;

    /// <summary>The DTLS endpoint, while it runs (its counters).</summary>
    public CoapEndpoint? Secure => _secure;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (at is not null)
        {
            _endpoint = Bind(at, "--coap", null);
            observations.Attach(_endpoint, secure: false);
        }

        if (secure is { } s)
        {
            _secure = Bind(s.At, "--coaps", s.Options);
            observations.Attach(_secure, secure: true);
            _secure.SessionEnded += presence.SessionEnded;
        }

        return Task.CompletedTask;
    }

    private CoapEndpoint Bind(IPEndPoint where, string flag, Trellis.Coap.Dtls.CoapDtlsOptions? dtls)
    {
        try
        {
            return CoapEndpoint.Start(where, resources, logger, maxBodyBytes: resources.MaxBodyBytes, dtls: dtls);
        }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            throw new InvalidOperationException($"UDP port {where} is in use by another program: give CoAP another with {flag} HOST:PORT, or turn it off with {flag} off.", e);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var endpoint in new[] { _endpoint, _secure })
        {
            if (endpoint is not null)
            {
                await endpoint.DisposeAsync();
            }
        }

        _endpoint = null;
        _secure = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None);
}
