// Prompts that reach a person who is not looking at the screen: generated tones (Web Audio,
// no sound files), vibration where the device has it, and the browser's speech synthesis in
// the page's language. Browsers let a page play sound and speak only after a tap on it
// (autoplay rules): `unlock()` is called from the first tap. Quiet mode (for shared rooms,
// kept in localStorage) silences sound and speech but keeps vibration and the screen.

// [frequency Hz (0: a pause), seconds] per cue. cool_down is the distinct one: a falling
// two-tone call, twice; caution and recovered are one soft note and a rising pair.
export const TONES = Object.freeze({
  cool_down: [[880, 0.32], [587.33, 0.45], [0, 0.2], [880, 0.32], [587.33, 0.6]],
  caution: [[523.25, 0.45]],
  recovered: [[523.25, 0.25], [783.99, 0.45]],
  not_watching: [[246.94, 0.4], [0, 0.15], [246.94, 0.4], [0, 0.15], [196, 0.6]],
  watching: [[659.25, 0.2], [987.77, 0.3]],
});
export const VIBRATION = Object.freeze({
  cool_down: [600, 250, 600, 250, 600],
  caution: [250],
  recovered: [120, 120, 120],
  not_watching: [300, 150, 300, 150, 300, 150, 300],
  watching: [100],
});
const QUIET_KEY = "heatmon.quiet";
const PEAK_GAIN = 0.35;

function readQuiet() {
  try { return window.localStorage.getItem(QUIET_KEY) === "1"; } catch { return false; }
}

export class Prompter {
  constructor() {
    this.ctx = null;
    this.unlocked = false;
    this.quiet = readQuiet();
  }

  // From a user gesture: create (or resume) the audio context; speech and vibration are
  // allowed from now on too.
  unlock() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!this.ctx && AC) this.ctx = new AC();
    if (this.ctx && this.ctx.state !== "running") this.ctx.resume().catch(() => {});
    this.unlocked = true;
  }

  setQuiet(quiet) {
    this.quiet = Boolean(quiet);
    try { window.localStorage.setItem(QUIET_KEY, this.quiet ? "1" : "0"); } catch { /* private mode */ }
    if (this.quiet && "speechSynthesis" in window) window.speechSynthesis.cancel();
  }

  // One cue: vibration always, sound and speech unless quiet.
  cue(kind, speech) {
    this.vibrate(kind);
    if (this.quiet) return;
    this.tone(kind);
    if (speech) this.speak(speech);
  }

  tone(kind) {
    const ctx = this.ctx;
    const notes = TONES[kind];
    if (!ctx || !notes) return;
    let t = ctx.currentTime + 0.03;
    for (const [freq, dur] of notes) {
      if (freq > 0) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "sine";
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(PEAK_GAIN, t + 0.04);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + dur);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t);
        osc.stop(t + dur + 0.05);
      }
      t += dur + 0.06;
    }
  }

  speak(text) {
    const synth = window.speechSynthesis;
    if (!synth || typeof window.SpeechSynthesisUtterance !== "function") return;
    const utterance = new window.SpeechSynthesisUtterance(text);
    utterance.lang = document.documentElement.lang || navigator.language || "en";
    utterance.rate = 0.95;
    synth.cancel(); // never a queue of stale prompts
    synth.speak(utterance);
  }

  vibrate(kind) {
    if (typeof navigator.vibrate !== "function") return;
    try { navigator.vibrate(VIBRATION[kind] || 200); } catch { /* not allowed yet */ }
  }

  stopSpeaking() {
    if (window.speechSynthesis) window.speechSynthesis.cancel();
  }
}
