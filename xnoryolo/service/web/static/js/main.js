// The page's entry: hash routes (#/live, #/stream/ID, #/add, #/jobs, #/health), the API key
// dialog and the error banner. Each view renders into <main> and returns a function that
// closes what it opened (event streams, MJPEG images, timers) when the page changes.

import { onKeyNeeded, setKey } from "./api.js";
import { renderAdd } from "./add.js";
import { showBanner } from "./dom.js";
import { renderHealth } from "./health.js";
import { renderJobs } from "./jobs.js";
import { renderLive, renderStream } from "./live.js";

const main = document.getElementById("main");
const dialog = document.getElementById("key-dialog");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
let cleanup = () => {};


function route() {
  const [, view = "live", arg] = location.hash.replace(/^#/, "").split("/");
  return { view, arg: arg ? decodeURIComponent(arg) : undefined };
}

function render() {
  cleanup();
  cleanup = () => {};
  showBanner("");
  main.replaceChildren();
  const { view, arg } = route();
  const nav = view === "stream" ? "live" : view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const views = {
    live: () => renderLive(main),
    stream: () => renderStream(main, arg),
    add: () => renderAdd(main),
    jobs: () => renderJobs(main, arg),
    health: () => renderHealth(main),
  };
  cleanup = (views[view] || views.live)() || (() => {});
}

function askForKey(message) {
  keyError.textContent = message || "";
  if (!dialog.open) {
    cleanup();  // nothing keeps calling the box with a refused key meanwhile
    cleanup = () => {};
    main.replaceChildren();
    showBanner("This box needs an API key.");
    keyInput.value = "";
    dialog.showModal();
  }
  keyInput.focus();
}

keyForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  // Tried before it is kept: a wrong key is answered in the dialog, not by a broken page.
  let res;
  try {
    res = await fetch("/v1/streams", { headers: { "X-API-Key": key } });
  } catch {
    keyError.textContent = "The box does not answer.";
    return;
  }
  if (res.status === 401) {
    keyError.textContent = "That API key was not accepted. Check it and try again.";
    keyInput.select();
    return;
  }
  setKey(key);
  dialog.close();
  render();
});

// Escape would leave the page without a key and without a way back to the dialog.
dialog.addEventListener("cancel", (ev) => ev.preventDefault());

onKeyNeeded((message) => {
  setKey("");
  askForKey(message);
});
window.addEventListener("hashchange", () => {
  render();
  main.focus();
});
if (!location.hash) history.replaceState(null, "", "#/live");
render();
