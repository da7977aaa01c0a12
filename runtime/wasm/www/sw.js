// Keeps the page's files in the browser's cache so that it works offline once loaded:
// the cache answers first, the network refreshes it.
const CACHE = "fmnist-v1";
const FILES = ["./", "index.html", "style.css", "app.js", "fmnist.js", "fmnist.wasm", "fmnist-simd.wasm"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("fetch", (event) => {
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(event.request);
      const fresh = fetch(event.request)
        .then((response) => {
          if (response.ok) cache.put(event.request, response.clone());
          return response;
        })
        .catch(() => cached);
      return cached ?? fresh;
    }),
  );
});
