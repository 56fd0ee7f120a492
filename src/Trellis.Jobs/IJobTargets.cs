namespace Trellis.Jobs;

/// <summary>What jobs need of the registry: which things and groups exist and who is in which group.</summary>
public interface IJobTargets
{
    bool ThingExists(string thing);

    bool GroupExists(string group);

    /// <summary>Every thing in a group and its descendant groups.</summary>
    IReadOnlyCollection<string> ThingsInGroup(string group);

    /// <summary>The ARNs of the groups a thing is in and of all their ancestors.</summary>
    IReadOnlyCollection<string> GroupArnsOf(string thing);

    /// <summary>The ARN of a resource ("thing/NAME", "job/ID" …) in this server's region and account.</summary>
    string Arn(string resource);
}

/// <summary>How the jobs service reaches devices and rules: replies and notifications to things, events to everyone.</summary>
public interface IJobPublisher
{
    /// <summary>A reply or notification on a thing's jobs topic, to its subscribers and to <paramref name="requesterClientId"/> (when not null) even unsubscribed.</summary>
    void Reply(string topic, byte[] payload, string? requesterClientId);

    /// <summary>A job or job-execution event on <c>$aws/events/…</c>, routed like any message (rules see it).</summary>
    void Publish(string topic, byte[] payload);

    /// <summary>Whether a notification on <paramref name="topic"/> would reach anyone; when not, it is neither built nor sent.</summary>
    bool Wanted(string topic) => true;
}
