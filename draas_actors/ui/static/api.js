// The page's one way to the API: same-origin fetches authenticated by the session cookie, with the session's CSRF
// token on every unsafe method (the server refuses a write without it). A 401 means the session ended: sign in.

const ROLES = ["read", "operate", "admin"];
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? `${body.detail}` : `HTTP ${status}`);
    this.status = status;
    this.field = body ? body.field : null;
  }
}

export function signInPage() {
  location.assign("/ui/signin");
}

/** Who is signed in ({identity, role, csrfToken, expiresAt}); sends the browser to the sign-in page if nobody. */
export async function currentSession() {
  const response = await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    signInPage();
    throw new ApiError(401, null);
  }
  const session = await response.json();
  csrfToken = session.csrfToken;
  return session;
}

/** The role `role` includes `needed` (read < operate < admin). */
export function can(role, needed) {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

// What an operator may ask of an instance on each platform: a pod is started and stopped by scaling its Deployment,
// so the API answers start and stop on Kubernetes with a 409; the page offers only what the API would do.
export function actionsFor(platform) {
  return platform === "kubernetes" ? ["restart"] : ["start", "stop", "restart"];
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Draas-CSRF"] = csrfToken || "";
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    signInPage();
    throw new ApiError(401, null);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export async function signOut() {
  await api("DELETE", "/ui/session");
  signInPage();
}

/** An element with attributes and children: the page builds its DOM with this, never from HTML text. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A time as the operator reads it: local, to the second; "" for none. */
export function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

/** The header's account line and sign-out button, shared by every page. */
export function showAccount(session) {
  const slot = document.getElementById("account");
  slot.replaceChildren(
    h("span", { class: "who" }, `${session.identity} (${session.role})`),
    h("button", { type: "button", id: "sign-out", onclick: () => signOut() }, "Sign out"),
  );
}
