// The supervisor dashboard: sign in, then live queue tiles (kept current by the real-time hub),
// KPIs over a chosen range with charts, and tables per queue and per agent. The page holds no
// data of its own: everything comes from the API with the supervisor's token.

import { apiClient } from "./api.js";
import { loadConfig, openSession } from "./auth.js";
import { startFeed } from "./feed.js";
import { KpiView } from "./kpis.js";
import { LiveState } from "./live.js";

const $ = (id) => document.getElementById(id);
const STATUS_TEXT = {
  offline: "Offline",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

function setStatus(state) {
  const status = $("live-status");
  status.dataset.state = state;
  status.textContent = STATUS_TEXT[state];
}

function notify(message) {
  const notice = $("notice");
  notice.textContent = message ?? "";
  notice.hidden = !message;
}

class Dashboard {
  constructor(session) {
    this.session = session;
    this.getJson = apiClient(session);
    this.live = new LiveState({ tiles: $("tiles"), asOf: $("live-as-of") });
    this.kpis = new KpiView({ root: $("board"), getJson: this.getJson, live: this.live, onError: notify });
    this.feed = null;
    this.reading = null;
    this.readAgain = false;
    $("dev-sign-in").addEventListener("submit", (event) => {
      event.preventDefault();
      const field = $("dev-token");
      this.session.start(field.value).then(() => {
        field.value = "";
        this.open({ signedIn: true });
      });
    });
    $("entra-button").addEventListener("click", () => this.session.start());
    $("sign-out").addEventListener("click", () => this.signOut());
  }

  // `signedIn`: the supervisor just signed in here, so the focus moves on to the dashboard.
  async open({ signedIn = false } = {}) {
    if (!this.session.ready) {
      this.askToSignIn();
      return;
    }
    let snapshot;
    try {
      snapshot = await this.getJson("supervisor/kpis/live");
    } catch (error) {
      await this.refused(error);
      return;
    }
    notify("");
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    if (signedIn) {
      $("main").focus();
    }
    this.live.load(snapshot);
    this.feed = startFeed({
      getJson: this.getJson,
      onDelta: (delta) => {
        if (this.live.apply(delta) === "reload") {
          this.readLive();
        }
      },
      onConnected: () => this.readLive(),
      onStatus: setStatus,
      onRefused: (error) => this.refused(error),
    });
    await this.showKpis();
  }

  async showKpis() {
    try {
      await this.kpis.show();
    } catch (error) {
      await this.refused(error);
    }
  }

  // Re-reads /kpis/live (after a reconnection, or for a queue the page does not know yet); one
  // read at a time, and one more if asked meanwhile.
  async readLive() {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    do {
      this.readAgain = false;
      this.reading = this.getJson("supervisor/kpis/live");
      try {
        this.live.load(await this.reading);
      } catch (error) {
        await this.refused(error);
      } finally {
        this.reading = null;
      }
    } while (this.readAgain);
  }

  async refused(error) {
    if (error.status === 401) {
      this.stop();
      if (this.session.mode === "dev") {
        await this.session.end();
        this.askToSignIn("The token was refused (expired, or not valid here). Paste a new one.");
      } else {
        this.askToSignIn("Your sign-in has expired. Sign in again.");
      }
    } else if (error.status === 403) {
      this.stop();
      if (this.session.mode === "dev") {
        await this.session.end();
      }
      this.askToSignIn("This account may not see the dashboard: it needs the Supervisor role.");
    } else {
      notify(`The dashboard could not load its data: ${error.message}`);
    }
  }

  askToSignIn(message) {
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    const dev = this.session.mode === "dev";
    $("dev-sign-in").hidden = !dev;
    $("entra-sign-in").hidden = dev;
    notify(message);
    (dev ? $("dev-token") : $("entra-button")).focus();
  }

  stop() {
    this.feed?.stop();
    this.feed = null;
  }

  async signOut() {
    this.stop();
    await this.session.end();
    this.askToSignIn("Signed out.");
  }
}

async function main() {
  let session;
  try {
    session = await openSession(await loadConfig());
  } catch (error) {
    notify(`Sign-in could not start: ${error.errorCode ?? error.message}`);
    return;
  }
  await new Dashboard(session).open();
}

main();
