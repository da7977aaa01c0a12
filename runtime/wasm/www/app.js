// The page: an image (dropped, chosen or drawn) through the same preprocessing as
// `runtime classify`, then the int8 engine; shows the top 3 classes, the 28x28 input and
// the time per image. Everything runs here; nothing is sent anywhere.
import { Fmnist, moduleName, top } from "./fmnist.js";

const $ = (id) => document.getElementById(id);
const status = (text) => ($("status").textContent = text);

/** Largest side a picture is drawn at before preprocessing (camera photos are larger). */
const MAX_SIDE = 2048;

let engine;

function show(result, pixels, milliseconds) {
  const seen = $("seen").getContext("2d");
  const image = seen.createImageData(28, 28);
  pixels.forEach((v, i) => image.data.set([v, v, v, 255], i * 4));
  seen.putImageData(image, 0, 0);
  const list = $("results");
  list.replaceChildren(
    ...top(result, engine.info.classes, 3).map(({ name, probability }) => {
      const item = document.createElement("li");
      const percent = (100 * probability).toFixed(1);
      item.innerHTML = `<span class="name"></span> <span class="p">${percent}%</span>` +
        `<div class="bar" style="width:${Math.max(1, probability * 100)}%"></div>`;
      item.querySelector(".name").textContent = name;
      return item;
    }),
  );
  list.dataset.top = result.name;
  $("timing").textContent =
    `${milliseconds.toFixed(3)} ms per image (${engine.info.kernels} kernels, ` +
    `${engine.info.macs.toLocaleString()} multiply-accumulates)`;
  window.lastInput = Array.from(pixels);
  document.body.dataset.classified = String(Number(document.body.dataset.classified ?? 0) + 1);
}

/** Classifies RGBA pixels; times the engine over repeated runs of the same input. */
function classifyRgba(rgba, width, height) {
  const pixels = engine.prepare(rgba, width, height);
  let result = engine.classify(pixels);
  let runs = 0;
  const started = performance.now();
  while (performance.now() - started < 50 || runs < 5) {
    result = engine.classify(pixels);
    runs++;
  }
  show(result, pixels, (performance.now() - started) / runs);
}

async function classifyFile(file) {
  status(`reading ${file.name}...`);
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    status(`${file.name}: not an image this browser decodes`);
    return;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0, width, height);
  classifyRgba(context.getImageData(0, 0, width, height).data, width, height);
  status(`${file.name}: ${bitmap.width}x${bitmap.height}`);
}

function setUpDrawing() {
  const pad = $("pad");
  const context = pad.getContext("2d", { willReadFrequently: true });
  const clear = () => {
    context.fillStyle = "#000";
    context.fillRect(0, 0, pad.width, pad.height);
  };
  clear();
  let last = null;
  const at = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * (pad.width / box.width),
      (event.clientY - box.top) * (pad.height / box.height)];
  };
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    last = at(event);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = at(event);
    context.strokeStyle = "#fff";
    context.lineWidth = 22;
    context.lineCap = "round";
    context.beginPath();
    context.moveTo(...last);
    context.lineTo(...point);
    context.stroke();
    last = point;
  });
  const classifyDrawing = () => {
    classifyRgba(context.getImageData(0, 0, pad.width, pad.height).data, pad.width, pad.height);
    status("your drawing");
  };
  pad.addEventListener("pointerup", () => {
    last = null;
    classifyDrawing();
  });
  $("clear").addEventListener("click", clear);
  $("classify-drawing").addEventListener("click", classifyDrawing);
}

async function main() {
  try {
    engine = await Fmnist.load(new URL(moduleName(), import.meta.url));
  } catch (error) {
    status(`cannot start the engine: ${error.message}`);
    return;
  }
  $("file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) classifyFile(file);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const [file] = event.dataTransfer.files;
    if (file) classifyFile(file);
  });
  $("model").addEventListener("change", async (event) => {
    const [file] = event.target.files;
    if (!file) return;
    try {
      const info = engine.loadModel(new Uint8Array(await file.arrayBuffer()));
      status(`${file.name}: ${info.kind}, ${info.macs.toLocaleString()} MACs per image`);
    } catch (error) {
      status(`${file.name}: ${error.message}`);
    }
  });
  setUpDrawing();
  if ("serviceWorker" in navigator && location.protocol !== "file:") {
    // Offline once loaded: the page and the module are kept in the browser's cache.
    navigator.serviceWorker.register("sw.js").catch(() => {});
  }
  document.body.dataset.ready = "true";
  status(`ready: ${engine.info.kind} model, ${engine.info.kernels} kernels`);
}

main();
