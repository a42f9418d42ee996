// The webrtc provider's transport for the call page: a full mesh of RTCPeerConnections
// over JSON WebSocket signaling (signaling.py). The page's UI (call.js) owns what is shown;
// this module owns the connection and tells the UI what happens (ui.phase, ui.addTile...).
// Rule that avoids glare: the newcomer sends an offer to every peer already present
// (listed in "joined"); existing peers answer. When the signaling connection drops (a replica
// stopping, a network blip) the peer connections and their media carry on: the page
// reconnects by itself (backoff with jitter, through whichever replica answers) and resumes
// its seat under the same id ("resumed"). An ICE restart happens only when the network path
// changed (ICE "failed", or "disconnected" for ICE_DISCONNECTED_MS); either side may start
// one, and two crossing offers are settled as in perfect negotiation (the polite side yields).
// A connection too weak for video sends audio only until it recovers (quality.js's rule).

import { VIDEO_SENT, videoLink } from "./quality.js";

const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
const RECONNECT_BASE_MS = 250;
const RECONNECT_MAX_MS = 8000;
const RECONNECT_ATTEMPTS = 12; // about a minute of trying, backoff capped at 8 s
const ICE_DISCONNECTED_MS = 4000;
const STATS_MS = 1000;

export function createTransport(ui, info) {
  const base = location.pathname.replace(/\/+$/, "");
  const s = { phase: "idle", ws: null, selfId: null, peers: new Map(), reconnects: 0 };
  const counts = { iceRestarts: 0, crossedOffers: 0, resumed: 0 }; // what tests read

  function setPhase(phase, notice = "") {
    s.phase = phase;
    ui.phase(phase, notice);
  }

  function send(message) {
    if (s.ws?.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify(message));
  }

  // This page's microphone and camera, on or off, to everyone in the call (never while waiting).
  function sendMedia() {
    if (s.phase !== "in-call") return;
    send({ type: "media", ...ui.mediaState() });
  }

  // Each connected peer's statistics, every second, for its tile's quality and speaking.
  setInterval(() => {
    for (const peer of s.peers.values()) {
      if (peer.pc.connectionState !== "connected") continue;
      peer.pc.getStats().then((report) => adaptVideo(peer, peer.tile.stats(report))).catch(() => {});
    }
  }, STATS_MS);

  function join() {
    if (s.ws) return;
    if (s.phase !== "reconnecting") setPhase("joining");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${base}/ws`);
    s.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "join", v: 1, ...resumeField() }));
    ws.onmessage = (event) => {
      if (ws === s.ws) onMessage(event.data);
    };
    ws.onclose = (event) => {
      if (ws === s.ws) onSocketClosed(event);
    };
  }

  function onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    switch (msg.type) {
      case "resumed":
        onResumed(msg);
        return;
      case "joined":
        if (s.phase === "reconnecting") send({ type: "report", event: "reconnected" });
        if (s.selfId !== msg.self.id) closePeers(); // a new seat: the old connections are gone
        s.selfId = msg.self.id;
        s.reconnects = 0;
        for (const peer of msg.peers) addPeer(peer, true);
        setPhase("in-call");
        sendMedia();
        ui.knocks(msg.waiting || []);
        return;
      case "waiting": // the lobby: no peers until a plus participant admits this page
        if (s.phase === "reconnecting") send({ type: "report", event: "reconnected" });
        if (s.selfId !== msg.self.id) closePeers();
        s.selfId = msg.self.id;
        s.reconnects = 0;
        setPhase("waiting");
        return;
      case "knock":
        ui.knock(msg.peer);
        return;
      case "knock-withdrawn":
        ui.knockWithdrawn(msg.id);
        return;
      case "declined":
        finish("declined");
        return;
      case "peer-joined":
        addPeer(msg.peer, false);
        sendMedia(); // the newcomer learns this page's microphone and camera
        if (ui.sharingTrack?.()) send({ type: "screen", sharing: true }); // and that it shares
        break;
      case "media":
        s.peers.get(msg.from)?.tile.setMedia(msg.audio !== false, msg.video !== false);
        return;
      case "chat":
        if (s.peers.has(msg.from) && typeof msg.text === "string") ui.chat?.(msg.from, msg.text);
        return;
      case "screen":
        s.peers.get(msg.from)?.tile.setSharing(msg.sharing === true);
        return;
      case "video-paused":
        s.peers.get(msg.from)?.tile.setVideoPaused(msg.paused === true);
        return;
      case "peer-left":
        removePeer(msg.id);
        break;
      case "offer":
        onOffer(msg);
        break;
      case "answer": {
        const peer = s.peers.get(msg.from);
        if (peer) enqueue(peer, () => onAnswer(peer, msg.sdp));
        break;
      }
      case "candidate": {
        const peer = s.peers.get(msg.from);
        if (peer && msg.candidate) enqueue(peer, () => peer.pc.addIceCandidate(msg.candidate));
        break;
      }
      case "ended":
        finish(endNotice(msg.reason));
        return;
      default:
        console.warn("unknown signaling message", msg.type);
    }
    ui.peersChanged();
  }

  function onSocketClosed(event) {
    s.ws = null;
    if (s.phase === "ended" || s.phase === "left") return;
    if (event.code === 4000) return finish("ended");
    if (event.code === 4003) return finish("declined");
    const notices = { 4001: "full", 4002: "replaced" };
    if (notices[event.code]) {
      closePeers();
      return setPhase("error", notices[event.code]);
    }
    const wasIn = ["in-call", "waiting", "reconnecting"].includes(s.phase);
    if (wasIn && RECONNECT_CODES.has(event.code) && s.reconnects < RECONNECT_ATTEMPTS) {
      scheduleReconnect(); // the peer connections stay: their media does not need the server
      return;
    }
    closePeers();
    setPhase("error", "connection_lost");
    checkCallStillOpen();
  }

  // ---------------------------------------------------------------- reconnection

  // Exponential backoff with jitter (half fixed, half random), so that the pages of a stopped
  // replica do not all come back at once; the first try is within RECONNECT_BASE_MS.
  function scheduleReconnect() {
    if (s.phase !== "reconnecting") {
      s.resumeId = s.phase === "in-call" || s.phase === "waiting" ? s.selfId : null;
      s.droppedIn = s.phase;
      s.droppedAt = performance.now();
    }
    setPhase("reconnecting");
    const step = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** s.reconnects++);
    setTimeout(rejoin, step / 2 + Math.random() * (step / 2));
  }

  // The seat to take back: this page's id while its peer connections are kept.
  function resumeField() {
    return s.phase === "reconnecting" && s.resumeId ? { resume: s.resumeId } : {};
  }

  // Back in the call under the same id: the peers that left meanwhile are dropped, those that
  // came meanwhile offer (their offer waited in this page's mailbox) unless this page is the
  // newcomer (admitted from the lobby meanwhile), and the ICE restarts that waited are made.
  function onResumed(msg) {
    send({ type: "report", event: "reconnected" });
    s.reconnects = 0;
    counts.resumed++;
    s.lastOutageMs = Math.round(performance.now() - s.droppedAt);
    const listed = new Set(msg.peers.map((peer) => peer.id));
    for (const id of [...s.peers.keys()]) if (!listed.has(id)) removePeer(id);
    for (const peer of msg.peers) addPeer(peer, s.droppedIn === "waiting");
    setPhase("in-call");
    sendMedia();
    ui.knocks(msg.waiting || []);
    for (const peer of s.peers.values()) if (peer.restartPending) restartIce(peer);
    ui.peersChanged();
  }

  // A dropped connection: join again if the link still opens the call.
  async function rejoin() {
    if (s.phase !== "reconnecting") return;
    if (await checkCallStillOpen()) join();
  }

  // A refused or dropped connection may mean the call ended, or the link expired, meanwhile.
  async function checkCallStillOpen() {
    try {
      const response = await fetch(`${base}/info`, { cache: "no-store" });
      if (response.ok) return true;
      const refusal = await response.json().catch(() => ({}));
      if (response.status !== 503) finish(endNotice(refusal.reason));
    } catch {
      // offline: try again later
    }
    if (s.phase === "reconnecting") onSocketClosed({ code: 1006 });
    return false;
  }

  function leave() {
    const ws = s.ws;
    s.ws = null;
    s.reconnects = 0;
    closePeers();
    ws?.close(1000, "leave");
    setPhase("left", "left");
  }

  // The ending page a reason shows: its link expired, was revoked, or its participant removed.
  function endNotice(reason) {
    const notices = { expired: "expired", link_revoked: "revoked", revoked: "revoked", removed: "removed" };
    return notices[reason] ?? "ended";
  }

  function finish(notice) {
    const ws = s.ws;
    s.ws = null;
    closePeers();
    ws?.close(1000);
    setPhase("ended", notice);
  }

  // ---------------------------------------------------------------- peers

  function addPeer(peerInfo, offerer) {
    let peer = s.peers.get(peerInfo.id);
    if (peer) {
      if (peerInfo.name) peer.tile.setName(peerInfo.name);
      return peer;
    }
    const pc = new RTCPeerConnection({ iceServers: info.iceServers, iceTransportPolicy: info.iceTransportPolicy });
    const tile = ui.addTile(peerInfo.id);
    const stream = new MediaStream();
    peer = { id: peerInfo.id, pc, offerer, tile, chain: Promise.resolve(), tracksAdded: false };
    tile.setName(peerInfo.name || "");
    s.peers.set(peerInfo.id, peer);

    const showState = () => tile.setConnected(pc.connectionState === "connected");
    showState();
    pc.onicecandidate = (event) => {
      if (event.candidate) send({ type: "candidate", to: peer.id, candidate: event.candidate.toJSON() });
    };
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      tile.play(stream);
    };
    pc.onconnectionstatechange = () => {
      showState();
      if (peer.offerer) report(peer); // one page per pair reports, for the operator's metrics
    };
    pc.addEventListener("iceconnectionstatechange", () => onIceState(peer));

    if (offerer) {
      addLocalTracks(peer, true);
      enqueue(peer, async () => {
        await pc.setLocalDescription();
        send({ type: "offer", to: peer.id, sdp: pc.localDescription.sdp });
      });
    }
    return peer;
  }

  // The operator's metrics: whether a peer connection went direct or through TURN (its
  // selected candidate pair), and its ICE failures. Only the offering page reports.
  async function report(peer) {
    const state = peer.pc.connectionState;
    if (state === "failed") send({ type: "report", event: "ice-failed" });
    if (state !== "connected" || peer.reported) return;
    peer.reported = true;
    const stats = await peer.pc.getStats().catch(() => new Map());
    let relay = false;
    stats.forEach((stat) => {
      if (stat.type !== "transport" || !stat.selectedCandidatePairId) return;
      const pair = stats.get(stat.selectedCandidatePairId);
      const ends = [pair?.localCandidateId, pair?.remoteCandidateId];
      relay = ends.some((id) => stats.get(id)?.candidateType === "relay");
    });
    send({ type: "report", event: "connected", path: relay ? "relay" : "direct" });
  }

  function addLocalTracks(peer, offerer) {
    if (peer.tracksAdded) return;
    peer.tracksAdded = true;
    const stream = ui.localStream();
    if (stream) {
      for (const track of stream.getTracks()) {
        // While this page shares its screen, a newcomer is sent the screen, not the camera.
        const sent = track.kind === "video" ? (ui.sharingTrack?.() ?? track) : track;
        peer.pc.addTrack(sent, stream);
      }
    }
    // Without a microphone, still ask to receive audio.
    if (offerer && !stream?.getAudioTracks().length) peer.pc.addTransceiver("audio", { direction: "recvonly" });
    if (!stream?.getVideoTracks().length) sendVideoAnyway(peer.pc, offerer);
  }

  // No camera: a video negotiated to send all the same, with no track (nothing is sent), so
  // that a screen shared later goes out by replaceTrack, without renegotiation; while this
  // page shares, the screen itself. Answering, the offer's video transceiver is the one.
  function sendVideoAnyway(pc, offerer) {
    const screen = ui.sharingTrack?.();
    if (offerer) return pc.addTransceiver(screen ?? "video", { direction: "sendrecv" });
    if (screen) return pc.addTrack(screen); // reuses the offer's video transceiver
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === "video" && t.direction === "recvonly") t.direction = "sendrecv";
    }
  }

  function onOffer(msg) {
    const peer = addPeer({ id: msg.from, name: "" }, false);
    enqueue(peer, async () => {
      const crossed = peer.pc.signalingState !== "stable";
      if (crossed) counts.crossedOffers++;
      if (crossed && !polite(peer)) return; // crossing offers: ours wins
      await peer.pc.setRemoteDescription({ type: "offer", sdp: msg.sdp }); // polite: ours rolls back
      addLocalTracks(peer, false); // reuses the offer's transceivers -> sendrecv
      await peer.pc.setLocalDescription();
      send({ type: "answer", to: peer.id, sdp: peer.pc.localDescription.sdp });
    });
  }

  // An answer to an offer still pending (not to one the polite side rolled back).
  async function onAnswer(peer, sdp) {
    if (peer.pc.signalingState === "have-local-offer") await peer.pc.setRemoteDescription({ type: "answer", sdp });
  }

  // ---------------------------------------------------------------- ICE restarts

  // The network path changed (ICE failed, or stayed disconnected): restart ICE, once
  // signaling is there to carry the offer. A moment of "disconnected" is left to ICE itself.
  function onIceState(peer) {
    clearTimeout(peer.iceTimer);
    const state = peer.pc.iceConnectionState;
    if (state === "failed") restartIce(peer);
    if (state === "disconnected") peer.iceTimer = setTimeout(() => restartIce(peer), ICE_DISCONNECTED_MS);
  }

  function restartIce(peer) {
    if (s.peers.get(peer.id) !== peer) return;
    if (s.phase !== "in-call" || s.ws?.readyState !== WebSocket.OPEN) {
      peer.restartPending = true; // made when the page is back in the call (onResumed)
      return;
    }
    peer.restartPending = false;
    enqueue(peer, async () => {
      const state = peer.pc.iceConnectionState;
      if ((state !== "failed" && state !== "disconnected") || peer.pc.signalingState !== "stable") return;
      await peer.pc.setLocalDescription(await peer.pc.createOffer({ iceRestart: true }));
      counts.iceRestarts++;
      send({ type: "offer", to: peer.id, sdp: peer.pc.localDescription.sdp });
    });
  }

  // Of two pages whose offers cross, the polite one yields: the same answer on both sides.
  function polite(peer) {
    return s.selfId > peer.id;
  }

  // Signaling for one peer is applied strictly in order (offer before candidates).
  function enqueue(peer, task) {
    peer.chain = peer.chain.then(task).catch((err) => console.warn("signaling step failed", peer.id, err));
  }

  function removePeer(id) {
    const peer = s.peers.get(id);
    if (!peer) return;
    s.peers.delete(id);
    clearTimeout(peer.iceTimer);
    peer.pc.close();
    ui.removeTile(id);
  }

  function closePeers() {
    for (const id of [...s.peers.keys()]) removePeer(id);
  }

  // The video sent to every peer swapped (the screen, the camera back): no renegotiation.
  async function replaceVideo(track) {
    const swaps = [...s.peers.values()].flatMap((p) => p.pc.getTransceivers())
      .filter((t) => t.sender && t.receiver.track?.kind === "video")
      .map((t) => t.sender.replaceTrack(track).catch((err) => console.warn("replaceTrack failed", err)));
    await Promise.all(swaps);
  }

  // ---------------------------------------------------------------- audio only on a weak link

  // A connection whose quality stays poor stops sending video (its encodings inactive: no
  // renegotiation, the camera or shared screen stays the sender's track) and keeps its audio;
  // the peer is told (`video-paused`) so its tile says why; the video resumes once the
  // connection is good again. When, and the delays, are quality.js's rule.
  async function adaptVideo(peer, level) {
    const before = peer.link ?? VIDEO_SENT;
    peer.link = videoLink(before, level, Date.now());
    if (peer.link.paused === before.paused) return;
    await setVideoSent(peer.pc, !peer.link.paused);
    send({ type: "video-paused", to: peer.id, paused: peer.link.paused });
    ui.videoPaused?.(peer.id, peer.link.paused);
  }

  function videoSenders(pc) {
    return pc.getTransceivers().filter((t) => t.sender && t.receiver.track?.kind === "video").map((t) => t.sender);
  }

  async function setVideoSent(pc, active) {
    for (const sender of videoSenders(pc)) {
      const parameters = sender.getParameters();
      if (!parameters.encodings?.length) continue;
      for (const encoding of parameters.encodings) encoding.active = active;
      await sender.setParameters(parameters).catch((err) => console.warn("setParameters failed", err));
    }
  }

  // A chat text to the peers in the call (the server refuses it without the chat tool).
  function chat(text) {
    if (s.phase !== "in-call" || s.ws?.readyState !== WebSocket.OPEN) return false;
    send({ type: "chat", text });
    return true;
  }

  // ---------------------------------------------------------------- what tests read

  const view = {
    get selfId() { return s.selfId; },
    // ICE restart offers made, offers that crossed this page's own, seats resumed.
    negotiation() { return { ...counts }; },
    lastOutageMs() { return s.lastOutageMs ?? null; }, // socket closed -> seat resumed
    peerCount() { return s.peers.size; },
    peerIds() { return [...s.peers.keys()]; },
    connectionStates() {
      return Object.fromEntries([...s.peers].map(([id, p]) => [id, p.pc.connectionState]));
    },
    // The camera each peer is sent (a track's deviceId): the one chosen before the call.
    sentVideoLabels() {
      return [...s.peers.values()].flatMap((p) => p.pc.getSenders())
        .filter((sender) => sender.track?.kind === "video").map((sender) => sender.track.label);
    },
    sentVideoDeviceIds() {
      return [...s.peers.values()].flatMap((p) => p.pc.getSenders())
        .filter((sender) => sender.track?.kind === "video")
        .map((sender) => sender.track.getSettings().deviceId);
    },
    async videoFramesDecoded() {
      const result = {};
      for (const [id, p] of s.peers) {
        let frames = 0;
        (await p.pc.getStats()).forEach((stat) => {
          if (stat.type === "inbound-rtp" && stat.kind === "video") frames += stat.framesDecoded || 0;
        });
        result[id] = frames;
      }
      return result;
    },
    // Per peer: video frames encoded and whether the video encodings are active; audio
    // packets sent and received (what stops and what flows while the video is paused).
    async rtpCounts() {
      const result = {};
      for (const [id, p] of s.peers) {
        const videoActive = videoSenders(p.pc).every((sender) =>
          (sender.getParameters().encodings ?? []).every((encoding) => encoding.active !== false));
        const counts = { framesEncoded: 0, videoActive, audioSent: 0, audioReceived: 0 };
        (await p.pc.getStats()).forEach((stat) => {
          if (stat.type === "outbound-rtp" && stat.kind === "video") counts.framesEncoded += stat.framesEncoded || 0;
          if (stat.type === "outbound-rtp" && stat.kind === "audio") counts.audioSent += stat.packetsSent || 0;
          if (stat.type === "inbound-rtp" && stat.kind === "audio") counts.audioReceived += stat.packetsReceived || 0;
        });
        result[id] = counts;
      }
      return result;
    },
    async selectedCandidatePairs() {
      const result = {};
      for (const [id, p] of s.peers) {
        const stats = await p.pc.getStats();
        stats.forEach((stat) => {
          if (stat.type !== "transport" || !stat.selectedCandidatePairId) return;
          const pair = stats.get(stat.selectedCandidatePairId);
          const local = stats.get(pair.localCandidateId);
          const remote = stats.get(pair.remoteCandidateId);
          // A peer-reflexive remote candidate's address is hidden (""): Chrome
          // learned it from a connectivity check, not from signaling.
          result[id] = {
            local: local?.address, localType: local?.candidateType,
            remote: remote?.address, remoteType: remote?.candidateType,
          };
        });
      }
      return result;
    },
  };

  return {
    join,
    leave,
    end: () => send({ type: "end" }),
    media: sendMedia,
    chat,
    replaceVideo,
    screen: (sharing) => { if (s.phase === "in-call") send({ type: "screen", sharing }); },
    admit: (id) => send({ type: "admit", peer: id }),
    decline: (id) => send({ type: "decline", peer: id }),
    close: () => s.ws?.close(1000, "page closed"),
    view,
  };
}
