// One instance: its explainable record, its policy (editable by admins), its last 50 changes, live from the stream.
import { actionsFor, api, ApiError, can, currentSession, h, showAccount, when } from "./api.js";
import { statusBadge } from "./status.js";

const TIMELINE_LENGTH = 50;
const POLICY_FIELDS = [
  ["mode", "Mode", "select"], ["initialBackoff", "Initial backoff (s)", "number"],
  ["multiplier", "Multiplier", "number"], ["maxBackoff", "Max backoff (s)", "number"],
  ["jitter", "Jitter (0 to 1)", "number"], ["resetAfter", "Reset after (s)", "number"],
  ["maxRestarts", "Max restarts", "number"], ["window", "Window (s)", "number"],
];
const MODES = ["always", "on-failure", "never"];
const id = new URLSearchParams(location.search).get("id") || "";
const path = `/api/instances/${encodeURIComponent(id)}`;
const $ = (name) => document.getElementById(name);
let session = null;

function showMessage(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

function entries(target, pairs) {
  $(target).replaceChildren(...pairs.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value ?? "")]));
}

function renderRecord(instance) {
  document.title = `${instance.instanceId} · draas`;
  $("title").replaceChildren(instance.instanceId, " ", statusBadge(instance.status));
  const runtime = instance.runtime || {};
  const process = instance.process;
  entries("record", [
    ["Platform", instance.platform], ["Status", instance.status], ["Since", when(instance.statusSince)],
    ["Restarts", instance.restartCount], ["Last exit code", instance.lastExitCode],
    ["Last reason", instance.lastReason], ["Last stop cause", instance.lastStopCause],
    ["Next restart", when(instance.nextRestartAt)], ["Stopped by an operator", instance.operatorStopped ? "yes" : "no"],
    ["PID", runtime.pid], ["Started", when(runtime.startedAt)],
    ["Command", process ? process.command.join(" ") : null], ["Working directory", process ? process.cwd : null],
    ["Environment variables", process ? process.envKeys.join(", ") : null],
    ["Registered", when(instance.createdAt)], ["Updated", when(instance.updatedAt)],
  ]);
  const policy = instance.restartPolicy;
  entries("policy", [...POLICY_FIELDS.map(([key, label]) => [label, policy[key]]),
    ["Success exit codes", policy.successExitCodes.join(", ")]]);
  entries("metadata", Object.entries(instance.metadata));
  if (session && can(session.role, "admin")) renderPolicyForm(policy);
}

function renderPolicyForm(policy) {
  const form = $("policy-form");
  if (!form.hidden) return; // being edited: a live change must not wipe what the operator typed
  form.replaceChildren(
    ...POLICY_FIELDS.map(([key, label, kind]) => h("label", {}, label, kind === "select"
      ? h("select", { name: key }, MODES.map((m) => h("option", { selected: m === policy[key] }, m)))
      : h("input", { name: key, type: "number", step: "any", min: "0", value: policy[key], required: true }))),
    h("button", { type: "submit" }, "Save restart policy"),
  );
  form.hidden = false;
}

async function savePolicy(event) {
  event.preventDefault();
  const form = event.target;
  const body = {};
  for (const [key, , kind] of POLICY_FIELDS) {
    const value = form.elements[key].value;
    body[key] = kind === "select" ? value : Number(value);
  }
  try {
    renderRecord(await api("PUT", `${path}/restart-policy`, body));
    showMessage("Restart policy saved.");
  } catch (error) {
    showMessage(`restart policy: ${error.message}`);
  }
}

function change(item) {
  return h("li", { "data-status": item.newStatus },
    h("time", { datetime: item.timestamp }, when(item.timestamp)), " ",
    statusBadge(item.oldStatus), " → ", statusBadge(item.newStatus), " ",
    h("span", { class: "source" }, item.source || ""),
    Object.keys(item.metadata || {}).length ? h("code", {}, JSON.stringify(item.metadata)) : null);
}

// A restart: a move from an end (or a restart's first step) back to life, whether a policy or an operator did it.
const ENDS = new Set(["Restarting", "Stopped", "Failed", "Stopping"]);
const LIVE = new Set(["Starting", "Running"]);
function isRestart(item) {
  return ENDS.has(item.oldStatus) && LIVE.has(item.newStatus);
}

async function refresh() {
  try {
    const instance = await api("GET", path);
    renderRecord(instance);
    const changes = await api(
      "GET", `/api/status/recent-changes?since=0&limit=${TIMELINE_LENGTH}&instanceId=${encodeURIComponent(id)}`,
    );
    const newest = changes.reverse();
    $("timeline").replaceChildren(...newest.map(change));
    $("history").replaceChildren(...newest.filter(isRestart).map(change));
    return instance;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) showMessage(`No instance ${id}.`);
    else if (!(error instanceof ApiError && error.status === 401)) showMessage(error.message);
    return null;
  }
}

function renderActions(instance) {
  if (!can(session.role, "operate")) return;
  $("actions").replaceChildren(...actionsFor(instance.platform).map((action) => h("button", {
    type: "button", "data-action": action, onclick: async () => {
      try {
        await api("POST", `${path}/${action}`);
        showMessage("");
      } catch (error) {
        showMessage(`${action}: ${error.message}`);
      }
    },
  }, action)));
}

function follow() {
  // Every change of this instance redraws it; after a reconnect the browser resumes from the last event id.
  const stream = new EventSource(`/api/status/stream?instanceId=${encodeURIComponent(id)}`);
  stream.onopen = () => { $("connection").textContent = "live"; $("connection").dataset.state = "live"; };
  stream.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").dataset.state = "reconnecting"; };
  stream.addEventListener("StatusChanged", () => refresh());
}

// -- the output of a local process (operate role): its tail, then, in follow mode, what it appends ----------------

const OUTPUT_TAIL = 200; // lines first shown
const OUTPUT_KEEP = 256 * 1024; // characters the page keeps: the oldest go first
const FOLLOW_EVERY_MS = 1000;
const output = { offset: null, timer: null };

async function readOutput(query) {
  const stream = $("output-stream").value;
  const response = await fetch(`${path}/logs?stream=${stream}&${query}`, {
    credentials: "same-origin", cache: "no-store",
  });
  if (response.status === 404) return null; // the instance exists: no such route on this control plane
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return { text: await response.text(), offset: Number(response.headers.get("X-Log-Offset")) };
}

function showOutput(text, append) {
  const pre = $("output-text");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  const whole = (append ? pre.textContent : "") + text;
  pre.textContent = whole.length > OUTPUT_KEEP ? whole.slice(whole.length - OUTPUT_KEEP) : whole;
  if (atEnd || !append) pre.scrollTop = pre.scrollHeight;
}

async function loadOutput() {
  try {
    const read = await readOutput(`tail=${OUTPUT_TAIL}`);
    if (read === null) {
      $("output-placeholder").hidden = false;
      $("output-text").hidden = true;
      return;
    }
    output.offset = read.offset;
    showOutput(read.text, false);
  } catch (error) {
    showMessage(`output: ${error.message}`);
  }
}

async function followOutput() {
  output.timer = null;
  if (!$("output-follow").checked) return;
  try {
    const read = await readOutput(`after=${output.offset}`);
    if (read !== null) {
      output.offset = read.offset;
      if (read.text) showOutput(read.text, true);
    }
  } catch (error) {
    showMessage(`output: ${error.message}`);
  } finally {
    if ($("output-follow").checked) output.timer = setTimeout(followOutput, FOLLOW_EVERY_MS);
  }
}

function setUpOutput(instance) {
  if (instance.platform !== "process" || !can(session.role, "operate")) return;
  $("output").hidden = false;
  $("output-stream").addEventListener("change", () => loadOutput());
  $("output-follow").addEventListener("change", () => {
    if ($("output-follow").checked && output.timer === null) followOutput();
  });
  loadOutput();
}

async function main() {
  session = await currentSession();
  showAccount(session);
  $("policy-form").addEventListener("submit", savePolicy);
  const instance = await refresh();
  if (instance) {
    renderActions(instance);
    setUpOutput(instance);
  }
  follow();
}

main();
