// "Remove" on each of the others' tiles, for a plus participant's page. It asks first, in a
// modal dialog as "End call for everyone" does (focus on Cancel, Escape cancels, focus back on
// the button); confirmed, the page asks the server (POST ./remove), which revokes that
// participant's link and keeps them out: their page leaves, and every page is told they left.

import { createConfirm } from "./confirm.js";

export function createRemoval({ $, say, base, stage }) {
  const s = { enabled: false, names: new Map(), pending: null };
  const dialog = createConfirm($, "remove");
  const named = (key, name) => say(key).replace("{name}", name);

  function setup(isAdmin) {
    s.enabled = isAdmin;
    dialog.label({ explain: say("remove_explain"), cancel: say("cancel"), confirm: say("remove_confirm") });
  }

  function tileOf(id) {
    return stage.querySelector(`.tile[data-peer-id="${CSS.escape(id)}"]`);
  }

  // A Remove button on the tile of peer `id` (a plus participant's page only).
  function attach(id) {
    const tile = tileOf(id);
    if (!s.enabled || !tile) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "remove-peer";
    button.textContent = say("remove");
    button.addEventListener("click", () => ask(id, button));
    (tile.querySelector(".tile-top") ?? tile).prepend(button); // beside their sharing label
    setName(id, "");
  }

  function setName(id, name) {
    s.names.set(id, name);
    const button = tileOf(id)?.querySelector(".remove-peer");
    if (button && name) button.setAttribute("aria-label", named("remove_named", name));
  }

  function ask(id, button) {
    s.pending = id;
    dialog.ask(button, () => remove(id), named("remove_question", s.names.get(id) || ""));
  }

  async function remove(id) {
    s.pending = null;
    const button = tileOf(id)?.querySelector(".remove-peer");
    if (button) button.disabled = true;
    try {
      const response = await fetch(`${base}/remove`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ peer: id }),
      });
      if (!response.ok) throw new Error(`remove answered ${response.status}`);
    } catch (err) {
      console.warn("the participant could not be removed", err);
      if (button) button.disabled = false; // they are still there: it can be asked again
    }
  }

  // The peer left (or the call ended): a question about them is moot.
  function gone(id) {
    s.names.delete(id);
    if (id === undefined || s.pending === id) {
      s.pending = null;
      dialog.dismiss();
    }
  }

  return { setup, attach, setName, gone };
}
