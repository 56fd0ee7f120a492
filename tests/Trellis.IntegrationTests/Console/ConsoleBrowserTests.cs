using Microsoft.Playwright;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Console;

/// <summary>
/// The web console in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright.
/// An operator signs in, creates a thing, sees a device's hostile shadow value as plain text, edits
/// the desired state and a mosquitto_sub device receives the delta, meets a version conflict, and
/// signs out; a viewer gets no button that changes anything; a form forged on another page changes
/// nothing. Screenshots of the pages go to artifacts/console-screenshots (docs/console.md shows them).
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ConsoleBrowserTests(TrellisHost host)
{
    private const string AnyClientPolicy = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Publish","iot:Subscribe","iot:Receive"],"Resource":"*"}]}""";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Screenshots => Directory.CreateDirectory(Path.Combine(TrellisCli.RepositoryRoot(), "artifacts", "console-screenshots")).FullName;

    private static Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync() => Chromium.LaunchAsync();

    private async Task<IPage> SignInAsync(IBrowser browser, string key, string secret)
    {
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 } });
        page.SetDefaultTimeout(20_000);
        await Chromium.SignInAsync(page, host.Endpoint, key, secret);
        return page;
    }

    [Fact]
    public async Task An_operator_signs_in_creates_a_thing_sees_its_shadow_as_text_edits_desired_and_signs_out()
    {
        var (playwright, browser) = await LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var operatorKey = await host.CreateApiUserAsync(TrellisHost.Unique("consoleop"), "operator", Ct);
        var page = await SignInAsync(browser, operatorKey.KeyId, operatorKey.Secret);
        Assert.Contains("(operator)", await page.InnerTextAsync("#who"), StringComparison.Ordinal);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "overview.png") });

        // Create a thing from the Things page.
        var created = TrellisHost.Unique("uithing");
        await page.ClickAsync("nav >> text=Things");
        await page.FillAsync("input[name=name]", created);
        await page.ClickAsync("text=Create thing");
        await page.Locator($"a:text-is('{created}')").WaitForAsync();
        Assert.True(host.Server.Registry.DescribeThing(created).IsSuccess);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "things.png") });

        // Its device bundle, downloaded from its page, connects it with mosquitto; the page shows it online.
        await page.ClickAsync($"a:text-is('{created}')");
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("text=Download a device bundle"));
        var zip = Path.Combine(host.DataDirectory, created + "-bundle.zip");
        await download.SaveAsAsync(zip);
        var unpacked = Path.Combine(host.DataDirectory, created + "-bundle");
        await System.IO.Compression.ZipFile.ExtractToDirectoryAsync(zip, unpacked, Ct);
        var files = Path.Combine(unpacked, created);
        var hello = await ExternalTool.RunAsync("sh", [Path.Combine(files, "connect.sh")], Timeout, cancellationToken: Ct);
        Assert.True(hello.ExitCode == 0 && hello.Stdout.Contains($"hello from {created}", StringComparison.Ordinal), hello.Output);
        using (var online = ExternalTool.StartBackground("mosquitto_sub", ["-h", "localhost", "-p", host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--cafile", Path.Combine(files, "ca.pem"), "--cert", Path.Combine(files, created + ".cert.pem"), "--key", Path.Combine(files, created + ".private.key"), "-i", created, "-t", $"devices/{created}/#"]))
        {
            await host.WaitSubscribedAsync(created, online);
            await page.ReloadAsync();
            await page.Locator("td[data-field=connected]").Filter(new() { HasTextRegex = new System.Text.RegularExpressions.Regex("^yes") }).WaitForAsync();
        }

        // A device whose shadow holds a hostile string; it waits for deltas with mosquitto_sub.
        var thing = TrellisHost.Unique("uidevice");
        var device = await host.ProvisionAsync(thing, thing + "-policy", AnyClientPolicy, Ct);
        var hostile = "<img src=x onerror=window.pwned=1>";
        var reported = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { reported = new { note = hostile, color = "blue" } } } })], Ct);
        Assert.Equal(200, reported[0]!["status"]!.GetValue<int>());
        using var deltas = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device), "-t", $"$aws/things/{thing}/shadow/update/delta", "-q", "1"]);
        await host.WaitSubscribedAsync(thing, deltas);

        // Its telemetry, stored by a rule, is charted and follows new readings.
        var rule = TrellisHost.Unique("uitele_");
        const string StoreRule = """
            {"sql": "SELECT temp FROM 'uitele/THING/telemetry'", "actions": [{"timestream": {"roleArn": "arn:aws:iam::000000000000:role/any", "databaseName": "trellis", "tableName": "telemetry", "dimensions": [{"name": "thing", "value": "${topic(2)}"}]}}]}
            """;
        var stored = await host.SignedRequestAsync("POST", $"/rules/{rule}", StoreRule.Replace("THING", thing, StringComparison.Ordinal), Ct);
        Assert.True(stored["status"]!.GetValue<int>() == 200, stored.ToJsonString());
        async Task ReadingAsync(double temp)
        {
            var sent = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("uipub")), "-t", $"uitele/{thing}/telemetry", "-m", "{\"temp\": " + temp.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(sent.ExitCode == 0, sent.Output);
        }

        await ReadingAsync(20.5);
        await page.GotoAsync($"{host.Endpoint}/#/things/{thing}");
        await page.Locator("svg[data-measure=temp] circle").First.WaitForAsync();
        await page.Locator("figcaption").Filter(new() { HasText = "temp: 20.5" }).WaitForAsync();
        await ReadingAsync(27.25);
        await page.Locator("figcaption").Filter(new() { HasText = "temp: 27.25" }).WaitForAsync(new() { Timeout = 20_000 });

        var reportedText = await page.Locator("pre[data-part=reported]").InnerTextAsync();
        Assert.Contains(hostile, reportedText, StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("pre img").CountAsync());
        Assert.Null(await page.EvaluateAsync<int?>("() => window.pwned"));

        // Desired state from the editor reaches the device as a delta.
        await page.FillAsync("textarea", """{"color": "red"}""");
        await page.ClickAsync("text=Update desired");
        Assert.True(await deltas.WaitForLineAsync(l => l.Contains("\"color\":\"red\"", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', deltas.Lines));
        await page.Locator("pre[data-part=delta]").Filter(new() { HasText = "red" }).WaitForAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "thing.png"), FullPage = true });

        // The device writes meanwhile: the editor's version is stale and the page says so.
        var meanwhile = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { reported = new { color = "red" } } } })], Ct);
        Assert.Equal(200, meanwhile[0]!["status"]!.GetValue<int>());
        await page.FillAsync("textarea", """{"color": "green"}""");
        await page.ClickAsync("text=Update desired");
        await page.Locator("text=The shadow changed meanwhile").WaitForAsync();

        // A rule with a mistake in its SQL: the page says where; corrected, it is made and can be disabled.
        var uiRule = TrellisHost.Unique("uirule_");
        await page.ClickAsync("nav >> text=Rules");
        await page.FillAsync("input[name=rule]", uiRule);
        await page.FillAsync("textarea[name=sql]", "SELECT temp\nFROM 'plant/+/telemetry'\nWHERE temp >");
        await page.ClickAsync("text=Create rule");
        var refusal = await page.Locator("[data-field=rule-result].error").InnerTextAsync();
        Assert.Matches("line 3, column \\d+", refusal);
        Assert.False(((Trellis.Rules.RuleEngine)host.Server.Services.GetService(typeof(Trellis.Rules.RuleEngine))!).Get(uiRule).IsSuccess);
        await page.FillAsync("textarea[name=sql]", "SELECT temp\nFROM 'plant/+/telemetry'\nWHERE temp > 30");
        await page.ClickAsync("text=Create rule");
        await page.Locator($"td:text-is('{uiRule}')").WaitForAsync();
        await page.Locator($"tr:has(td:text-is('{uiRule}')) >> text=Disable").ClickAsync();
        await page.Locator($"tr:has(td:text-is('{uiRule}')) >> td:text-is('disabled')").WaitForAsync();
        Assert.True(((Trellis.Rules.RuleEngine)host.Server.Services.GetService(typeof(Trellis.Rules.RuleEngine))!).Get(uiRule).Value!.Disabled);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "rules.png"), FullPage = true });

        // Signed out: the sign-in form, the cookie gone, and the API closed to the page.
        await page.ClickAsync("#signout");
        await page.Locator("#key").WaitForAsync();
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name == "trellis_session");
        var after = await page.APIRequest.GetAsync(host.Endpoint + "/things");
        Assert.Equal(403, after.Status); // no session and no signature: SigV4's MissingAuthenticationTokenException
    }

    [Fact]
    public async Task A_viewer_sees_no_buttons_that_change_anything_and_a_forged_form_changes_nothing()
    {
        var (playwright, browser) = await LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var thing = TrellisHost.Unique("uiview");
        Assert.Equal(200, (await host.IotCallsAsync([("create_thing", new { thingName = thing })], Ct))[0]!["status"]!.GetValue<int>());
        var viewerKey = await host.CreateApiUserAsync(TrellisHost.Unique("consoleviewer"), "viewer", Ct);
        var page = await SignInAsync(browser, viewerKey.KeyId, viewerKey.Secret);

        await page.ClickAsync("nav >> text=Things");
        await page.Locator($"a:text-is('{thing}')").WaitForAsync();
        Assert.Equal(0, await page.Locator("text=Create thing").CountAsync());
        Assert.Equal(0, await page.Locator("button:text-is('Delete')").CountAsync());
        await page.ClickAsync($"a:text-is('{thing}')");
        await page.Locator("pre[data-part=desired]").WaitForAsync();
        Assert.Equal(0, await page.Locator("text=Update desired").CountAsync());

        // The viewer's own session cannot change anything even when asked directly.
        var direct = await page.EvaluateAsync<int>("async name => (await fetch('/things/' + name, {method: 'DELETE', headers: {'X-Trellis-Csrf': 'guess'}})).status", thing);
        Assert.Equal(403, direct);

        // An operator is signed in; a page elsewhere posts a form at the API: nothing is made.
        var operatorKey = await host.CreateApiUserAsync(TrellisHost.Unique("consoleop2"), "operator", Ct);
        var operatorPage = await SignInAsync(browser, operatorKey.KeyId, operatorKey.Secret);
        var forged = TrellisHost.Unique("forged");
        await operatorPage.SetContentAsync($"<form id=f method=post action='{host.Endpoint}/things/{forged}'><input name=x value=1></form>");
        await operatorPage.EvalOnSelectorAsync("#f", "f => f.submit()");
        await operatorPage.WaitForLoadStateAsync();
        Assert.False(host.Server.Registry.DescribeThing(forged).IsSuccess);
    }
}
