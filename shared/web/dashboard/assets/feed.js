// The live feed: a WebSocket to the real-time hub (Azure Web PubSub, or the dev host's hub that
// speaks the same `json.webpubsub.azure.v1` subprotocol), at a short-lived URL from
// `GET /api/supervisor/negotiate`. The connection is in the `supervisors` group and may not send.
// Group frames `{"type":"message","from":"group","group":"supervisors","dataType":"json","data"}`
// hand `data` to `onDelta`; every (re)connection calls `onConnected`, which re-reads the live
// state, since the hub keeps nothing for a client that was away. A closed connection is retried
// with a growing pause and a new URL (the old one may have expired).

export const SUBPROTOCOL = "json.webpubsub.azure.v1";
const GROUP = "supervisors";
const PAUSES = [1, 2, 4, 8, 15, 30];

export function startFeed({ getJson, onDelta, onConnected, onStatus, onRefused }) {
  let socket = null;
  let failures = 0;
  let timer = null;
  let stopped = false;

  async function connect() {
    timer = null;
    if (stopped) {
      return;
    }
    let url;
    try {
      ({ url } = await getJson("supervisor/negotiate"));
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        onStatus("offline");
        onRefused(error);
        return;
      }
      retry();
      return;
    }
    const ws = new WebSocket(url, SUBPROTOCOL);
    socket = ws;
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "system" && frame.event === "connected") {
        failures = 0;
        onStatus("live");
        onConnected();
      } else if (
        frame.type === "message" &&
        frame.group === GROUP &&
        frame.dataType === "json" &&
        frame.data !== null &&
        typeof frame.data === "object"
      ) {
        onDelta(frame.data);
      }
    });
    ws.addEventListener("close", () => {
      if (socket === ws) {
        socket = null;
        retry();
      }
    });
  }

  function retry() {
    if (stopped || timer !== null) {
      return;
    }
    onStatus("reconnecting");
    const pause = PAUSES[Math.min(failures, PAUSES.length - 1)];
    failures += 1;
    timer = setTimeout(connect, pause * 1000);
  }

  onStatus("connecting");
  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      socket?.close();
      socket = null;
      onStatus("offline");
    },
  };
}
