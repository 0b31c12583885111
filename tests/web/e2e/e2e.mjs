// The web page end to end, in headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core. Run by
// tests/web/test_e2e.py against `legsleeve serve --sim` and `legsleeve web` (open to the LAN, with a password):
// a stop that cannot reach the page warns, stop without a login, log in, start a session, see pressures move, stop,
// see the vent, look at the history, edit a
// profile with a mistake and see the error at its line; an alarm's rule, zone and hint. Takes a phone-sized screenshot where LEGSLEEVE_SCREENSHOT says
// (the test's temporary directory; docs/web.png, the README's, when the test runs with LEGSLEEVE_UPDATE_SCREENSHOT=1).
//
// Environment: LEGSLEEVE_URL, LEGSLEEVE_PASSWORD, LEGSLEEVE_SCREENSHOT (where to save the phone-sized screenshot),
// LEGSLEEVE_FAIL_SHOT (where to save the page when a step fails), CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const URL = process.env.LEGSLEEVE_URL;
const PASSWORD = process.env.LEGSLEEVE_PASSWORD;
const SHOT = process.env.LEGSLEEVE_SCREENSHOT;
const FAIL_SHOT = process.env.LEGSLEEVE_FAIL_SHOT;
const PHONE = { width: 390, height: 844 };
const NARROWEST = { width: 360, height: 740 };

let step = "launch";
const log = (text) => console.log(`e2e: ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"], // root in a container: Chromium's sandbox needs user namespaces it may not have
});
const page = await (await browser.newContext({ viewport: PHONE, deviceScaleFactor: 1 })).newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));

async function zones() {
  return page.$$eval("#zones li", (lis) => lis.map((li) => ({
    name: li.dataset.zone, mmhg: li.dataset.mmhg === "" ? null : Number(li.dataset.mmhg), valve: li.dataset.valve,
  })));
}

try {
  step = "the page's shell, logged out";
  await page.goto(URL);
  await page.locator("#login-card").waitFor({ state: "visible" });
  if (await page.locator("#app").isVisible()) throw new Error("the sleeve's page shows before the login");

  step = "a stop that cannot reach the page says it is not confirmed";
  await page.route("**/api/stop", (route) => route.abort("internetdisconnected"));
  await page.click("#stop");
  await page.locator("#stop-answer", { hasText: "STOP NOT CONFIRMED" }).waitFor();
  log("stop with the network gone: " + (await page.textContent("#stop-answer")));
  await page.unroute("**/api/stop");

  step = "stop without logging in";
  await page.click("#stop");
  await page.locator("#stop-answer", { hasText: "nothing running" }).waitFor();
  log("stop answered without a login: " + (await page.textContent("#stop-answer")));

  step = "a wrong password, then the right one";
  await page.fill("#password", "not the password");
  await page.click("#login-button");
  await page.locator("#login-error", { hasText: "wrong password" }).waitFor();
  await page.fill("#password", PASSWORD);
  await page.click("#login-button");
  await page.locator("#app").waitFor({ state: "visible" });
  await page.locator("#link", { hasText: "live" }).waitFor();
  await page.locator("#state", { hasText: "idle" }).waitFor();
  log("logged in; the service is live and idle");

  step = "no horizontal scroll at 360 px";
  await page.setViewportSize(NARROWEST);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > NARROWEST.width) throw new Error(`the page is ${width} px wide at ${NARROWEST.width} px`);
  await page.setViewportSize(PHONE);
  if (!(await page.locator("#stop").isVisible())) throw new Error("the stop button is not in view");

  step = "start a session";
  await page.locator("#profile option[value=gentle]").waitFor({ state: "attached" });
  await page.selectOption("#profile", "gentle");
  await page.click("#start");
  await page.locator("#start-answer", { hasText: "starting gentle" }).waitFor();
  log("start: " + (await page.textContent("#start-answer")));

  step = "pressures move (the self-test, then the session's first fill)";
  await page.locator("#state", { hasText: "running" }).waitFor({ timeout: 120_000 }); // a loaded CI machine paces the sim slower
  await page.waitForFunction(
    () => [...document.querySelectorAll("#zones li")].some((li) => Number(li.dataset.mmhg || 0) > 10),
    null, { timeout: 60_000, polling: 200 },
  );
  const moving = await zones();
  log("running: " + moving.map((z) => `${z.name} ${z.mmhg} ${z.valve}`).join(", "));
  await page.waitForTimeout(1500); // the bars' 0.3 s transitions, and a second zone filling, for the picture
  if (SHOT) {
    await page.evaluate(() => window.scrollTo(0, 0)); // the live pressures at the top, the stop bar at the bottom
    await page.screenshot({ path: SHOT });
    log(`screenshot: ${SHOT}`);
  }

  step = "stop, and see the vent";
  await page.click("#stop");
  await page.locator("#stop-answer", { hasText: "stopping" }).waitFor();
  await page.waitForFunction(
    () => [...document.querySelectorAll("#zones li")].every((li) => li.dataset.mmhg === "" || Number(li.dataset.mmhg) < 5),
    null, { timeout: 30_000, polling: 100 },
  );
  await page.locator("#state", { hasText: "idle" }).waitFor({ timeout: 30_000 });
  const vented = await zones();
  if (!vented.every((z) => z.valve === "vent")) throw new Error("not every zone vents: " + JSON.stringify(vented));
  log("vented and idle: " + vented.map((z) => `${z.name} ${z.valve}`).join(", "));

  step = "the session in the history, with its plot";
  await page.click("#history-refresh");
  const entry = page.locator("#history li", { hasText: "stopped" }).first();
  await entry.waitFor();
  await entry.locator("button", { hasText: "plot" }).click();
  await entry.locator("img, p").first().waitFor({ timeout: 60_000 });
  log("history: " + (await entry.locator("div").first().textContent()));

  step = "a profile with a mistake: the error at its line";
  await page.selectOption("#edit-name", "gentle");
  await page.waitForFunction(() => document.getElementById("edit-text").value.includes("name: gentle"));
  const text = await page.inputValue("#edit-text");
  const lines = text.split("\n");
  const line = lines.findIndex((l) => l.trim() === "hold_s: 8") + 1;
  if (line < 1) throw new Error("gentle.yaml has no `hold_s: 8` to break");
  lines[line - 1] = lines[line - 1].replace("hold_s: 8", "hold_s: -3");
  await page.fill("#edit-text", lines.join("\n"));
  await page.click("#check");
  const problem = page.locator("#problems li").first();
  await problem.waitFor();
  const said = await problem.textContent();
  if (!said.includes(`gentle.yaml:${line}: cycle[0].hold_s: must be > 0`)) throw new Error(`the error says: ${said}`);
  if ((await problem.getAttribute("data-line")) !== String(line)) throw new Error("the error names another line");
  log(`check: ${said}`);
  await page.click("#save");
  await page.locator("#edit-answer[data-ok=false]").waitFor();
  log("save refused: " + (await page.textContent("#edit-answer")));

  step = "an alarm's rule, zone and hint (drawn from a status the simulated rig cannot raise on request)";
  const alarm = await page.evaluate(() => {
    drawAlarm({ priority: "high", rule: "SAFE-4", zone: "calf", message: "calf at 97.0 mmHg, above its trip level",
      hint: "a kinked or blocked hose", silenced: false });
    return { shown: !document.getElementById("alarm").hidden, title: document.getElementById("alarm-title").textContent,
      hint: document.getElementById("alarm-hint").textContent,
      reset: !document.getElementById("reset").hidden && document.getElementById("reset").offsetParent !== null };
  });
  if (!alarm.shown || !alarm.title.includes("SAFE-4") || !alarm.title.includes("calf") || !alarm.hint.includes("kinked")
      || !alarm.reset) throw new Error("the alarm is not drawn: " + JSON.stringify(alarm));
  log(`alarm: ${alarm.title}; ${alarm.hint}`);

  if (errors.length) throw new Error("the page's script failed: " + errors.join("; "));
  log("ok");
} catch (e) {
  console.error(`e2e: FAILED at "${step}": ${e.message}`);
  if (FAIL_SHOT) await page.screenshot({ path: FAIL_SHOT, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
