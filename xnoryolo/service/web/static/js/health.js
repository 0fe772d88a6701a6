// Health: what the box reports of itself (readiness, the model and kernels where the server
// tells them), the counts of streams and jobs, and links to the metrics and the API docs.

import { ApiError, api, headers, withKey } from "./api.js";
import { duration, el, showBanner, stats } from "./dom.js";

async function optional(path) {
  try { return await api(path); } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    return null;  // absent on this server (404) or not ready (503 from /readyz)
  }
}

function value(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function renderHealth(main) {
  const body = el("div", { id: "health" }, el("p", { class: "muted", text: "Loading…" }));
  main.append(
    el("h2", { text: "Health" }),
    body,
    el("section", { class: "panel" }, el("h3", { text: "Links" }),
      el("ul", {},
        el("li", {}, el("a", { href: withKey("/metrics"), text: "Prometheus metrics (/metrics)" })),
        el("li", {}, el("a", { href: withKey("/docs"), text: "API docs (Swagger UI)" })))),
  );
  (async () => {
    const [alive, streams, jobs, schema] = await Promise.all([
      optional("/healthz"), api("/v1/streams"), api("/v1/jobs?limit=1000"), optional("/openapi.json"),
    ]);
    // /readyz answers 503 with its detail when not ready: read it with fetch directly.
    let ready = null;
    try { ready = await (await fetch("/readyz", { headers: headers() })).json(); } catch { /* none */ }
    const info = await optional("/v1/info");
    const metrics = await optional("/metrics");
    // A Prometheus metric summed over its labels (one line per detector call origin).
    const metric = (name) => {
      if (typeof metrics !== "string") return null;
      const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "gm");
      return [...metrics.matchAll(re)].reduce((total, m) => total + Number(m[1]), 0);
    };
    const count = metric("xnoryolo_inference_seconds_count");
    const sum = metric("xnoryolo_inference_seconds_sum");
    const rows = [
      ["process", alive && alive.status === "ok" ? "answers" : "no answer"],
      ["ready", ready ? (ready.ready ? "yes" : "no: a stream has no recent result") : "–"],
      ["version", schema && schema.info ? schema.info.version : "–"],
      ["streams", `${streams.length} (${streams.filter((s) => s.state === "online").length} online)`],
      ["jobs", `${jobs.length} (${jobs.filter((j) => j.state === "running").length} running, ${jobs.filter((j) => j.state === "queued").length} queued)`],
    ];
    rows.push(["inference", count ? `${count} frames, ${(1000 * sum / count).toFixed(1)} ms each on average` : "–"]);
    if (info) {
      for (const [k, v] of Object.entries(info)) rows.push([k.replaceAll("_", " "), k.endsWith("uptime_s") ? duration(v) : value(v)]);
    } else {
      rows.push(["model, kernels, threads, uptime", "not reported by this server (no /v1/info)"]);
    }
    body.replaceChildren(el("section", { class: "panel" }, stats(rows)));
  })().catch((err) => {
    if (!(err instanceof ApiError && err.status === 401)) showBanner(`Could not load health: ${err.message}`);
  });
}

