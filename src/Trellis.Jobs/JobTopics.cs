namespace Trellis.Jobs;

/// <summary>The device-side operations on <c>$aws/things/{thing}/jobs/…</c>.</summary>
public enum JobTopicOperation
{
    GetPending,
    StartNext,
    Describe,
    Update,
}

/// <summary>Parses AWS IoT's job request topics: <c>$aws/things/{thing}/jobs/get</c>, <c>…/start-next</c>, <c>…/{jobId}/get</c>, <c>…/{jobId}/update</c>.</summary>
public static class JobTopics
{
    private const string Prefix = "$aws/things/";

    public static bool TryParse(string topic, out string thing, out string? jobId, out JobTopicOperation operation)
    {
        thing = string.Empty;
        jobId = null;
        operation = default;
        if (!topic.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = topic[Prefix.Length..].Split('/');
        if (parts.Length < 3 || parts[1] != "jobs" || parts[0].Length == 0)
        {
            return false;
        }

        thing = parts[0];
        switch (parts.Length)
        {
            case 3 when parts[2] == "get":
                operation = JobTopicOperation.GetPending;
                return true;
            case 3 when parts[2] == "start-next":
                operation = JobTopicOperation.StartNext;
                return true;
            case 4 when parts[2].Length > 0 && parts[3] is "get" or "update":
                jobId = parts[2];
                operation = parts[3] == "get" ? JobTopicOperation.Describe : JobTopicOperation.Update;
                return true;
            default:
                return false;
        }
    }

    public static string Notify(string thing) => $"{Prefix}{thing}/jobs/notify";

    public static string NotifyNext(string thing) => $"{Prefix}{thing}/jobs/notify-next";
}
