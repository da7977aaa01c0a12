// The page in a real browser: Debian's Chromium, headless, driven by puppeteer-core (no
// browser download), loads the page from a local static server, feeds each of
// models/samples/*.png through the page's own file input, and checks the class it shows
// and the 28x28 input it saw against the native engine's (the fixture's samples.json).
// A screenshot is saved for people to look at (FMNIST_WEB_SHOT, default
// target/web/page.png). Run by `scripts/web.sh test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { readFileSync, mkdirSync } from "node:fs";
import { dirname, extname, join, normalize, resolve } from "node:path";
import puppeteer from "puppeteer-core";

const web = resolve(process.env.FMNIST_WEB_DIR ?? fileURLToPath(new URL("../../../target/web/www", import.meta.url)));
const fixture = process.env.FMNIST_WEB_FIXTURE ?? fileURLToPath(new URL("../../../target/web/fixture", import.meta.url));
const shot = process.env.FMNIST_WEB_SHOT ?? fileURLToPath(new URL("../../../target/web/page.png", import.meta.url));
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const samples = new URL("../../../models/samples/", import.meta.url);

const TYPES = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
};

/** A static server of the built page on a free localhost port. */
function serve(root) {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    try {
      if (!file.startsWith(root)) throw new Error("outside");
      const body = await readFile(file);
      response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((ready) => server.listen(0, "127.0.0.1", () => ready(server)));
}

let server;
let browser;
let page;
const errors = [];

before(async () => {
  server = await serve(web);
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  page.on("pageerror", (error) => errors.push(error.message));
  await page.setViewport({ width: 900, height: 900 });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the page starts the SIMD engine with the shipped model", async () => {
  const text = await page.$eval("#status", (e) => e.textContent);
  assert.match(text, /ready: edge14 model, simd128 kernels/);
  assert.deepEqual(errors, []);
});

test("each sample through the file input: the native engine's class and input", async () => {
  const expected = JSON.parse(readFileSync(join(fixture, "samples.json"), "utf8"));
  assert.equal(expected.length, 10);
  const input = await page.$("#file");
  for (const sample of expected) {
    const before = await page.$eval("body", (b) => Number(b.dataset.classified ?? 0));
    await input.uploadFile(new URL(sample.file, samples).pathname);
    await page.waitForFunction(
      (n) => Number(document.body.dataset.classified ?? 0) > n,
      { timeout: 10_000 },
      before,
    );
    const shown = await page.$eval("#results", (e) => e.dataset.top);
    assert.equal(shown, sample.class, sample.file);
    const seen = await page.evaluate(() => window.lastInput);
    assert.deepEqual(seen, sample.pixels, `${sample.file}: the 28x28 input differs`);
    const items = await page.$$eval("#results li", (list) => list.map((li) => li.textContent));
    assert.equal(items.length, 3);
    assert.match(await page.$eval("#timing", (e) => e.textContent), /ms per image \(simd128 kernels/);
  }
  mkdirSync(dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  assert.deepEqual(errors, []);
});

test("a drawing on the pad is classified", async () => {
  const pad = await page.$("#pad");
  const box = await pad.boundingBox();
  // Two vertical strokes: a pair of trousers, roughly.
  for (const x of [0.38, 0.62]) {
    await page.mouse.move(box.x + box.width * x, box.y + box.height * 0.1);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * x, box.y + box.height * 0.9, { steps: 8 });
    await page.mouse.up();
  }
  const drawn = await page.evaluate(() => window.lastInput);
  assert.equal(drawn.length, 784);
  assert.ok(drawn.some((v) => v > 200), "the strokes reached the model's input");
  const status = await page.$eval("#status", (e) => e.textContent);
  assert.equal(status, "your drawing");
});

test("a file that is no image says so", async () => {
  const input = await page.$("#file");
  await input.uploadFile(new URL("../../../README.md", import.meta.url).pathname);
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("not an image"));
  assert.deepEqual(errors, []);
});
