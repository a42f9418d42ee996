// The others' tiles on the call page: their video, name, whether their microphone and camera
// are off (an icon and words, as each page tells the others through the transport), how good
// the connection to them is and whether they are speaking (from the peer connection's standard
// getStats(): round-trip time, packet loss, frame rate, audio level; the rule is quality.js's),
// whether they paused their video for a weak connection and whether they share their screen.
// Words, never colour alone.

import { grade, measure } from "./quality.js";

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  mic: ["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5 11a7 7 0 0 0 14 0M12 18v3", "M3 3l18 18"],
  camera: ["M3 7h11a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1z", "M15 11l6-4v10l-6-4", "M3 3l18 18"],
};
const SPEAKING_LEVEL = 0.03; // audioLevel (0..1) above which someone is taken to be speaking

export function icon(name) {
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
    const paused = span("video-paused", [icon("camera"), span("words")]);
    const micOff = span("mic-off", [icon("mic"), say("peer_mic_off")]);
    const speaking = span("speaking-label", [say("speaking")]);
    const name = span("name");
    const status = span("peer-state");
    const sharing = span("sharing-label");
    const quality = span("quality");
    cameraOff.hidden = paused.hidden = micOff.hidden = speaking.hidden = sharing.hidden = quality.hidden = true;
    const caption = document.createElement("figcaption");
    caption.append(name, status, micOff, speaking);
    tile.append(video, cameraOff, paused, span("tile-top", [sharing, quality]), caption);
    stage.append(tile);
    // video: their camera is on; paused: they stopped sending video to this page for a weak
    // connection; sharing: they send their screen.
    const s = { previous: null, video: true, paused: false, sharing: false, wasLoud: false };
    tiles.set(id, tile);

    // What the picture area says. A shared screen is sent whether their camera is on or off.
    function showVideo() {
      const who = { name: name.textContent };
      const sent = s.video || s.sharing;
      cameraOff.hidden = sent;
      paused.hidden = !sent || !s.paused;
      paused.lastChild.textContent = say("peer_video_paused", who);
      sharing.hidden = !s.sharing;
      sharing.textContent = say("peer_sharing", who);
      tile.classList.toggle("no-video", !sent || s.paused);
    }

    return {
      setName: (text) => {
        name.textContent = text;
        showVideo();
      },
      setConnected: (connected) => { status.textContent = connected ? "" : say("connecting"); },
      setMedia(audio, video) {
        s.video = video;
        micOff.hidden = audio;
        showVideo();
        if (!audio) {
          speaking.hidden = true;
          tile.classList.remove("speaking");
        }
      },
      setVideoPaused(pausedByThem) {
        s.paused = pausedByThem;
        showVideo();
      },
      setSharing(isSharing) {
        s.sharing = isSharing;
        showVideo();
      },
      // Reads one getStats() report; answers the connection's grade (null before it has one).
      stats(report) {
        const measured = measure(report, s.previous);
        s.previous = measured;
        const level = grade(measured, (s.video || s.sharing) && !s.paused);
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
        return level;
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
