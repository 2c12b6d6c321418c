// motionrelay console: one vanilla ES module, no framework, no build step, no HTML strings (the
// page's CSP enforces Trusted Types: every node is made with createElement/textContent).
// The API key lives in sessionStorage only and is sent only to this origin as a Bearer token.

const KEY_NAME = "motionrelay.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", mp4: "video/mp4", mov: "video/quicktime" };
const STAGE_TEXT = {
  placing: "Placing the job with a provider",
  provider_queued: "Waiting in {p}'s queue",
  provider_running: "Running at {p}",
  transferring: "Copying the finished video into the bucket",
};
const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem(KEY_NAME);
let timer = null;
let providers = [];
const files = { image: null, video: null };

// ------------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function showAlert(message, kind = "error") {
  const box = $("alert");
  box.textContent = message;
  box.className = kind === "error" ? "alert" : "alert info";
  box.hidden = !message;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function seconds(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function age(iso) {
  return `${seconds(Math.max(0, (Date.now() - Date.parse(iso)) / 1000))} ago`;
}

function cost(c) {
  if (!c) return "-";
  return Object.entries(c).map(([k, v]) => (k === "usd" ? `$${v}` : `${v} ${k}`)).join(", ");
}

function badge(status) {
  return h("span", { class: `badge s-${status}`, text: status });
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
    this.field = err.field || null;
  }
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${apiKey}`, ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401) {
    forgetKey("The API refused that key (401 unauthorized). Enter another one.");
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function explain(error) {
  if (error instanceof ApiError) return `${error.code}: ${error.message}${error.field ? ` (field: ${error.field})` : ""}`;
  return String(error.message || error);
}

// ------------------------------------------------------------------ key

function forgetKey(message) {
  apiKey = null;
  sessionStorage.removeItem(KEY_NAME);
  location.hash = "#/key";
  route();
  if (message) showAlert(message);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("key").value.trim();
  if (!value) return;
  apiKey = value;
  sessionStorage.setItem(KEY_NAME, value);
  $("key").value = "";
  showAlert("");
  location.hash = "#/new";
  loadProviders();
});
$("forget").addEventListener("click", () => forgetKey(""));

// ------------------------------------------------------------------ router

const VIEWS = ["key", "new", "jobs", "job", "webhooks"];

function route() {
  clearTimeout(timer);
  timer = null;
  let [, name, id] = (location.hash || "#/new").split("/");
  if (!apiKey) name = "key";
  else if (!VIEWS.includes(name) || name === "key") name = "new";
  if (name === "jobs" && id) name = "job";
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  $("nav").hidden = $("forget").hidden = !apiKey;
  for (const link of document.querySelectorAll("nav a[data-route]")) {
    if (link.dataset.route === (name === "job" ? "jobs" : name)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (name === "jobs") refreshJobs();
  if (name === "job") showJob(decodeURIComponent(id));
  if (name === "key") $("key").focus();
  else if (document.activeElement === document.body) $("main").focus({ preventScroll: true });
}
window.addEventListener("hashchange", () => { showAlert(""); route(); });

// ------------------------------------------------------------------ new job

function typeOf(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return TYPES[ext] || file.type || "application/octet-stream";
}

function setFile(kind, file) {
  files[kind] = file;
  const info = $(`info-${kind}`);
  const preview = $(`preview-${kind}`);
  if (!file) { info.textContent = ""; preview.hidden = true; return; }
  const type = typeOf(file);
  info.textContent = `${file.name} · ${bytes(file.size)} · ${type}`;
  if (!type.startsWith(`${kind}/`)) {
    info.textContent += ` (not a ${kind === "image" ? "PNG/JPEG image" : "MP4/MOV video"})`;
    preview.hidden = true;
    return;
  }
  const url = URL.createObjectURL(file);
  preview.src = url;
  preview.hidden = false;
  const done = () => {
    const w = kind === "image" ? preview.naturalWidth : preview.videoWidth;
    const hgt = kind === "image" ? preview.naturalHeight : preview.videoHeight;
    let facts = ` · ${w}×${hgt}`;
    if (kind === "video" && Number.isFinite(preview.duration)) facts += ` · ${preview.duration.toFixed(1)} s`;
    info.textContent += facts;
    if (Math.min(w, hgt) < 300) info.textContent += " (each side must be at least 300 px)";
  };
  preview.addEventListener(kind === "image" ? "load" : "loadedmetadata", done, { once: true });
}

for (const kind of ["image", "video"]) {
  const zone = $(`drop-${kind}`);
  const input = $(`file-${kind}`);
  input.addEventListener("change", () => setFile(kind, input.files[0] || null));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) setFile(kind, file);
  });
}

async function loadProviders() {
  if (!apiKey) return;
  try {
    providers = (await api("GET", "/v1/providers")).providers;
  } catch (error) {
    providers = [];
    if (!(error instanceof ApiError && error.status === 401)) showAlert(`Could not list providers: ${explain(error)}`);
  }
  const select = $("provider");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "", text: "routing decides" }),
    ...providers.map((p) => h("option", { value: p.name, text: p.name })));
  select.value = providers.some((p) => p.name === chosen) ? chosen : "";
  updateProviderChoice();
}

function unmet(p) {
  const quality = $("quality").value;
  if (!p.qualities.includes(quality)) return `no ${quality} quality (only ${p.qualities.join(", ")})`;
  if ($("prompt").value.trim() && !p.prompt) return "no prompt";
  if ($("negative").value.trim() && !p.negative_prompt) return "no negative prompt";
  if (!$("sound").checked && !p.sound_control) return "cannot drop the sound";
  return null;
}

function updateProviderChoice() {
  const select = $("provider");
  for (const option of select.options) {
    const p = providers.find((x) => x.name === option.value);
    if (!p) continue;
    const why = unmet(p);
    option.disabled = Boolean(why);
    option.textContent = why ? `${p.name} (${why})` : p.name;
  }
  if (select.selectedOptions[0] && select.selectedOptions[0].disabled) select.value = "";
  const p = providers.find((x) => x.name === select.value);
  const servable = providers.filter((x) => !unmet(x)).map((x) => x.name);
  $("provider-hint").textContent = p
    ? `${p.name}: ${p.qualities.join("/")}, prompt ${p.prompt ? "yes" : "no"}, negative prompt ${p.negative_prompt ? "yes" : "no"}, ` +
      `progress ${p.progress ? "reported" : "not reported"}, usually ${p.typical_run_seconds[0]}–${p.typical_run_seconds[1]} s.`
    : `Routing picks among: ${servable.join(", ") || "none of the providers can serve this request"}.`;
}
for (const id of ["quality", "prompt", "negative", "sound", "provider"]) {
  $(id).addEventListener(id === "prompt" || id === "negative" ? "input" : "change", updateProviderChoice);
}

function putFile(url, file, type, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", type);
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(new Error(`upload of ${file.name} failed: HTTP ${xhr.status}`))));
    xhr.addEventListener("error", () => reject(new Error(`upload of ${file.name} failed (network or CORS)`)));
    xhr.send(file);
  });
}

function markField(field) {
  for (const el of document.querySelectorAll("#job-form [aria-invalid]")) el.removeAttribute("aria-invalid");
  const target = { image: "file-image", video: "file-video", prompt: "prompt", negative_prompt: "negative",
    webhook_url: "webhook", metadata: "metadata", provider: "provider", quality: "quality",
    character_orientation: "orientation", keep_original_sound: "sound" }[field];
  if (target) { $(target).setAttribute("aria-invalid", "true"); $(target).focus(); }
}

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showAlert("");
  markField(null);
  for (const kind of ["image", "video"]) {
    if (!files[kind]) { showAlert(`Choose the ${kind} first.`); markField(kind); return; }
  }
  const body = { character_orientation: $("orientation").value, quality: $("quality").value,
    keep_original_sound: $("sound").checked };
  for (const [field, id] of [["prompt", "prompt"], ["negative_prompt", "negative"], ["webhook_url", "webhook"], ["provider", "provider"]]) {
    const value = $(id).value.trim();
    if (value) body[field] = value;
  }
  const metadata = $("metadata").value.trim();
  if (metadata) {
    try { body.metadata = JSON.parse(metadata); } catch { showAlert("Metadata is not valid JSON."); markField("metadata"); return; }
  }
  const button = $("submit");
  const bar = $("upload-progress");
  const status = $("upload-status");
  button.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  try {
    const total = files.image.size + files.video.size;
    const sent = { image: 0, video: 0 };
    const progress = () => { bar.value = Math.round(((sent.image + sent.video) / total) * 100); };
    for (const kind of ["image", "video"]) {
      const file = files[kind];
      const type = typeOf(file);
      status.textContent = `Uploading ${file.name}…`;
      let upload;
      try {
        upload = await api("POST", "/v1/uploads", { content_type: type, size_bytes: file.size });
      } catch (error) {
        if (error instanceof ApiError && error.field) error.field = kind;
        throw error;
      }
      await putFile(upload.put_url, file, type, (loaded) => { sent[kind] = loaded; progress(); });
      sent[kind] = file.size;
      progress();
      body[kind] = upload.id;
    }
    status.textContent = "Submitting the job…";
    const job = await api("POST", "/v1/jobs", body, { "Idempotency-Key": randomKey() });
    status.textContent = "";
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  } catch (error) {
    status.textContent = "";
    showAlert(explain(error));
    if (error instanceof ApiError && error.field) markField(error.field);
  } finally {
    button.disabled = false;
    bar.hidden = true;
  }
});

// ------------------------------------------------------------------ jobs list

let nextCursor = null;

function progressText(job) {
  if (TERMINAL.has(job.status)) return job.status === "succeeded" ? "100%" : "-";
  if (job.progress !== null && job.progress !== undefined) return `${job.progress}%`;
  return (job.stage || job.status).replace("_", " ");
}

function jobRow(job) {
  return h("tr", {},
    h("td", { class: "id" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, text: job.id })),
    h("td", {}, badge(job.status)),
    h("td", { text: job.provider || "-" }),
    h("td", { text: progressText(job) }),
    h("td", {}, h("time", { datetime: job.created_at, title: job.created_at, text: age(job.created_at) })),
    h("td", { text: cost(job.cost) }));
}

async function refreshJobs(append = false) {
  const status = $("status-filter").value;
  const query = new URLSearchParams({ limit: "20" });
  if (status) query.set("status", status);
  if (append && nextCursor) query.set("cursor", nextCursor);
  try {
    const page = await api("GET", `/v1/jobs?${query}`);
    const rows = page.jobs.map(jobRow);
    const tbody = $("jobs-table").tBodies[0];
    if (append) tbody.append(...rows); else tbody.replaceChildren(...rows);
    if (!append) nextCursor = page.next_cursor;
    $("jobs-empty").hidden = tbody.rows.length > 0;
    $("jobs-more").hidden = !nextCursor;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showAlert(`Could not list jobs: ${explain(error)}`);
  }
  if (!append && !$("view-jobs").hidden) timer = setTimeout(() => refreshJobs(), 2000);
}
for (const s of ["queued", "running", "succeeded", "failed", "canceled"]) $("status-filter").append(h("option", { value: s, text: s }));
$("status-filter").addEventListener("change", () => { clearTimeout(timer); refreshJobs(); });
$("jobs-more").addEventListener("click", () => refreshJobs(true));

// ------------------------------------------------------------------ one job

function fact(dl, name, value) {
  dl.append(h("dt", { text: name }), h("dd", {}, value));
}

function submittedAt(job) {
  const submitted = job.attempts.filter((a) => a.outcome === "submitted").pop();
  return Date.parse(submitted ? submitted.at : job.created_at);
}

function renderProgress(job) {
  const box = $("job-progress");
  if (TERMINAL.has(job.status)) { box.replaceChildren(); return; }
  const text = (STAGE_TEXT[job.stage] || job.status).replace("{p}", job.provider || "the provider");
  const elapsed = (Date.now() - submittedAt(job)) / 1000;
  const parts = [h("p", { id: "job-stage", text: `${text}…` })];
  if (job.progress !== null && job.progress !== undefined && job.provider_reports_progress) {
    parts.push(h("progress", { max: 100, value: job.progress, "aria-label": "Progress" }),
      h("p", { class: "hint", text: `${job.progress}% · ${seconds(elapsed)} elapsed` }));
  } else if (job.typical_run_seconds && job.stage !== "placing") {
    const [low, high] = job.typical_run_seconds;
    parts.push(h("meter", { min: 0, max: high, low, high, optimum: 0, value: Math.min(elapsed, high), "aria-label": "Elapsed time against the typical run time" }),
      h("p", { class: "hint", text: `${seconds(elapsed)} elapsed; ${job.provider} reports no progress and usually takes ${seconds(low)}–${seconds(high)}.` +
        (elapsed > high ? " Taking longer than usual; the job fails with 'timeout' at its deadline." : "") }));
  } else {
    parts.push(h("p", { class: "hint", text: `${seconds((Date.now() - Date.parse(job.created_at)) / 1000)} since it was accepted.` }));
  }
  box.replaceChildren(...parts);
}

function attemptItem(a) {
  const detail = [a.reason, a.code, a.message].filter(Boolean).join(" · ");
  return h("li", { class: `o-${a.outcome}` },
    h("strong", { text: a.outcome.replace(/_/g, " ") }), a.provider ? ` · ${a.provider}` : "",
    h("time", { datetime: a.at, text: new Date(a.at).toLocaleTimeString() }),
    detail ? h("div", { class: "hint", text: detail }) : null);
}

async function showJob(id) {
  let job;
  try {
    job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showAlert(explain(error));
    return;
  }
  if ($("view-job").hidden) return;
  $("job-title").textContent = job.id;
  const facts = $("job-facts");
  facts.replaceChildren();
  const stage = job.stage && job.stage !== job.status ? ` ${job.stage.replace("_", " ")}` : "";
  fact(facts, "Status", h("span", { id: "job-status" }, badge(job.status), stage));
  fact(facts, "Provider", job.provider ? `${job.provider}${job.provider_task_id ? ` (${job.provider_task_id})` : ""}` : "-");
  fact(facts, "Created", `${job.created_at} (${age(job.created_at)})`);
  if (job.completed_at) fact(facts, "Completed", `${job.completed_at} (${seconds((Date.parse(job.completed_at) - Date.parse(job.created_at)) / 1000)} in all)`);
  fact(facts, "Cost", cost(job.cost));
  if (Object.keys(job.metadata || {}).length) fact(facts, "Metadata", JSON.stringify(job.metadata));
  renderProgress(job);
  const error = $("job-error");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  const out = $("job-output");
  out.hidden = !job.output;
  if (job.output) {
    const video = $("job-video");
    if (video.dataset.job !== job.id) {
      video.dataset.job = job.id;
      video.src = job.output.url;
    }
    $("job-download").href = job.output.url;
    const of = $("output-facts");
    of.replaceChildren();
    fact(of, "Size", `${bytes(job.output.size_bytes)} (${job.output.size_bytes} bytes)`);
    fact(of, "SHA-256", h("code", { id: "output-sha256", text: job.output.sha256 }));
    fact(of, "Link expires", job.output.expires_at);
  }
  $("job-attempts").replaceChildren(...job.attempts.map(attemptItem));
  $("job-request").textContent = JSON.stringify(job.request, null, 2);
  const cancel = $("job-cancel");
  cancel.hidden = TERMINAL.has(job.status);
  cancel.dataset.job = job.id;
  if (!TERMINAL.has(job.status)) timer = setTimeout(() => showJob(id), 1000);
}

$("job-cancel").addEventListener("click", async () => {
  const id = $("job-cancel").dataset.job;
  if (!confirm(`Cancel ${id}?`)) return;
  try { await api("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`); } catch (error) { showAlert(explain(error)); }
  clearTimeout(timer);
  showJob(id);
});
$("job-video").addEventListener("error", () => {
  // The presigned link may have expired: a fresh read of the job signs a new one.
  const video = $("job-video");
  if (video.dataset.job && !$("view-job").hidden) { delete video.dataset.job; clearTimeout(timer); showJob(video.dataset.job || location.hash.split("/")[2]); }
});

// ------------------------------------------------------------------ webhook secret

let secret = null;

function showSecret(value, reveal) {
  secret = value;
  $("secret-value").textContent = reveal ? value.secret : `whsec_${"•".repeat(16)}`;
  $("secret-copy").disabled = !reveal;
  $("secret-reveal").textContent = reveal ? "Hide" : "Reveal";
  $("secret-meta").textContent = `Created ${value.created_at}.` +
    (value.previous_expires_at ? ` The previous secret keeps signing until ${value.previous_expires_at}.` : "");
}

$("secret-reveal").addEventListener("click", async () => {
  if ($("secret-reveal").textContent === "Hide") { showSecret(secret, false); return; }
  try { showSecret(await api("GET", "/v1/webhook-secret"), true); } catch (error) { showAlert(explain(error)); }
});
$("secret-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(secret.secret); showAlert("Copied the secret.", "info"); } catch (error) { showAlert(explain(error)); }
});
$("secret-rotate").addEventListener("click", async () => {
  if (!confirm("Rotate the webhook secret? The previous one keeps signing for 24 h.")) return;
  try { showSecret(await api("POST", "/v1/webhook-secret/rotate"), true); showAlert("Rotated.", "info"); } catch (error) { showAlert(explain(error)); }
});

// ------------------------------------------------------------------ start

route();
loadProviders();
