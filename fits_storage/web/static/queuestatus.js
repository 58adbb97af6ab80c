// The queue status page: tabs per queue, refreshed every few seconds with only what changed.
// Every value from the server is set as text (never as HTML), so a file name cannot inject markup.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const refreshMs = Number(document.querySelector('meta[name="refresh-ms"]').content) || 2000;
const params = new URLSearchParams(location.search);
const tabs = {};        // queue name -> last tab data received
let order = [];
let selected = params.get("tab");
let serverNow = null;
let polls = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace("Z", "") : "";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
}

function actionForm(queue, action, label, entryId) {
  const form = el("form", {method: "post", action: `/queuestatus/${queue}/${action}`, class: "action"},
    el("input", {type: "hidden", name: "csrf_token", value: csrf}));
  if (entryId !== undefined) form.append(el("input", {type: "hidden", name: "entry_id", value: entryId}));
  form.append(el("button", {type: "submit", class: action}, label));
  if (action === "remove") {
    form.addEventListener("submit", (event) => {
      if (!confirm("Remove this failed entry for good?")) event.preventDefault();
    });
  }
  form.addEventListener("click", (event) => event.stopPropagation());
  return form;
}

function table(kind, headings, rows) {
  if (!rows.length) return el("p", {class: "empty"}, "none");
  return el("table", {class: kind},
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function renderPanel(name, tab) {
  const c = tab.counts;
  const progress = tab.in_progress.map((e) => el("tr", {class: "progress-entry", "data-id": e.id},
    el("td", {}, e.filename), el("td", {}, e.worker), el("td", {}, e.host), el("td", {}, e.pid),
    el("td", {}, when(e.claimed_at)), el("td", {}, when(e.heartbeat)),
    el("td", {class: "runtime", "data-claimed": e.claimed_at}, duration(e.run_seconds))));
  const failed = tab.failed.map((e) => {
    const row = el("tr", {class: "failed-entry", "data-id": e.id, title: "show the traceback"},
      el("td", {}, e.filename), el("td", {}, when(e.failed_at)), el("td", {}, e.attempts),
      el("td", {class: "error"}, (e.error || "").split("\n")[0].slice(0, 200)),
      el("td", {}, actionForm(name, "retry", "Retry", e.id), actionForm(name, "remove", "Remove", e.id)));
    row.addEventListener("click", () => showDetail(name, e.id));
    return row;
  });
  const waiting = tab.waiting.map((e) => el("tr", {class: "waiting-entry", "data-id": e.id},
    el("td", {}, e.filename), el("td", {}, e.path), el("td", {}, when(e.added)),
    el("td", {}, e.attempts), el("td", {}, e.after ? "deferred to " + when(e.after) : "ready")));
  const panel = el("section", {id: `panel-${name}`, class: "panel", role: "tabpanel", "data-version": tab.version},
    el("p", {class: "summary"},
      `${c.text.waiting} waiting (${c.text.deferred} deferred), ${c.text.in_progress} in progress, ` +
      `${c.text.failed} failed` + (c.oldest_waiting ? `; oldest waiting since ${when(c.oldest_waiting)}` : "")),
    el("h2", {}, "In progress"),
    table("in-progress", ["file", "worker", "host", "pid", "since", "last heartbeat", "run time"], progress),
    el("h2", {}, "Failed ", tab.failed.length ? actionForm(name, "retry_all", "Retry all failed") : ""),
    table("failed", ["file", "failed at", "attempts", "error", ""], failed),
    el("h2", {}, `Waiting (first ${tab.waiting.length})`),
    table("waiting", ["file", "path", "added", "attempts", "state"], waiting));
  panel.hidden = name !== selected;
  const old = document.getElementById(`panel-${name}`);
  if (old) old.replaceWith(panel); else document.getElementById("panels").append(panel);
}

function renderTabs() {
  const nav = document.getElementById("tabs");
  nav.replaceChildren(...order.filter((n) => tabs[n]).map((name) => {
    const c = tabs[name].counts;
    const button = el("button", {type: "button", role: "tab", id: `tab-${name}`, "data-queue": name,
      "aria-selected": String(name === selected), class: c.failed ? "has-failed" : null},
      name + " ", el("span", {class: "total", "data-count": "total"}, c.text.total),
      " · ", el("span", {class: "failed", "data-count": "failed"}, c.text.failed + " failed"));
    button.addEventListener("click", () => select(name));
    return button;
  }));
}

function select(name) {
  selected = name;
  const url = new URL(location.href);
  url.searchParams.set("tab", name);
  url.searchParams.delete("notice");
  history.replaceState(null, "", url);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `panel-${name}`;
  renderTabs();
}

function updateRunTimes() {
  const now = Date.parse(serverNow);
  for (const cell of document.querySelectorAll("td.runtime[data-claimed]")) {
    cell.textContent = duration((now - Date.parse(cell.dataset.claimed)) / 1000);
  }
}

async function showDetail(queue, id) {
  const response = await fetch(`/queuestatus/${queue}/entry/${id}`, {headers: {Accept: "application/json"}});
  const detail = document.getElementById("detail");
  if (!response.ok) {
    document.getElementById("detail-title").textContent = `${queue} entry ${id}: gone (retried or removed)`;
    document.getElementById("detail-error").textContent = "";
    document.getElementById("detail-traceback").textContent = "";
  } else {
    const entry = await response.json();
    document.getElementById("detail-title").textContent = `${queue}: ${entry.filename} (entry ${entry.id})`;
    document.getElementById("detail-error").textContent = entry.error || "";
    document.getElementById("detail-traceback").textContent = entry.traceback || "(no traceback)";
  }
  detail.hidden = false;
}

async function refresh() {
  const since = order.filter((n) => tabs[n]).map((n) => `${n}:${tabs[n].version}`).join(",");
  let response;
  try {
    response = await fetch(`/queuestatus/json?since=${encodeURIComponent(since)}`,
      {headers: {Accept: "application/json"}, credentials: "same-origin"});
  } catch (error) {
    document.getElementById("updated").textContent = "server unreachable; retrying";
    return;
  }
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return;
  }
  if (!response.ok) {
    document.getElementById("updated").textContent = `refresh failed (${response.status}); retrying`;
    return;
  }
  const data = await response.json();
  order = data.order;
  serverNow = data.now;
  if (!selected || !order.includes(selected)) selected = order[0];
  const changed = Object.keys(data.queues);
  for (const name of changed) {
    tabs[name] = data.queues[name];
    renderPanel(name, tabs[name]);
  }
  renderTabs();
  updateRunTimes();
  polls += 1;
  const updated = document.getElementById("updated");
  updated.textContent = `updated ${when(data.now)} UTC`;
  updated.dataset.polls = String(polls);
  updated.dataset.changed = changed.join(",");
}

async function loop() {
  await refresh();
  setTimeout(loop, refreshMs);
}

document.getElementById("detail-close").addEventListener("click", () => {
  document.getElementById("detail").hidden = true;
});
if (!document.getElementById("notice").textContent.trim()) document.getElementById("notice").hidden = true;
loop();
