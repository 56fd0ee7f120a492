namespace Trellis.Registry;

/// <summary>
/// The policy <c>trellis provision</c> and the console's device bundles attach when none is named:
/// the device connects as its thing's name and uses its own <c>devices/{thing}/…</c> topics, its
/// shadow, its jobs and its file streams. It is created on first use.
/// </summary>
public static class DefaultDevicePolicy
{
    public const string Name = "TrellisDefaultDevicePolicy";

    public const string Document = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/streams/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/streams/*"]}]}
        """;
}
