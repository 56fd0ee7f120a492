using Microsoft.Playwright;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>Debian's Chromium (/usr/bin/chromium, installed by scripts/install-deps.sh) driven by Playwright, for the console's tests.</summary>
internal static class Chromium
{
    public const string Path = "/usr/bin/chromium";

    /// <summary>Starts a headless Chromium; dispose both (the browser first).</summary>
    public static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync()
    {
        Assert.True(File.Exists(Path), "Debian's chromium is missing: run scripts/install-deps.sh");
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Path, Headless = true, Args = ["--no-sandbox"] });
            return (playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>Signs in to the console at <paramref name="endpoint"/> with an API key, and waits for the overview.</summary>
    public static async Task SignInAsync(IPage page, string endpoint, string key, string secret)
    {
        await page.GotoAsync(endpoint + "/");
        await page.FillAsync("#key", key);
        await page.FillAsync("#secret", secret);
        await page.ClickAsync("button[type=submit]");
        await page.Locator(".card[data-field=things] .value").WaitForAsync();
    }
}
