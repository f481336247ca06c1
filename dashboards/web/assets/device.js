// What the patient page asks of the phone itself: keep the screen on during a session (the
// Screen Wake Lock API), register the service worker (/sw.js: installable, notifications)
// and show a notification when a prompt arrives while the page is hidden.

export class Device {
  constructor() {
    this.lock = null;
    this.asking = false; // a wake-lock request is under way
    this.refused = false; // asked again only once the page is shown again
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
    }
  }

  // Hold the screen while a session is open and the page is visible; let it go otherwise.
  async holdScreen(sessionOpen) {
    const wanted = sessionOpen && document.visibilityState === "visible";
    if (!wanted) {
      if (this.lock) { this.lock.release().catch(() => {}); this.lock = null; }
      return;
    }
    if (this.lock || this.asking || this.refused || !("wakeLock" in navigator)) return;
    this.asking = true;
    try {
      const lock = await navigator.wakeLock.request("screen");
      lock.addEventListener("release", () => { if (this.lock === lock) this.lock = null; });
      this.lock = lock;
      if (document.visibilityState !== "visible") this.holdScreen(false); // hidden meanwhile
    } catch {
      this.refused = true; // battery saver, no permission: the page still works
    } finally {
      this.asking = false;
    }
  }

  // The page became visible or hidden (the browser drops the lock when it is hidden).
  shown(sessionOpen) {
    if (document.visibilityState === "visible") this.refused = false;
    this.holdScreen(sessionOpen);
  }

  async notify(title, body, tag) {
    if (document.visibilityState !== "hidden") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const options = {
      body, tag, renotify: true, requireInteraction: tag === "heatmon-cool-down",
      lang: document.documentElement.lang,
    };
    try {
      const reg = await this.registration();
      if (reg) { await reg.showNotification(title, options); return; }
    } catch { /* fall back to a page notification */ }
    try { new Notification(title, options); } catch { /* not allowed here */ }
  }

  async closeNotifications(tag) {
    try {
      const reg = await this.registration();
      if (reg) for (const n of await reg.getNotifications({ tag })) n.close();
    } catch { /* none */ }
  }

  async registration() {
    return "serviceWorker" in navigator ? navigator.serviceWorker.getRegistration() : null;
  }
}
