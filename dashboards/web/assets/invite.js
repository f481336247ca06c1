// The one-time invitation: the token is in the address's fragment (never sent to the
// server in a request line, never in its logs); it is posted once with the new password.
import { session, post } from "/assets/common.js";

const form = document.getElementById("invite-form");
const error = document.getElementById("invite-error");
const token = window.location.hash.slice(1);
history.replaceState(null, "", "/invite");

await session();
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  if (form.password.value !== form.again.value) {
    error.textContent = "The two passwords differ.";
    return;
  }
  const { ok, status, data } = await post("/api/invite", { token, password: form.password.value });
  if (ok) window.location.href = "/caregiver";
  else if (status === 403) { await session(); error.textContent = data.error || "Please try again."; }
  else error.textContent = data.error || "This invitation did not work.";
});
