// The call page's connection-quality rule, pure (no page, no WebRTC: `node --test` runs it, see
// tests/js/quality.test.mjs): a peer connection's getStats() readings to "good", "fair" or
// "poor" (each tile says it in words), and when this page stops sending video on a connection
// that cannot carry it (audio only) and sends it again, with hysteresis so a short spike
// neither pauses the video nor a short calm resumes it.

export const POOR = { rtt: 0.4, loss: 0.08, fps: 8 };
export const FAIR = { rtt: 0.2, loss: 0.02, fps: 15 };
export const PAUSE_AFTER_MS = 5000; // poor this long: video paused, audio kept
export const RESUME_AFTER_MS = 10000; // good this long: video sent again

// What one getStats() report says, against the counters of the previous one: the selected
// pair's round-trip time, the share of packets lost either way (received here since the last
// report, and this page's audio as the other side reports it), the video frame rate received
// and the audio level received: the louder of the latest sample and the level over the whole
// interval (from the energy counters), so a short word between two polls still counts.
export function measure(report, previous) {
  let pairId = null;
  report.forEach((stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pairId = stat.selectedCandidatePairId;
  });
  const now = { rtt: undefined, fps: undefined, level: 0, energy: 0, duration: 0, lost: 0, received: 0, sentLoss: 0 };
  report.forEach((stat) => {
    if (stat.type === "candidate-pair" && (stat.id === pairId || (!pairId && stat.nominated && stat.state === "succeeded"))) {
      now.rtt = stat.currentRoundTripTime;
    } else if (stat.type === "inbound-rtp") {
      now.lost += Math.max(0, stat.packetsLost || 0);
      now.received += stat.packetsReceived || 0;
      if (stat.kind === "video") now.fps = stat.framesPerSecond;
      if (stat.kind === "audio") {
        now.level = Math.max(now.level, stat.audioLevel || 0);
        now.energy += stat.totalAudioEnergy || 0;
        now.duration += stat.totalSamplesDuration || 0;
      }
    } else if (stat.type === "remote-inbound-rtp" && stat.kind === "audio") {
      // Audio only: it never stops, so its report is current (a paused video's is not).
      now.sentLoss = Math.max(now.sentLoss, stat.fractionLost || 0);
    }
  });
  const lost = now.lost - (previous?.lost ?? 0);
  const packets = lost + now.received - (previous?.received ?? 0);
  const receivedLoss = packets > 0 ? Math.max(0, lost) / packets : 0;
  now.loss = Math.max(receivedLoss, now.sentLoss);
  // totalAudioEnergy sums level² × seconds: its growth over the samples' growth is the mean
  // square level of the interval.
  const seconds = now.duration - (previous?.duration ?? 0);
  const energy = now.energy - (previous?.energy ?? 0);
  if (seconds > 0 && energy > 0) now.level = Math.max(now.level, Math.sqrt(energy / seconds));
  return now;
}

// "good", "fair" or "poor"; null until the connection has a round-trip time. The frame rate
// counts only while video is expected (the other's camera on and their video not paused).
export function grade(measured, videoExpected) {
  if (typeof measured.rtt !== "number") return null;
  const fps = videoExpected && typeof measured.fps === "number" ? measured.fps : Infinity;
  if (measured.rtt > POOR.rtt || measured.loss > POOR.loss || fps < POOR.fps) return "poor";
  if (measured.rtt > FAIR.rtt || measured.loss > FAIR.loss || fps < FAIR.fps) return "fair";
  return "good";
}

// Whether this page sends video on one connection, from its grade at `now` (ms): paused once
// every reading has been poor for PAUSE_AFTER_MS, resumed once every reading has been good for
// RESUME_AFTER_MS. Any other reading (fair, none yet) restarts the count.
export function videoLink(link, level, now) {
  const toward = link.paused ? "good" : "poor";
  if (level !== toward) return { paused: link.paused, since: null };
  const since = link.since ?? now;
  const needed = link.paused ? RESUME_AFTER_MS : PAUSE_AFTER_MS;
  if (now - since >= needed) return { paused: !link.paused, since: null };
  return { paused: link.paused, since };
}

export const VIDEO_SENT = Object.freeze({ paused: false, since: null });
