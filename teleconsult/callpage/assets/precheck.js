// The checks before a call, shown in the lobby and on the check page that needs no link:
// the camera preview, a choice of camera, microphone and speaker (remembered in this
// browser for the next call), a live microphone level, a test sound, what to do when the
// browser refuses or finds no device (in this browser's words) with a retry, and whether
// the ICE servers answer. Everything is feature-detected: Safari has no setSinkId, so it
// plays sound on the system's speaker and the page says so instead of offering a choice.

const REMEMBERED = { videoinput: "teleconsult.camera", audioinput: "teleconsult.microphone", audiooutput: "teleconsult.speaker" };
const ICE_CHECK_MS = 8000;
const LEVEL_EVERY_MS = 100;

function remembered(kind) {
  try { return localStorage.getItem(REMEMBERED[kind]) || ""; } catch { return ""; } // storage may be off
}

function remember(kind, id) {
  try { localStorage.setItem(REMEMBERED[kind], id); } catch { /* not remembered, still used */ }
}

// Which browser's instructions to show when access is refused.
function browserFamily() {
  const ua = navigator.userAgent;
  if (/Firefox\/|FxiOS/.test(ua)) return "firefox";
  if (/Safari\//.test(ua) && !/Chrome\/|Chromium\/|CriOS|Edg/.test(ua)) return "safari";
  return "chromium";
}

// Why the browser gave no camera or microphone, as a catalog key.
function problemOf(err) {
  if (!navigator.mediaDevices?.getUserMedia) return "unsupported";
  if (err?.name === "NotAllowedError" || err?.name === "SecurityError") return "denied";
  if (err?.name === "NotFoundError" || err?.name === "OverconstrainedError") return "missing";
  return "busy";
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// A short 440 Hz tone as a WAV blob: no file to fetch, allowed by media-src blob:.
function toneUrl() {
  const rate = 22050;
  const n = Math.round(rate * 0.7);
  const view = new DataView(new ArrayBuffer(44 + n * 2));
  const ascii = (at, text) => [...text].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF"); view.setUint32(4, 36 + n * 2, true); ascii(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  ascii(36, "data"); view.setUint32(40, n * 2, true);
  for (let i = 0; i < n; i++) {
    const fade = Math.min(1, i / 600, (n - i) / 600);
    view.setInt16(44 + i * 2, Math.sin((2 * Math.PI * 440 * i) / rate) * 0.3 * fade * 32767, true);
  }
  return URL.createObjectURL(new Blob([view.buffer], { type: "audio/wav" }));
}

// The local candidates a browser gathers with these ICE servers and policy, by type (null: no
// WebRTC); with "relay", only the TURN server's, as the call will use.
async function gather(iceServers, iceTransportPolicy) {
  const found = { host: 0, srflx: 0, relay: 0 };
  let pc;
  try {
    pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
  } catch {
    return null;
  }
  pc.createDataChannel("check");
  const done = new Promise((resolve) => {
    const timer = setTimeout(resolve, ICE_CHECK_MS);
    pc.onicecandidate = (event) => {
      if (!event.candidate) { clearTimeout(timer); resolve(); return; }
      const type = event.candidate.type || / typ (\w+)/.exec(event.candidate.candidate)?.[1];
      if (type in found) found[type] += 1;
    };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  return found;
}

// The words for what the check found, as a catalog key.
function verdict(found, iceServers) {
  if (!found) return "check_failed";
  const urls = iceServers.flatMap((server) => [].concat(server.urls));
  if (urls.some((url) => url.startsWith("turn"))) return found.relay ? "check_relay_ok" : "check_no_relay";
  if (urls.some((url) => url.startsWith("stun"))) return found.srflx ? "check_ok" : "check_blocked";
  return found.host ? "check_local" : "check_failed";
}

export function createPrecheck({ root, video, say, iceServers = [], iceTransportPolicy = "all", onStream = () => {} }) {
  const canChooseSpeaker = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
  const s = { stream: null, problem: "", network: "", found: null, sinkId: remembered("audiooutput"), audio: null, timer: 0, peak: 0, tests: 0 };

  const select = (id, key) => [el("label", { htmlFor: id, textContent: say(key) }), el("select", { id })];
  const [cameraLabel, camera] = select("camera-select", "camera");
  const [micLabel, mic] = select("mic-select", "microphone");
  const [speakerLabel, speaker] = select("speaker-select", "speaker");
  const level = el("meter", { id: "mic-level", min: 0, max: 1, value: 0 });
  const problem = el("p", { id: "media-problem" });
  problem.setAttribute("role", "alert");
  const help = el("p", { id: "media-help" });
  const retry = el("button", { type: "button", id: "media-retry", textContent: say("retry") });
  const speakerNote = el("p", { id: "speaker-note", className: "hint", textContent: say("speaker_default"), hidden: canChooseSpeaker });
  const testSound = el("button", { type: "button", id: "speaker-test", textContent: say("test_speaker") });
  const network = el("span", { id: "network-result" });
  const networkAgain = el("button", { type: "button", id: "network-retry", textContent: say("check_again") });
  const trouble = el("div", { id: "media-trouble", className: "trouble", hidden: true }, [problem, help, retry]);
  const speakerRow = el("div", { className: "field", hidden: !canChooseSpeaker }, [speakerLabel, speaker]);
  root.replaceChildren(
    el("h2", { id: "precheck-title", textContent: say("precheck_title") }),
    trouble,
    el("div", { className: "devices" }, [
      el("div", { className: "field" }, [cameraLabel, camera]),
      el("div", { className: "field" }, [micLabel, mic]),
      el("div", { className: "field" }, [el("label", { htmlFor: "mic-level", textContent: say("mic_level") }), level]),
      speakerRow,
    ]),
    el("div", { className: "actions" }, [testSound, speakerNote]),
    el("p", { id: "network" }, [el("strong", { textContent: `${say("check_network")}: ` }), network]),
    networkAgain,
  );
  root.setAttribute("aria-labelledby", "precheck-title");
  root.querySelector("#network").setAttribute("aria-live", "polite");

  function stopStream() {
    s.stream?.getTracks().forEach((track) => track.stop());
    s.stream = null;
    clearInterval(s.timer);
    s.audio?.close().catch(() => {});
    s.audio = null;
  }

  // Opens the camera and microphone: the ones picked now, else the ones remembered (exact:
  // browsers may ignore an ideal deviceId), else, when those are gone, the browser's own.
  async function open(picked = {}) {
    stopStream();
    const chosen = { videoinput: picked.videoinput || remembered("videoinput"), audioinput: picked.audioinput || remembered("audioinput") };
    try {
      s.stream = await media(chosen).catch((err) => {
        const gone = err?.name === "OverconstrainedError" || err?.name === "NotFoundError";
        if (gone && !picked.videoinput && (chosen.videoinput || chosen.audioinput)) return media({});
        throw err;
      });
      s.problem = "";
    } catch (err) {
      console.warn("getUserMedia failed", err);
      s.problem = problemOf(err);
    }
    video.srcObject = s.stream;
    showProblem();
    startLevel();
    await listDevices();
    onStream(s.stream);
  }

  function media(chosen) {
    const device = (kind) => (chosen[kind] ? { deviceId: { exact: chosen[kind] } } : {});
    return navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, ...device("videoinput") },
      audio: chosen.audioinput ? device("audioinput") : true,
    });
  }

  function showProblem() {
    trouble.hidden = !s.problem;
    if (!s.problem) return;
    problem.textContent = say(`media_${s.problem}`);
    help.textContent = say(s.problem === "denied" ? `help_denied_${browserFamily()}` : `help_${s.problem}`);
    retry.hidden = s.problem === "unsupported";
  }

  async function listDevices() {
    const devices = navigator.mediaDevices?.enumerateDevices ? await navigator.mediaDevices.enumerateDevices() : [];
    const used = (kind) => s.stream?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId || "";
    fill(camera, devices, "videoinput", used("video"), "camera");
    fill(mic, devices, "audioinput", used("audio"), "microphone");
    fill(speaker, devices, "audiooutput", s.sinkId || "default", "speaker");
  }

  function fill(list, devices, kind, current, key) {
    const mine = devices.filter((d) => d.kind === kind && d.deviceId);
    list.replaceChildren(...mine.map((d, i) => new Option(d.label || `${say(key)} ${i + 1}`, d.deviceId, false, d.deviceId === current)));
    list.disabled = mine.length === 0;
    // No empty lists (access refused, no device); no speaker choice where setSinkId is missing.
    list.closest(".field").hidden = mine.length === 0 || (kind === "audiooutput" && !canChooseSpeaker);
  }

  // The microphone's loudness, 10 times a second, on a <meter>.
  function startLevel() {
    const track = s.stream?.getAudioTracks()[0];
    level.value = 0;
    level.closest(".field").hidden = !track;
    if (!track || typeof AudioContext === "undefined") return;
    s.audio = new AudioContext();
    const analyser = s.audio.createAnalyser();
    analyser.fftSize = 1024;
    s.audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    s.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
      level.value = Math.min(1, rms * 4);
      s.peak = Math.max(s.peak, rms);
    }, LEVEL_EVERY_MS);
  }

  // Browsers start audio only after a gesture: the first click or key resumes the level.
  const resume = () => s.audio?.state === "suspended" && s.audio.resume().catch(() => {});
  document.addEventListener("pointerdown", resume);
  document.addEventListener("keydown", resume);

  async function applySink(element) {
    if (canChooseSpeaker && s.sinkId) await element.setSinkId(s.sinkId).catch((err) => console.warn("setSinkId", err));
  }

  async function playTest() {
    const url = toneUrl();
    const audio = new Audio(url);
    await applySink(audio);
    audio.onended = () => URL.revokeObjectURL(url);
    await audio.play().then(() => { s.tests += 1; }, (err) => console.warn("test sound", err));
  }

  async function checkNetwork() {
    network.textContent = say("check_running");
    networkAgain.disabled = true;
    s.network = "";
    s.found = await gather(iceServers, iceTransportPolicy).catch(() => null);
    s.network = verdict(s.found, iceServers);
    network.textContent = say(s.network);
    networkAgain.disabled = false;
  }

  const picked = () => ({ videoinput: camera.value, audioinput: mic.value });
  camera.addEventListener("change", () => { remember("videoinput", camera.value); open(picked()); });
  mic.addEventListener("change", () => { remember("audioinput", mic.value); open(picked()); });
  speaker.addEventListener("change", () => {
    s.sinkId = speaker.value;
    remember("audiooutput", speaker.value);
    document.querySelectorAll("video:not([muted])").forEach(applySink);
  });
  retry.addEventListener("click", () => open());
  testSound.addEventListener("click", playTest);
  networkAgain.addEventListener("click", checkNetwork);

  return {
    async start() {
      root.hidden = false;
      await open();
      checkNetwork();
    },
    // Leaving the lobby: the level stops; the stream goes on into the call.
    pause() {
      clearInterval(s.timer);
    },
    applySink,
    view: {
      get problem() { return s.problem; },
      get network() { return s.network; },
      get candidates() { return s.found; },
      get micPeak() { return s.peak; },
      get soundsPlayed() { return s.tests; },
      get sinkId() { return s.sinkId; },
      canChooseSpeaker,
    },
  };
}
