// heatmon's service worker: makes the patient page installable and shows its prompts as
// notifications while the page is in the background. It caches nothing (patient data stay
// out of any cache); a page that cannot reach heatmon says so instead of the browser's
// offline page.
const OFFLINE_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>heatmon</title></head>
<body><main><h1>heatmon cannot see your readings — stop if you feel warm.</h1>
<p>This phone cannot reach heatmon. It will try again when you reload this page.</p></main>
<footer>heatmon is not a medical device.</footer></body></html>`;

self.addEventListener("install", () => { self.skipWaiting(); });
self.addEventListener("activate", (event) => { event.waitUntil(self.clients.claim()); });

self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") return; // everything else goes to the network as is
  event.respondWith(fetch(event.request).catch(() => new Response(OFFLINE_PAGE, {
    status: 503, headers: { "Content-Type": "text/html; charset=utf-8" },
  })));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of all) {
      if ("focus" in client) return client.focus();
    }
    return self.clients.openWindow("/");
  })());
});
