using System.Text.Json.Nodes;
using Trellis.Fleet.Defender;
using Trellis.Registry;
using Trellis.Rules.Alarms;
using Trellis.Rules.Notifications;

namespace Trellis.Server;

/// <summary>What notifies: Device Defender's violation events (not the suppressed ones), each step of an alarm, and presence changes.</summary>
internal static class Notifications
{
    public static void Wire(Notifier notifier, Defender defender, AlarmEngine alarms, ThingConnectivity connectivity)
    {
        defender.ViolationRaised += e =>
        {
            if (e.Suppressed)
            {
                return;
            }

            notifier.Notify(new Notification(
                "violations",
                $"{e.ThingName}: {e.Type} on behavior '{e.Behavior.Name}' ({e.Behavior.Metric}) of security profile {e.Profile}",
                e.ThingName,
                null,
                new JsonObject
                {
                    ["violationId"] = e.ViolationId,
                    ["securityProfileName"] = e.Profile,
                    ["behaviorName"] = e.Behavior.Name,
                    ["metric"] = e.Behavior.Metric,
                    ["violationEventType"] = e.Type,
                    ["metricValue"] = e.Value is null ? null : DefenderMetrics.ToJson(e.Value),
                    ["violationEventTime"] = e.AtMs,
                }));
        };
        alarms.Changed += (alarm, step) => notifier.Notify(new Notification(
            "alarms",
            $"Alarm {alarm.Model} for {alarm.Thing} is {step.State}" + (step.Actor == AlarmEngine.EngineActor ? string.Empty : $" (by {step.Actor})"),
            alarm.Thing,
            alarm.Severity,
            new JsonObject
            {
                ["alarmId"] = alarm.Id,
                ["model"] = alarm.Model,
                ["state"] = step.State,
                ["by"] = step.Actor,
                ["comment"] = step.Comment,
                ["details"] = alarm.Details?.DeepClone(),
                ["startedAt"] = alarm.StartedMs,
            }));
        connectivity.Changed += record =>
        {
            if (notifier.Wants("presence"))
            {
                notifier.Notify(new Notification(
                    "presence",
                    $"{record.ThingName} is " + (record.Connected ? "online" : $"offline ({record.DisconnectReason})"),
                    record.ThingName,
                    null,
                    new JsonObject { ["connected"] = record.Connected, ["disconnectReason"] = record.DisconnectReason, ["timestamp"] = record.TimestampMs }));
            }
        };
    }
}
