// Jobs: send a video (dropped or picked), see the upload's bytes go up (XMLHttpRequest upload
// events) and then the processing progress from the job's event stream; cancel; play the
// annotated video and download every result; the list of past jobs.

import { ApiError, api, events, headers, withKey } from "./api.js";
import { bytes, duration, el, num, showBanner, when } from "./dom.js";

const RESULT_NAMES = {
  detections: "Detections (JSON)",
  detections_jsonl: "Detections (JSON Lines)",
  mot: "MOTChallenge (txt)",
  coco: "COCO (JSON)",
  video: "Annotated video (MP4)",
};

function badge(state) {
  return el("span", { class: `badge ${state}`, "data-testid": "job-state", text: state });
}

// POST the file with XMLHttpRequest: fetch() reports no upload progress.
function upload(file, query, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/jobs${query ? `?${query}` : ""}`);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (ev) => onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size));
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 202) resolve(body);
      else reject(new ApiError(xhr.status, body && body.detail !== undefined ? body.detail : `${xhr.status} ${xhr.statusText}`));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload failed (network error)")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "the upload was cancelled")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export function renderJobs(main, selected) {
  // The file input itself is hidden behind a real button: focusable and pressable by keyboard.
  const picker = el("input", { id: "job-file", type: "file", accept: "video/*", hidden: true });
  const drop = el("div", { class: "drop", id: "drop-zone" },
    el("p", {}, "Drop a video here, or"),
    el("button", { type: "button", class: "secondary", id: "job-pick", onclick: () => picker.click() }, "Pick a video"),
    picker);
  const thresh = el("input", { id: "job-threshold", type: "number", min: "0", max: "1", step: "0.05" });
  const classes = el("input", { id: "job-classes", type: "text", placeholder: "person, car" });
  const stride = el("input", { id: "job-stride", type: "number", min: "1", step: "1", value: "1" });
  const uploadText = el("p", { id: "upload-progress", role: "status" });
  const uploadBar = el("progress", { max: "100", value: "0", "aria-label": "upload" });
  const current = el("section", { class: "panel", id: "job-current", hidden: true });
  const table = el("tbody");
  let es = null;
  let closed = false;

  main.append(
    el("h2", { text: "Jobs" }),
    el("section", { class: "panel" },
      el("h3", { text: "Process a video" }),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "job-threshold", text: "Threshold" }), thresh),
        el("div", {}, el("label", { for: "job-classes", text: "Classes" }), classes),
        el("div", {}, el("label", { for: "job-stride", text: "Every n-th frame" }), stride)),
      el("br"), drop, uploadBar, uploadText),
    current,
    el("section", { class: "panel" }, el("h3", { text: "Past jobs" }),
      el("table", { id: "jobs-table" },
        el("thead", {}, el("tr", {}, ...["Job", "File", "State", "Progress", "Error"].map((h, i) =>
          el("th", { class: i === 3 ? "wide" : null, text: h })))),
        table)),
  );

  function showJob(job) {
    current.hidden = false;
    const p = job.progress || {};
    const pct = p.percent ?? (job.state === "succeeded" ? 100 : 0);
    const frames = p.frames_total ? `${p.frames_done} of ${p.frames_total} frames` : `${p.frames_done ?? 0} frames`;
    const children = [
      el("h3", {}, `Job ${job.id} `, badge(job.state)),
      el("p", { class: "muted", text: job.filename || job.source || "" }),
      el("progress", { max: "100", value: String(pct), "aria-label": "processing" }),
      el("p", { id: "job-progress", role: "status" },
        `Processing: ${num(pct)} % · ${frames} · ${num(job.fps)} fps · ETA ${duration(job.eta_s)}`),
    ];
    if (job.error) children.push(el("p", { class: "error-text", id: "job-error", text: `Error: ${job.error}` }));
    if (job.state === "queued" || job.state === "running") {
      children.push(el("button", { type: "button", class: "danger", id: "job-cancel", onclick: async () => {
        try { await api(`/v1/jobs/${job.id}`, { method: "DELETE" }); } catch (err) { showBanner(`Cancel failed: ${err.message}`); }
      } }, "Cancel"));
    }
    const results = job.results || {};
    if (results.video) {
      const video = el("video", { controls: true, preload: "metadata", id: "job-video", src: withKey(results.video) });
      children.push(video);
      if (job.video && job.video.annotated_h264 === false) {
        children.push(el("p", { class: "muted", text: `The video is encoded as ${job.video.annotated_codec}, which browsers may not play: download it instead.` }));
      }
    }
    const links = Object.entries(results).map(([name, href]) =>
      el("li", {}, el("a", { href: withKey(href), download: "", "data-result": name, text: RESULT_NAMES[name] || name })));
    if (links.length) children.push(el("h3", { text: "Results" }), el("ul", { id: "job-results" }, links));
    current.replaceChildren(...children);
  }

  function follow(id) {
    if (es) es.close();
    es = events(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      job: (job) => {
        if (closed) return;
        showJob(job);
        if (job.state !== "queued" && job.state !== "running") { es.close(); refreshList(); }
      },
      deleted: () => { es.close(); current.hidden = true; refreshList(); },
    });
  }

  async function refreshList() {
    let jobs;
    try { jobs = await api("/v1/jobs?limit=50"); } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showBanner(`Could not load the jobs: ${err.message}`);
      return;
    }
    if (closed) return;
    table.replaceChildren(...jobs.map((j) => el("tr", {},
      el("td", {}, el("a", { href: `#/jobs/${j.id}`, text: j.id })),
      el("td", { text: j.filename || j.source || "" }),
      el("td", {}, badge(j.state)),
      el("td", { class: "wide", text: `${num(j.progress.percent)} % · ${when(j.created_at)}` }),
      el("td", { class: "error-text", text: j.error || "" }))));
    if (!jobs.length) table.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No jobs yet." })));
  }

  async function send(file) {
    if (!file) return;
    const q = new URLSearchParams();
    if (thresh.value !== "") q.set("threshold", thresh.value);
    if (classes.value.trim()) q.set("classes", classes.value.trim());
    if (stride.value && stride.value !== "1") q.set("stride", stride.value);
    uploadText.className = "";
    uploadText.textContent = `Uploading ${file.name}…`;
    try {
      const job = await upload(file, q.toString(), (loaded, total) => {
        const pct = total ? (100 * loaded) / total : 0;
        uploadBar.value = pct;
        uploadText.textContent = `Upload: ${bytes(loaded)} of ${bytes(total)} (${pct.toFixed(0)} %)`;
      });
      uploadBar.value = 100;
      uploadText.textContent = `Upload: ${bytes(file.size)} of ${bytes(file.size)} (100 %) · job ${job.id}`;
      history.replaceState(null, "", `#/jobs/${job.id}`);
      showJob(job);
      follow(job.id);
      refreshList();
    } catch (err) {
      uploadText.className = "error-text";
      uploadText.textContent = `Upload refused: ${err.message}`;
    }
  }

  picker.addEventListener("change", () => send(picker.files[0]));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    send(ev.dataTransfer.files[0]);
  });

  refreshList();
  if (selected) {
    api(`/v1/jobs/${encodeURIComponent(selected)}`).then((job) => {
      if (closed) return;
      showJob(job);
      if (job.state === "queued" || job.state === "running") follow(job.id);
    }).catch((err) => showBanner(`Job ${selected}: ${err.message}`));
  }
  const timer = setInterval(refreshList, 5000);
  return () => {
    closed = true;
    clearInterval(timer);
    if (es) es.close();
  };
}
