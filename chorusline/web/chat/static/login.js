// The login form: POST /v1/auth/login with fetch (the CSP's form-action 'none' means the
// form itself never submits), then go to the app. The server sets the HttpOnly cookie.

const form = document.getElementById("login-form");
const nameInput = document.getElementById("login-name");
const passwordInput = document.getElementById("login-password");
const submit = document.getElementById("login-submit");
const error = document.getElementById("login-error");

let lockTimer = null;

/** 429: say how long to wait and keep the button off until then. */
function lockFor(seconds) {
  clearInterval(lockTimer);
  let left = Math.max(1, Math.ceil(seconds));
  const show = () => { error.textContent = `Too many attempts: try again in ${left} s`; };
  submit.disabled = true;
  show();
  lockTimer = setInterval(() => {
    left -= 1;
    if (left <= 0) {
      clearInterval(lockTimer);
      submit.disabled = false;
      error.textContent = "";
    } else show();
  }, 1000);
}

async function messageOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `Sign-in failed (${response.status})`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const name = nameInput.value.trim();
  const password = passwordInput.value;
  if (!name || !password) {
    error.textContent = "Enter your name and password.";
    return;
  }
  submit.disabled = true;
  let locked = false;
  try {
    const response = await fetch("/v1/auth/login", {
      method: "POST",
      headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify({name, password}),
      cache: "no-store",
    });
    if (response.ok) {
      window.location.assign("/");
      return;
    }
    if (response.status === 429) {
      const wait = Number(response.headers.get("Retry-After"));
      lockFor(Number.isFinite(wait) && wait > 0 ? wait : 30);
      locked = true;
      return;
    }
    error.textContent = await messageOf(response);
    passwordInput.select();
  } catch {
    error.textContent = "Network error: the server could not be reached.";
  } finally {
    if (!locked) submit.disabled = false;
  }
});
