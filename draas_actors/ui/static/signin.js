// Sign-in: the key goes to POST /ui/session as JSON (never in a URL); the answer sets the session cookie.
const form = document.getElementById("signin-form");
const error = document.getElementById("signin-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = form.elements.key.value;
  error.hidden = true;
  let response;
  try {
    response = await fetch("/ui/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ key }),
    });
  } catch (failure) {
    response = null;
  }
  if (response && response.ok) {
    form.reset();
    location.assign("/ui");
    return;
  }
  const body = response ? await response.json().catch(() => null) : null;
  error.textContent = body && body.detail ? `Sign-in refused: ${body.detail}` : "Sign-in failed: no answer";
  error.hidden = false;
  form.elements.key.select();
});
