using Trellis.Broker;
using Trellis.Security.Policies;

namespace Trellis.Gateway.Local;

/// <summary>
/// Who may use the gateway's local MQTT listener: a leaf of <see cref="LeafRegistry"/>, with its
/// thing name as client id and user name and its password. A leaf's local policy lets it publish,
/// subscribe and receive on its own topics only: <c>$aws/things/{leaf}/…</c> (shadows, jobs),
/// <c>devices/{leaf}/…</c> and <c>{leaf}/…</c>; upstream, what it sends is checked again under the
/// gateway's own policy.
/// </summary>
public sealed class LeafAuthenticator(LeafRegistry leaves, string region = "us-east-1", string account = "000000000000") : IBrokerAuthenticator
{
    private const string LeafPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:ClientId}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive","iot:RetainPublish"],"Resource":[
            "arn:aws:iot:*:*:topic/$aws/things/${iot:ClientId}/*","arn:aws:iot:*:*:topic/devices/${iot:ClientId}/*","arn:aws:iot:*:*:topic/${iot:ClientId}/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":[
            "arn:aws:iot:*:*:topicfilter/$aws/things/${iot:ClientId}/*","arn:aws:iot:*:*:topicfilter/devices/${iot:ClientId}/*","arn:aws:iot:*:*:topicfilter/${iot:ClientId}/*"]}]}
        """;

    private static readonly PolicyDocument Document = PolicyDocument.TryParse(LeafPolicy, out var document, out var error)
        ? document! : throw new InvalidOperationException("the leaf policy does not parse: " + error);

    public long PolicyGeneration => 0;

    public AuthenticationResult Authenticate(ConnectRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!leaves.Contains(request.ClientId))
        {
            return AuthenticationResult.Deny(
                0x85, // Client Identifier not valid
                $"client id '{request.ClientId}' is not a leaf of this gateway: add it with `trellis gateway add-leaf --data DIR --thing {request.ClientId}`");
        }

        if (request.UserName != request.ClientId || request.Password is null || !leaves.Verify(request.ClientId, request.Password))
        {
            return AuthenticationResult.Deny(
                0x86, // Bad User Name or Password
                $"leaf '{request.ClientId}' must give its thing name as user name and the password `trellis gateway add-leaf` printed");
        }

        return AuthenticationResult.Allow(Principal(request.ClientId));
    }

    public ClientPrincipal RestoredPrincipal(string clientId) => Principal(clientId);

    private ClientPrincipal Principal(string leaf)
    {
        var variables = new PolicyVariables { ["iot:ClientId"] = leaf };
        return new ClientPrincipal(CompiledPolicySet.Compile([Document], variables, region, account), 0)
        {
            ThingName = leaf,
            PrincipalIdentifier = leaf,
        };
    }
}
