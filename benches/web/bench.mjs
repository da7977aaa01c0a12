// One line per path, `NAME us_per_image=X`, on the same test images, one thread, in one
// sitting: our WebAssembly engine with SIMD (`wasm-simd`) and without (`wasm-scalar`), and
// the peer a browser user would pick, onnxruntime-web (its WebAssembly backend, one
// thread), running the shipped `edge` model as int8 QDQ ONNX (`onnxruntime-web-int8`) and
// as float ONNX (`onnxruntime-web-fp32`). Each path: a warm-up pass, then the best of five
// passes, one call per image. The agreement of each path's classes with the int8 blob's
// goes to stderr, so that a fast path cannot hide a different answer. Run by
// `scripts/web.sh bench` (which prints the native engine's line first).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-web";
import { Fmnist } from "../../runtime/wasm/www/fmnist.js";

const web = process.env.FMNIST_WEB_DIR;
const fixture = process.env.FMNIST_WEB_FIXTURE;
const models = process.env.FMNIST_WEB_MODELS;
// The fixture ends with 20 generated images: only the test images are timed.
const all = readFileSync(join(fixture, "images.bin"));
const count = all.length / 784 - 20;
const images = Array.from({ length: count }, (_, i) => all.subarray(i * 784, (i + 1) * 784));
const reference = new Int32Array(readFileSync(join(fixture, "edge.logits")).buffer.slice(0));
const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
const expected = images.map((_, i) => argmax(Array.from(reference.subarray(i * 10, i * 10 + 10))));

async function best(run) {
  let fastest = Infinity;
  for (let pass = 0; pass < 6; pass++) {
    const started = performance.now();
    for (let i = 0; i < images.length; i++) await run(i);
    const us = ((performance.now() - started) * 1000) / images.length;
    if (pass > 0) fastest = Math.min(fastest, us);
  }
  return fastest;
}

function report(name, us, classes) {
  const agree = classes.filter((c, i) => c === expected[i]).length;
  console.log(`${name} us_per_image=${us.toFixed(2)}`);
  console.error(`  ${name}: ${agree} of ${count} classes as the int8 blob's`);
}

for (const [name, file] of [["wasm-simd", "fmnist-simd.wasm"], ["wasm-scalar", "fmnist.wasm"]]) {
  const engine = await Fmnist.load(readFileSync(join(web, file)));
  const classes = [];
  const us = await best((i) => {
    classes[i] = engine.classify(images[i]).index;
  });
  report(name, us, classes);
}

ort.env.wasm.numThreads = 1;
const scale = 1 / 255;
const inputs = images.map((image) => Float32Array.from(image, (p) => p * scale));
for (const [name, file] of [["onnxruntime-web-int8", "edge-int8.onnx"], ["onnxruntime-web-fp32", "edge.onnx"]]) {
  const session = await ort.InferenceSession.create(readFileSync(join(models, file)), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const input = session.inputNames[0];
  const classes = [];
  const us = await best(async (i) => {
    const tensor = new ort.Tensor("float32", inputs[i], [1, 1, 28, 28]);
    const output = await session.run({ [input]: tensor });
    classes[i] = argmax(Array.from(output[session.outputNames[0]].data));
  });
  report(name, us, classes);
}
