// Is heatmon watching? The live stream (Server-Sent Events) with its own reconnection, a
// ping of /healthz every TIMING.pingS seconds, and a check every second:
//   - "stream": the live stream has been down for TIMING.streamGraceS seconds;
//   - "server": the pings have failed for TIMING.failingS seconds in a row (asked again
//     every second once one fails), or none was answered for TIMING.silentS seconds (a
//     request that hangs): the server stopped answering, or the network is gone while the
//     stream has not noticed yet (a stream can hang without an error, e.g. on gym Wi-Fi);
//     the stream is then started afresh.
// `onChange(reason, previous)` is called when the answer changes (reason null: watching).
import { TIMING } from "/assets/timing.js";

const now = () => performance.now();

export class Watcher {
  constructor({ url, handlers, onChange, onRefused }) {
    this.url = url;
    this.handlers = handlers;
    this.onChange = onChange || (() => {});
    this.onRefused = onRefused || (() => {});
    this.source = null;
    this.lastAnswer = now();
    this.failingSince = null; // the first of an unbroken run of failed pings
    this.retry = null;
    this.streamDownSince = now(); // not open yet
    this.reason = null;
    this.refused = false;
  }

  start() {
    this.connect();
    setInterval(() => this.check(), 1000);
    setInterval(() => this.ping(), TIMING.pingS * 1000);
    this.ping();
    return this;
  }

  get streamOpen() {
    return this.source !== null && this.source.readyState === EventSource.OPEN
      && this.streamDownSince === null;
  }

  connect() {
    if (this.source) this.source.close();
    const source = new EventSource(this.url, { withCredentials: true });
    this.source = source;
    if (this.streamDownSince === null) this.streamDownSince = now();
    for (const [name, fn] of Object.entries(this.handlers)) {
      source.addEventListener(name, (ev) => {
        if (source !== this.source) return;
        fn(JSON.parse(ev.data));
      });
    }
    source.addEventListener("open", () => {
      if (source !== this.source) return;
      this.streamDownSince = null;
      this.refused = false;
      this.check();
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      if (this.streamDownSince === null) this.streamDownSince = now();
      if (source.readyState === EventSource.CLOSED) {
        // The server answered, but not with a stream (restarted and forgot the session,
        // or logged out): the browser gives up; we try again and let the page know.
        this.refused = true;
        this.onRefused();
        setTimeout(() => { if (this.source === source) this.connect(); }, 2000);
      }
      this.check();
    });
  }

  async ping() {
    let answered = false;
    try {
      const resp = await fetch("/healthz", {
        cache: "no-store", signal: AbortSignal.timeout(TIMING.pingTimeoutS * 1000),
      });
      answered = resp.ok;
    } catch { /* offline, refused or timed out */ }
    if (answered) {
      this.lastAnswer = now();
      this.failingSince = null;
    } else {
      // Ask again every second until it answers: a failure that lasts is not a blip.
      if (this.failingSince === null) this.failingSince = now();
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.ping(), 1000);
    }
    this.check();
  }

  current() {
    const t = now();
    if (this.streamDownSince !== null && t - this.streamDownSince >= TIMING.streamGraceS * 1000) {
      return "stream";
    }
    if (this.failingSince !== null && t - this.failingSince >= TIMING.failingS * 1000) {
      return "server";
    }
    if (t - this.lastAnswer >= TIMING.silentS * 1000) return "server";
    return null;
  }

  check() {
    const reason = this.current();
    if (reason === "server" && this.source && this.source.readyState === EventSource.OPEN) {
      this.connect(); // a stream that says open but carries nothing: start a new one
    }
    if (reason !== this.reason) {
      const previous = this.reason;
      this.reason = reason;
      this.onChange(reason, previous);
    }
  }
}
