using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Console;

/// <summary>
/// The console's pages beyond things and rules, in Debian's Chromium: groups, policies (a mistake
/// in a document pointed out), certificates (revoked from the page), the MQTT client (messages
/// from mosquitto_pub seen in the page, the page's publish seen by mosquitto_sub, a viewer refused
/// by the broker), a thing's live messages, the rule test box, a job created and canceled,
/// alarms acknowledged with a comment, and the audit log filtered. Each step asserts on what the
/// page shows and on the server's state.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ConsolePagesTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Screenshots => Directory.CreateDirectory(Path.Combine(TrellisCli.RepositoryRoot(), "artifacts", "console-screenshots")).FullName;

    private async Task<(IPlaywright Playwright, IBrowser Browser, IPage Page)> SignInAsync(string role, Func<IDialog, Task>? dialogs = null)
    {
        var (playwright, browser) = await Chromium.LaunchAsync();
        var key = await host.CreateApiUserAsync(TrellisHost.Unique("pages" + role), role, Ct);
        var context = await browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 } });
        context.SetDefaultTimeout(20_000);
        var page = await context.NewPageAsync();
        var respond = dialogs ?? (d => d.AcceptAsync());
        page.Dialog += (_, dialog) => _ = respond(dialog); // confirm() and prompt() are answered, not dismissed
        await Chromium.SignInAsync(page, host.Endpoint, key.KeyId, key.Secret);
        return (playwright, browser, page);
    }

    /// <summary>Opens a page from the navigation and waits for it, so that what follows never acts on the page before.</summary>
    private static async Task OpenAsync(IPage page, string link, string title)
    {
        await page.ClickAsync($"nav >> a:text-is('{link}')");
        await page.Locator($"h1:text-is('{title}')").WaitForAsync();
    }

    /// <summary>Makes an alarm model and raises its alarm on a new boiler with one hot reading; returns the boiler's name.</summary>
    private async Task<string> RaiseAlarmAsync(string prefix)
    {
        var model = TrellisHost.Unique(prefix + "alarm");
        var boiler = TrellisHost.Unique(prefix + "boiler");
        var put = await host.SignedRequestAsync("PUT", $"/api/alarm-models/{model}",
            $$"""{"sql": "SELECT temperature FROM '{{model}}/+/telemetry' WHERE temperature > 80", "severity": "CRITICAL", "thing": "topic(2)"}""", Ct);
        Assert.True(put["status"]!.GetValue<int>() == 200, put.ToJsonString());
        await PublishAsync($"{model}/{boiler}/telemetry", """{"temperature": 95}""");
        return boiler;
    }

    private async Task PublishAsync(string topic, string payload)
    {
        var sent = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pagespub")), "-t", topic, "-m", payload, "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(sent.ExitCode == 0, sent.Output);
    }

    [Fact]
    public async Task A_search_typed_while_the_things_page_is_still_loading_is_what_stays_shown()
    {
        var (playwright, browser, page) = await SignInAsync("operator");
        using var _ = playwright;
        await using var __ = browser;
        var searched = TrellisHost.Unique("racething");
        var made = await host.IotCallsAsync([("create_thing", new { thingName = TrellisHost.Unique("raceother") }), ("create_thing", new { thingName = searched })], Ct);
        Assert.All(made, m => Assert.Equal(200, m!["status"]!.GetValue<int>()));

        // The first, unfiltered drawing waits on its rows' connectivity; those answers are held until
        // the search typed meanwhile has drawn its row, then let through.
        var held = await HeldRequests.OnAsync(page, new Regex("/connectivity-data"), url => !url.Contains(searched, StringComparison.Ordinal));

        await OpenAsync(page, "Things", "Things");
        Assert.True(await Eventually.TrueAsync(() => held.Held > 0, Timeout, Ct), "the things page asked for no connectivity");
        await page.FillAsync("input[name=query]", searched);
        await page.Locator($"input[data-thing='{searched}']").WaitForAsync();

        held.Release();
        Assert.True(await Eventually.TrueAsync(() => held.Finished >= held.Held, Timeout, Ct), $"{held.Finished} of {held.Held} held answers arrived");
        await page.WaitForTimeoutAsync(500); // the late answers reach the page's script
        Assert.Equal(1, await page.Locator("input[data-thing]").CountAsync());
        Assert.Equal(1, await page.Locator($"input[data-thing='{searched}']").CountAsync());
    }

    [Fact]
    public async Task A_filter_chosen_while_the_alarms_page_refreshes_is_what_stays_shown()
    {
        var boiler = await RaiseAlarmAsync("race");
        Assert.True(await Eventually.TrueAsync(async () => (await host.SignedRequestAsync("GET", $"/api/alarms?thing={boiler}", null, Ct))["body"]!["alarms"]!.AsArray().Count == 1, Timeout, Ct), "the alarm was not raised");

        var (playwright, browser, page) = await SignInAsync("viewer");
        using var _ = playwright;
        await using var __ = browser;

        // The page refreshes every 5 s. Once it has drawn, the next refresh (active and acknowledged
        // alarms: the boiler's among them) is held until the cleared ones, chosen meanwhile, have
        // drawn, then let through.
        var held = await HeldRequests.OnAsync(page, new Regex(@"/api/alarms\?state=ACTIVE(,|%2C)ACKNOWLEDGED"), _ => true, holding: false);

        await OpenAsync(page, "Alarms", "Alarms");
        var row = page.Locator($"[data-table=alarms] a:text-is('{boiler}')");
        await row.WaitForAsync();
        held.Start();
        Assert.True(await Eventually.TrueAsync(() => held.Held > 0, TimeSpan.FromSeconds(15), Ct), "the alarms page did not refresh");
        await page.SelectOptionAsync("select[aria-label='Alarm state']", "CLEARED");
        await row.WaitForAsync(new() { State = WaitForSelectorState.Detached }); // the cleared alarms' drawing

        held.Release();
        Assert.True(await Eventually.TrueAsync(() => held.Finished >= 1, Timeout, Ct), "the held answer did not arrive");
        await page.WaitForTimeoutAsync(500); // the late answer reaches the page's script
        Assert.Equal("CLEARED", await page.InputValueAsync("select[aria-label='Alarm state']"));
        Assert.Equal(0, await page.Locator($"[data-table=alarms] a:text-is('{boiler}')").CountAsync());
    }

    [Fact]
    public async Task Groups_types_shadows_provisioning_policies_and_certificates_are_managed_from_their_pages()
    {
        var (playwright, browser, page) = await SignInAsync("operator");
        using var _ = playwright;
        await using var __ = browser;
        var thing = TrellisHost.Unique("pgthing");
        var made = await host.IotCallsAsync([("create_thing", new { thingName = thing }), ("create_keys_and_certificate", new { setAsActive = true })], Ct);
        Assert.Equal(200, made[0]!["status"]!.GetValue<int>());
        var certificateId = made[1]!["body"]!["certificateId"]!.GetValue<string>();

        // A group made on its page, the thing added from the group's page.
        var group = TrellisHost.Unique("pggroup");
        await OpenAsync(page, "Groups", "Thing groups");
        await page.FillAsync("input[name=name]", group);
        await page.ClickAsync("text=Create group");
        await page.ClickAsync($"a:text-is('{group}')");
        await page.FillAsync("input[name=thing]", thing);
        await page.ClickAsync("text=Add thing");
        await page.Locator($"td >> a:text-is('{thing}')").WaitForAsync();
        Assert.Contains(thing, host.Server.Registry.AllThingsInThingGroup(group)!);

        // From the things page: a second thing selected and added to the group.
        var second = TrellisHost.Unique("pgthing");
        Assert.Equal(200, (await host.IotCallsAsync([("create_thing", new { thingName = second })], Ct))[0]!["status"]!.GetValue<int>());
        await OpenAsync(page, "Things", "Things");
        await page.FillAsync("input[name=query]", second);
        await page.CheckAsync($"input[data-thing='{second}']");
        await page.SelectOptionAsync("select[aria-label='Thing group']", group);
        await page.ClickAsync("button:text-is('Add to group')");
        await page.Locator("[role=status]").Filter(new() { HasText = $"Added 1 thing to {group}" }).WaitForAsync();
        Assert.Contains(second, host.Server.Registry.AllThingsInThingGroup(group)!);

        // A thing type made on its page, then deprecated.
        var type = TrellisHost.Unique("pgtype");
        await OpenAsync(page, "Types", "Thing types");
        await page.FillAsync("input[name=name]", type);
        await page.FillAsync("input[name=attributes]", "floor, room");
        await page.ClickAsync("text=Create type");
        var typeRow = page.Locator($"tr:has(td:text-is('{type}'))");
        await typeRow.Locator("td:text-is('floor, room')").WaitForAsync();
        await typeRow.Locator("button:text-is('Deprecate')").ClickAsync();
        await typeRow.Locator("td:text-is('deprecated')").WaitForAsync();

        // A named shadow shows on its own tab of the thing's page.
        var named = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, shadowName = "config", payload = new { state = new { desired = new { interval = 30 } } } })], Ct);
        Assert.Equal(200, named[0]!["status"]!.GetValue<int>());
        await page.GotoAsync($"{host.Endpoint}/#/things/{thing}");
        await page.ClickAsync("[role=tab]:text-is('config')");
        await page.Locator("pre[data-part=desired]").Filter(new() { HasText = "\"interval\": 30" }).WaitForAsync();
        await page.Locator("h2:text-is('Edit desired state of config')").WaitForAsync();
        await page.Locator($"a:text-is('{group}')").WaitForAsync(); // its groups

        // A claim certificate for a fleet-provisioning template, downloaded from the provisioning page.
        var template = TrellisHost.Unique("pgtemplate");
        var created = await host.IotCallsAsync([("create_provisioning_template", new
        {
            templateName = template, enabled = true, provisioningRoleArn = "arn:aws:iam::000000000000:role/p",
            templateBody = """{"Parameters": {"Name": {"Type": "String"}}, "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Name"}}}}}""",
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        await OpenAsync(page, "Provisioning", "Provisioning templates");
        var templateRow = page.Locator($"tr:has(summary:text-is('{template}'))");
        var claim = await page.RunAndWaitForDownloadAsync(() => templateRow.Locator("button:text-is('Claim certificate')").ClickAsync());
        Assert.Equal($"{template}-claim.cert.pem", claim.SuggestedFilename);
        var pem = await File.ReadAllTextAsync(await claim.PathAsync(), Ct);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", pem, StringComparison.Ordinal);
        await templateRow.Locator("summary").ClickAsync();
        await templateRow.Locator("pre").Filter(new() { HasText = "AWS::IoT::Thing" }).WaitForAsync();

        // A policy with an action AWS IoT does not define is refused, and the page says which.
        var policy = TrellisHost.Unique("pgpolicy");
        await OpenAsync(page, "Policies", "Policies");
        await page.FillAsync("input[name=name]", policy);
        await page.FillAsync("textarea[name=document]", """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Conect","Resource":"*"}]}""");
        await page.ClickAsync("text=Create policy");
        await page.Locator("p.error").Filter(new() { HasText = "iot:Conect" }).WaitForAsync();
        await page.FillAsync("textarea[name=document]", """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}""");
        await page.ClickAsync("text=Create policy");
        await page.ClickAsync($"a:text-is('{policy}')");
        // The list page has a document box too: fill the policy page's only once it has drawn (the
        // hash change that replaces the list comes a moment after the click).
        await page.Locator("p").Filter(new() { HasText = "Default version 1; versions 1." }).WaitForAsync();
        await page.FillAsync("textarea[name=document]", """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Publish"],"Resource":"*"}]}""");
        await page.ClickAsync("text=Save as new default version");
        await page.Locator("[data-field=policy-result].ok").Filter(new() { HasText = "Version 2" }).WaitForAsync();
        var described = await host.IotCallsAsync([("get_policy", new { policyName = policy })], Ct);
        Assert.Equal("2", described[0]!["body"]!["defaultVersionId"]!.GetValue<string>());
        Assert.Contains("iot:Publish", described[0]!["body"]!["policyDocument"]!.GetValue<string>(), StringComparison.Ordinal);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "policy.png"), FullPage = true });

        // A certificate revoked from the certificates page.
        await OpenAsync(page, "Certificates", "Certificates");
        var row = page.Locator($"tr:has(code:text-is('{certificateId}'))");
        await row.Locator("text=Revoke").ClickAsync();
        await row.Locator("[data-field=certificate-status]:text-is('REVOKED')").WaitForAsync();
        Assert.Equal(Trellis.Registry.CertificateStatus.Revoked, host.Server.Registry.DescribeCertificate(certificateId).Value!.Status);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "certificates.png") });
    }

    [Fact]
    public async Task The_mqtt_client_subscribes_and_publishes_as_the_signed_in_user_and_a_thing_page_shows_its_messages_live()
    {
        var (playwright, browser, page) = await SignInAsync("operator");
        using var _ = playwright;
        await using var __ = browser;
        var prefix = TrellisHost.Unique("pgmqtt");

        await OpenAsync(page, "MQTT client", "MQTT client");
        await page.Locator("[data-field=mqtt-state].ok").WaitForAsync();
        await page.FillAsync("input[name=filter]", $"{prefix}/#");
        await page.ClickAsync("button:text-is('Subscribe')");
        await page.Locator("[data-list=subscriptions] code").Filter(new() { HasText = $"{prefix}/#" }).WaitForAsync();
        await PublishAsync($"{prefix}/in", "<b>bold?</b> 42");
        await page.Locator("[data-list=messages] li").Filter(new() { HasText = "<b>bold?</b> 42" }).WaitForAsync();
        Assert.Equal(0, await page.Locator("[data-list=messages] b").CountAsync()); // shown as text

        using (var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("pgsub")), "-t", $"{prefix}/out", "-q", "1", "-C", "1"]))
        {
            Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.HasSubscribers($"{prefix}/out"), Timeout, Ct), sub.Stderr);
            await page.FillAsync("input[name=topic]", $"{prefix}/out");
            await page.FillAsync("textarea[name=payload]", """{"from":"console"}""");
            await page.SelectOptionAsync("select[name=qos] >> nth=1", "1");
            await page.ClickAsync("form >> button:text-is('Publish')");
            Assert.True(await sub.WaitForLineAsync(l => l.Contains("\"from\":\"console\"", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', sub.Lines) + sub.Stderr);
        }

        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "mqtt.png") });

        // A thing's page follows the messages on its topics.
        var thing = TrellisHost.Unique("pglive");
        Assert.Equal(200, (await host.IotCallsAsync([("create_thing", new { thingName = thing })], Ct))[0]!["status"]!.GetValue<int>());
        await page.GotoAsync($"{host.Endpoint}/#/things/{thing}");
        await page.Locator("[data-field=live]:text-is('live')").WaitForAsync();
        await PublishAsync($"site/{thing}/telemetry", """{"temp": 21}""");
        await page.Locator("[data-list=recent] li").Filter(new() { HasText = $"site/{thing}/telemetry" }).WaitForAsync();
    }

    [Fact]
    public async Task A_viewer_subscribes_but_the_broker_refuses_its_publish_and_the_mqtt_socket_opens_only_from_the_console()
    {
        var (playwright, browser, page) = await SignInAsync("viewer");
        using var _ = playwright;
        await using var __ = browser;
        var prefix = TrellisHost.Unique("pgview");
        await OpenAsync(page, "MQTT client", "MQTT client");
        await page.Locator("[data-field=mqtt-state].ok").WaitForAsync();
        Assert.Equal(0, await page.Locator("button:text-is('Publish')").CountAsync());
        await page.FillAsync("input[name=filter]", $"{prefix}/#");
        await page.ClickAsync("button:text-is('Subscribe')");
        await page.Locator("[data-list=subscriptions] code").WaitForAsync();
        await PublishAsync($"{prefix}/x", "seen by a viewer");
        await page.Locator("[data-list=messages] li").Filter(new() { HasText = "seen by a viewer" }).WaitForAsync();

        // The page's own client asked to publish at QoS 1: the broker says no (0x87) and nothing is delivered.
        var refusal = await page.EvaluateAsync<string>("""
            async topic => {
              const { MqttClient } = await import('/console/mqtt.js');
              const client = new MqttClient(() => {});
              await client.connect('viewer-probe-' + Date.now());
              try { await client.publish(topic, 'x', 1); return 'published'; } catch (e) { return e.message; } finally { client.close(); }
            }
            """, $"{prefix}/forbidden");
        Assert.Contains("not authorized (0x87)", refusal, StringComparison.Ordinal);

        // The MQTT socket opens only from the console's own origin, and only with a session.
        var cookie = (await page.Context.CookiesAsync()).Single(c => c.Name == "trellis_session");
        using var http = new HttpClient();
        foreach (var (origin, withCookie, expected) in new[] { ("http://evil.example", true, 403), (host.Endpoint, false, 403) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, host.Endpoint + "/console/mqtt");
            request.Headers.Add("Connection", "Upgrade");
            request.Headers.Add("Upgrade", "websocket");
            request.Headers.Add("Sec-WebSocket-Version", "13");
            request.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
            request.Headers.Add("Sec-WebSocket-Protocol", "mqtt");
            request.Headers.Add("Origin", origin);
            if (withCookie)
            {
                request.Headers.Add("Cookie", $"trellis_session={cookie.Value}");
            }

            using var response = await http.SendAsync(request, Ct);
            Assert.Equal(expected, (int)response.StatusCode);
        }

        // Signing out in one tab ends the session's MQTT socket in another.
        var other = await page.Context.NewPageAsync();
        await other.GotoAsync($"{host.Endpoint}/#/mqtt");
        await other.Locator("[data-field=mqtt-state].ok").WaitForAsync();
        Assert.Contains(host.Server.Broker.ConnectedClientIds(), c => c.StartsWith("console-", StringComparison.Ordinal));
        await page.ClickAsync("#signout");
        await other.Locator("[data-field=mqtt-state].error").Filter(new() { HasText = "Not connected" }).WaitForAsync();
        Assert.True(await Eventually.TrueAsync(() => !host.Server.Broker.ConnectedClientIds().Any(c => c.StartsWith("console-", StringComparison.Ordinal)), Timeout, Ct));
    }

    [Fact]
    public async Task Rules_are_tested_jobs_run_and_cancel_alarms_are_acknowledged_and_the_audit_log_filters()
    {
        var comment = "on it: " + TrellisHost.Unique("c");
        var (playwright, browser, page) = await SignInAsync("operator", d => d.Type == "prompt" ? d.AcceptAsync(comment) : d.AcceptAsync());
        using var _ = playwright;
        await using var __ = browser;

        // The rule test box runs the SQL on a sample message.
        await OpenAsync(page, "Rules", "Rules");
        await page.FillAsync("textarea[name=sql]", "SELECT temp * 2 AS double, topic(2) AS device\nFROM 'plant/+/telemetry'\nWHERE temp > 30");
        await page.FillAsync("input[name=topic]", "plant/boiler-9/telemetry");
        await page.FillAsync("textarea[name=payload]", """{"temp": 35.5}""");
        await page.ClickAsync("button:text-is('Test')");
        var tested = page.Locator("[data-field=rule-test]");
        await tested.Filter(new() { HasText = "\"double\": 71" }).WaitForAsync();
        Assert.Contains("\"device\": \"boiler-9\"", await tested.InnerTextAsync(), StringComparison.Ordinal);
        await page.FillAsync("textarea[name=payload]", """{"temp": 20}""");
        await page.ClickAsync("button:text-is('Test')");
        await tested.Filter(new() { HasText = "WHERE is false" }).WaitForAsync();

        // A job on two things with a rollout, watched and canceled.
        var things = new[] { TrellisHost.Unique("pgjob"), TrellisHost.Unique("pgjob") };
        Assert.All(await host.IotCallsAsync([.. things.Select(t => ("create_thing", (object)new { thingName = t }))], Ct), r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var jobId = TrellisHost.Unique("pgjob");
        await OpenAsync(page, "Jobs", "Jobs");
        await page.FillAsync("input[name=jobId]", jobId);
        await page.FillAsync("input[name=things]", string.Join(", ", things));
        await page.FillAsync("input[name=perMinute]", "60");
        await page.FillAsync("textarea[name=document]", """{"operation":"blink","times":3}""");
        await page.ClickAsync("button:text-is('Create job')");
        await page.Locator("h1").Filter(new() { HasText = jobId }).WaitForAsync();
        await page.Locator("[data-field=job-status]:text-is('IN_PROGRESS')").WaitForAsync();
        await page.Locator("[data-field=numberOfQueuedThings] .value:text-is('2')").WaitForAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "job.png") });
        await page.ClickAsync("button:text-is('Cancel job')");
        await page.Locator("[data-field=job-status]").Filter(new() { HasTextRegex = new Regex("^CANCEL") }).WaitForAsync();
        var job = await host.IotCallsAsync([("describe_job", new { jobId })], Ct);
        Assert.StartsWith("CANCEL", job[0]!["body"]!["job"]!["status"]!.GetValue<string>(), StringComparison.Ordinal);

        // An alarm raised by a message, acknowledged from the page with a comment.
        var boiler = await RaiseAlarmAsync("pg");
        await OpenAsync(page, "Alarms", "Alarms");
        var alarm = page.Locator($"tr:has(a:text-is('{boiler}'))");
        await alarm.Locator("[data-field=alarm-state]:text-is('ACTIVE')").WaitForAsync();
        await alarm.Locator("button:text-is('Acknowledge')").ClickAsync();
        await alarm.Locator("[data-field=alarm-state]:text-is('ACKNOWLEDGED')").WaitForAsync();
        await alarm.Locator("summary:text-is('History')").ClickAsync();
        await alarm.Locator("[data-list=history] li").Filter(new() { HasText = comment }).WaitForAsync();
        var alarms = await host.SignedRequestAsync("GET", $"/api/alarms?thing={boiler}", null, Ct);
        var id = alarms["body"]!["alarms"]![0]!["id"]!.GetValue<string>();
        var described = await host.SignedRequestAsync("GET", $"/api/alarms/{id}", null, Ct);
        Assert.Equal("ACKNOWLEDGED", described["body"]!["state"]!.GetValue<string>());
        Assert.Contains(described["body"]!["history"]!.AsArray(), h => h!["comment"]?.GetValue<string>() == comment);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "alarms.png") });

        // The audit log, filtered by operation: the job's creation is there, with its target.
        await OpenAsync(page, "Audit log", "Audit log");
        await page.FillAsync("input[name=operation]", "CreateJob");
        await page.ClickAsync("button:text-is('Filter')");
        await page.Locator("[data-table=audit] td").Filter(new() { HasText = jobId }).First.WaitForAsync();
        var rows = await page.Locator("[data-table=audit] tbody tr").AllInnerTextsAsync();
        Assert.True(rows.Count(r => r.Contains(jobId, StringComparison.Ordinal)) == 1, string.Join('\n', rows));
        var operations = await page.Locator("[data-table=audit] tbody tr td:nth-child(3)").AllInnerTextsAsync();
        Assert.All(operations, o => Assert.Equal("CreateJob", o));
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "audit.png") });
    }
    [Fact]
    public async Task The_console_is_used_from_the_keyboard_and_fits_a_phone_width()
    {
        var (playwright, launched) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var browser = launched;
        var key = await host.CreateApiUserAsync(TrellisHost.Unique("pagesphone"), "operator", Ct);
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 390, Height = 844 }, IsMobile = true, HasTouch = true });
        page.SetDefaultTimeout(20_000);

        // Signed in without a mouse: the key field has focus, Tab moves on, Enter submits.
        await page.GotoAsync(host.Endpoint + "/");
        await page.Locator("#key:focus").WaitForAsync(); // the sign-in form focuses its first field
        await page.Keyboard.TypeAsync(key.KeyId);
        await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.TypeAsync(key.Secret);
        await page.Keyboard.PressAsync("Enter");
        await page.Locator(".card[data-field=things] .value").WaitForAsync();

        // Tab reaches the navigation in order; Enter on "Things" opens it.
        string? focused = null;
        for (var i = 0; i < 10 && focused != "Things"; i++)
        {
            await page.Keyboard.PressAsync("Tab");
            focused = await page.EvaluateAsync<string?>("() => document.activeElement?.textContent");
        }

        Assert.Equal("Things", focused);
        await page.Keyboard.PressAsync("Enter");
        await page.Locator("h1:text-is('Things')").WaitForAsync();

        // Every page fits the phone's width: wide tables scroll inside themselves, the page does not.
        foreach (var (route, title) in new[] { ("things", "Things"), ("groups", "Thing groups"), ("types", "Thing types"), ("policies", "Policies"), ("certificates", "Certificates"),
            ("provisioning", "Provisioning templates"), ("rules", "Rules"), ("jobs", "Jobs"), ("alarms", "Alarms"), ("mqtt", "MQTT client"), ("audit", "Audit log") })
        {
            await page.GotoAsync($"{host.Endpoint}/#/{route}");
            await page.Locator($"h1:text-is('{title}')").WaitForAsync();
            await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
            var (scroll, width) = (await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth"), await page.EvaluateAsync<int>("() => window.innerWidth"));
            Assert.True(scroll <= width, $"#/{route} is {scroll} px wide on a {width} px screen");
        }

        await page.GotoAsync($"{host.Endpoint}/#/things");
        await page.Locator("h1:text-is('Things')").WaitForAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "phone.png") });
    }

    /// <summary>
    /// Holds the page's requests whose URL matches (while holding) until released, and counts those
    /// held and those finished after: how a test makes an earlier answer arrive after a later one.
    /// </summary>
    private sealed class HeldRequests
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _holding;
        private int _held;
        private int _finished;

        public int Held => Volatile.Read(ref _held);

        public int Finished => Volatile.Read(ref _finished);

        public static async Task<HeldRequests> OnAsync(IPage page, Regex url, Func<string, bool> matches, bool holding = true)
        {
            var held = new HeldRequests { _holding = holding ? 1 : 0 };
            bool Holds(string address) => Volatile.Read(ref held._holding) == 1 && url.IsMatch(address) && matches(address);
            await page.RouteAsync(url, async route =>
            {
                if (Holds(route.Request.Url))
                {
                    Interlocked.Increment(ref held._held);
                    await held._release.Task;
                }

                await route.ContinueAsync();
            });
            page.RequestFinished += (_, request) =>
            {
                if (Holds(request.Url))
                {
                    Interlocked.Increment(ref held._finished);
                }
            };
            return held;
        }

        /// <summary>Holds matching requests from now on.</summary>
        public void Start() => Volatile.Write(ref _holding, 1);

        public void Release() => _release.SetResult();
    }
}
