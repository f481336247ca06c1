// The patient page's phases: pure functions of what the page knows (`k`: the latest state,
// the latest level event, the latest recovered event, whether a session is open). The page
// is in exactly one phase at a time, and each phase has one heading, one message, its advice
// and at most one recovery line, so it never says two things at once (docs/dashboards.md).

const CALM_OK = "Carry on at a comfortable pace.";

// The level event that explains the current level (same level, same session), or null.
export function currentLevelEvent(k) {
  const { state, levelEvent } = k;
  if (!state || !levelEvent || levelEvent.level !== state.level) return null;
  if (levelEvent.session && state.session && levelEvent.session !== state.session) return null;
  return levelEvent;
}

// The recovered event of the current episode, or null (an older one does not count).
export function recoveredEvent(k) {
  const { state, levelEvent, recovered } = k;
  if (!recovered || !state || state.level !== "ok") return null;
  if (recovered.session && state.session && recovered.session !== state.session) return null;
  if (levelEvent && recovered.epoch < levelEvent.epoch) return null;
  return recovered;
}

export function phaseOf(k) {
  if (!k.sessionOpen) return k.state === null ? "waiting" : "ended";
  if (!k.state) return "waiting";
  const ev = currentLevelEvent(k);
  switch (k.state.level) {
    case "cool_down": return "cool_down";
    case "caution": return ev && ev.previous_level === "cool_down" ? "cooling" : "caution";
    default:
      if (recoveredEvent(k)) return "recovered";
      return ev && ev.previous_level && ev.previous_level !== "ok" ? "nearly" : "ok";
  }
}

// [heading, message, advice lines, recovery line] of phase `p`; the recovery line
// "countdown" stands for the live countdown to baseline.
export function phaseView(p, k) {
  const ev = currentLevelEvent(k);
  const advice = ev && ev.advice ? ev.advice : [];
  switch (p) {
    case "waiting":
      return ["Waiting for your sensors…", "Put on the chest strap; this page updates by itself.", [], null];
    case "ended":
      return ["Session ended", "heatmon is not watching until your sensors send readings again.", [], null];
    case "cool_down":
      return ["Cool down now",
        ev ? ev.message : "Stop and cool down. Heat symptoms are temporary and ease as you cool.",
        advice, "countdown"];
    case "cooling": return ["Cooling down", ev.message, advice, "countdown"];
    case "caution":
      return ["Getting warm", ev ? ev.message : "Take it a little easier for a few minutes.", advice, null];
    case "nearly": return ["Nearly there", ev.message, advice, "countdown"];
    case "recovered":
      return ["You're fine", recoveredEvent(k).message, [], "You're back to baseline."];
    default: return ["You're fine", CALM_OK, [], null];
  }
}
