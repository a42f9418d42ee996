// The check page: the call page's checks (precheck.js) with no link, no consultation and no
// credential, so a patient can test their device the day before. Its info holds only the
// texts and STUN servers (no TURN credentials for anonymous visitors).

import { createPrecheck } from "./precheck.js";

const $ = (id) => document.getElementById(id);

async function main() {
  const base = location.pathname.replace(/\/+$/, "");
  const response = await fetch(`${base}/info${location.search}`, { cache: "no-store" });
  const info = await response.json();
  const say = (key) => info.texts[key] ?? "";
  document.documentElement.lang = info.language;
  document.title = say("check_title");
  $("title").textContent = say("check_title");
  $("intro").textContent = say("check_intro");
  const precheck = createPrecheck({ root: $("precheck"), video: $("self-video"), say, iceServers: info.iceServers, iceTransportPolicy: info.iceTransportPolicy });
  window.__precheck = precheck.view; // read by automated tests
  await precheck.start();
  $("check").dataset.phase = "ready";
}

main().catch((err) => console.error(err));
