// The console's first load in Debian's Chromium: bytes the browser fetched (as sent on the wire,
// with the Content-Encoding the server chose), and the time from navigation to the sign-in form
// ready for typing, and from submitting the form to the overview's figures on screen.
// usage: node load.mjs URL ACCESS_KEY_ID SECRET ROUNDS   (prints one JSON line per round)
import { chromium } from "playwright-core";

const [url, key, secret, rounds = "5"] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
for (let round = 1; round <= Number(rounds); round++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } }); // a fresh cache and no cookie each round
  const page = await context.newPage();
  let bytes = 0;
  const files = [];
  page.on("response", async (response) => {
    const size = Number((await response.allHeaders())["content-length"] ?? (await response.body()).length);
    bytes += size;
    files.push(`${new URL(response.url()).pathname} ${size}`);
  });
  const start = Date.now();
  await page.goto(url);
  await page.locator("#key").waitFor();
  const ready = Date.now() - start;
  const loaded = bytes;
  await page.fill("#key", key);
  await page.fill("#secret", secret);
  const submitted = Date.now();
  await page.click("button[type=submit]");
  await page.locator(".card[data-field=things] .value").waitFor();
  const overview = Date.now() - submitted;
  console.log(JSON.stringify({ round, firstLoadBytes: loaded, files, signInFormReadyMs: ready, overviewAfterSignInMs: overview }));
  await context.close();
}
await browser.close();
