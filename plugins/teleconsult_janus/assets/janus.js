// The janus provider's transport for the call page: Janus's videoroom (an SFU) over its
// WebSocket API ("janus-protocol"), spoken here directly (no janus.js: see docs/providers.md).
// The page publishes its camera and microphone once, on one RTCPeerConnection, and receives
// each other participant on one RTCPeerConnection per feed. Its way in is POST ./token: a
// Janus token teleconsult adds to the room's allowed list once the link may enter, so Janus
// itself refuses anyone else. A destroyed room (the consultation cancelled or replaced) ends
// the call; a kick (the link revoked, its participant removed) ends it with the ending page
// the info gives; a dropped connection joins again while the link still opens the call.
// Rooms require each subscription to name its page's own feed (`private_id`), so kicking a
// page ends the subscriptions it holds too. The chat goes over the videoroom's data channels
// (each page publishes one, its subscribers receive it); a shared screen replaces the camera
// on the one published video, whose stream description ("screen") tells every page, those
// joining later too. A page without a camera publishes a video all the same (a transceiver
// with no track), so that it can share its screen later. Each page tells the others its
// microphone and camera, on or off, over the same data channel (a "media" message): on a
// change, once its channel opens and when a subscription to another page opens, then with
// `hello`, which asks that page's state back (so a pair learns each other's state whichever
// of their two subscriptions opens first).
// The lobby is teleconsult's: ./token answers 202 while this page waits (asked again every
// retryAfterMs), and a plus participant's page reads ./lobby on the same period and admits or
// declines through ./admit and ./decline (short polls: Janus has no channel from teleconsult).
// A waiting page that leaves or closes withdraws its knock at once (./leave, a beacon).

const KEEPALIVE_MS = 25000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000];
const STATS_MS = 1000;
const MAX_CHAT_CHARS = 1000;
const SCREEN = "screen";
const CAMERA = "camera";
const LOBBY_RETRY_MS = 2000; // until the server says otherwise (its retryAfterMs)

export function createTransport(ui, info) {
  const base = location.pathname.replace(/\/+$/, "");
  const names = new Map((info.participants || []).map((p) => [p.id, p.name]));
  // Janus relays a data channel unchecked: a chat from a level without the tool is not shown.
  const chatters = new Set((info.participants || []).filter((p) => p.tools?.includes("chat")).map((p) => p.id));
  const s = {
    phase: "idle", ws: null, access: null, session: null, publisher: null, pc: null,
    selfId: null, privateId: null, feeds: new Map(), pending: new Map(), handlers: new Map(),
    keepalive: null, reconnects: 0, channel: null, chatsDropped: 0, asking: null, lobbyTimer: null,
    knocks: new Set(), held: false,
  };
  const readsLobby = !!(info.lobby && info.self?.isAdmin);
  const videoSender = () => s.pc?.getTransceivers().find((t) => t.receiver.track.kind === "video")?.sender;

  function setPhase(phase, notice = "") {
    s.phase = phase;
    ui.phase(phase, notice);
  }

  // One Janus request; resolves with its answer ("success", or "ack" for an asynchronous one).
  function request(message) {
    return new Promise((resolve, reject) => {
      const transaction = Math.random().toString(36).slice(2);
      s.pending.set(transaction, { resolve, reject });
      const body = { ...message, transaction, token: s.access.token };
      if (s.session !== null) body.session_id = s.session;
      s.ws.send(JSON.stringify(body));
    });
  }

  function onMessage(data) {
    const msg = JSON.parse(data);
    const waiting = msg.transaction && s.pending.get(msg.transaction);
    if (waiting && msg.janus !== "event") {
      s.pending.delete(msg.transaction);
      if (msg.janus === "error") waiting.reject(new Error(msg.error?.reason || "Janus error"));
      else waiting.resolve(msg);
      return;
    }
    if (msg.janus === "event" || msg.janus === "trickle" || msg.janus === "webrtcup" || msg.janus === "hangup") {
      s.handlers.get(msg.sender)?.(msg);
    }
  }

  async function attach(onEvent) {
    const answer = await request({ janus: "attach", plugin: "janus.plugin.videoroom" });
    const handle = answer.data.id;
    s.handlers.set(handle, onEvent);
    return handle;
  }

  function message(handle, body, jsep) {
    return request({ janus: "message", handle_id: handle, body, ...(jsep ? { jsep } : {}) });
  }

  function trickle(handle, pc) {
    pc.onicecandidate = (event) => {
      const candidate = event.candidate ? event.candidate.toJSON() : { completed: true };
      if (s.ws?.readyState === WebSocket.OPEN) request({ janus: "trickle", handle_id: handle, candidate }).catch(() => {});
    };
  }

  function newConnection() {
    return new RTCPeerConnection({ iceServers: s.access.iceServers, iceTransportPolicy: s.access.iceTransportPolicy });
  }

  // ---------------------------------------------------------------- joining

  // A page that reconnects keeps the token it holds: teleconsult makes a room Janus forgot
  // again with the same allowed tokens, so it gets back in without asking. Refused with it
  // (the room is not back yet, or the token no longer opens it), it asks again (`retryAsking`).
  async function join() {
    if (s.ws) return;
    clearTimeout(s.asking);
    const waited = s.phase === "waiting";
    if (s.phase !== "reconnecting" && !waited) setPhase("joining");
    s.held = s.phase === "reconnecting" && s.access !== null;
    if (!s.held) {
      const response = await fetch(`${base}/token`, tokenRequest(waited)).catch(() => null);
      if (s.phase === "left" || s.phase === "ended") return; // left meanwhile
      if (response?.status === 202) return wait(await response.json());
      if (!response || !response.ok) {
        const refusal = response ? await response.json().catch(() => ({})) : {};
        if (response && response.status !== 503) return finish(endNotice(refusal.reason));
        if (waited) return wait({}); // still waiting: ask again
        return setPhase("error", "connection_lost");
      }
      s.access = await response.json();
      if (waited) setPhase("joining"); // admitted: on its way in
    }
    const ws = new WebSocket(s.access.server, "janus-protocol");
    s.ws = ws;
    ws.onmessage = (event) => { if (ws === s.ws) onMessage(event.data); };
    ws.onclose = () => { if (ws === s.ws) onClosed(); };
    ws.onopen = () => start().catch((err) => {
      if (retryAsking()) return;
      console.warn("janus: joining failed", err);
      onClosed();
    });
  }

  // Refused with the token it held: forget it and join again, asking teleconsult for one.
  function retryAsking() {
    if (!s.held) return false;
    close();
    s.access = null;
    join();
    return true;
  }

  // A waiting page says so: a fresh request knocks again (after a refusal, too).
  function tokenRequest(waited) {
    if (!waited) return { method: "POST", cache: "no-store" };
    const headers = { "Content-Type": "application/json" };
    return { method: "POST", cache: "no-store", headers, body: JSON.stringify({ waiting: true }) };
  }

  // The lobby: no token until a plus participant admits this page.
  function wait(answer) {
    if (s.phase !== "waiting") setPhase("waiting");
    s.asking = setTimeout(join, answer.retryAfterMs ?? LOBBY_RETRY_MS);
  }

  async function start() {
    const created = await request({ janus: "create" });
    s.session = created.data.id;
    s.keepalive = setInterval(() => request({ janus: "keepalive" }).catch(() => {}), KEEPALIVE_MS);
    s.publisher = await attach(onPublisherEvent);
    await message(s.publisher, {
      request: "join", ptype: "publisher", room: s.access.room, token: s.access.token,
      display: s.access.display,
    });
  }

  async function onPublisherEvent(msg) {
    const data = msg.plugindata?.data || {};
    if (msg.jsep && s.pc) await s.pc.setRemoteDescription(msg.jsep);
    if (data.videoroom === "joined") {
      s.held = false;
      s.selfId = data.id;
      s.privateId = data.private_id;
      s.reconnects = 0;
      setPhase("in-call");
      readKnocks();
      await publish();
    }
    if (data.videoroom === "destroyed") return finish("ended");
    if (data.leaving === "ok" && data.reason === "kicked") return kicked();
    if (data.kicked !== undefined) removeFeed(data.kicked);
    if (data.error_code) {
      if (retryAsking()) return;
      console.warn("janus: refused", data.error_code, data.error);
      return finish("ended");
    }
    for (const feed of data.publishers || []) {
      if (s.feeds.has(feed.id)) showSharing(s.feeds.get(feed.id), feed);
      else subscribe(feed);
    }
    const gone = data.unpublished ?? data.leaving;
    if (gone !== undefined && gone !== "ok") removeFeed(gone);
    ui.peersChanged();
  }

  async function publish() {
    const pc = newConnection();
    s.pc = pc;
    trickle(s.publisher, pc);
    const stream = ui.localStream();
    for (const track of stream?.getTracks() || []) {
      pc.addTrack(track.kind === "video" ? (ui.sharingTrack?.() ?? track) : track, stream);
    }
    // No camera: a video all the same, so that a shared screen has a sender to replace.
    if (!stream?.getVideoTracks().length) pc.addTransceiver(ui.sharingTrack?.() ?? "video", { direction: "sendonly" });
    const channel = pc.createDataChannel("chat"); // the chat and media state, to every subscriber
    s.channel = channel;
    channel.onopen = () => { if (channel === s.channel) sendMedia(true); };
    await pc.setLocalDescription(await pc.createOffer());
    await message(s.publisher, { request: "publish", ...describe(!!ui.sharingTrack?.()) }, pc.localDescription.toJSON());
  }

  // ---------------------------------------------------------------- chat and screen sharing

  // The published video's description: the screen while this page shares it, else the camera.
  function describe(sharing) {
    const video = s.pc?.getTransceivers().find((t) => t.receiver.track.kind === "video");
    return video?.mid == null ? {} : { descriptions: [{ mid: video.mid, description: sharing ? SCREEN : CAMERA }] };
  }

  // This page's microphone and camera, on or off, to every subscriber; `hello` asks theirs back.
  function sendMedia(hello = false) {
    if (s.phase !== "in-call" || s.channel?.readyState !== "open") return;
    s.channel.send(JSON.stringify({ type: "media", ...ui.mediaState(), ...(hello ? { hello: true } : {}) }));
  }

  // Sharing started or stopped (the track already swapped): Janus tells every page.
  function screen(sharing) {
    if (s.phase !== "in-call" || !s.pc) return;
    message(s.publisher, { request: "configure", ...describe(sharing) }).catch((err) => console.warn("janus: configure failed", err));
  }

  function showSharing(feed, publisher) {
    const sharing = (publisher.streams || []).some((x) => x.type === "video" && x.description === SCREEN);
    feed.tile.setSharing(sharing);
  }

  // A chat text to every page in the call, over this page's data channel.
  function chat(text) {
    if (s.phase !== "in-call" || s.channel?.readyState !== "open") return false;
    s.channel.send(JSON.stringify({ type: "chat", text }));
    return true;
  }

  // A message on a feed's data channel: its media state, or a chat shown only from a level
  // with the tool.
  function onData(feed, data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg?.type === "media") {
      feed.tile.setMedia(msg.audio !== false, msg.video !== false);
      if (msg.hello === true) sendMedia(); // a page that just began to receive this one
      return;
    }
    if (msg?.type !== "chat" || typeof msg.text !== "string") return;
    const text = msg.text.trim();
    if (!text || text.length > MAX_CHAT_CHARS) return; // as the page's form allows
    if (!chatters.has(feed.display)) {
      s.chatsDropped++;
      return;
    }
    ui.chat?.(String(feed.id), text);
  }

  // ---------------------------------------------------------------- the others' feeds

  async function subscribe(publisher) {
    if (s.feeds.has(publisher.id)) return;
    const pc = newConnection();
    const tile = ui.addTile(String(publisher.id));
    tile.setName(names.get(publisher.display) || "");
    const feed = { id: publisher.id, pc, tile, handle: null, display: publisher.display };
    s.feeds.set(publisher.id, feed);
    showSharing(feed, publisher);
    const stream = new MediaStream();
    pc.ontrack = (event) => { stream.addTrack(event.track); tile.play(stream); };
    pc.ondatachannel = (event) => {
      event.channel.onmessage = (m) => onData(feed, m.data);
      sendMedia(true); // this page now hears that feed: its state to it, and theirs asked for
    };
    const showState = () => tile.setConnected(pc.connectionState === "connected");
    pc.onconnectionstatechange = showState;
    showState();
    feed.handle = await attach(async (msg) => {
      const data = msg.plugindata?.data || {};
      if (data.videoroom === "destroyed") return finish("ended");
      if (!msg.jsep) return;
      await pc.setRemoteDescription(msg.jsep);
      // A channel of its own opens the SCTP association, over which Janus then opens the
      // channel of the feed's chat (ondatachannel); without one, Chrome never connects it.
      feed.channel ??= pc.createDataChannel("JanusDataChannel");
      await pc.setLocalDescription(await pc.createAnswer());
      await message(feed.handle, { request: "start", room: s.access.room }, pc.localDescription.toJSON());
    });
    trickle(feed.handle, pc);
    await message(feed.handle, {
      request: "join", ptype: "subscriber", room: s.access.room, token: s.access.token,
      private_id: s.privateId, streams: [{ feed: publisher.id }],
    });
  }

  function removeFeed(id) {
    const feed = s.feeds.get(id);
    if (!feed) return;
    s.feeds.delete(id);
    feed.pc.close();
    ui.removeTile(String(id));
  }

  // ---------------------------------------------------------------- the lobby, for a plus page

  // Who waits, read every retryAfterMs while in the call; the shared UI is told what changed.
  async function readKnocks() {
    clearTimeout(s.lobbyTimer);
    if (!readsLobby || s.phase !== "in-call") return;
    let next = LOBBY_RETRY_MS;
    try {
      const response = await fetch(`${base}/lobby`, { cache: "no-store" });
      if (response.ok && s.phase === "in-call") {
        const answer = await response.json();
        next = answer.retryAfterMs;
        const now = new Set(answer.waiting.map((knock) => knock.id));
        for (const id of s.knocks) if (!now.has(id)) ui.knockWithdrawn(id);
        for (const knock of answer.waiting) if (!s.knocks.has(knock.id)) ui.knock(knock);
        s.knocks = now;
      }
    } catch {
      // offline: read again later
    }
    if (s.phase === "in-call") s.lobbyTimer = setTimeout(readKnocks, next);
  }

  function decide(decision, id) {
    s.knocks.delete(id);
    const headers = { "Content-Type": "application/json" };
    fetch(`${base}/${decision}`, { method: "POST", headers, body: JSON.stringify({ peer: id }) })
      .catch(() => {})
      .finally(readKnocks);
  }

  // End the call for everyone: Janus's room is destroyed, every page is told (this one too).
  async function end() {
    const response = await fetch(`${base}/end`, { method: "POST" }).catch(() => null);
    if (response && (response.ok || response.status === 410)) finish("ended");
    else console.warn("janus: the call could not be ended", response?.status);
  }

  // ---------------------------------------------------------------- leaving

  function close() {
    clearInterval(s.keepalive);
    clearTimeout(s.asking);
    clearTimeout(s.lobbyTimer);
    s.knocks = new Set();
    for (const id of [...s.feeds.keys()]) removeFeed(id);
    s.pc?.close();
    s.pc = null;
    s.channel = null;
    const ws = s.ws;
    s.ws = null;
    s.session = null;
    s.handlers.clear();
    s.pending.clear();
    ws?.close(1000);
  }

  function leave() {
    withdraw();
    s.reconnects = 0;
    close();
    setPhase("left", "left");
  }

  // A waiting page leaving (or closed) takes its knock back at once, so the plus pages stop
  // listing it: a beacon, sent while the page unloads too.
  function withdraw() {
    if (s.phase === "waiting") navigator.sendBeacon(`${base}/leave`);
  }

  // Kicked by Janus (teleconsult revoked this link, or removed its participant): the page's
  // info says why, and the page shows that ending.
  async function kicked() {
    close();
    let notice = "ended";
    try {
      const response = await fetch(`${base}/info`, { cache: "no-store" });
      if (!response.ok) notice = endNotice((await response.json().catch(() => ({}))).reason);
    } catch {
      // offline: the call ended all the same
    }
    setPhase("ended", notice);
  }

  // The ending a refusal's reason shows: its link expired, was revoked, or its participant removed.
  function endNotice(reason) {
    const notices = { expired: "expired", revoked: "revoked", removed: "removed", declined: "declined" };
    return notices[reason] ?? "ended";
  }

  function finish(notice) {
    close();
    setPhase("ended", notice);
  }

  // The connection to Janus dropped (Janus restarted, a network blip): join again.
  function onClosed() {
    const wasIn = ["in-call", "joining", "reconnecting"].includes(s.phase);
    close();
    if (s.phase === "ended" || s.phase === "left") return;
    if (wasIn && s.reconnects < RECONNECT_DELAYS_MS.length) {
      setPhase("reconnecting");
      setTimeout(() => { if (s.phase === "reconnecting") join(); }, RECONNECT_DELAYS_MS[s.reconnects++]);
      return;
    }
    setPhase("error", "connection_lost");
  }

  setInterval(() => {
    for (const feed of s.feeds.values()) {
      if (feed.pc.connectionState !== "connected") continue;
      feed.pc.getStats().then((report) => feed.tile.stats(report)).catch(() => {});
    }
  }, STATS_MS);

  // ---------------------------------------------------------------- what tests read

  const view = {
    get selfId() { return s.selfId; },
    peerCount() { return s.feeds.size; },
    peerIds() { return [...s.feeds.keys()].map(String); },
    chatsDropped() { return s.chatsDropped; }, // chats from a level without the tool
    sentVideoLabels() { // what the published video is: the camera's label, or the screen's
      return (s.pc?.getSenders() || []).filter((x) => x.track?.kind === "video").map((x) => x.track.label);
    },
    connectionStates() {
      return Object.fromEntries([...s.feeds].map(([id, f]) => [String(id), f.pc.connectionState]));
    },
    async videoFramesDecoded() {
      const result = {};
      for (const [id, f] of s.feeds) {
        let frames = 0;
        (await f.pc.getStats()).forEach((stat) => {
          if (stat.type === "inbound-rtp" && stat.kind === "video") frames += stat.framesDecoded || 0;
        });
        result[String(id)] = frames;
      }
      return result;
    },
    async selectedCandidatePairs() {
      const result = {};
      for (const [id, f] of s.feeds) {
        const stats = await f.pc.getStats();
        stats.forEach((stat) => {
          if (stat.type !== "transport" || !stat.selectedCandidatePairId) return;
          const pair = stats.get(stat.selectedCandidatePairId);
          const remote = stats.get(pair.remoteCandidateId);
          result[String(id)] = { remote: remote?.address, remotePort: remote?.port, remoteType: remote?.candidateType };
        });
      }
      return result;
    },
  };

  return {
    join,
    leave,
    end,
    media: () => sendMedia(),
    chat,
    replaceVideo: async (track) => { await videoSender()?.replaceTrack(track); },
    screen,
    admit: (id) => decide("admit", id),
    decline: (id) => decide("decline", id),
    close: () => {
      withdraw();
      close();
    },
    view,
  };
}
