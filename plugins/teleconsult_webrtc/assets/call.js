// teleconsult's call page: full-mesh WebRTC over JSON WebSocket signaling.
// Rule that avoids glare: the newcomer sends an offer to every peer already
// present (listed in "joined"); existing peers only ever answer. ICE restarts
// are likewise initiated by the offering side only.
// No names travel in the URL: the page reads them from ./info and the WebSocket.
// When the signaling connection drops (a replica stopping, a network blip) the
// page joins again by itself, through whichever replica answers.

const base = location.pathname.replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);
const END_CONFIRM_MS = 5000;
const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000];

const state = {
  phase: "loading", // loading | lobby | joining | in-call | reconnecting | left | ended | error
  t: {},
  language: "en",
  isAdmin: false,
  localStream: null,
  mediaError: false,
  ws: null,
  selfId: null,
  iceServers: [],
  iceTransportPolicy: "all",
  peers: new Map(), // session id -> peer
  cameraOn: true,
  micOn: true,
  notice: "", // text key shown in #status for terminal/error phases
  endArmedUntil: 0,
  reconnects: 0,
};

// ------------------------------------------------------------------ rendering

function render() {
  const { t, phase } = state;
  $("app").dataset.phase = phase;
  const inCall = phase === "in-call" || phase === "joining" || phase === "reconnecting";
  const canJoin = phase === "lobby" || phase === "left" || (phase === "error" && state.notice !== "full");
  $("join").hidden = !canJoin;
  $("join").disabled = !canJoin;
  for (const id of ["toggle-camera", "toggle-mic", "leave"]) $(id).hidden = !inCall;
  $("end-all").hidden = !(inCall && state.isAdmin);
  $("roster").hidden = inCall || phase === "ended";
  $("self-tile").hidden = phase === "ended";

  const hasVideo = !!state.localStream?.getVideoTracks().length;
  const hasAudio = !!state.localStream?.getAudioTracks().length;
  setToggle($("toggle-camera"), !state.cameraOn, state.cameraOn ? t.camera_off : t.camera_on, hasVideo);
  setToggle($("toggle-mic"), !state.micOn, state.micOn ? t.mic_off : t.mic_on, hasAudio);
  $("end-all").textContent = Date.now() < state.endArmedUntil ? t.end_confirm : t.end_for_all;

  let status = "";
  if (phase === "loading") status = t.loading || "";
  else if (phase === "lobby") status = state.mediaError ? t.media_error : "";
  else if (phase === "joining") status = t.connecting;
  else if (phase === "reconnecting") status = t.reconnecting;
  else if (phase === "in-call") status = state.peers.size === 0 ? t.waiting : "";
  else status = t[state.notice] || "";
  $("status").textContent = status;
}

function setToggle(button, pressed, label, enabled) {
  button.textContent = label;
  button.setAttribute("aria-pressed", String(pressed));
  button.disabled = !enabled;
}

function applyInfo(info) {
  state.t = info.texts;
  state.language = info.language;
  state.isAdmin = !!info.self.isAdmin;
  state.iceServers = info.iceServers;
  document.documentElement.lang = info.language;
  document.title = info.texts.title;
  $("title").textContent = info.texts.title;
  $("join").textContent = info.texts.join;
  $("leave").textContent = info.texts.leave;
  $("self-name").textContent = `${info.self.name} (${info.texts.you})`;
  $("roster").textContent = `${info.texts.participants}: ${info.participants.map((p) => p.name).join(", ")}`;
  const start = new Date(info.schedule.startsAt);
  const end = new Date(info.schedule.endsAt);
  if (!Number.isNaN(start.getTime()) && !Number.isNaN(end.getTime())) {
    const day = new Intl.DateTimeFormat(info.language, { dateStyle: "medium", timeStyle: "short" });
    const time = new Intl.DateTimeFormat(info.language, { timeStyle: "short" });
    $("schedule").textContent = `${info.texts.scheduled}: ${day.format(start)} – ${time.format(end)}`;
    $("schedule").hidden = false;
  }
}

// ------------------------------------------------------------------ media

async function startPreview() {
  try {
    state.localStream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: true,
    });
    $("self-video").srcObject = state.localStream;
  } catch (err) {
    console.warn("getUserMedia failed", err);
    state.mediaError = true;
  }
}

function stopLocalMedia() {
  state.localStream?.getTracks().forEach((track) => track.stop());
  state.localStream = null;
  $("self-video").srcObject = null;
}

// ------------------------------------------------------------------ signaling

function send(message) {
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function join() {
  if (state.ws) return;
  if (state.phase !== "reconnecting") state.phase = "joining";
  state.notice = "";
  render();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${base}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "join", v: 1 }));
  ws.onmessage = (event) => {
    if (ws === state.ws) onMessage(event.data);
  };
  ws.onclose = (event) => {
    if (ws === state.ws) onSocketClosed(event);
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
    case "joined":
      state.selfId = msg.self.id;
      state.phase = "in-call";
      state.reconnects = 0;
      for (const peer of msg.peers) addPeer(peer, true);
      break;
    case "peer-joined":
      addPeer(msg.peer, false);
      break;
    case "peer-left":
      removePeer(msg.id);
      break;
    case "offer":
      onOffer(msg);
      break;
    case "answer": {
      const peer = state.peers.get(msg.from);
      if (peer) enqueue(peer, () => peer.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }));
      break;
    }
    case "candidate": {
      const peer = state.peers.get(msg.from);
      if (peer && msg.candidate) enqueue(peer, () => peer.pc.addIceCandidate(msg.candidate));
      break;
    }
    case "ended":
      finish(msg.reason === "expired" ? "expired" : "ended");
      return;
    default:
      console.warn("unknown signaling message", msg.type);
  }
  render();
}

function onSocketClosed(event) {
  state.ws = null;
  if (state.phase === "ended" || state.phase === "left") return;
  closePeers();
  if (event.code === 4000) return finish("ended");
  const notices = { 4001: "full", 4002: "replaced" };
  if (notices[event.code]) {
    state.phase = "error";
    state.notice = notices[event.code];
    return render();
  }
  const wasIn = state.phase === "in-call" || state.phase === "reconnecting";
  if (wasIn && RECONNECT_CODES.has(event.code) && state.reconnects < RECONNECT_DELAYS_MS.length) {
    state.phase = "reconnecting";
    render();
    setTimeout(rejoin, RECONNECT_DELAYS_MS[state.reconnects++]);
    return;
  }
  state.phase = "error";
  state.notice = "connection_lost";
  render();
  checkCallStillOpen();
}

// A dropped connection: join again if the link still opens the call.
async function rejoin() {
  if (state.phase !== "reconnecting") return;
  if (await checkCallStillOpen()) join();
}

// A refused or dropped connection may mean the call ended, or the link expired, meanwhile.
async function checkCallStillOpen() {
  try {
    const response = await fetch(`${base}/info`, { cache: "no-store" });
    if (response.ok) return true;
    const refusal = await response.json().catch(() => ({}));
    if (response.status !== 503) finish(refusal.reason === "expired" ? "expired" : "ended");
  } catch {
    // offline: try again later
  }
  if (state.phase === "reconnecting") onSocketClosed({ code: 1006 });
  return false;
}

function leave() {
  const ws = state.ws;
  state.ws = null;
  state.reconnects = 0;
  closePeers();
  ws?.close(1000, "leave");
  state.phase = "left";
  state.notice = "left";
  render();
}

function finish(notice) {
  const ws = state.ws;
  state.ws = null;
  closePeers();
  stopLocalMedia();
  ws?.close(1000);
  state.phase = "ended";
  state.notice = notice;
  render();
}

function endForEveryone() {
  if (Date.now() < state.endArmedUntil) {
    state.endArmedUntil = 0;
    $("end-all").disabled = true;
    send({ type: "end" });
    return;
  }
  state.endArmedUntil = Date.now() + END_CONFIRM_MS;
  setTimeout(render, END_CONFIRM_MS + 50);
  render();
}

// ------------------------------------------------------------------ peers

function addPeer(info, offerer) {
  let peer = state.peers.get(info.id);
  if (peer) {
    if (info.name) peer.setName(info.name);
    return peer;
  }
  const pc = new RTCPeerConnection({
    iceServers: state.iceServers,
    iceTransportPolicy: state.iceTransportPolicy,
  });
  const tile = document.createElement("figure");
  tile.className = "tile remote";
  tile.dataset.peerId = info.id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "name";
  const status = document.createElement("span");
  status.className = "peer-state";
  caption.append(name, status);
  tile.append(video, caption);
  $("stage").append(tile);

  const stream = new MediaStream();
  peer = {
    id: info.id,
    pc,
    offerer,
    tile,
    chain: Promise.resolve(),
    tracksAdded: false,
    setName: (text) => { name.textContent = text; },
  };
  peer.setName(info.name || "");
  state.peers.set(info.id, peer);

  const showState = () => {
    status.textContent = pc.connectionState === "connected" ? "" : state.t.connecting;
  };
  showState();
  pc.onicecandidate = (event) => {
    if (event.candidate) send({ type: "candidate", to: peer.id, candidate: event.candidate.toJSON() });
  };
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {
      // Autoplay with sound refused: play muted rather than not at all.
      video.muted = true;
      video.play().catch(() => {});
    });
  };
  pc.onconnectionstatechange = () => {
    showState();
    if (pc.connectionState === "failed" && peer.offerer) {
      enqueue(peer, async () => {
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        send({ type: "offer", to: peer.id, sdp: pc.localDescription.sdp });
      });
    }
  };

  if (offerer) {
    addLocalTracks(peer, true);
    enqueue(peer, async () => {
      await pc.setLocalDescription();
      send({ type: "offer", to: peer.id, sdp: pc.localDescription.sdp });
    });
  }
  return peer;
}

function addLocalTracks(peer, offerer) {
  if (peer.tracksAdded) return;
  peer.tracksAdded = true;
  const stream = state.localStream;
  if (stream) {
    for (const track of stream.getTracks()) peer.pc.addTrack(track, stream);
  }
  if (offerer) {
    // Without (some) local media, still ask to receive audio and video.
    if (!stream?.getAudioTracks().length) peer.pc.addTransceiver("audio", { direction: "recvonly" });
    if (!stream?.getVideoTracks().length) peer.pc.addTransceiver("video", { direction: "recvonly" });
  }
}

function onOffer(msg) {
  const peer = addPeer({ id: msg.from, name: "" }, false);
  if (peer.offerer) {
    console.warn("unexpected offer from a peer we offered to; ignored");
    return;
  }
  enqueue(peer, async () => {
    await peer.pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    addLocalTracks(peer, false); // reuses the offer's transceivers -> sendrecv
    await peer.pc.setLocalDescription();
    send({ type: "answer", to: peer.id, sdp: peer.pc.localDescription.sdp });
  });
}

// Signaling for one peer is applied strictly in order (offer before candidates).
function enqueue(peer, task) {
  peer.chain = peer.chain.then(task).catch((err) => console.warn("signaling step failed", peer.id, err));
}

function removePeer(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  state.peers.delete(id);
  peer.pc.close();
  peer.tile.remove();
}

function closePeers() {
  for (const id of [...state.peers.keys()]) removePeer(id);
}

// ------------------------------------------------------------------ controls

function toggleCamera() {
  state.cameraOn = !state.cameraOn;
  state.localStream?.getVideoTracks().forEach((track) => { track.enabled = state.cameraOn; });
  render();
}

function toggleMic() {
  state.micOn = !state.micOn;
  state.localStream?.getAudioTracks().forEach((track) => { track.enabled = state.micOn; });
  render();
}

// ------------------------------------------------------------------ test hooks

// Read-only view used by automated tests (and handy in the devtools console).
window.__call = Object.freeze({
  get phase() { return state.phase; },
  get selfId() { return state.selfId; },
  get waiting() { return state.phase === "in-call" && state.peers.size === 0; },
  peerIds() { return [...state.peers.keys()]; },
  connectionStates() {
    return Object.fromEntries([...state.peers].map(([id, p]) => [id, p.pc.connectionState]));
  },
  localTrackStates() {
    return (state.localStream?.getTracks() || []).map((t) => ({ kind: t.kind, enabled: t.enabled, state: t.readyState }));
  },
  async videoFramesDecoded() {
    const result = {};
    for (const [id, p] of state.peers) {
      let frames = 0;
      (await p.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
      });
      result[id] = frames;
    }
    return result;
  },
  async selectedCandidatePairs() {
    const result = {};
    for (const [id, p] of state.peers) {
      const stats = await p.pc.getStats();
      stats.forEach((s) => {
        if (s.type !== "transport" || !s.selectedCandidatePairId) return;
        const pair = stats.get(s.selectedCandidatePairId);
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
});

// ------------------------------------------------------------------ start

async function main() {
  $("join").addEventListener("click", join);
  $("leave").addEventListener("click", leave);
  $("toggle-camera").addEventListener("click", toggleCamera);
  $("toggle-mic").addEventListener("click", toggleMic);
  $("end-all").addEventListener("click", endForEveryone);
  window.addEventListener("pagehide", () => state.ws?.close(1000, "page closed"));

  const response = await fetch(`${base}/info`, { cache: "no-store" });
  if (!response.ok) {
    location.reload(); // the server answers the page with why the link opens nothing
    return;
  }
  applyInfo(await response.json());
  render();
  await startPreview();
  state.phase = "lobby";
  render();
}

main().catch((err) => {
  console.error(err);
  state.phase = "error";
  state.notice = "connection_lost";
  render();
});
