using Microsoft.Extensions.Hosting;
using Trellis.Broker;
using Trellis.Jobs;
using Trellis.Registry;

namespace Trellis.Server;

/// <summary>What jobs need of the registry: things, groups (with their descendants) and a thing's groups (with their ancestors).</summary>
internal sealed class RegistryJobTargets(RegistryService registry) : IJobTargets
{
    public bool ThingExists(string thing) => registry.ThingExists(thing);

    public bool GroupExists(string group) => registry.DescribeThingGroup(group).IsSuccess;

    public IReadOnlyCollection<string> ThingsInGroup(string group) => registry.AllThingsInThingGroup(group) ?? [];

    public IReadOnlyCollection<string> GroupArnsOf(string thing) => registry.PolicyGroupArnsFor(thing).ToHashSet(StringComparer.Ordinal);

    public string Arn(string resource) => registry.Options.Arn(resource);
}

/// <summary>Job replies and notifications go to the thing's subscribers and the requester (QoS 1); events are routed like any message, so rules see them.</summary>
internal sealed class BrokerJobPublisher(MqttBroker broker) : IJobPublisher
{
    public void Reply(string topic, byte[] payload, string? requesterClientId) => broker.PublishReply(topic, payload, requesterClientId);

    public void Publish(string topic, byte[] payload) => broker.PublishFromServer(topic, payload, qos: 1, origin: "jobs");

    public bool Wanted(string topic) => broker.IsWanted(topic);
}

/// <summary>Hands MQTT publishes on <c>$aws/things/{thing}/jobs/…</c> to the jobs service.</summary>
internal sealed class JobTopicHandler(JobService jobs) : IServerTopicHandler
{
    public bool Handles(string topic) => JobTopics.TryParse(topic, out _, out _, out _);

    public Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        jobs.HandleMqtt(topic, payload, clientId);
        return Task.CompletedTask;
    }
}

/// <summary>Hands MQTT publishes on <c>$aws/things/{thing}/streams/{id}/get|describe/{json|cbor}</c> to the file streams.</summary>
internal sealed class StreamTopicHandler(Trellis.Jobs.Firmware.FileStreams streams) : IServerTopicHandler
{
    public bool Handles(string topic) => Trellis.Jobs.Firmware.FileStreams.IsRequest(topic);

    public Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        streams.HandleMqtt(topic, payload, clientId);
        return Task.CompletedTask;
    }
}

/// <summary>Runs the jobs rollout (release at each job's rate, schedules, time-outs) for the life of the server.</summary>
internal sealed class JobsWorker(JobService jobs) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() => jobs.RunAsync(stoppingToken), stoppingToken);
}
