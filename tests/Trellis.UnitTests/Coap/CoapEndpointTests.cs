using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Coap;

namespace Trellis.UnitTests.Coap;

/// <summary>The endpoint's own confirmable messages (Observe notifications) on a real UDP socket.</summary>
public sealed class CoapEndpointTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Only_one_confirmable_notification_is_outstanding_to_a_client_at_a_time()
    {
        await using var endpoint = CoapEndpoint.Start(new IPEndPoint(IPAddress.Loopback, 0), new Nothing(), NullLogger.Instance);
        using var client = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var remote = (IPEndPoint)client.Client.LocalEndPoint!;
        var content = new CoapResponse(CoapCode.Content, "x"u8.ToArray());

        // NSTART = 1 (RFC 7252 §4.7): a second confirmable notification while the first is unacknowledged goes as NON.
        Assert.True(endpoint.Notify(remote, [1], 1, content, confirmable: true));
        Assert.False(endpoint.Notify(remote, [1], 2, content, confirmable: true));
        var first = await ReceiveAsync(client);
        var second = await ReceiveAsync(client);
        Assert.Equal(CoapType.Confirmable, (CoapType)((first[0] >> 4) & 3));
        Assert.Equal(CoapType.NonConfirmable, (CoapType)((second[0] >> 4) & 3));

        // Once the client acknowledges the first, the next may be confirmable again.
        await client.SendAsync(new byte[] { 0x60, 0x00, first[2], first[3] }, endpoint.LocalEndPoint, Ct);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        var confirmable = false;
        while (!confirmable && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Ct);
            confirmable = endpoint.Notify(remote, [1], 3, content, confirmable: true);
            _ = await ReceiveAsync(client);
        }

        Assert.True(confirmable, "the acknowledged CON still counted as outstanding");
    }

    private static async Task<byte[]> ReceiveAsync(UdpClient client)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        wait.CancelAfter(TimeSpan.FromSeconds(5));
        return (await client.ReceiveAsync(wait.Token)).Buffer;
    }

    private sealed class Nothing : ICoapHandler
    {
        public ValueTask<CoapResponse> HandleAsync(CoapRequest request, CancellationToken cancellationToken) => ValueTask.FromResult(new CoapResponse(CoapCode.NotFound));

        public CoapResponse? Admit(CoapRequest firstBlock, long? announcedSize) => null;
    }
}
