// One instance: its explainable record, its policy (editable by admins), its last 50 changes, live from the stream.
import { api, ApiError, can, currentSession, h, showAccount, when } from "./api.js";
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

async function refresh() {
  try {
    renderRecord(await api("GET", path));
    const changes = await api(
      "GET", `/api/status/recent-changes?since=0&limit=${TIMELINE_LENGTH}&instanceId=${encodeURIComponent(id)}`,
    );
    const newest = changes.reverse();
    $("timeline").replaceChildren(...newest.map(change));
    $("history").replaceChildren(...newest.filter((c) => c.newStatus === "Restarting").map(change));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) showMessage(`No instance ${id}.`);
    else if (!(error instanceof ApiError && error.status === 401)) showMessage(error.message);
  }
}

function renderActions() {
  if (!can(session.role, "operate")) return;
  $("actions").replaceChildren(...["start", "stop", "restart"].map((action) => h("button", {
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

async function main() {
  session = await currentSession();
  showAccount(session);
  renderActions();
  $("policy-form").addEventListener("submit", savePolicy);
  await refresh();
  follow();
}

main();
