// Statuses as the page shows them: a coloured badge that also says the status in words (colour is never the only cue).
import { h } from "./api.js";

export const STATUSES = [
  "Pending", "Starting", "Running", "Unhealthy", "Stopping", "Stopped", "Failed", "Restarting", "Removed", "Unknown",
];

export function statusBadge(status) {
  return h("span", { class: "badge", "data-status": status }, status);
}
