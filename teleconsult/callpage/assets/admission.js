// The lobby on the call page (CALL_PAGE_LOBBY). A plus participant sees who waits to be let
// in (name, since when) and admits or declines each one; someone waiting is told the
// doctor will let them in and, after the info's lobby.noticeAfterMs, what to do if nobody
// does. The server enforces the lobby (a waiting page gets no media and no one's presence);
// this module only shows it and sends the decisions through the transport.

export function createAdmission({ say, $, render }) {
  const waiting = new Map(); // peer id -> { id, name, since }
  const s = { noticeAfterMs: 0, language: "en", transport: null, slow: false, timer: null };

  function setup(info, transport) {
    s.noticeAfterMs = info.lobby?.noticeAfterMs ?? 0;
    s.language = info.language;
    s.transport = transport;
    $("admission-heading").textContent = say("lobby_heading");
  }

  // The page's phase changed: the notice's timer runs while waiting, the list while in.
  function phase(phase) {
    if (phase === "waiting" && !s.timer && s.noticeAfterMs) {
      s.timer = setTimeout(() => { s.slow = true; render(); }, s.noticeAfterMs);
    } else if (phase !== "waiting" && phase !== "reconnecting") {
      clearTimeout(s.timer);
      s.timer = null;
      s.slow = false;
    }
    if (phase !== "in-call") waiting.clear();
    draw();
  }

  const status = () => say(s.slow ? "lobby_slow" : "lobby_waiting");

  function reset(knocks) {
    waiting.clear();
    for (const knock of knocks) waiting.set(knock.id, knock);
    draw();
  }

  function knock(peer) {
    waiting.set(peer.id, peer);
    draw();
  }

  function withdrawn(id) {
    waiting.delete(id);
    draw();
  }

  function decide(id, decision) {
    waiting.delete(id);
    draw();
    s.transport[decision](id);
  }

  function draw() {
    const list = $("admission-list");
    $("admission").hidden = waiting.size === 0;
    const time = new Intl.DateTimeFormat(s.language, { timeStyle: "short" });
    list.replaceChildren(...[...waiting.values()].map((peer) => {
      const item = document.createElement("li");
      item.dataset.peerId = peer.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = peer.name;
      const since = document.createElement("span");
      since.className = "since";
      since.textContent = say("lobby_since").replace("{time}", time.format(new Date(peer.since)));
      item.append(name, since, button(peer, "admit", "primary"), button(peer, "decline", "danger"));
      return item;
    }));
  }

  function button(peer, decision, style) {
    const control = document.createElement("button");
    control.type = "button";
    control.className = style;
    control.textContent = say(`lobby_${decision}`);
    control.setAttribute("aria-label", `${say(`lobby_${decision}`)}: ${peer.name}`);
    control.addEventListener("click", () => decide(peer.id, decision));
    return control;
  }

  return {
    setup, phase, status, reset, knock, withdrawn,
    waitingNames: () => [...waiting.values()].map((peer) => peer.name),
  };
}
