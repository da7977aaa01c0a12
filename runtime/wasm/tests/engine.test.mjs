// The WebAssembly engine against the native one, bit for bit: every shipped blob and nine
// random models of awkward shapes on the test images (and some generated ones) of the
// fixture (`cargo run -p fmnist-runtime --features image --example
// web_fixture -- DIR`), with the SIMD kernels and without. Run by `scripts/web.sh test`:
// FMNIST_WEB_DIR holds the two builds, FMNIST_WEB_FIXTURE the fixture.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Fmnist, hasSimd, top } from "../www/fmnist.js";

const web = process.env.FMNIST_WEB_DIR ?? fileURLToPath(new URL("../../../target/web/www", import.meta.url));
const fixture = process.env.FMNIST_WEB_FIXTURE ?? fileURLToPath(new URL("../../../target/web/fixture", import.meta.url));
const models = new URL("../../../models/", import.meta.url);
const images = readFileSync(join(fixture, "images.bin"));
const count = images.length / 784;
const blobs = readdirSync(fixture)
  .filter((f) => f.endsWith(".logits"))
  .map((f) => f.replace(/\.logits$/, ""));

const builds = [
  ["fmnist.wasm", "portable"],
  ["fmnist-simd.wasm", "simd128"],
];

test("the fixture has images and the logits of every shipped blob and random model", () => {
  assert.ok(count >= 100, `${count} images`);
  assert.deepEqual(blobs.filter((b) => !b.startsWith("random-")).sort(), ["cnn", "edge", "edge7"]);
  assert.equal(blobs.filter((b) => b.startsWith("random-")).length, 9);
});

test("this Node runs WebAssembly SIMD", () => {
  assert.equal(hasSimd(), true);
});

for (const [file, kernels] of builds) {
  test(`${file}: logits equal the native engine's on ${count} images, every blob`, async () => {
    const engine = await Fmnist.load(readFileSync(join(web, file)));
    assert.equal(engine.info.kernels, kernels);
    assert.equal(engine.info.kind, "edge14", "the shipped edge is loaded first");
    for (const blob of blobs) {
      const info = engine.loadModel(readFileSync(join(fixture, `${blob}.q8`)));
      assert.equal(info.classes.length, 10);
      const expected = new Int32Array(readFileSync(join(fixture, `${blob}.logits`)).buffer.slice(0));
      let agree = 0;
      for (let i = 0; i < count; i++) {
        const result = engine.classify(images.subarray(i * 784, (i + 1) * 784));
        const want = expected.subarray(i * 10, (i + 1) * 10);
        assert.deepEqual(Array.from(result.logits), Array.from(want), `${blob}, image ${i}`);
        const sum = result.probabilities.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities add up to ${sum}`);
        agree += top(result, info.classes, 1)[0].index === result.index ? 1 : 0;
      }
      assert.equal(agree, count);
    }
  });

  test(`${file}: bad input is an error naming what is wrong, and the module lives on`, async () => {
    const engine = await Fmnist.load(readFileSync(join(web, file)));
    assert.throws(() => engine.loadModel(new Uint8Array([1, 2, 3])), /not a model this engine runs/);
    assert.throws(() => engine.classify(new Uint8Array(784)), /no model is loaded/);
    const edge = readFileSync(new URL("edge.q8", models));
    const flipped = Uint8Array.from(edge);
    flipped[flipped.length - 9] ^= 1;
    assert.throws(() => engine.loadModel(flipped), /not a model this engine runs/);
    assert.throws(() => engine.loadModel(new Uint8Array((1 << 20) + 1)), /larger than a blob/);
    assert.throws(() => engine.classify(new Uint8Array(783)), /783 pixels/);
    assert.throws(() => engine.prepare(new Uint8Array(0), 0, 0), /empty or over 4096x4096/);
    engine.loadModel(edge);
    assert.equal(engine.classify(images.subarray(0, 784)).index, engine.classify(images.subarray(0, 784)).index);
  });
}

test("prepare() makes of each sample's pixels what runtime classify makes of its file", async () => {
  // The samples are gray PNGs: their RGBA is the gray level three times, opaque.
  const samples = JSON.parse(readFileSync(join(fixture, "samples.json"), "utf8"));
  const engine = await Fmnist.load(readFileSync(join(web, "fmnist-simd.wasm")));
  assert.equal(samples.length, 10);
  for (const sample of samples) {
    // A 56x56 picture, each pixel doubled, on a light background: inverted, trimmed and
    // scaled back down by prepare(); the class must survive.
    const rgba = new Uint8Array(56 * 56 * 4);
    for (let y = 0; y < 56; y++) {
      for (let x = 0; x < 56; x++) {
        const v = 255 - sample.pixels[(y >> 1) * 28 + (x >> 1)];
        rgba.set([v, v, v, 255], (y * 56 + x) * 4);
      }
    }
    const pixels = engine.prepare(rgba, 56, 56);
    assert.equal(engine.classify(pixels).name, sample.class, sample.file);
    // The 28x28 original as RGBA is kept as it is.
    const same = new Uint8Array(784 * 4);
    sample.pixels.forEach((v, i) => same.set([v, v, v, 255], i * 4));
    assert.deepEqual(Array.from(engine.prepare(same, 28, 28)), sample.pixels, sample.file);
  }
});
