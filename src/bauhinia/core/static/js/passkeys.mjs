// Passkey sign-in and registration. Progressive enhancement: the buttons are
// shown only when JavaScript runs; password and authenticator app work without.
const { startAuthentication, startRegistration, browserSupportsWebAuthn } = window.SimpleWebAuthnBrowser;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const errorBox = document.getElementById("passkey-error");

// The server's messages arrive in the page's language. The browser's own (a cancelled prompt, an
// authenticator that already holds a passkey) are in English, so the page supplies its own words.
class ServerMessage extends Error {}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page, an expired form): fall through to the page's own message.
  }
  // Errors are RFC 9457 problem details; their detail is already in the page's language.
  if (!response.ok || data === null) throw new ServerMessage((data && data.detail) || "");
  return data;
}

function showError(error) {
  let message = errorBox.dataset.failed;
  if (error instanceof ServerMessage && error.message) message = error.message;
  else if (error && error.code === "ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED" && errorBox.dataset.duplicate) {
    message = errorBox.dataset.duplicate;
  }
  errorBox.querySelector(".bauhinia-passkey-error__text").textContent = message;
  errorBox.hidden = false;
}

const signIn = document.getElementById("passkey-signin-button");
if (signIn && browserSupportsWebAuthn()) {
  signIn.addEventListener("click", async () => {
    try {
      const optionsJSON = await post("/signin/passkey/options");
      const assertion = await startAuthentication({ optionsJSON });
      const next = encodeURIComponent(signIn.dataset.next || "/account");
      const result = await post(`/signin/passkey?next=${next}`, assertion);
      window.location.assign(result.redirect);
    } catch (error) {
      showError(error);
    }
  });
}

const register = document.getElementById("passkey-register-button");
if (register && browserSupportsWebAuthn()) {
  register.addEventListener("click", async () => {
    try {
      const optionsJSON = await post("/account/passkeys/options");
      const attestation = await startRegistration({ optionsJSON });
      const result = await post("/account/passkeys", attestation);
      window.location.assign(result.redirect);
    } catch (error) {
      showError(error);
    }
  });
}
