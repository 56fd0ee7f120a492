using System.Security.Cryptography.X509Certificates;

namespace Trellis.Broker;

/// <summary>
/// Decides who may connect. The broker calls it once per CONNECT; it answers from the registry.
/// </summary>
public interface IBrokerAuthenticator
{
    /// <summary>Increments whenever a policy, an attachment or a certificate changes.</summary>
    long PolicyGeneration { get; }

    AuthenticationResult Authenticate(ConnectRequest request);

    /// <summary>
    /// The principal of a persistent session restored after a restart, until its client reconnects.
    /// Deliveries queue under it and are checked again (iot:Receive) when they are sent.
    /// </summary>
    ClientPrincipal RestoredPrincipal(string clientId);
}

/// <summary>What the broker knows about a connecting client.</summary>
public sealed record ConnectRequest(string ClientId, string? UserName, byte[]? Password, X509Certificate2? ClientCertificate, bool IsTls, string RemoteAddress)
{
    /// <summary>
    /// An API user's access key id that the host verified before the connection began (the web
    /// console's session cookie on <c>/console/mqtt</c>): the client acts as that user, whatever
    /// user name and password its CONNECT carries.
    /// </summary>
    public string? VerifiedUser { get; init; }
}

/// <summary>The verdict: a principal, or an MQTT 5 CONNACK reason code and a message for the log.</summary>
public sealed record AuthenticationResult(ClientPrincipal? Principal, byte ReasonCode, string? Message)
{
    public static AuthenticationResult Allow(ClientPrincipal principal) => new(principal, 0, null);

    public static AuthenticationResult Deny(byte reasonCode, string message) => new(null, reasonCode, message);
}
