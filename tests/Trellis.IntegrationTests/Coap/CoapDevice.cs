using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Coap;

/// <summary>A thing for the CoAP tests, with a device token (also its DTLS pre-shared key when asked) under a policy of its own.</summary>
internal sealed record CoapDevice(string Thing, string ThingArn, string Token, string TokenId, string Policy)
{
    public static async Task<CoapDevice> CreateAsync(TrellisHost host, string prefix, string policyDocument, bool psk, CancellationToken ct)
    {
        var thing = TrellisHost.Unique(prefix);
        var policy = TrellisHost.Unique(prefix + "pol");
        var made = await host.IotCallsAsync([("create_thing", new { thingName = thing }), ("create_policy", new { policyName = policy, policyDocument })], ct);
        Assert.All(made, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        var (token, tokenId) = await TokenAsync(host, thing, policy, psk, ct);
        return new CoapDevice(thing, made[0]!["body"]!["thingArn"]!.GetValue<string>(), token, tokenId, policy);
    }

    /// <summary>Another token for <paramref name="thing"/>, under <paramref name="policy"/>; with <paramref name="psk"/> the answer must say it is a DTLS key.</summary>
    public static async Task<(string Token, string TokenId)> TokenAsync(TrellisHost host, string thing, string policy, bool psk, CancellationToken ct)
    {
        var created = (await host.SignedRequestAsync("POST", $"/api/things/{thing}/tokens", psk ? """{"dtlsPsk":true}""" : "{}", ct))["body"]!;
        Assert.Equal(psk, created["dtlsPsk"]?.GetValue<bool>() ?? false);
        var attached = await host.IotCallsAsync([("attach_policy", new { policyName = policy, target = created["tokenArn"]!.GetValue<string>() })], ct);
        Assert.Equal(200, attached[0]!["status"]!.GetValue<int>());
        return (created["token"]!.GetValue<string>(), created["tokenId"]!.GetValue<string>());
    }
}
