// MSAL.js 5's redirect bridge: Entra sends the sign-in answer to this page, which hands it to the
// dashboard (the window that started a redirect, or the popup's or hidden frame's opener).

globalThis.msalRedirectBridge.broadcastResponseToMainFrame().catch((error) => {
  const status = document.querySelector("[role=status]");
  status.textContent = `Sign-in failed (${error.errorCode ?? "unknown error"}). Close this window and try again.`;
});
