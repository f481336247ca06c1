import { session, post } from "/assets/common.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

await session();
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  const { ok, status, data } = await post("/api/login", {
    login: form.login.value,
    password: form.password.value,
  });
  if (ok) {
    window.location.href = "/caregiver";
  } else if (status === 429) {
    error.textContent = "Too many failed attempts. Please wait a few minutes.";
  } else if (status === 403) {
    await session();
    error.textContent = "Your page was out of date; please try again.";
  } else {
    error.textContent = data.error || "Log in failed.";
  }
});
