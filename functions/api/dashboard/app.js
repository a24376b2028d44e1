// The docket dashboard: reads the API it is served by (the same origin and
// path prefix, so a deployment behind a stage prefix works too) with the
// key the user gives, kept in this tab's session storage only. Every value
// shown is set as text, never as markup. Live by polling: the API's
// platforms (Lambda behind API Gateway among them) answer whole responses.
"use strict";

const POLL_MS = 2000;
const PAGE = 200;
const KEY = "docket.key";
const base = location.pathname.replace(/\/dashboard\/?$/, "");

let timer = null;
let view = null;
// Each refresh's number: one that a newer one overtook draws nothing.
let generation = 0;
// Whether the message shown is a failed refresh's (cleared by the next one
// that reads the API) rather than an action's answer.
let refreshFailed = false;
let documents = { job: null, rows: [], cursor: null, scoreName: null };

const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY);
}

// A failed request's message, from the API's error body when it has one.
class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, options = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + key(), Accept: options.accept || "application/json" },
  });
  if (response.status === 401) {
    signOut("That key was refused: give a valid API key.");
    throw new ApiFailure(401, "unauthorized");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      message = (body.error && (body.error.message || body.error)) || body.message || message;
    } catch (_) {
      // Not JSON: the status line says it.
    }
    throw new ApiFailure(response.status, String(message));
  }
  return options.raw ? response : response.json();
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function say(text) {
  $("message").textContent = text || "";
  show("message", Boolean(text));
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function figures(list, pairs) {
  list.replaceChildren();
  for (const [name, value] of pairs) {
    list.appendChild(element("dt", name));
    list.appendChild(element("dd", value));
  }
}

function jobLink(id) {
  const a = element("a", id);
  a.href = "#/jobs/" + encodeURIComponent(id);
  return a;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  const s = Math.round(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

// ---- overview ----

function chart(svg, values) {
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const max = Math.max(1, ...values);
  const width = 600 / values.length;
  values.forEach((value, i) => {
    const bar = document.createElementNS(ns, "rect");
    const height = (value / max) * 110;
    bar.setAttribute("x", String(i * width + 1));
    bar.setAttribute("y", String(118 - height));
    bar.setAttribute("width", String(Math.max(1, width - 2)));
    bar.setAttribute("height", String(height));
    const title = document.createElementNS(ns, "title");
    title.textContent = (values.length - i) + " min ago: " + value + " documents";
    bar.appendChild(title);
    svg.appendChild(bar);
  });
}

async function renderOverview(current) {
  const o = await api("GET", "/api/v1/overview");
  if (!current()) return;
  $("scope").textContent = o.scope === "operator" ? "operator: every tenant" : "tenant " + o.tenant;
  show("scope", true);
  figures($("jobs-by-status"), Object.entries(o.jobs));
  $("last-hour").textContent = o.throughput.documents_last_hour;
  chart($("throughput"), o.throughput.documents_per_minute);
  show("queues-card", Boolean(o.queues));
  if (o.queues) {
    const body = $("queues").tBodies[0];
    body.replaceChildren();
    for (const [name, d] of Object.entries(o.queues)) {
      const tr = row([name, d.visible, d.in_flight, d.dead]);
      if (d.dead > 0) tr.className = "dead";
      body.appendChild(tr);
    }
    $("in-flight").textContent = o.work_items_in_flight;
  }
  const evaluators = $("evaluators");
  evaluators.replaceChildren();
  for (const e of o.evaluators) evaluators.appendChild(element("li", e));
  if (o.evaluators.length === 0) evaluators.appendChild(element("li", "loaded on demand"));
  document.body.classList.toggle("operator", o.scope === "operator");
  const body = $("active-jobs").tBodies[0];
  body.replaceChildren();
  for (const job of o.active_jobs) {
    body.appendChild(row([jobLink(job.job_id), job.tenant, element("span", job.status, "status " + job.status),
      job.document_count, job.documents_done, time(job.started_at)]));
  }
  if (o.active_jobs.length === 0) body.appendChild(row(["no job ran in the last hour"]));
}

// ---- a job ----

function renderFailures(failures) {
  const box = $("failures");
  box.replaceChildren();
  show("no-failures", failures.length === 0);
  for (const tally of failures) {
    const section = element("div", null, "failure");
    section.dataset.category = tally.category;
    section.appendChild(element("h3", tally.category + ": " + tally.items + (tally.items === 1 ? " item" : " items")));
    const list = element("ul");
    for (const sample of tally.samples) {
      const item = element("li");
      item.appendChild(element("code", sample.document_id));
      const titled = sample.title && sample.title !== sample.document_id;
      item.appendChild(document.createTextNode(" " + (titled ? "(" + sample.title + ") " : "")));
      item.appendChild(element("span", sample.message, "failure-message"));
      list.appendChild(item);
    }
    section.appendChild(list);
    box.appendChild(section);
  }
}

async function renderJob(id, current) {
  const s = await api("GET", "/api/v1/batch/status/" + encodeURIComponent(id));
  if (!current()) return false;
  $("job-title").textContent = s.job_id;
  const status = $("job-status");
  status.textContent = s.status;
  status.className = "status " + s.status;
  const p = s.progress;
  $("progress-bar").style.width = p.percent_complete + "%";
  $("progress-text").textContent = p.percent_complete + " % — " + p.completed_documents + " completed, " +
    p.failed_documents + " failed, " + p.skipped_documents + " skipped of " + p.total_documents + " documents" +
    (s.finalized ? "" : "; about " + duration(s.estimated_seconds_remaining) + " left");
  figures($("job-figures"), [
    ["chunks", s.chunks.total],
    ["chunks completed", s.chunks.completed],
    ["chunks active", s.chunks.active],
    ["chunks failed", s.chunks.failed],
    ["chunks skipped", s.chunks.skipped],
    ["items per second", s.items_per_second === null ? "—" : s.items_per_second],
    ["estimated completion", s.estimated_completion_iso ? time(s.estimated_completion_iso) : "—"],
  ].concat(s.error ? [["error", s.error]] : []));
  renderFailures(s.failures || []);
  const running = !s.finalized && (s.status === "queued" || s.status === "processing");
  $("cancel").disabled = !running;
  $("retry").disabled = !(s.finalized && p.failed_documents > 0);
  show("downloads", s.finalized);
  show("documents-pending", !s.finalized);
  show("documents-panel", s.finalized);
  if (s.finalized && documents.job !== id) {
    // Marked loaded once it is: a failed read is tried again next time.
    documents = { job: id, rows: [], cursor: null, scoreName: null };
    try {
      await loadDocuments(false);
    } catch (error) {
      documents.job = null;
      throw error;
    }
  }
  return s.finalized;
}

async function loadDocuments(more) {
  const params = new URLSearchParams({ limit: String(PAGE), include_evidence: "false" });
  const status = $("documents-status").value;
  if (status) params.set("status", status);
  if (more && documents.cursor) params.set("cursor", documents.cursor);
  const page = await api("GET", "/api/v1/batch/results/" + encodeURIComponent(documents.job) + "?" + params);
  if (!more) documents.rows = [];
  documents.rows = documents.rows.concat(page.documents || []);
  documents.cursor = page.next_cursor;
  // The job's first score name, as the CSV's columns and the score filters have it.
  if (!documents.scoreName) {
    const names = new Set();
    for (const doc of documents.rows) for (const name of Object.keys(doc.scores || {})) names.add(name);
    documents.scoreName = [...names].sort()[0] || null;
  }
  drawDocuments();
}

function scoreOf(doc) {
  const score = documents.scoreName && doc.scores ? doc.scores[documents.scoreName] : null;
  return score ? score.total_score : null;
}

function drawDocuments() {
  const rows = documents.rows.slice();
  const sort = $("documents-sort").value;
  if (sort) {
    const sign = sort === "score-desc" ? -1 : 1;
    rows.sort((a, b) => {
      const x = scoreOf(a), y = scoreOf(b);
      if (x === null) return y === null ? 0 : 1;
      if (y === null) return -1;
      return sign * (x - y);
    });
  }
  $("score-heading").textContent = documents.scoreName ? "score (" + documents.scoreName + ")" : "score";
  const body = $("documents").tBodies[0];
  body.replaceChildren();
  for (const doc of rows) {
    const error = doc.error ? doc.error.category + ": " + doc.error.message : "";
    body.appendChild(row([doc.id, doc.title, element("span", doc.status, "status " + doc.status), scoreOf(doc), error]));
  }
  $("documents-count").textContent = rows.length + " documents shown" +
    (documents.cursor ? " (more to load; sorting orders the rows loaded)" : "");
  show("more-documents", Boolean(documents.cursor));
}

async function download(format) {
  const response = await api("GET", "/api/v1/batch/results/" + encodeURIComponent(documents.job) +
    "?format=" + format, { raw: true, accept: "*/*" });
  const url = URL.createObjectURL(await response.blob());
  const a = element("a");
  a.href = url;
  a.download = documents.job + "." + format;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- navigation and polling ----

function route() {
  const match = location.hash.match(/^#\/jobs\/(.+)$/);
  return match ? { page: "job", id: decodeURIComponent(match[1]) } : { page: "overview" };
}

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const latest = () => mine === generation;
  const current = route();
  const signedIn = Boolean(key());
  show("sign-in", !signedIn);
  show("sign-out", signedIn);
  show("overview", signedIn && current.page === "overview");
  show("job", signedIn && current.page === "job");
  if (!signedIn) {
    show("live", false);
    return;
  }
  let again = true;
  try {
    if (current.page === "job") {
      if (!view || view.id !== current.id) documents = { job: null, rows: [], cursor: null, scoreName: null };
      const finalized = await renderJob(current.id, latest);
      again = !finalized;
    } else {
      await renderOverview(latest);
    }
    if (!latest()) return;
    view = current;
    if (refreshFailed) say("");
    refreshFailed = false;
    show("live", again);
  } catch (error) {
    if (!latest() || error.status === 401) return;
    if (error.status === 404) {
      again = false;
      say(current.page === "job" ? "No job " + current.id + " is visible to this key." : error.message);
      show("job", false);
    } else {
      say("Could not read the API: " + error.message);
      refreshFailed = true;
    }
    show("live", false);
  }
  if (again) timer = setTimeout(refresh, POLL_MS);
}

function signOut(why) {
  sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  say(why || "");
  refresh();
}

async function act(button, method, path, done) {
  button.disabled = true;
  try {
    const answer = await api(method, path);
    done(answer);
  } catch (error) {
    if (error.status !== 401) say(error.message);
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    say("");
    refresh();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("open-job").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("job-id").value.trim();
    if (id) location.hash = "#/jobs/" + encodeURIComponent(id);
  });
  // Cancelling asks once more: the first click arms the button.
  $("cancel").addEventListener("click", () => {
    const button = $("cancel");
    if (button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = "Click again to cancel";
      setTimeout(() => {
        button.dataset.armed = "";
        button.textContent = "Cancel job";
      }, 5000);
      return;
    }
    button.dataset.armed = "";
    button.textContent = "Cancel job";
    act(button, "DELETE", "/api/v1/batch/" + encodeURIComponent(route().id), () => say("Cancelled."));
  });
  $("retry").addEventListener("click", () => {
    act($("retry"), "POST", "/api/v1/batch/" + encodeURIComponent(route().id) + "/retry", (answer) => {
      location.hash = "#/jobs/" + encodeURIComponent(answer.job_id);
    });
  });
  for (const button of document.querySelectorAll("#downloads button")) {
    button.addEventListener("click", () => download(button.dataset.format).catch((e) => say(e.message)));
  }
  $("documents-status").addEventListener("change", () => loadDocuments(false).catch((e) => say(e.message)));
  $("documents-sort").addEventListener("change", drawDocuments);
  $("more-documents").addEventListener("click", () => loadDocuments(true).catch((e) => say(e.message)));
  // A message belongs to the page it was said on.
  window.addEventListener("hashchange", () => {
    say("");
    refresh();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  refresh();
});
