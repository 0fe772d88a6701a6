// Add a stream: the server checks everything; its answer is shown next to the field it names.
// The URL may hold a camera's password: it is never shown back (the server answers with the
// URL redacted), and the field is emptied once the stream is added.

import { ApiError, api } from "./api.js";
import { el } from "./dom.js";

const FIELDS = [
  ["url", "URL", "text", "rtsp://user:pass@camera/stream, http://…/mjpeg, a file or /dev/video0"],
  ["name", "Name", "text", "optional"],
  ["fps", "FPS cap", "number", "optional: frames processed per second at most"],
  ["classes", "Classes", "text", "optional: comma-separated class names to report"],
  ["threshold", "Threshold", "number", "optional: 0 to 1"],
];

export function renderAdd(main) {
  const form = el("form", { class: "stack", id: "add-form", novalidate: true });
  const inputs = {};
  const errors = {};
  for (const [name, label, type, hint] of FIELDS) {
    const id = `add-${name}`;
    const attrs = { id, name, type, autocomplete: "off", "aria-describedby": `${id}-error` };
    if (type === "number") Object.assign(attrs, { step: "any", min: "0" });
    if (name === "url") attrs.required = true;
    inputs[name] = el("input", attrs);
    errors[name] = el("p", { class: "field-error", id: `${id}-error`, role: "alert" });
    form.append(el("div", {},
      el("label", { for: id }, label, " ", el("span", { class: "hint", text: hint })),
      inputs[name], errors[name]));
  }
  const loop = el("input", { id: "add-loop", name: "loop", type: "checkbox" });
  const general = el("p", { class: "field-error", id: "add-error", role: "alert" });
  const submit = el("button", { type: "submit" }, "Add stream");
  form.append(
    el("div", {}, el("label", { for: "add-loop", class: "row" }, loop, "Loop (files: start again at the end)")),
    general, submit);
  main.append(el("h2", { text: "Add a stream" }), form);

  function clear() {
    general.textContent = "";
    for (const name of Object.keys(inputs)) {
      errors[name].textContent = "";
      inputs[name].removeAttribute("aria-invalid");
    }
  }

  function show(name, text) {
    if (!inputs[name]) {
      general.textContent = general.textContent ? `${general.textContent}; ${text}` : text;
      return;
    }
    errors[name].textContent = errors[name].textContent ? `${errors[name].textContent}; ${text}` : text;
    inputs[name].setAttribute("aria-invalid", "true");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    const body = { url: inputs.url.value.trim(), loop: loop.checked };
    if (inputs.name.value.trim()) body.name = inputs.name.value.trim();
    if (inputs.fps.value !== "") body.fps = Number(inputs.fps.value);
    if (inputs.threshold.value !== "") body.threshold = Number(inputs.threshold.value);
    const classes = inputs.classes.value.split(",").map((c) => c.trim()).filter(Boolean);
    if (classes.length) body.classes = classes;
    submit.disabled = true;
    try {
      const s = await api("/v1/streams", { method: "POST", json: body });
      form.reset();
      location.hash = `#/stream/${encodeURIComponent(s.id)}`;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) {
        if (err.status !== 401) show("", err.message);
      } else if (Array.isArray(err.detail)) {
        // [{loc: ["body", "fps"], msg}, …] from the request's validation
        for (const e of err.detail) show(String((e.loc || [])[1] ?? ""), e.msg);
      } else if (err.status === 409) {
        show("", err.message);
      } else {
        // The source itself (422 invalid, 403 outside the allowed sources) or its classes.
        show(/class/i.test(err.message) ? "classes" : "url", err.message);
      }
      const bad = form.querySelector("[aria-invalid=true]");
      if (bad) bad.focus();
    } finally {
      submit.disabled = false;
    }
  });
  inputs.url.focus();
}
