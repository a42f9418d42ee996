// teleconsult's call page: the UI every provider's page shares. It reads the page's info
// (./info: names, schedule, texts in the participant's language; never in the URL),
// previews the camera, and drives the transport the page names (<meta name="call-transport">,
// a module beside this one: mesh.js for the webrtc provider), which tells it what happens.
// Plurals and dates go through the browser's Intl, in the page's language. The checks before
// the call (devices, levels, connectivity) are precheck.js's, shown in the lobby only.

import { createPrecheck } from "./precheck.js";

import { createAdmission } from "./admission.js";

import { createTiles, icon } from "./tiles.js";

import { createTools } from "./tools.js";

import { createRemoval } from "./removal.js";
import { createConfirm } from "./confirm.js";

const base = location.pathname.replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);

const state = {
  phase: "loading", // loading | lobby | joining | waiting | in-call | reconnecting | left | ended | error
  t: {},
  language: document.documentElement.lang || "en",
  isAdmin: false,
  localStream: null,
  mediaError: false,
  cameraOn: true,
  micOn: true,
  notice: "", // text key of a terminal or error phase
  transport: null,
  precheck: null,
  weakLinks: new Set(), // the peers this page sends no video to: the connection is too weak
};

// ------------------------------------------------------------------ texts

// A catalog text: plural forms picked by Intl.PluralRules, {name} filled from `values`
// (numbers in the page's language).
function say(key, values = {}) {
  let text = state.t[key] ?? "";
  if (typeof text === "object") {
    const form = new Intl.PluralRules(state.language).select(values.count ?? 0);
    text = text[form] ?? text.other;
  }
  const fill = (value) => (typeof value === "number" ? new Intl.NumberFormat(state.language).format(value) : String(value));
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? fill(values[name]) : match));
}

// ------------------------------------------------------------------ rendering

const admission = createAdmission({ say, $, render: () => render() });
const peerNames = new Map(); // peer id -> name, for the chat's sender
const tools = createTools({
  $, say, language: () => state.language, transport: () => state.transport,
  localStream: () => state.localStream, render: () => render(),
});

function render() {
  const { phase, notice } = state;
  $("app").dataset.phase = phase;
  const inCall = ["in-call", "joining", "waiting", "reconnecting"].includes(phase);
  const canJoin = phase === "lobby" || phase === "left" || (phase === "error" && notice !== "full");
  const join = $("join");
  join.hidden = !canJoin;
  join.disabled = !canJoin;
  join.textContent = phase === "lobby" ? say("join") : say("join_again");
  for (const id of ["toggle-camera", "toggle-mic", "leave"]) $(id).hidden = !inCall;
  $("end-all").hidden = !(inCall && state.isAdmin && state.transport?.end); // a transport may not offer it
  $("roster").hidden = inCall || phase === "ended";
  $("self-tile").hidden = phase === "ended";
  $("precheck").hidden = !state.precheck || phase !== "lobby";

  const hasVideo = !!state.localStream?.getVideoTracks().length;
  const hasAudio = !!state.localStream?.getAudioTracks().length;
  setToggle($("toggle-camera"), !state.cameraOn, say(state.cameraOn ? "camera_off" : "camera_on"), hasVideo);
  setToggle($("toggle-mic"), !state.micOn, say(state.micOn ? "mic_off" : "mic_on"), hasAudio);
  // This page's own tile says it sends no camera (none, refused or turned off), as the others' do.
  const noCamera = phase !== "loading" && !mediaState().video;
  $("self-camera-off").hidden = !noCamera;
  $("self-tile").classList.toggle("no-video", noCamera);
  if (!inCall) endDialog.dismiss();
  if (!inCall) removal.gone();
  tools.render(phase === "in-call");
  $("fullscreen").hidden = !(inCall && document.fullscreenEnabled);
  $("fullscreen").textContent = say(document.fullscreenElement ? "exit_fullscreen" : "fullscreen");

  let status = "";
  const peers = state.transport?.view.peerCount() ?? 0;
  if (phase === "loading") status = say("loading");
  else if (phase === "lobby") status = state.mediaError ? say("media_error") : "";
  else if (phase === "joining") status = say("connecting");
  else if (phase === "waiting") status = admission.status();
  else if (phase === "reconnecting") status = say("reconnecting");
  else if (phase === "in-call") status = peers === 0 ? say("waiting") : say("in_call", { count: peers + 1 });
  else status = say(notice);
  if ($("status").textContent !== status) $("status").textContent = status;
  const next = notice && phase !== "in-call" ? say(`next_${notice}`) : "";
  $("next").textContent = next;
  $("next").hidden = !next;
  renderWeakLink(phase === "in-call");
}

// "Your connection is weak: video paused, you can still be heard" while the transport sends
// audio only to someone (a live region of its own, so it is read when it appears).
function renderWeakLink(inCall) {
  if (!inCall) state.weakLinks.clear();
  const text = state.weakLinks.size ? say("weak_link") : "";
  if ($("weak-link").textContent !== text) $("weak-link").textContent = text;
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
  document.documentElement.lang = info.language;
  document.title = say("title");
  $("title").textContent = say("title");
  $("controls").setAttribute("aria-label", say("controls"));
  $("leave").textContent = say("leave");
  $("end-all").textContent = say("end_for_all");
  endDialog.label({
    question: say("end_question"), explain: say("end_explain"), cancel: say("cancel"), confirm: say("end_confirm"),
  });
  removal.setup(state.isAdmin);
  $("self-name").textContent = `${info.self.name} (${say("you")})`;
  $("self-camera-off").replaceChildren(icon("camera"), say("peer_camera_off"));
  const list = new Intl.ListFormat(info.language, { type: "unit", style: "short" });
  $("roster").textContent = `${say("participants")}: ${list.format(info.participants.map((p) => p.name))}`;
  const start = new Date(info.schedule.startsAt);
  const end = new Date(info.schedule.endsAt);
  if (!Number.isNaN(start.getTime()) && !Number.isNaN(end.getTime())) {
    const range = new Intl.DateTimeFormat(info.language, { dateStyle: "medium", timeStyle: "short" });
    $("schedule").textContent = `${say("scheduled")}: ${range.formatRange(start, end)}`;
    $("schedule").hidden = false;
  }
}

// ------------------------------------------------------------------ tiles

const removal = createRemoval({ $, say, base, stage: $("stage") });
const endDialog = createConfirm($, "end");

const tiles = createTiles({
  stage: $("stage"),
  say,
  onPlay(video) {
    state.precheck?.applySink(video); // the speaker chosen before the call
    video.play().catch(() => {
      // Autoplay with sound refused: play muted rather than not at all.
      video.muted = true;
      video.play().catch(() => {});
    });
  },
});

// ------------------------------------------------------------------ media

// The preview and the devices are the precheck's; the stream it opens is the one sent.
async function startPreview(info) {
  state.precheck = createPrecheck({
    root: $("precheck"),
    video: $("self-video"),
    say,
    iceServers: info.iceServers ?? [],
    iceTransportPolicy: info.iceTransportPolicy,
    onStream(stream) {
      state.localStream = stream;
      state.mediaError = !stream;
      render();
    },
  });
  await state.precheck.start();
}

function stopLocalMedia() {
  state.localStream?.getTracks().forEach((track) => track.stop());
  state.localStream = null;
  $("self-video").srcObject = null;
}

// ------------------------------------------------------------------ what the transport says

const ui = {
  localStream: () => state.localStream,
  addTile(id) {
    const tile = tiles.add(id);
    removal.attach(id);
    return { ...tile, setName(name) { peerNames.set(id, name); tile.setName(name); removal.setName(id, name); } };
  },
  chat: tools.received,
  sharingTrack: tools.sharingTrack,
  removeTile(id) {
    state.weakLinks.delete(id);
    removal.gone(id);
    tiles.remove(id);
  },
  videoPaused(id, paused) {
    if (paused) state.weakLinks.add(id);
    else state.weakLinks.delete(id);
    render();
  },
  mediaState,
  peersChanged: render,
  knocks: admission.reset,
  knock: admission.knock,
  knockWithdrawn: admission.withdrawn,
  phase(phase, notice) {
    const joinedAgain = phase === "in-call" && state.phase !== "in-call";
    state.phase = phase;
    state.notice = notice;
    if (phase !== "lobby") state.precheck?.pause();
    admission.phase(phase);
    // Ended, or opened by the same participant elsewhere: the camera and microphone are freed
    // (the other tab or device may need them).
    if (phase === "ended" || notice === "replaced") stopLocalMedia();
    render();
    // Keyboard users keep a control in reach when the one they used disappears.
    if (joinedAgain && document.activeElement === document.body) $("leave").focus();
    if ((phase === "left" || phase === "error") && !$("join").hidden) $("join").focus();
  },
};

// ------------------------------------------------------------------ controls

// Joining again after the devices were freed (the call moved elsewhere) opens them again.
async function joinCall() {
  if (!state.localStream && state.notice === "replaced") {
    state.cameraOn = state.micOn = true;
    await state.precheck.start();
  }
  state.transport.join();
}

// What the others' tiles show of this page: a microphone or camera it lacks counts as off.
function mediaState() {
  return {
    audio: state.micOn && !!state.localStream?.getAudioTracks().length,
    video: state.cameraOn && !!state.localStream?.getVideoTracks().length,
  };
}

function toggleCamera() {
  state.cameraOn = !state.cameraOn;
  state.localStream?.getVideoTracks().forEach((track) => { track.enabled = state.cameraOn; });
  state.transport.media?.();
  render();
}

function toggleMic() {
  state.micOn = !state.micOn;
  state.localStream?.getAudioTracks().forEach((track) => { track.enabled = state.micOn; });
  state.transport.media?.();
  render();
}

// "End call for everyone" asks first, in a modal dialog (`confirm.js`).
function endForEveryone() {
  endDialog.ask($("end-all"), () => {
    $("end-all").disabled = true;
    state.transport.end();
  });
}

function toggleFullscreen() {
  const done = document.fullscreenElement ? document.exitFullscreen() : $("app").requestFullscreen();
  done.catch((err) => console.warn("full screen refused", err));
}

// ------------------------------------------------------------------ test hooks

// Read-only view used by automated tests (and handy in the devtools console).
window.__call = Object.freeze({
  get phase() { return state.phase; },
  get selfId() { return state.transport?.view.selfId ?? null; },
  get waiting() { return state.phase === "in-call" && state.transport.view.peerCount() === 0; },
  waitingToAdmit() { return admission.waitingNames(); },
  peerIds() { return state.transport?.view.peerIds() ?? []; },
  connectionStates() { return state.transport?.view.connectionStates() ?? {}; },
  negotiation() { return state.transport?.view.negotiation?.() ?? null; },
  lastOutageMs() { return state.transport?.view.lastOutageMs?.() ?? null; },
  localTrackStates() {
    return (state.localStream?.getTracks() || []).map((t) => ({ kind: t.kind, enabled: t.enabled, state: t.readyState }));
  },
  videoFramesDecoded() { return state.transport.view.videoFramesDecoded(); },
  selectedCandidatePairs() { return state.transport.view.selectedCandidatePairs(); },
  rtpCounts() { return state.transport.view.rtpCounts?.() ?? {}; },
  sentVideoLabels() { return state.transport?.view.sentVideoLabels?.() ?? []; },
  get tools() { return tools.view; },
  chatsDropped() { return state.transport?.view.chatsDropped?.() ?? 0; },
  sentVideoDeviceIds() { return state.transport?.view.sentVideoDeviceIds?.() ?? []; },
  get precheck() { return state.precheck?.view ?? null; },
});

// ------------------------------------------------------------------ start

async function main() {
  const response = await fetch(`${base}/info`, { cache: "no-store" });
  if (!response.ok) {
    location.reload(); // the server answers the page with why the link opens nothing
    return;
  }
  const info = await response.json();
  const name = document.querySelector('meta[name="call-transport"]').content;
  const { createTransport } = await import(new URL(name, import.meta.url).href);
  state.transport = createTransport(ui, info);
  admission.setup(info, state.transport);

  $("join").addEventListener("click", joinCall);
  $("leave").addEventListener("click", () => state.transport.leave());
  $("toggle-camera").addEventListener("click", toggleCamera);
  $("toggle-mic").addEventListener("click", toggleMic);
  $("end-all").addEventListener("click", endForEveryone);
  $("fullscreen").addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", render);
  window.addEventListener("pagehide", () => state.transport.close());

  applyInfo(info);
  await tools.load(base);
  tools.setup(() => peerNames);
  render();
  await startPreview(info);
  state.phase = "lobby";
  render();
}

main().catch((err) => {
  console.error(err);
  state.phase = "error";
  state.notice = "connection_lost";
  render();
});
