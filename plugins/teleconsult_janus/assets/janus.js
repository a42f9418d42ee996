// The janus provider's transport for the call page: Janus's videoroom (an SFU) over its
// WebSocket API ("janus-protocol"), spoken here directly (no janus.js: see docs/providers.md).
// The page publishes its camera and microphone once, on one RTCPeerConnection, and receives
// each other participant on one RTCPeerConnection per feed. Its way in is POST ./token: a
// Janus token teleconsult adds to the room's allowed list once the link may enter, so Janus
// itself refuses anyone else. A destroyed room (the consultation cancelled or replaced) ends
// the call; a kick (the link revoked, its participant removed) ends it with the ending page
// the info gives; a dropped connection joins again while the link still opens the call.

const KEEPALIVE_MS = 25000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000];
const STATS_MS = 1000;

export function createTransport(ui, info) {
  const base = location.pathname.replace(/\/+$/, "");
  const names = new Map((info.participants || []).map((p) => [p.id, p.name]));
  const s = {
    phase: "idle", ws: null, access: null, session: null, publisher: null, pc: null,
    selfId: null, feeds: new Map(), pending: new Map(), handlers: new Map(), keepalive: null,
    reconnects: 0, held: false,
  };

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
    if (s.phase !== "reconnecting") setPhase("joining");
    s.held = s.phase === "reconnecting" && s.access !== null;
    if (!s.held) {
      const response = await fetch(`${base}/token`, { method: "POST", cache: "no-store" }).catch(() => null);
      if (!response || !response.ok) {
        const refusal = response ? await response.json().catch(() => ({})) : {};
        if (response && response.status !== 503) return finish(endNotice(refusal.reason));
        return setPhase("error", "connection_lost");
      }
      s.access = await response.json();
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
      s.reconnects = 0;
      setPhase("in-call");
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
    for (const feed of data.publishers || []) subscribe(feed);
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
    await pc.setLocalDescription(await pc.createOffer());
    await message(s.publisher, { request: "publish" }, pc.localDescription.toJSON());
  }

  // ---------------------------------------------------------------- the others' feeds

  async function subscribe(publisher) {
    if (s.feeds.has(publisher.id)) return;
    const pc = newConnection();
    const tile = ui.addTile(String(publisher.id));
    tile.setName(names.get(publisher.display) || "");
    const feed = { id: publisher.id, pc, tile, handle: null, display: publisher.display };
    s.feeds.set(publisher.id, feed);
    const stream = new MediaStream();
    pc.ontrack = (event) => { stream.addTrack(event.track); tile.play(stream); };
    const showState = () => tile.setConnected(pc.connectionState === "connected");
    pc.onconnectionstatechange = showState;
    showState();
    feed.handle = await attach(async (msg) => {
      const data = msg.plugindata?.data || {};
      if (data.videoroom === "destroyed") return finish("ended");
      if (!msg.jsep) return;
      await pc.setRemoteDescription(msg.jsep);
      await pc.setLocalDescription(await pc.createAnswer());
      await message(feed.handle, { request: "start", room: s.access.room }, pc.localDescription.toJSON());
    });
    trickle(feed.handle, pc);
    await message(feed.handle, {
      request: "join", ptype: "subscriber", room: s.access.room, token: s.access.token,
      streams: [{ feed: publisher.id }],
    });
  }

  function removeFeed(id) {
    const feed = s.feeds.get(id);
    if (!feed) return;
    s.feeds.delete(id);
    feed.pc.close();
    ui.removeTile(String(id));
  }

  // ---------------------------------------------------------------- leaving

  function close() {
    clearInterval(s.keepalive);
    for (const id of [...s.feeds.keys()]) removeFeed(id);
    s.pc?.close();
    s.pc = null;
    const ws = s.ws;
    s.ws = null;
    s.session = null;
    s.handlers.clear();
    s.pending.clear();
    ws?.close(1000);
  }

  function leave() {
    s.reconnects = 0;
    close();
    setPhase("left", "left");
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
    const notices = { expired: "expired", revoked: "revoked", removed: "removed" };
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
    // No `end` (ending the call for everyone) nor chat yet: the page then shows no such control.
    media: () => {},
    chat: () => false,
    replaceVideo: async (track) => {
      const sender = s.pc?.getSenders().find((x) => x.track?.kind === "video");
      await sender?.replaceTrack(track);
    },
    screen: () => {},
    admit: () => {},
    decline: () => {},
    close,
    view,
  };
}
