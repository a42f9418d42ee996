// Unit tests of the call page's quality rule (teleconsult/callpage/assets/quality.js), with
// Node's own runner: `node --test tests/js/` (tests/test_quality_js.py runs it in the suite).

import assert from "node:assert/strict";
import test from "node:test";

import {
  FAIR, PAUSE_AFTER_MS, POOR, RESUME_AFTER_MS, VIDEO_SENT, grade, measure, videoLink,
} from "../../teleconsult/callpage/assets/quality.js";

// A getStats() report is map-like: forEach((stat) => ...) over its stats.
const report = (...stats) => new Map(stats.map((stat, i) => [stat.id ?? `s${i}`, stat]));
const pair = (rtt) => [
  { type: "transport", id: "T", selectedCandidatePairId: "P" },
  { type: "candidate-pair", id: "P", currentRoundTripTime: rtt },
  { type: "candidate-pair", id: "Q", currentRoundTripTime: 9, nominated: true, state: "succeeded" },
];
const inbound = (kind, fields) => ({ type: "inbound-rtp", kind, ...fields });

test("the selected pair's round-trip time is read, not another pair's", () => {
  assert.equal(measure(report(...pair(0.05)), null).rtt, 0.05);
});

test("without a selected pair, the nominated succeeded pair's round-trip time is read", () => {
  const stats = report({ type: "candidate-pair", id: "Q", currentRoundTripTime: 0.3, nominated: true, state: "succeeded" });
  assert.equal(measure(stats, null).rtt, 0.3);
});

test("loss is counted since the previous report, over every inbound stream", () => {
  const first = measure(report(...pair(0.05), inbound("audio", { packetsLost: 10, packetsReceived: 90 })), null);
  assert.equal(first.loss, 0.1);
  const second = measure(
    report(...pair(0.05), inbound("audio", { packetsLost: 10, packetsReceived: 150 }),
      inbound("video", { packetsLost: 5, packetsReceived: 45, framesPerSecond: 24 })),
    first,
  );
  assert.equal(second.loss, 5 / 110);
  assert.equal(second.fps, 24);
});

test("the loss the other side reports of this page's audio counts, a paused video's does not", () => {
  const stats = report(...pair(0.05), { type: "remote-inbound-rtp", kind: "audio", fractionLost: 0.12 },
    { type: "remote-inbound-rtp", kind: "video", fractionLost: 0.9 });
  assert.equal(measure(stats, null).loss, 0.12);
});

test("the loudest received audio level is kept", () => {
  const stats = report(inbound("audio", { audioLevel: 0.2 }), inbound("audio", { audioLevel: 0.5 }));
  assert.equal(measure(stats, null).level, 0.5);
});

test("a sound between two reports counts: the level over the interval comes from the energy", () => {
  // 0.5 for 0.04 s of the second between the reports, silence when each report was taken.
  const first = measure(report(inbound("audio", { audioLevel: 0, totalAudioEnergy: 0, totalSamplesDuration: 10 })), null);
  const second = measure(
    report(inbound("audio", { audioLevel: 0, totalAudioEnergy: 0.25 * 0.04, totalSamplesDuration: 11 })),
    first,
  );
  assert.equal(second.level, 0.1);
  const silent = measure(report(inbound("audio", { audioLevel: 0, totalAudioEnergy: 0.25 * 0.04, totalSamplesDuration: 12 })), second);
  assert.equal(silent.level, 0);
});

test("no grade before a round-trip time", () => {
  assert.equal(grade({ rtt: undefined, loss: 0, fps: 30 }, true), null);
});

test("each limit makes the grade poor or fair on its own", () => {
  const good = { rtt: 0.05, loss: 0, fps: 30 };
  assert.equal(grade(good, true), "good");
  assert.equal(grade({ ...good, rtt: POOR.rtt + 0.01 }, true), "poor");
  assert.equal(grade({ ...good, loss: POOR.loss + 0.01 }, true), "poor");
  assert.equal(grade({ ...good, fps: POOR.fps - 1 }, true), "poor");
  assert.equal(grade({ ...good, rtt: FAIR.rtt + 0.01 }, true), "fair");
  assert.equal(grade({ ...good, loss: FAIR.loss + 0.01 }, true), "fair");
  assert.equal(grade({ ...good, fps: FAIR.fps - 1 }, true), "fair");
  assert.equal(grade({ ...good, rtt: POOR.rtt }, true), "fair"); // at the limit: not beyond it
});

test("the frame rate counts only while video is expected", () => {
  assert.equal(grade({ rtt: 0.05, loss: 0, fps: 0 }, false), "good");
  assert.equal(grade({ rtt: 0.05, loss: 0, fps: undefined }, true), "good");
});

// One reading a second from t = 0, as the page polls; the states after each.
function run(levels, link = VIDEO_SENT) {
  return levels.map((level, second) => (link = videoLink(link, level, second * 1000)));
}

test("video pauses only once every reading has been poor for the pause delay", () => {
  const polls = PAUSE_AFTER_MS / 1000;
  const states = run(Array(polls + 1).fill("poor"));
  assert.deepEqual(states.map((s) => s.paused), [...Array(polls).fill(false), true]);
  assert.equal(states.at(-1).since, null);
});

test("a fair or missing reading restarts the count toward pausing", () => {
  const polls = PAUSE_AFTER_MS / 1000;
  for (const interruption of ["fair", "good", null]) {
    const levels = [...Array(polls).fill("poor"), interruption, ...Array(polls).fill("poor")];
    assert.ok(run(levels).every((s) => !s.paused), `interrupted by ${interruption}`);
  }
});

test("paused video resumes only once every reading has been good for the resume delay", () => {
  const paused = { paused: true, since: null };
  const polls = RESUME_AFTER_MS / 1000;
  const states = run(Array(polls + 1).fill("good"), paused);
  assert.deepEqual(states.map((s) => s.paused), [...Array(polls).fill(true), false]);
  const flaky = [...Array(polls).fill("good"), "fair", ...Array(polls).fill("good")];
  assert.ok(run(flaky, paused).every((s) => s.paused));
  assert.ok(run(Array(30).fill("poor"), paused).every((s) => s.paused));
});

test("resuming needs longer than pausing: a link that swings does not flap", () => {
  assert.ok(RESUME_AFTER_MS > PAUSE_AFTER_MS);
  const swinging = Array.from({ length: 60 }, (_, i) => (Math.floor(i / 7) % 2 ? "good" : "poor"));
  const changes = run(swinging).filter((s, i, all) => i > 0 && s.paused !== all[i - 1].paused);
  assert.equal(changes.length, 1); // paused once, never resumed by 7 good seconds
});
