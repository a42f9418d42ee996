// A question asked before what cannot be undone ("End call for everyone", "Remove"): a modal
// dialog stamped from the page's one template, its ids prefixed by `name` (end-dialog,
// end-question, end-confirm, ...). Focus starts on Cancel, Escape cancels, and focus goes back
// to what opened it when it closes without going ahead.

export function createConfirm($, name) {
  const template = $("confirm-template");
  const dialog = template.content.firstElementChild.cloneNode(true);
  const part = (key) => dialog.querySelector(`[data-part="${key}"]`);
  dialog.id = `${name}-dialog`;
  for (const key of ["question", "explain", "cancel", "confirm"]) part(key).id = `${name}-${key}`;
  dialog.setAttribute("aria-labelledby", `${name}-question`);
  dialog.setAttribute("aria-describedby", `${name}-explain`);
  template.before(dialog);
  const s = { opener: null, then: null };
  part("cancel").addEventListener("click", () => dialog.close("cancel"));
  part("confirm").addEventListener("click", () => dialog.close("confirm"));
  dialog.addEventListener("close", () => {
    const then = dialog.returnValue === "confirm" ? s.then : null;
    s.then = null;
    if (then) then();
    else if (s.opener?.isConnected && !s.opener.hidden) s.opener.focus();
  });

  // The texts: `question` may change with each ask (ask's own), the others are set once.
  function label(texts) {
    for (const [key, text] of Object.entries(texts)) part(key).textContent = text;
  }

  function ask(opener, then, question) {
    if (question !== undefined) part("question").textContent = question;
    s.opener = opener;
    s.then = then;
    dialog.returnValue = "";
    dialog.showModal();
  }

  // The question became moot (the call ended, the participant left).
  function dismiss() {
    s.then = null;
    if (dialog.open) dialog.close("cancel");
  }

  return { label, ask, dismiss, get open() { return dialog.open; } };
}
