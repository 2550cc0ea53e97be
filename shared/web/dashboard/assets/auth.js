// Sign-in. `GET /api/dashboard/config.json` says how: `dev` (a pasted dev token, kept in this
// tab's sessionStorage only) or `entra` (MSAL.js against Entra ID with the API's scope, tokens
// cached in sessionStorage; the vendored library is loaded only then).

const DEV_TOKEN_KEY = "psc.dashboard.devToken";
const ASSETS = "/api/dashboard/assets/";
const MSAL_SCRIPT = `${ASSETS}msal-browser-5.30.0.min.js`;
const REDIRECT_PAGE = `${ASSETS}redirect.html`;

export async function loadConfig() {
  const answer = await fetch("/api/dashboard/config.json", { headers: { Accept: "application/json" } });
  if (!answer.ok) {
    throw new Error(`The dashboard's configuration could not be read (${answer.status}).`);
  }
  return answer.json();
}

// A session: `ready` says whether a token can be had without asking; `token()` gives one;
// `start()` begins signing in (dev: stores the pasted token; entra: redirects to Entra);
// `end()` signs out.
export async function openSession(config) {
  return config.authMode === "entra" ? entraSession(config.entra) : devSession();
}

function devSession() {
  return {
    mode: "dev",
    get ready() {
      return Boolean(sessionStorage.getItem(DEV_TOKEN_KEY));
    },
    async token() {
      return sessionStorage.getItem(DEV_TOKEN_KEY);
    },
    async start(pasted) {
      const token = (pasted ?? "").trim();
      if (token) {
        sessionStorage.setItem(DEV_TOKEN_KEY, token);
      }
    },
    async end() {
      sessionStorage.removeItem(DEV_TOKEN_KEY);
    },
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error(`Could not load ${src}.`)));
    document.head.append(script);
  });
}

async function entraSession(entra) {
  await loadScript(MSAL_SCRIPT);
  const msal = globalThis.msal;
  const redirectUri = new URL(REDIRECT_PAGE, location.origin).href;
  const client = new msal.PublicClientApplication({
    auth: { clientId: entra.clientId, authority: entra.authority, redirectUri },
    cache: { cacheLocation: "sessionStorage" },
  });
  await client.initialize();
  const answer = await client.handleRedirectPromise();
  const account = answer?.account ?? client.getAllAccounts()[0] ?? null;
  if (account) {
    client.setActiveAccount(account);
  }
  const request = { scopes: entra.scopes };
  return {
    mode: "entra",
    get ready() {
      return client.getActiveAccount() !== null;
    },
    async token() {
      const active = client.getActiveAccount();
      try {
        return (await client.acquireTokenSilent({ ...request, account: active })).accessToken;
      } catch (error) {
        if (error instanceof msal.InteractionRequiredAuthError) {
          await client.acquireTokenRedirect({ ...request, account: active });
        }
        throw error;
      }
    },
    async start() {
      await client.loginRedirect(request);
    },
    async end() {
      await client.logoutRedirect({ account: client.getActiveAccount(), postLogoutRedirectUri: redirectUri });
    },
  };
}
