// Live: every stream's annotated picture, state and counters, and the newest detections from
// the server's event stream; a stream's own page with a larger view, a class filter and a
// threshold for its detections list, "reconnect now" and remove.

import { ApiError, api, events, withKey } from "./api.js";
import { el, num, showBanner, stats } from "./dom.js";

// A browser opens at most 6 HTTP/1.1 connections to one host, and each MJPEG picture holds one
// open: past this many streams the grid shows snapshots refreshed every second instead.
const MJPEG_IN_GRID = 3;
const KEEP_DETECTIONS = 30;

const ERROR_WORDS = {
  not_found: "the source was not found",
  auth_failed: "the camera refused the credentials",
  refused_by_policy: "the source is outside the allowed sources",
  timeout: "the source did not answer in time",
  unsupported_codec: "the video codec is not supported",
  frames_too_large: "frames are larger than the pixel limit",
  connection_refused: "the connection was refused",
  disconnected: "the source disconnected",
  stalled: "no new frame for a while",
  end_of_stream: "the video ended",
  unknown: "an unknown error",
};

export function errorInWords(err) {
  if (!err) return "none";
  const words = ERROR_WORDS[err.kind] || err.kind.replaceAll("_", " ");
  return err.message ? `${words}: ${err.message}` : words;
}

function badge(state) {
  return el("span", { class: `badge ${state}`, "data-testid": "state", text: state });
}

function streamStats(s) {
  return stats([
    ["fps in / processed", `${num(s.input_fps)} / ${num(s.processed_fps)}`],
    ["frames", `${s.frames_processed} of ${s.frames_in}`],
    ["dropped", `${s.dropped_frames} (fps cap skipped ${s.skipped_frames})`],
    ["latency", s.latency_ms.last === null ? "–" : `${num(s.latency_ms.last, 0)} ms`],
    ["reconnects", String(s.reconnects)],
    ["last error", errorInWords(s.last_error)],
    ...analysisRows(s.analysis),
  ]);
}

// Counting lines (in / out) and zones (inside now, entered so far), as the status counts them.
function analysisRows(a) {
  if (!a) return [];
  const total = (counts) => Object.values(counts).reduce((x, y) => x + y, 0);
  return [
    ...Object.entries(a.lines).map(([name, c]) => [`line ${name}`, `in ${c.total_in} / out ${c.total_out}`]),
    ...Object.entries(a.zones).map(([name, z]) => [`zone ${name}`, `${total(z.inside)} inside, ${total(z.entered)} entered`]),
    ...(a.motion ? [["motion gate", `${a.motion.skipped} frames skipped`]] : []),
  ];
}

function detectionLine(ev, keep = () => true) {
  const shown = ev.detections.filter(keep);
  const what = shown.length
    ? shown.map((d) => `${d.track_id ? `#${d.track_id} ` : ""}${d.name} ${Math.round(d.prob * 100)}%`).join(", ")
    : "nothing";
  const at = new Date(ev.timestamp * 1000).toLocaleTimeString();
  return { shown, node: el("li", {}, el("span", { class: "muted", text: `${at} ${ev.stream} #${ev.frame}: ` }), what) };
}

// A picture of the stream: the MJPEG (one open connection) or a snapshot refreshed each second.
function picture(id, mjpeg) {
  const img = el("img", { class: "frame", alt: `annotated video of stream ${id}`, "data-testid": "frame" });
  let timer = null;
  if (mjpeg) {
    img.src = withKey(`/v1/streams/${encodeURIComponent(id)}/mjpeg`);
  } else {
    const refresh = () => {
      const next = new Image();
      next.onload = () => { img.src = next.src; };
      next.onerror = () => {};  // no frame yet (503): keep the last one
      next.src = withKey(`/v1/streams/${encodeURIComponent(id)}/snapshot.jpg?t=${Date.now()}`);
    };
    refresh();
    timer = setInterval(refresh, 1000);
  }
  const close = () => {
    if (timer) clearInterval(timer);
    img.removeAttribute("src");  // closes the MJPEG connection
    img.src = "data:,";
  };
  return { img, close };
}

function failed(main, err) {
  if (err instanceof ApiError && err.status === 401) return;  // the key dialog is up
  showBanner(`Could not load the streams: ${err.message}`);
}

export function renderLive(main) {
  const grid = el("div", { class: "grid", id: "stream-grid" });
  const list = el("ul", { class: "detections", id: "detections", "aria-live": "off" });
  const empty = el("p", { class: "muted", text: "Loading streams…" });
  main.append(
    el("h2", { text: "Live" }),
    empty,
    grid,
    el("section", { class: "panel" }, el("h3", { text: "Newest detections" }), list),
  );
  const cards = new Map();
  let closed = false;
  let es = null;

  function card(s, mjpeg) {
    const pic = picture(s.id, mjpeg);
    const node = el("article", { class: "card", "data-stream": s.id });
    const c = { node, pic, stats: null, badge: null };
    c.update = (st) => {
      const b = badge(st.state);
      const body = streamStats(st);
      if (c.badge) c.badge.replaceWith(b); else node.querySelector("header").append(b);
      if (c.stats) c.stats.replaceWith(body); else node.append(body);
      c.badge = b;
      c.stats = body;
    };
    node.append(
      el("header", {}, el("a", { class: "title", href: `#/stream/${encodeURIComponent(s.id)}`, text: s.name || s.id })),
      pic.img,
    );
    c.update(s);
    return c;
  }

  async function refresh() {
    const streams = await api("/v1/streams");
    if (closed) return;
    empty.textContent = streams.length ? "" : "No streams yet. Add one with “Add stream”.";
    empty.hidden = streams.length > 0;
    const mjpeg = streams.length <= MJPEG_IN_GRID;
    const ids = new Set(streams.map((s) => s.id));
    for (const [id, c] of cards) {
      if (!ids.has(id)) { c.pic.close(); c.node.remove(); cards.delete(id); }
    }
    for (const s of streams) {
      let c = cards.get(s.id);
      if (!c) { c = card(s, mjpeg); cards.set(s.id, c); grid.append(c.node); }
      else c.update(s);
    }
  }

  const stateOf = (ev) => {
    const c = cards.get(ev.stream);
    if (c) c.badge.replaceWith((c.badge = badge(ev.state)));
  };

  refresh().then(() => {
    if (closed) return;
    es = events("/v1/events", {
      state: stateOf,
      detections: (ev) => {
        list.prepend(detectionLine(ev).node);
        while (list.children.length > KEEP_DETECTIONS) list.lastChild.remove();
      },
    });
  }).catch((err) => failed(main, err));
  // The counters (fps, drops, latency) come with the status, refreshed every 2 s.
  const timer = setInterval(() => refresh().catch((err) => failed(main, err)), 2000);
  return () => {
    closed = true;
    clearInterval(timer);
    if (es) es.close();
    for (const c of cards.values()) c.pic.close();
  };
}

export function renderStream(main, id) {
  const path = `/v1/streams/${encodeURIComponent(id)}`;
  const title = el("h2", { text: `Stream ${id}` });
  const info = el("div");
  const list = el("ul", { class: "detections", id: "detections" });
  const classes = el("input", { id: "filter-classes", type: "text", placeholder: "person, car" });
  const thresh = el("input", { id: "filter-threshold", type: "number", min: "0", max: "1", step: "0.05", value: "0" });
  const message = el("p", { role: "status", class: "muted" });
  const pic = picture(id, true);
  let closed = false;
  let es = null;

  const keep = (d) => {
    const names = classes.value.split(",").map((c) => c.trim()).filter(Boolean);
    return (!names.length || names.includes(d.name)) && d.prob >= (Number(thresh.value) || 0);
  };

  async function reconnect() {
    try {
      await api(`${path}/reconnect`, { method: "POST" });
      message.textContent = "Reconnecting now.";
    } catch (err) { message.textContent = `Reconnect failed: ${err.message}`; }
  }

  // The list shows what the filter keeps: a changed filter starts it afresh.
  for (const input of [classes, thresh]) input.addEventListener("input", () => list.replaceChildren());

  const remove = el("button", { class: "danger", type: "button" }, "Remove");
  remove.addEventListener("click", async () => {
    if (remove.dataset.confirm !== "yes") {  // a second press confirms
      remove.dataset.confirm = "yes";
      remove.textContent = "Press again to remove";
      return;
    }
    try {
      await api(path, { method: "DELETE" });
      location.hash = "#/live";
    } catch (err) { message.textContent = `Remove failed: ${err.message}`; }
  });

  main.append(
    el("p", {}, el("a", { href: "#/live", text: "← all streams" })),
    title,
    el("div", { class: "two" },
      el("div", {}, pic.img),
      el("div", {}, info,
        el("div", { class: "row" },
          el("button", { type: "button", class: "secondary", onclick: reconnect }, "Reconnect now"),
          remove),
        message)),
    el("section", { class: "panel" },
      el("h3", { text: "Newest detections" }),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "filter-classes" }, "Classes ", el("span", { class: "hint", text: "(comma-separated; empty: all)" })), classes),
        el("div", {}, el("label", { for: "filter-threshold", text: "Threshold" }), thresh)),
      list),
  );

  async function refresh() {
    const s = await api(path);
    if (closed) return;
    title.textContent = s.name || s.id;
    info.replaceChildren(
      el("p", {}, badge(s.state), " ", el("span", { class: "muted", text: `${s.kind} · ${s.url}` })),
      streamStats(s),
    );
  }
  refresh().then(() => {
    if (closed) return;
    es = events(`${path}/events`, {
      state: () => refresh().catch(() => {}),
      detections: (ev) => {
        const { shown, node } = detectionLine(ev, keep);
        if (!shown.length) return;
        list.prepend(node);
        while (list.children.length > KEEP_DETECTIONS) list.lastChild.remove();
      },
    });
  }).catch((err) => {
    if (err instanceof ApiError && err.status === 404) showBanner(`There is no stream ${id}.`);
    else failed(main, err);
  });
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  return () => {
    closed = true;
    clearInterval(timer);
    if (es) es.close();
    pic.close();
  };
}

