// The Fashion-MNIST int8 engine in WebAssembly, for browsers and Node (an ES module, no
// dependencies). `Fmnist.load(wasm)` instantiates a module built by `scripts/web.sh build`
// (`fmnist-simd.wasm` with the SIMD kernels, `fmnist.wasm` without) with the shipped
// `edge` model loaded; `classify(pixels)` runs 784 pixels (28x28, 0 = black background);
// `prepare(rgba, width, height)` turns any picture's RGBA pixels into those 784, as
// `runtime classify` does an image file.

/// The smallest module that uses a SIMD instruction: whether this runtime has SIMD.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0,
  253, 15, 253, 98, 11,
]);

/** Whether this JavaScript engine runs WebAssembly SIMD (`simd128`). */
export function hasSimd() {
  return WebAssembly.validate(SIMD_PROBE);
}

/** The file name of the module to use here: `fmnist-simd.wasm` when SIMD runs. */
export function moduleName() {
  return hasSimd() ? "fmnist-simd.wasm" : "fmnist.wasm";
}

export class Fmnist {
  /**
   * Instantiates the module `source` (a URL or `Response` in browsers; bytes anywhere)
   * and loads the built-in `edge` model.
   */
  static async load(source) {
    let instance;
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      ({ instance } = await WebAssembly.instantiate(source, {}));
    } else {
      const response = source instanceof Response ? source : await fetch(source);
      if (!response.ok) throw new Error(`${response.url}: HTTP ${response.status}`);
      ({ instance } = await WebAssembly.instantiateStreaming(response, {}));
    }
    const fmnist = new Fmnist(instance.exports);
    fmnist.#loaded(fmnist.#x.fmnist_load_shipped());
    return fmnist;
  }

  #x;
  info;

  constructor(exports) {
    this.#x = exports;
  }

  #bytes(pointer, length) {
    return new Uint8Array(this.#x.memory.buffer, pointer, length);
  }

  #text(pointer, length) {
    return new TextDecoder().decode(this.#bytes(pointer, length));
  }

  #check(status) {
    if (status < 0) {
      throw new Error(this.#text(this.#x.fmnist_message(), this.#x.fmnist_message_len()));
    }
    return status;
  }

  #loaded(status) {
    this.#check(status);
    this.info = JSON.parse(this.#text(this.#x.fmnist_info(), this.#x.fmnist_info_len()));
    return this.info;
  }

  /** Loads another int8 blob (`trainer export --q8`, `models/*.q8`): bytes. */
  loadModel(bytes) {
    const pointer = this.#x.fmnist_blob_buffer(bytes.length);
    if (pointer === 0) throw new Error(`${bytes.length} bytes: larger than a blob can be here`);
    this.#bytes(pointer, bytes.length).set(bytes);
    this.info = undefined;
    return this.#loaded(this.#x.fmnist_load(bytes.length));
  }

  /**
   * Classifies 784 pixels. Returns `{ index, name, logits (Int32Array), probabilities
   * (Float32Array) }`, copies that later calls do not change.
   */
  classify(pixels) {
    if (pixels.length !== 784) throw new Error(`${pixels.length} pixels, not 28x28`);
    this.#bytes(this.#x.fmnist_pixels(), 784).set(pixels);
    const index = this.#check(this.#x.fmnist_classify());
    const memory = this.#x.memory.buffer;
    return {
      index,
      name: this.info.classes[index],
      logits: new Int32Array(memory, this.#x.fmnist_logits(), 10).slice(),
      probabilities: new Float32Array(memory, this.#x.fmnist_probabilities(), 10).slice(),
    };
  }

  /**
   * The 784 pixels `runtime classify` makes of a picture, from its RGBA pixels (as a
   * canvas' `getImageData` gives them): gray (transparency over white), inverted when
   * its border is mostly light, trimmed, its longest side scaled to 28, centred.
   */
  prepare(rgba, width, height) {
    const pointer = this.#x.fmnist_rgba_buffer(width, height);
    if (pointer === 0) throw new Error(`a ${width}x${height} picture: empty or over 4096x4096`);
    this.#bytes(pointer, width * height * 4).set(rgba);
    this.#check(this.#x.fmnist_prepare(width, height));
    return this.#bytes(this.#x.fmnist_pixels(), 784).slice();
  }
}

/** The `k` most probable classes of a result: `[{ index, name, probability }]`. */
export function top(result, names, k = 3) {
  return [...result.probabilities]
    .map((probability, index) => ({ index, name: names[index], probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k);
}
