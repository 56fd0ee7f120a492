namespace Trellis.IntegrationTests.TestKit;

/// <summary>Policy documents the tests use.</summary>
public static class Policies
{
    /// <summary>The per-thing policy from AWS's guides: a device may use only devices/{its name}/….</summary>
    public const string PerThing = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive","iot:RetainPublish"],"Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*"}]}
        """;

    /// <summary>A device may use only its own jobs topics (<c>$aws/things/{its name}/jobs/…</c>).</summary>
    public const string OwnJobs = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"}]}
        """;

    /// <summary>A device may use its own jobs and streams topics (<c>$aws/things/{its name}/jobs|streams/…</c>), as AWS's OTA guides allow.</summary>
    public const string OwnJobsAndStreams = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/streams/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/streams/*"]}]}
        """;
}
