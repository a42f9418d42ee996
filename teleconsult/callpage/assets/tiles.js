// The others' tiles on the call page: their video, name, whether their microphone and camera
// are off (an icon and words, as each page tells the others through the transport), how good
// the connection to them is and whether they are speaking (from the peer connection's standard
// getStats(): round-trip time, packet loss, frame rate, audio level). Words, never colour alone.

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  mic: ["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5 11a7 7 0 0 0 14 0M12 18v3", "M3 3l18 18"],
  camera: ["M3 7h11a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1z", "M15 11l6-4v10l-6-4", "M3 3l18 18"],
};
const SPEAKING_LEVEL = 0.03; // audioLevel (0..1) above which someone is taken to be speaking
const POOR = { rtt: 0.4, loss: 0.08, fps: 8 };
const FAIR = { rtt: 0.2, loss: 0.02, fps: 15 };

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [key, value] of Object.entries({ viewBox: "0 0 24 24", width: "18", height: "18", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "aria-hidden": "true", focusable: "false" })) {
    svg.setAttribute(key, value);
  }
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

function span(className, children = []) {
  const element = document.createElement("span");
  element.className = className;
  element.append(...children);
  return element;
}

// What one getStats() report says, against the counters of the previous one.
export function measure(report, previous) {
  let pairId = null;
  report.forEach((stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pairId = stat.selectedCandidatePairId;
  });
  const now = { rtt: undefined, fps: undefined, level: 0, lost: 0, received: 0 };
  report.forEach((stat) => {
    if (stat.type === "candidate-pair" && (stat.id === pairId || (!pairId && stat.nominated && stat.state === "succeeded"))) {
      now.rtt = stat.currentRoundTripTime;
    } else if (stat.type === "inbound-rtp") {
      now.lost += Math.max(0, stat.packetsLost || 0);
      now.received += stat.packetsReceived || 0;
      if (stat.kind === "video") now.fps = stat.framesPerSecond;
      if (stat.kind === "audio") now.level = Math.max(now.level, stat.audioLevel || 0);
    }
  });
  const lost = now.lost - (previous?.lost ?? 0);
  const packets = lost + now.received - (previous?.received ?? 0);
  now.loss = packets > 0 ? Math.max(0, lost) / packets : 0;
  return now;
}

// "good", "fair" or "poor"; null until the connection has a round-trip time.
export function grade(measured, videoExpected) {
  if (typeof measured.rtt !== "number") return null;
  const fps = videoExpected && typeof measured.fps === "number" ? measured.fps : Infinity;
  if (measured.rtt > POOR.rtt || measured.loss > POOR.loss || fps < POOR.fps) return "poor";
  if (measured.rtt > FAIR.rtt || measured.loss > FAIR.loss || fps < FAIR.fps) return "fair";
  return "good";
}

export function createTiles({ stage, say, onPlay }) {
  const tiles = new Map();

  function add(id) {
    const tile = document.createElement("figure");
    tile.className = "tile remote";
    tile.dataset.peerId = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const cameraOff = span("camera-off", [icon("camera"), say("peer_camera_off")]);
    const micOff = span("mic-off", [icon("mic"), say("peer_mic_off")]);
    const speaking = span("speaking-label", [say("speaking")]);
    const name = span("name");
    const status = span("peer-state");
    const quality = span("quality");
    cameraOff.hidden = micOff.hidden = speaking.hidden = quality.hidden = true;
    const caption = document.createElement("figcaption");
    caption.append(name, status, micOff, speaking);
    tile.append(video, cameraOff, quality, caption);
    stage.append(tile);
    const s = { previous: null, video: true, wasLoud: false };
    tiles.set(id, tile);
    return {
      setName: (text) => { name.textContent = text; },
      setConnected: (connected) => { status.textContent = connected ? "" : say("connecting"); },
      setMedia(audio, video) {
        s.video = video;
        micOff.hidden = audio;
        cameraOff.hidden = video;
        tile.classList.toggle("no-video", !video);
        if (!audio) {
          speaking.hidden = true;
          tile.classList.remove("speaking");
        }
      },
      stats(report) {
        const measured = measure(report, s.previous);
        s.previous = measured;
        const level = grade(measured, s.video);
        quality.hidden = !level;
        if (level) {
          quality.dataset.level = level;
          quality.textContent = say(`quality_${level}`);
        }
        const loud = measured.level > SPEAKING_LEVEL;
        const isSpeaking = loud || s.wasLoud; // held over one poll: words do not flicker
        s.wasLoud = loud;
        speaking.hidden = !isSpeaking || !micOff.hidden;
        tile.classList.toggle("speaking", !speaking.hidden);
      },
      play: (stream) => {
        if (video.srcObject !== stream) video.srcObject = stream;
        onPlay(video);
      },
    };
  }

  function remove(id) {
    tiles.get(id)?.remove();
    tiles.delete(id);
  }

  return { add, remove };
}
