// The instances table: list-then-watch. GET /api/instances gives the records and the cursor they were read at; the
// stream (EventSource) goes on from that cursor, and after a reconnect from its last event id by itself.
// Only one page of rows is in the DOM, so 10,000 instances paint as fast as 100.
import { actionsFor, api, ApiError, can, currentSession, h, showAccount, when } from "./api.js";
import { STATUSES, statusBadge } from "./status.js";

const PAGE_SIZE = 100;
const RENDER_EVERY_MS = 50; // changes are applied at once, drawn at most this often (a flood costs 20 draws a second)
const REFRESH_EVERY_MS = 300; // how often changed instances are read again for their other fields
const MAX_REFRESH = 50; // more changed at once than this: read the whole list again
// Each status a row goes through stays on screen at least this long: a crash that is restarted within milliseconds
// still shows Failed, then Running, instead of Running throughout.
const MIN_DWELL_MS = 300;
const MAX_QUEUED = 4; // statuses a row may have waiting; beyond it the oldest waiting ones are skipped
const COLUMNS = [
  ["instanceId", "Id"], ["platform", "Platform"], ["status", "Status"], ["statusSince", "Since"],
  ["restartCount", "Restarts"], ["lastExitCode", "Exit code"], ["lastReason", "Reason"],
  ["nextRestartAt", "Next restart"],
];

const state = {
  session: null,
  instances: new Map(), // id -> the instance's view
  dirty: new Set(), // ids changed since their last read
  queued: new Map(), // id -> statuses ({status, since}) not shown yet, oldest first
  shownAt: new Map(), // id -> when its current status was first drawn (performance.now())
  advancing: false,
  sort: { key: "instanceId", ascending: true },
  page: 0,
  stream: null,
  renderPending: false,
};
const $ = (id) => document.getElementById(id);

function setConnection(text) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.state = text;
}

function showMessage(text) {
  const message = $("message");
  message.textContent = text || "";
  message.hidden = !text;
}

function filtered() {
  const platform = $("filter-platform").value;
  const status = $("filter-status").value;
  const search = $("search").value.trim().toLowerCase();
  const { key, ascending } = state.sort;
  const rows = [];
  for (const instance of state.instances.values()) {
    if (platform && instance.platform !== platform) continue;
    if (status && instance.status !== status) continue;
    if (search && !instance.instanceId.toLowerCase().includes(search)) continue;
    rows.push(instance);
  }
  const direction = ascending ? 1 : -1;
  rows.sort((a, b) => {
    const x = a[key] ?? "";
    const y = b[key] ?? "";
    if (x < y) return -direction;
    if (x > y) return direction;
    return a.instanceId < b.instanceId ? -1 : 1;
  });
  return rows;
}

function actionButtons(instance) {
  const role = state.session.role;
  const buttons = [];
  if (can(role, "operate")) {
    for (const action of actionsFor(instance.platform)) {
      buttons.push(h("button", {
        type: "button", class: `action ${action}`, "data-action": action,
        "aria-label": `${action} ${instance.instanceId}`,
        onclick: () => act(instance.instanceId, action),
      }, action));
    }
  }
  if (can(role, "admin")) {
    buttons.push(h("button", {
      type: "button", class: "action remove", "data-action": "remove", "aria-label": `remove ${instance.instanceId}`,
      onclick: () => remove(instance.instanceId),
    }, "remove"));
  }
  return buttons;
}

function row(instance) {
  const id = instance.instanceId;
  return h("tr", { "data-id": id, "data-status": instance.status },
    h("td", {}, h("a", { href: `/ui/instance?id=${encodeURIComponent(id)}` }, id)),
    h("td", {}, instance.platform),
    h("td", { class: "status-cell" }, statusBadge(instance.status)),
    h("td", {}, when(instance.statusSince)),
    h("td", { class: "number" }, instance.restartCount),
    h("td", { class: "number" }, instance.lastExitCode ?? ""),
    h("td", { class: "reason" }, instance.lastReason ?? ""),
    h("td", {}, when(instance.nextRestartAt)),
    h("td", { class: "actions" }, actionButtons(instance)),
  );
}

function renderCounts() {
  const counts = new Map();
  for (const instance of state.instances.values()) counts.set(instance.status, (counts.get(instance.status) || 0) + 1);
  $("counts").replaceChildren(
    h("li", { "data-status": "all" }, `All: ${state.instances.size}`),
    ...STATUSES.filter((s) => counts.has(s)).map((s) =>
      h("li", { "data-status": s }, statusBadge(s), ` ${counts.get(s)}`)),
  );
}

function render() {
  state.renderPending = false;
  const rows = filtered();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const first = state.page * PAGE_SIZE;
  $("rows").replaceChildren(...rows.slice(first, first + PAGE_SIZE).map(row));
  $("page-label").textContent = rows.length
    ? `rows ${first + 1}–${Math.min(first + PAGE_SIZE, rows.length)} of ${rows.length} (page ${state.page + 1} of ${pages})`
    : "no instance matches";
  $("previous-page").disabled = state.page === 0;
  $("next-page").disabled = state.page >= pages - 1;
  $("summary").textContent = `Instances: ${rows.length} shown of ${state.instances.size}`;
  renderCounts();
}

function scheduleRender() {
  if (state.renderPending) return;
  state.renderPending = true;
  setTimeout(() => requestAnimationFrame(render), RENDER_EVERY_MS);
}

function renderColumns() {
  const cells = COLUMNS.map(([key, label]) => {
    const sorted = state.sort.key === key;
    return h("th", { scope: "col", "aria-sort": sorted ? (state.sort.ascending ? "ascending" : "descending") : "none" },
      h("button", {
        type: "button", class: "sort", "data-key": key, onclick: () => {
          state.sort = { key, ascending: sorted ? !state.sort.ascending : true };
          renderColumns();
          render();
        },
      }, label, sorted ? (state.sort.ascending ? " ▲" : " ▼") : ""));
  });
  cells.push(h("th", { scope: "col" }, "Actions"));
  $("columns").replaceChildren(...cells);
}

// -- list then watch --------------------------------------------------------------------------------------------

async function load() {
  const listed = await api("GET", "/api/instances");
  state.instances = new Map(listed.instances.map((i) => [i.instanceId, i]));
  state.dirty.clear();
  state.queued.clear();
  render();
  return listed;
}

function follow(cursor, storeId) {
  if (state.stream) state.stream.close();
  const url = `/api/status/stream?after=${encodeURIComponent(cursor)}&storeId=${encodeURIComponent(storeId)}`;
  const stream = new EventSource(url);
  state.stream = stream;
  stream.onopen = () => setConnection("live");
  stream.onerror = () => {
    setConnection("reconnecting");
    // CONNECTING: the browser retries by itself, with Last-Event-ID. CLOSED: it gave up (a refusal): start over.
    if (stream.readyState === EventSource.CLOSED) setTimeout(() => restart(), 2000);
  };
  stream.addEventListener("StatusChanged", (event) => applyChange(JSON.parse(event.data)));
  // Changes were pruned before we read them, or the cursor was another store's: what we hold may be wrong.
  stream.addEventListener("gap", () => restart());
  stream.addEventListener("reset", () => restart());
  stream.addEventListener("overflow", () => setConnection("reconnecting"));
}

async function restart() {
  if (state.stream) state.stream.close();
  state.stream = null;
  setConnection("reconnecting");
  try {
    await currentSession();
    const listed = await load();
    follow(listed.cursor, listed.storeId);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) setTimeout(() => restart(), 2000);
  }
}

function applyChange(change) {
  const id = change.instanceId;
  if (state.instances.has(id) && change.kind === "status") {
    const queue = state.queued.get(id) || [];
    queue.push({ status: change.newStatus, since: change.timestamp });
    if (queue.length > MAX_QUEUED) queue.splice(0, queue.length - MAX_QUEUED);
    state.queued.set(id, queue);
    advance();
  }
  state.dirty.add(id); // its restarts, exit code and reason come with a read
  scheduleRender();
}

/** Show each row's next waiting status once its current one has been on screen for MIN_DWELL_MS. */
function advance() {
  if (state.advancing) return;
  const now = performance.now();
  for (const [id, queue] of state.queued) {
    const instance = state.instances.get(id);
    if (!instance) {
      state.queued.delete(id);
      continue;
    }
    if (now - (state.shownAt.get(id) ?? -Infinity) < MIN_DWELL_MS) continue;
    const next = queue.shift();
    instance.status = next.status;
    instance.statusSince = next.since;
    state.shownAt.set(id, now);
    if (queue.length === 0) state.queued.delete(id);
  }
  scheduleRender();
  if (state.queued.size > 0) {
    state.advancing = true;
    setTimeout(() => { state.advancing = false; advance(); }, MIN_DWELL_MS / 3);
  }
}

async function refreshDirty() {
  if (state.dirty.size === 0) return;
  if (state.dirty.size > MAX_REFRESH) {
    state.dirty.clear();
    await load();
    return;
  }
  const ids = [...state.dirty];
  state.dirty.clear();
  await Promise.all(ids.map(async (id) => {
    try {
      const read = await api("GET", `/api/instances/${encodeURIComponent(id)}`);
      const shown = state.instances.get(id);
      // The status on screen is the stream's to move (one step at a time); the read brings the other fields.
      if (shown && state.queued.has(id)) Object.assign(read, { status: shown.status, statusSince: shown.statusSince });
      state.instances.set(id, read);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) state.instances.delete(id);
    }
  }));
  scheduleRender();
}

async function refreshLoop() {
  try {
    await refreshDirty();
  } finally {
    setTimeout(refreshLoop, REFRESH_EVERY_MS);
  }
}

// -- actions ----------------------------------------------------------------------------------------------------

async function act(id, action) {
  try {
    await api("POST", `/api/instances/${encodeURIComponent(id)}/${action}`);
    showMessage("");
  } catch (error) {
    showMessage(`${action} ${id}: ${error.message}`);
  }
}

async function remove(id) {
  if (!confirm(`Deregister ${id} and stop its workload?`)) return;
  try {
    await api("DELETE", `/api/instances/${encodeURIComponent(id)}`);
    state.instances.delete(id);
    render();
  } catch (error) {
    showMessage(`remove ${id}: ${error.message}`);
  }
}

async function register(event) {
  event.preventDefault();
  const form = event.target;
  const command = form.elements.command.value.trim().split(/\s+/).filter(Boolean);
  try {
    const created = await api("POST", "/api/instances", {
      instanceId: form.elements.instanceId.value.trim(), platform: "process", process: { command },
    });
    state.instances.set(created.instanceId, created);
    form.reset();
    showMessage("");
    render();
  } catch (error) {
    showMessage(`register: ${error.message}${error.field ? ` (${error.field})` : ""}`);
  }
}

async function main() {
  state.session = await currentSession();
  showAccount(state.session);
  $("filter-status").append(...STATUSES.map((s) => h("option", {}, s)));
  for (const id of ["filter-platform", "filter-status", "search"]) {
    $(id).addEventListener("input", () => { state.page = 0; render(); });
  }
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("previous-page").addEventListener("click", () => { state.page -= 1; render(); });
  $("next-page").addEventListener("click", () => { state.page += 1; render(); });
  if (can(state.session.role, "admin")) {
    $("admin").hidden = false;
    $("register-form").addEventListener("submit", register);
  }
  renderColumns();
  const listed = await load();
  // The frame after the one that drew the table: its paint is done (bench/dashboard_paint.py reads this mark).
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("draas-first-paint")));
  follow(listed.cursor, listed.storeId);
  refreshLoop();
}

main();
