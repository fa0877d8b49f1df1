// The web page in a real Chromium (Debian's, driven by playwright-core), on the shipped shapes
// model: it loads without console errors, a prompt becomes an image, an uploaded scene gets an
// answer. Screenshots go to test/screenshots/ (ignored by git; the README's are copied from there).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelPath } from "@pisces/pisces-shapes-tiny";
import { encodePng, randomScene, SPLIT_SEED } from "@pisces/shapes";
import { createServer, type PiscesServer } from "../src/index.js";

const CHROMIUM = "/usr/bin/chromium";
const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, "screenshots");
const profile = mkdtempSync(join(tmpdir(), "pisces-chromium-"));
let server: PiscesServer;
let browser: BrowserContext;
let base: string;
let image: string;

const available = existsSync(CHROMIUM);

describe.runIf(!available)("the page without a browser", () => {
  it("needs Debian's chromium (tools/setup.sh installs it; CI must have it)", () => {
    expect(process.env.CI, "CI must have /usr/bin/chromium (tools/setup.sh installs it)").toBeFalsy();
  });
});

describe.runIf(available)("the web page in Chromium", () => {
  beforeAll(async () => {
    image = join(profile, "scene.png"); // a held-out scene of the shapes world
    writeFileSync(image, await encodePng(randomScene(SPLIT_SEED.heldout + 3)));
    server = createServer({ model: modelPath });
    await server.app.listen({ port: 0, host: "127.0.0.1" });
    await server.modelReady;
    base = `http://127.0.0.1:${(server.app.server.address() as { port: number }).port}`;
    // a fresh profile (playwright passes it as --user-data-dir)
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    mkdirSync(shots, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it("loads without console errors, generates an image, and answers about an uploaded one", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    await page.fill("#prompt", "a red circle to the left of a blue square");
    await page.click("#generate");
    await page.waitForFunction("document.getElementById('stage')?.textContent === 'done'", null, { timeout: 60_000 });
    const src = await page.getAttribute("#image", "src");
    expect(src).toMatch(/^data:image\/png;base64,/);
    await page.screenshot({ path: join(shots, "generate.png") });
    await page.setInputFiles("#file", image);
    await page.waitForFunction("document.getElementById('preview').src.startsWith('data:')");
    await page.fill("#question", "how many objects are there?");
    await page.click("#ask");
    await page.waitForFunction("(document.getElementById('answer')?.textContent ?? '').length > 0", null, { timeout: 60_000 });
    await page.screenshot({ path: join(shots, "ask.png") });
    expect(errors, errors.join("\n")).toEqual([]);
    expect(existsSync(join(shots, "generate.png")) && existsSync(join(shots, "ask.png"))).toBe(true);
    await page.close();
  }, 180_000);
});
