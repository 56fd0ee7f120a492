namespace Trellis.Shadows;

/// <summary>One shadow: the classic shadow of a thing (<see cref="Name"/> empty) or one of its named shadows.</summary>
public readonly record struct ShadowKey(string Thing, string Name)
{
    public bool IsClassic => Name.Length == 0;

    /// <summary>The MQTT topic prefix of this shadow: <c>$aws/things/{thing}/shadow[/name/{name}]</c>.</summary>
    public string TopicPrefix => IsClassic ? $"$aws/things/{Thing}/shadow" : $"$aws/things/{Thing}/shadow/name/{Name}";

    public override string ToString() => IsClassic ? Thing : $"{Thing}/{Name}";
}
