// Passkey sign-in and registration. Progressive enhancement: the buttons are
// shown only when JavaScript runs; password and authenticator app work without.
const { startAuthentication, startRegistration, browserSupportsWebAuthn } = window.SimpleWebAuthnBrowser;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const errorBox = document.getElementById("passkey-error");

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  // Errors are RFC 9457 problem details; their detail is already in the page's language.
  if (!response.ok) throw new Error(data.detail || data.title || response.statusText);
  return data;
}

function showError(message) {
  errorBox.textContent = message;
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
      showError(error.message);
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
      showError(error.message);
    }
  });
}
