// The in-call tools a participant's level enables (the service configuration's `privileges`,
// read from ./tools; the server refuses the others' messages, or with Janus the receiving
// page drops them): the chat and screen sharing.
// Chat texts may hold health data: they are only shown here, never stored by the page.

const MAX_CHAT_CHARS = 1000;

export function createTools({ $, say, language, transport, localStream, render }) {
  const s = { tools: new Set(), sharing: null, names: () => new Map() };
  const canShare = () => s.tools.has("screen_sharing") && !!navigator.mediaDevices?.getDisplayMedia;

  async function load(base) {
    try {
      const response = await fetch(`${base}/tools`, { cache: "no-store" });
      if (response.ok) s.tools = new Set((await response.json()).tools);
    } catch {
      // no tools: the call works without them
    }
  }

  function setup(names) {
    s.names = names;
    $("chat-heading").textContent = say("chat_heading");
    $("chat-label").textContent = say("chat_label");
    $("chat-send").textContent = say("chat_send");
    $("chat-text").maxLength = MAX_CHAT_CHARS;
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("chat-text").value.trim();
      if (!text || !transport().chat(text)) return;
      $("chat-text").value = "";
      show(say("you"), text);
    });
    $("share-screen").addEventListener("click", () => (s.sharing ? stopSharing() : startSharing()));
  }

  // One line in the chat's log (a live region): who, when, what; text only, never HTML.
  function show(who, text) {
    const item = document.createElement("p");
    const head = document.createElement("span");
    head.className = "chat-meta";
    const time = new Intl.DateTimeFormat(language(), { timeStyle: "short" }).format(new Date());
    head.textContent = `${who}, ${time}`;
    const body = document.createElement("span");
    body.className = "chat-body";
    body.textContent = text;
    item.append(head, body);
    $("chat-log").append(item);
    item.scrollIntoView?.({ block: "nearest" });
  }

  function received(from, text) {
    show(s.names().get(from) || say("participants"), text);
  }

  // The screen replaces the camera on every peer connection (no renegotiation); stopping
  // (the button or the browser's own bar) puts the camera back.
  async function startSharing() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch {
      return; // refused or cancelled: nothing changes
    }
    const [track] = stream.getVideoTracks();
    if (!track) return;
    s.sharing = track;
    track.addEventListener("ended", stopSharing);
    await transport().replaceVideo(track);
    transport().screen(true);
    render();
  }

  async function stopSharing() {
    const track = s.sharing;
    if (!track) return;
    s.sharing = null;
    track.stop();
    await transport().replaceVideo(localStream()?.getVideoTracks()[0] ?? null);
    transport().screen(false);
    render();
  }

  function renderTools(inCall) {
    $("chat").hidden = !(inCall && s.tools.has("chat"));
    $("share-screen").hidden = !(inCall && canShare());
    $("share-screen").textContent = say(s.sharing ? "stop_sharing" : "share_screen");
    $("share-screen").setAttribute("aria-pressed", String(!!s.sharing));
    if (!inCall && s.sharing) stopSharing();
  }

  return {
    load,
    setup,
    received,
    render: renderTools,
    sharingTrack: () => s.sharing,
    view: { get tools() { return [...s.tools]; }, get sharing() { return !!s.sharing; } },
  };
}
