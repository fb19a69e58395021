// The saga console: sign-in, the saga list, one saga's timeline and, for admins, the operations page (outboxes,
// consumer lag, dead letters, stuck orders), over the gateway's /api/v1 API (same origin).
// Plain modern JavaScript, no framework and no build step. Views are built with `h()` (text is always set as
// text, never as HTML), the route lives in the URL's hash (#/sagas, #/sagas/<order_id>, #/operations), the tokens in
// sessionStorage. Every API error is shown as a message (the API's JSON errors carry error, message, request_id).

const API = "/api/v1";
const POLL_MS = 2000;
const PAGE_SIZE = 20;

const STATES = [
  "STARTED",
  "RESERVING",
  "AWAITING_PAYMENT",
  "CONFIRMING",
  "COMPLETED",
  "RELEASING",
  "REJECTED",
  "CANCELLED",
  "EXPIRED",
  "FAILED",
];
// A FAILED saga is not terminal: an admin's retry (or a cancel) moves it again.
const TERMINAL = new Set(["COMPLETED", "REJECTED", "CANCELLED", "EXPIRED"]);

const STEPS = {
  reserve: { label: "Reserve stock", state: "RESERVING", command: "stock.reserve", reply: "stock.reserved" },
  await_payment: { label: "Await payment", state: "AWAITING_PAYMENT" },
  confirm: { label: "Confirm stock", state: "CONFIRMING", command: "stock.confirm", reply: "stock.confirmed" },
  release: { label: "Release stock", state: "RELEASING", command: "stock.release", reply: "stock.released" },
};

// The states a saga's `reason` explains. The API keeps the reason of a failure after an admin's retry, so a
// retried saga that completed would still show "no reply from stock ...": shown only where it is the why.
const REASONED = new Set(["RELEASING", "REJECTED", "CANCELLED", "EXPIRED", "FAILED"]);
const reasonOf = (saga) => (REASONED.has(saga.state) ? saga.reason : null);

// ------------------------------------------------------------------------------------------------ the session

const KEYS = { access: "console.access_token", refresh: "console.refresh_token", live: "console.live" };

const session = {
  user: null, // GET /users/me, once per page load
  get access() {
    return sessionStorage.getItem(KEYS.access);
  },
  get refresh() {
    return sessionStorage.getItem(KEYS.refresh);
  },
  save(pair) {
    sessionStorage.setItem(KEYS.access, pair.access_token);
    if (pair.refresh_token) sessionStorage.setItem(KEYS.refresh, pair.refresh_token);
  },
  clear() {
    sessionStorage.removeItem(KEYS.access);
    sessionStorage.removeItem(KEYS.refresh);
    this.user = null;
  },
  get isAdmin() {
    return this.user?.role === "admin";
  },
};

const prefs = {
  get live() {
    return sessionStorage.getItem(KEYS.live) !== "off";
  },
  set live(on) {
    sessionStorage.setItem(KEYS.live, on ? "on" : "off");
  },
};

// ------------------------------------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, body, statusText = "") {
    const explained = body && typeof body.message === "string" && body.message;
    super(explained || describeStatus(status, statusText));
    this.status = status;
    this.code = (body && body.error) || (status ? `http_${status}` : "network_error");
    this.requestId = (body && body.request_id) || null;
    this.fields = Array.isArray(body?.fields) ? body.fields : [];
  }
}

// The session ended (the refresh token was refused): the sign-in form is already shown; views stop quietly.
class SessionEnded extends Error {}

function describeStatus(status, statusText) {
  if (status === 0) {
    return "Cannot reach the API. Check the connection and that the gateway is running; the console keeps trying.";
  }
  const text = statusText ? ` ${statusText}` : "";
  return `The server answered ${status}${text} without an explanation.`;
}

async function api(method, path, { json, form, auth = true } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const token = session.access;
    if (auth && !token) {
      endSession("Please sign in.");
      throw new SessionEnded();
    }
    const headers = { Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = new URLSearchParams(form);
    }
    if (auth) headers.Authorization = `Bearer ${token}`;

    let response;
    try {
      response = await fetch(API + path, { method, headers, body, cache: "no-store" });
    } catch {
      throw new ApiError(0, null);
    }

    if (response.status === 401 && auth && attempt === 0) {
      // Another call may have refreshed the tokens meanwhile; else refresh them (once) and try again. Only a
      // refused refresh token ends the session: a token just issued and refused anyway is the API's trouble
      // (a service that cannot fetch the signing keys says "unknown key"), shown as an error like any other.
      if (session.access !== token || (await refreshSession())) continue;
      endSession("Your session has expired. Please sign in again.");
      throw new SessionEnded();
    }
    const text = await response.text().catch(() => "");
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data, response.statusText);
    return data;
  }
}

// Refresh tokens are single use (reusing one revokes its whole family): concurrent 401s share one refresh.
let refreshing = null;

function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = session.refresh;
      if (!token) return false;
      try {
        session.save(await api("POST", "/auth/refresh", { json: { refresh_token: token }, auth: false }));
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 0) throw error; // offline: keep the session
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function endSession(message) {
  const hadSession = Boolean(session.access);
  session.clear();
  if (hadSession) notices.show("session", { kind: "info", title: message });
  queueMicrotask(route);
}

// ------------------------------------------------------------------------------------------------ DOM helpers

function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "style") element.style.cssText = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const $ = (selector) => document.querySelector(selector);

function stateBadge(state, { large = false } = {}) {
  return h(
    "span",
    { class: `badge state-${state ?? "none"}${large ? " badge-lg" : ""}`, dataset: { state: state ?? "" } },
    state ?? "not started",
  );
}

function stepBadge(state) {
  return h("span", { class: `badge step-${state}` }, state);
}

function orderBadge(status) {
  return h("span", { class: `badge order-${status}`, dataset: { orderStatus: status } }, status);
}

function errorDetails(error) {
  return [
    error.fields.length
      ? h(
          "ul",
          { class: "error-fields" },
          error.fields.map((field) => h("li", null, h("code", null, field.field), ": ", field.problem)),
        )
      : null,
    error.requestId ? h("p", { class: "request-id" }, "Request id ", h("code", null, error.requestId)) : null,
  ];
}

function errorTitle(error) {
  if (!(error instanceof ApiError)) return "Something went wrong in the console";
  if (error.status === 0) return "Network error";
  if (error.status === 401) return "The API refused the sign-in token";
  if (error.status === 404) return "Not found";
  if (error.status === 403) return "Not allowed";
  if (error.status === 409) return "Conflict";
  if (error.status === 429) return "Too many requests";
  if (error.status >= 500) return `Server error (${error.status})`;
  return `Request refused (${error.status})`;
}

// Toasts in the corner; one per key, replaced when the same key shows again.
const notices = {
  show(key, { kind = "error", title, message = "", error = null, timeout = null }) {
    this.clear(key);
    const item = h(
      "div",
      { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status", dataset: { key } },
      h(
        "div",
        { class: "notice-body" },
        h("div", { class: "notice-title" }, title),
        message ? h("div", { class: "notice-message" }, message) : null,
        error ? errorDetails(error) : null,
      ),
      h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
    );
    $("#notices").append(item);
    if (timeout) setTimeout(() => item.remove(), timeout);
  },
  error(key, error, title = errorTitle(error)) {
    this.show(key, { kind: "error", title, message: error.message, error: error instanceof ApiError ? error : null });
  },
  clear(key) {
    for (const item of document.querySelectorAll("#notices .notice")) {
      if (item.dataset.key === key) item.remove();
    }
  },
};

// ------------------------------------------------------------------------------------------------ formatting

const ms = (iso) => (iso ? Date.parse(iso) : Number.NaN);

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const day = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });

function formatTime(iso, { millis = false } = {}) {
  if (!iso) return "—";
  const date = new Date(iso);
  let text = clock.format(date);
  if (millis) text += `.${String(date.getMilliseconds()).padStart(3, "0")}`;
  if (date.toDateString() !== new Date().toDateString()) text = `${day.format(date)}, ${text}`;
  return text;
}

function timeElement(iso, options) {
  if (!iso) return h("span", { class: "faint" }, "—");
  return h("time", { datetime: iso, title: iso }, formatTime(iso, options));
}

function formatDuration(millis) {
  if (!Number.isFinite(millis)) return "—";
  const value = Math.max(0, millis);
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;
  const seconds = Math.round(value / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function formatOffset(millis) {
  return `+${formatDuration(millis)}`;
}

// An axis tick: round numbers stay round (+5 s, +1.5 s, +200 ms).
function formatTick(millis) {
  if (millis < 1000) return `+${Math.round(millis)} ms`;
  if (millis < 120_000) return `+${Number((millis / 1000).toFixed(2))} s`;
  if (millis < 7_200_000) return `+${Number((millis / 60_000).toFixed(1))} min`;
  return `+${Number((millis / 3_600_000).toFixed(1))} h`;
}

function formatMoney(amount) {
  return typeof amount === "number"
    ? amount.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : "—";
}

const plural = (count, one, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;

// ------------------------------------------------------------------------------------------------ live updates

// Calls `load` now and every POLL_MS while live; `load` returns false to stop (a terminal saga).
function poller(load) {
  let timer = null;
  let disposed = false;
  let busy = false;
  let stopped = false;

  async function tick() {
    clearTimeout(timer);
    timer = null;
    if (disposed || busy) return;
    busy = true;
    let again = true;
    try {
      again = (await load()) !== false;
    } catch (error) {
      if (!(error instanceof SessionEnded)) notices.error("poll", error);
      again = !(error instanceof SessionEnded);
    } finally {
      busy = false;
    }
    stopped = !again;
    if (!disposed && again && prefs.live) timer = setTimeout(tick, POLL_MS);
  }

  return {
    now: tick,
    resume() {
      if (!stopped && !timer) tick();
    },
    pause() {
      clearTimeout(timer);
      timer = null;
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}

function liveToggle(poll) {
  // A toggle button: one name, its state in aria-pressed (and the dot's colour).
  const button = h(
    "button",
    { type: "button", class: "button live", title: `Refresh every ${POLL_MS / 1000} s while pressed` },
    h("span", { class: "live-dot", "aria-hidden": "true" }),
    "Live updates",
  );
  const paint = () => button.setAttribute("aria-pressed", String(prefs.live));
  button.addEventListener("click", () => {
    prefs.live = !prefs.live;
    paint();
    if (prefs.live) poll.resume();
    else poll.pause();
  });
  paint();
  return button;
}

function updatedLine() {
  const line = h("p", { class: "updated" });
  return {
    element: line,
    mark() {
      line.textContent = `Updated ${formatTime(new Date().toISOString())}`;
    },
  };
}

// ------------------------------------------------------------------------------------------------ the router

let view = null; // the current view: { dispose() }
let generation = 0;

function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/sagas";
  const [path, query = ""] = raw.split("?");
  return { path: path.replace(/\/+$/, "") || "/sagas", params: new URLSearchParams(query) };
}

async function route() {
  const mine = ++generation;
  view?.dispose?.();
  view = null;
  const main = $("#main");
  if (!session.access) {
    paintSession();
    view = signInView(main);
    return;
  }
  if (!session.user) {
    try {
      const user = await api("GET", "/users/me");
      if (mine !== generation) return;
      session.user = user;
    } catch (error) {
      if (error instanceof SessionEnded || mine !== generation) return;
      main.replaceChildren(
        panel({
          title: "Could not load your profile",
          error,
          actions: [h("button", { type: "button", class: "button primary", onclick: route }, "Try again")],
        }),
      );
      return;
    }
  }
  paintSession();
  const { path, params } = currentRoute();
  const saga = path.match(/^\/sagas\/([^/]+)$/);
  if (path === "/sagas") view = listView(main, params);
  else if (saga) view = sagaView(main, decodeURIComponent(saga[1]));
  else if (path === "/operations" && session.isAdmin) view = operationsView(main);
  else if (path === "/operations") view = adminsOnlyView(main);
  else view = missingPageView(main, path);
  paintNav(path);
}

function paintNav(path) {
  $("#nav").hidden = !session.user;
  $("#nav-operations").hidden = !session.isAdmin;
  for (const [link, current] of [
    [$("#nav-sagas"), path.startsWith("/sagas")],
    [$("#nav-operations"), path === "/operations"],
  ]) {
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function paintSession() {
  const signedIn = Boolean(session.access && session.user);
  $("#session").hidden = !signedIn;
  $("#nav").hidden = !signedIn;
  if (signedIn) {
    $("#session-email").textContent = session.user.email;
    $("#session-role").textContent = session.isAdmin ? "admin" : "customer";
  }
}

function focusHeading(main) {
  const heading = main.querySelector("h1");
  if (heading && document.activeElement !== heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function panel({ title, message, error = null, actions = [], kind = "error" }) {
  return h(
    "section",
    { class: `card panel panel-${kind}`, role: kind === "error" ? "alert" : null },
    h("h1", null, title),
    message || error ? h("p", { class: "panel-message" }, message ?? error.message) : null,
    error instanceof ApiError ? errorDetails(error) : null,
    actions.length ? h("div", { class: "panel-actions" }, actions) : null,
  );
}

function missingPageView(main, path) {
  document.title = "Not found · Saga console";
  main.replaceChildren(
    panel({
      title: "No such page",
      message: `The console has no page at ${path}.`,
      actions: [h("a", { class: "button primary", href: "#/sagas" }, "Go to the sagas")],
    }),
  );
  return { dispose() {} };
}

function adminsOnlyView(main) {
  document.title = "Admins only · Saga console";
  main.replaceChildren(
    panel({
      title: "Admins only",
      message: "The operations page is for admins. Your orders and their sagas are on the sagas page.",
      actions: [h("a", { class: "button primary", href: "#/sagas" }, "Go to your orders")],
    }),
  );
  return { dispose() {} };
}

// ------------------------------------------------------------------------------------------------ sign-in

function signInView(main) {
  document.title = "Sign in · Saga console";
  const error = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  const form = h(
    "form",
    { "aria-describedby": "signin-lede" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "username" }, "Email"),
      h("input", { id: "username", name: "username", type: "email", autocomplete: "username", required: true }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "password" }, "Password"),
      h("input", {
        id: "password",
        name: "password",
        type: "password",
        autocomplete: "current-password",
        required: true,
      }),
    ),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    error.hidden = true;
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const pair = await api("POST", "/auth/login", {
        form: { username: data.get("username"), password: data.get("password") },
        auth: false,
      });
      session.save(pair);
      notices.clear("session");
      route();
    } catch (failure) {
      error.replaceChildren(
        h(
          "div",
          null,
          h("strong", null, failure instanceof ApiError ? failure.message : "Signing in failed."),
          failure instanceof ApiError ? errorDetails(failure) : null,
        ),
      );
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  main.replaceChildren(
    h(
      "section",
      { class: "card signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in to the saga console"),
      h(
        "p",
        { class: "lede", id: "signin-lede" },
        "Follow each order's saga as it reserves stock, waits for payment and confirms, or compensates.",
      ),
      form,
      h("p", { class: "hint" }, "Admins see every saga; customers see the sagas of their own orders."),
    ),
  );
  return { dispose() {} };
}

// ------------------------------------------------------------------------------------------------ the list

function listView(main, params) {
  const admin = session.isAdmin;
  let state = STATES.includes(params.get("state")) ? params.get("state") : "";
  let page = Math.max(1, Number.parseInt(params.get("page") ?? "1", 10) || 1);
  let shown = null; // what the table shows, to repaint only on change
  document.title = `${admin ? "Sagas" : "Your orders"} · Saga console`;

  const tbody = h("tbody", null, h("tr", null, h("td", { class: "empty", colspan: 6 }, "Loading…")));
  const columns = admin
    ? ["Order", "State", "Reason", "Started", "Last change"]
    : ["Order", "Placed", "Items", "Total", "Order status", "Saga"];
  const table = h(
    "table",
    null,
    h(
      "caption",
      { class: "visually-hidden" },
      admin ? "Every saga, newest first" : "Your orders and their sagas, newest first",
    ),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        columns.map((name) => h("th", { scope: "col", class: name === "Total" ? "num" : null }, name)),
      ),
    ),
    tbody,
  );
  const pageLabel = h("span", { "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "button" }, "Previous");
  const next = h("button", { type: "button", class: "button" }, "Next");
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    pageLabel,
    h("div", { class: "pager-buttons" }, previous, next),
  );
  const updated = updatedLine();

  const go = (changes) => {
    ({ state = state, page = page } = changes);
    const query = new URLSearchParams();
    if (state) query.set("state", state);
    if (page > 1) query.set("page", String(page));
    const text = query.toString();
    const hash = `#/sagas${text ? `?${text}` : ""}`;
    history.pushState(null, "", hash); // no hashchange: this view stays and loads the new page
    shown = null;
    tbody.replaceChildren(h("tr", null, h("td", { class: "empty", colspan: columns.length }, "Loading…")));
    poll.now();
  };
  previous.addEventListener("click", () => go({ page: Math.max(1, page - 1) }));
  next.addEventListener("click", () => go({ page: page + 1 }));

  const loadAdmin = async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE + 1), skip: String((page - 1) * PAGE_SIZE) });
    if (state) query.set("state", state);
    const sagas = await api("GET", `/sagas?${query}`);
    return { rows: sagas.slice(0, PAGE_SIZE), more: sagas.length > PAGE_SIZE };
  };

  const loadCustomer = async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE + 1), skip: String((page - 1) * PAGE_SIZE) });
    const orders = await api("GET", `/orders/?${query}`);
    const rows = orders.slice(0, PAGE_SIZE);
    // Every row's saga in one request; an order without one has had no saga started yet.
    const ids = rows.map((order) => order._id);
    const sagas = ids.length
      ? await api("GET", `/sagas?${new URLSearchParams({ order_ids: ids.join(","), limit: String(ids.length) })}`)
      : [];
    const byOrder = new Map(sagas.map((saga) => [saga.order_id, saga]));
    return {
      rows: rows.map((order) => ({ order, saga: byOrder.get(order._id) ?? null })),
      more: orders.length > PAGE_SIZE,
    };
  };

  const adminRow = (saga) =>
    h(
      "tr",
      { dataset: { orderId: saga.order_id } },
      h("td", null, h("a", { class: "order-link", href: `#/sagas/${saga.order_id}` }, saga.order_id)),
      h("td", null, stateBadge(saga.state)),
      h("td", { class: "reason" }, reasonOf(saga) ?? ""),
      h("td", { class: "time" }, timeElement(saga.created_at)),
      h("td", { class: "time" }, timeElement(saga.updated_at)),
    );

  const customerRow = ({ order, saga }) =>
    h(
      "tr",
      { dataset: { orderId: order._id } },
      h("td", null, h("a", { class: "order-link", href: `#/sagas/${order._id}` }, order._id)),
      h("td", { class: "time" }, timeElement(order.created_at)),
      h(
        "td",
        null,
        plural(
          order.items.reduce((sum, item) => sum + item.quantity, 0),
          "unit",
        ),
      ),
      h("td", { class: "num" }, formatMoney(order.total_price)),
      h("td", null, orderBadge(order.status)),
      h("td", null, stateBadge(saga?.state ?? null)),
    );

  const emptyText = () => {
    if (page > 1) return "Nothing on this page.";
    if (!admin) return "You have no orders yet. Place one and its saga shows here within moments.";
    return state ? `No saga is ${state}.` : "No sagas yet: each order placed starts one.";
  };

  const poll = poller(async () => {
    const { rows, more } = admin ? await loadAdmin() : await loadCustomer();
    notices.clear("poll");
    updated.mark();
    const key = JSON.stringify([state, page, rows, more]);
    if (key !== shown) {
      shown = key;
      tbody.replaceChildren(
        ...(rows.length
          ? rows.map(admin ? adminRow : customerRow)
          : [h("tr", null, h("td", { class: "empty", colspan: columns.length }, emptyText()))]),
      );
      previous.disabled = page <= 1;
      next.disabled = !more;
      const count = rows.length ? ` · ${plural(rows.length, admin ? "saga" : "order")}` : "";
      pageLabel.textContent = `Page ${page}${count}`;
    }
    return true;
  });

  const toolbar = h("div", { class: "toolbar" });
  if (admin) {
    const select = h(
      "select",
      { id: "state-filter", name: "state" },
      h("option", { value: "" }, "All states"),
      STATES.map((name) => h("option", { value: name, selected: name === state }, name)),
    );
    select.addEventListener("change", () => go({ state: select.value, page: 1 }));
    toolbar.append(h("div", { class: "inline-field" }, h("label", { for: "state-filter" }, "State"), select));
  }
  toolbar.append(liveToggle(poll), updated.element);

  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        null,
        h("h1", null, admin ? "Sagas" : "Your orders"),
        h(
          "p",
          { class: "lede" },
          admin
            ? "Every order's saga, newest first: reservation, payment, confirmation and compensation."
            : "Each of your orders and where its saga stands, newest first.",
        ),
      ),
      toolbar,
    ),
    h(
      "section",
      { class: "card", "aria-label": admin ? "Sagas" : "Orders" },
      h("div", { class: "table-wrap" }, table),
      pager,
    ),
  );
  poll.now();
  return { dispose: () => poll.dispose() };
}

// ------------------------------------------------------------------------------------------------ one saga

function sagaView(main, orderId) {
  document.title = `Saga ${orderId.slice(0, 8)} · Saga console`;
  const back = h(
    "a",
    { class: "back", href: "#/sagas" },
    h("span", { "aria-hidden": "true" }, "←"),
    session.isAdmin ? " All sagas" : " Your orders",
  );
  main.replaceChildren(back, h("p", { class: "loading", role: "status" }, "Loading the saga…"));
  let saga = null;
  let order = null;
  let orderError = null;
  let retrying = false;
  const updated = updatedLine();

  const poll = poller(async () => {
    const id = encodeURIComponent(orderId);
    const [sagaResult, orderResult] = await Promise.allSettled([
      api("GET", `/sagas/${id}`),
      api("GET", `/orders/${id}`),
    ]);
    for (const result of [sagaResult, orderResult]) {
      if (result.status === "rejected" && result.reason instanceof SessionEnded) throw result.reason;
    }
    if (sagaResult.status === "rejected") {
      const error = sagaResult.reason;
      const missing = error instanceof ApiError && error.status === 404;
      if (missing && orderResult.status === "fulfilled") {
        // The order is committed; its saga starts when order.placed reaches the orchestrator.
        main.replaceChildren(
          back,
          panel({
            kind: "info",
            title: "The saga has not started yet",
            message: "The order is placed; its saga starts as soon as the order.placed event reaches the saga.",
          }),
        );
        return true;
      }
      if (missing) {
        document.title = "Saga not found · Saga console";
        main.replaceChildren(
          back,
          panel({
            title: "Saga not found",
            error,
            actions: [h("a", { class: "button", href: "#/sagas" }, session.isAdmin ? "All sagas" : "Your orders")],
          }),
        );
        return false;
      }
      if (saga === null) {
        const again = h("button", { type: "button", class: "button primary", onclick: () => poll.now() }, "Try again");
        main.replaceChildren(back, panel({ title: "Could not load the saga", error, actions: [again] }));
        return error instanceof ApiError && (error.status === 0 || error.status >= 500);
      }
      notices.error("poll", error, `Could not refresh the saga: ${errorTitle(error).toLowerCase()}`);
      return true;
    }
    notices.clear("poll");
    saga = sagaResult.value;
    order = orderResult.status === "fulfilled" ? orderResult.value : null;
    orderError = orderResult.status === "rejected" ? orderResult.reason : null;
    updated.mark();
    paint();
    return !TERMINAL.has(saga.state);
  });

  const retry = async (button) => {
    if (retrying) return;
    retrying = true;
    button.disabled = true;
    button.textContent = "Retrying…";
    try {
      saga = await api("POST", `/sagas/${encodeURIComponent(orderId)}/retry`);
      notices.show("retry", {
        kind: "success",
        title: "Retry started",
        message: `The saga is ${saga.state} again.`,
        timeout: 6000,
      });
      paint();
      poll.resume();
    } catch (error) {
      if (!(error instanceof SessionEnded)) notices.error("retry", error, "The retry was refused");
      button.disabled = false;
      button.textContent = "Retry the failed step";
    } finally {
      retrying = false;
    }
  };

  function paint() {
    const active = document.activeElement;
    const focused = active?.dataset?.focusKey;
    const terminal = TERMINAL.has(saga.state);
    const actions = [];
    if (session.isAdmin && saga.state === "FAILED") {
      const button = h(
        "button",
        { type: "button", class: "button danger", dataset: { focusKey: "retry" } },
        "Retry the failed step",
      );
      button.addEventListener("click", () => retry(button));
      actions.push(button);
    }
    if (terminal) actions.push(h("span", { class: "final" }, "Final state: no further updates"));
    else actions.push(liveToggleFor(), updated.element);

    main.replaceChildren(
      back,
      h(
        "header",
        { class: "saga-head" },
        h(
          "div",
          null,
          h("p", { class: "eyebrow" }, "Saga of order"),
          h("h1", null, saga.order_id),
          reasonOf(saga) ? h("p", { class: "saga-reason" }, reasonOf(saga)) : null,
        ),
        h("div", { class: "saga-actions" }, stateBadge(saga.state, { large: true }), actions),
      ),
      statePath(saga),
      factsCard(saga, order, orderError),
      timelineCard(saga),
      stepsCard(saga),
      messagesCard(saga),
    );
    // Repainting moves or replaces the controls: keep the keyboard focus where it was.
    if (active?.isConnected && active !== document.activeElement) active.focus();
    else if (focused && !active?.isConnected) main.querySelector(`[data-focus-key="${focused}"]`)?.focus();
  }

  let toggle = null;
  const liveToggleFor = () => {
    toggle ??= liveToggle(poll);
    return toggle;
  };

  poll.now();
  return { dispose: () => poll.dispose() };
}

// The states the saga passed through, from its steps: each step is the time spent in one state.
function statePath(saga) {
  const steps = saga.steps ?? [];
  const start = ms(saga.created_at);
  const path = [];
  const push = (state, at) => {
    if (path.at(-1)?.state !== state) path.push({ state, at });
  };
  steps.forEach((step, index) => {
    push(STEPS[step.step]?.state ?? step.step, ms(step.started_at));
    const following = steps[index + 1];
    const gaveUp = step.state === "failed" && (!following || following.step !== "release");
    if (gaveUp && (following || saga.state === "FAILED")) push("FAILED", ms(step.finished_at));
  });
  if (TERMINAL.has(saga.state) || saga.state === "FAILED") push(saga.state, ms(saga.updated_at));
  return h(
    "ol",
    { class: "path", "aria-label": "States passed through" },
    path.map((entry) =>
      h(
        "li",
        { dataset: { state: entry.state } },
        stateBadge(entry.state),
        Number.isFinite(entry.at) ? h("span", { class: "at" }, formatOffset(entry.at - start)) : null,
      ),
    ),
  );
}

function factsCard(saga, order, orderError) {
  const fact = (term, ...value) => h("div", { class: "fact" }, h("dt", null, term), h("dd", null, value));
  const end = TERMINAL.has(saga.state) ? ms(saga.updated_at) : Date.now();
  let orderStatus;
  if (order) orderStatus = orderBadge(order.status);
  else if (orderError) orderStatus = h("span", { class: "error-text" }, `not available: ${orderError.message}`);
  else orderStatus = "—";
  return h(
    "section",
    { class: "card", "aria-label": "Summary" },
    h(
      "dl",
      { class: "facts" },
      fact(
        "Order status",
        orderStatus,
        order?.status_reason ? h("div", { class: "times" }, order.status_reason) : null,
      ),
      fact(
        "Total",
        order ? formatMoney(order.total_price) : "—",
        order
          ? h(
              "ul",
              { class: "items" },
              order.items.map((item) =>
                h("li", null, `${item.quantity} × `, h("code", { title: item.product_id }, item.product_id.slice(-8))),
              ),
            )
          : null,
      ),
      fact("Started", timeElement(saga.created_at, { millis: true })),
      fact(
        TERMINAL.has(saga.state) ? "Took" : "Running for",
        formatDuration(end - ms(saga.created_at)),
        h("div", { class: "times" }, "last change ", timeElement(saga.updated_at, { millis: true })),
      ),
      fact(
        "Payment deadline",
        saga.payment_deadline ? timeElement(saga.payment_deadline) : h("span", { class: "faint" }, "—"),
        saga.state === "AWAITING_PAYMENT" && saga.payment_deadline
          ? h("div", { class: "times" }, `in ${formatDuration(ms(saga.payment_deadline) - Date.now())}`)
          : null,
      ),
      fact(
        "Correlation id",
        saga.correlation_id ? h("code", null, saga.correlation_id) : h("span", { class: "faint" }, "—"),
      ),
    ),
  );
}

// A round tick interval giving about `count` ticks over `span` ms.
function niceStep(span, count) {
  const rough = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= rough);
  return step ?? 10 * magnitude;
}

function timelineCard(saga) {
  const steps = saga.steps ?? [];
  const now = Date.now();
  const terminal = TERMINAL.has(saga.state);
  const start = Math.min(ms(saga.created_at), ...steps.map((step) => ms(step.started_at)));
  const ends = steps.map((step) => (step.finished_at ? ms(step.finished_at) : now));
  let end = Math.max(start, ms(saga.updated_at), ...ends);
  if (!terminal && saga.state !== "FAILED") end = Math.max(end, now);
  const span = Math.max(end - start, 10);
  const domain = span * 1.06; // room for the last bar's label
  const at = (time) => (Math.min(Math.max(time - start, 0), domain) / domain) * 100;

  // About one tick per 110 px of the time axis (the track is the page less the labels and paddings).
  const trackWidth = ($("#main").clientWidth || 1200) - 260;
  const tickStep = niceStep(span, Math.min(Math.max(Math.floor(trackWidth / 110), 2), 6));
  const ticks = [];
  for (let offset = 0; offset <= domain; offset += tickStep) ticks.push(offset);

  const rows = steps.map((step) => {
    const info = STEPS[step.step] ?? { label: step.step };
    const begin = ms(step.started_at);
    const finish = step.finished_at ? ms(step.finished_at) : now;
    const left = at(begin);
    const width = Math.max(at(finish) - left, 0);
    const took = formatDuration(finish - begin);
    const label = step.state === "running" ? `running · ${took}` : took;
    let placement = "after";
    if (width >= 16) placement = "inside";
    else if (left + width > 78) placement = "before";
    const labelStyle =
      placement === "inside"
        ? `left: calc(${left}% + 8px)`
        : placement === "after"
          ? `left: calc(${left + width}% + 8px)`
          : `left: calc(${left}% - 8px)`;
    const waited = { running: "waiting for payment", succeeded: "paid", abandoned: "not paid" };
    const attempts = info.command ? plural(step.attempts, "attempt") : (waited[step.state] ?? "");
    const note = step.error
      ? h(
          "span",
          {
            class: `tl-note${step.state === "failed" ? " failed" : ""}${left > 60 ? " before" : ""}`,
            style: left > 60 ? `left: calc(${left + width}%)` : `left: ${left}%`,
          },
          step.state === "failed" ? "⚠ " : "",
          step.error,
        )
      : null;
    const description =
      `${info.label}: ${step.state}` +
      (info.command ? `, ${plural(step.attempts, "attempt")}` : "") +
      `, from ${formatOffset(begin - start)} for ${took}` +
      (step.error ? `; ${step.error}` : "");
    return h(
      "li",
      { class: `tl-row${note ? " has-note" : ""}`, dataset: { step: step.step, stepState: step.state } },
      h(
        "div",
        { class: "tl-label" },
        h("span", { class: "tl-name" }, info.label),
        attempts ? h("span", { class: "tl-meta" }, attempts) : null,
      ),
      h(
        "div",
        { class: "tl-track", "aria-hidden": "true" },
        h("div", {
          class: `tl-bar bar-${step.state}`,
          style: `left: ${left}%; width: ${width}%`,
          title: description,
        }),
        h("span", { class: `tl-bar-label ${placement} on-${step.state}`, style: labelStyle }, label),
        note,
      ),
      h("span", { class: "visually-hidden" }, description),
    );
  });

  const endMarker =
    terminal || saga.state === "FAILED"
      ? h(
          "div",
          { class: `tl-end state-${saga.state}`, style: `left: ${at(ms(saga.updated_at))}%`, "aria-hidden": "true" },
          h("span", { class: "tl-end-label" }, saga.state),
        )
      : null;

  return h(
    "section",
    { class: "card", "aria-labelledby": "timeline-title" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: "timeline-title" }, "Timeline"),
      h(
        "ul",
        { class: "legend", "aria-label": "Legend" },
        [
          ["running", "var(--bar-running)"],
          ["succeeded", "var(--bar-succeeded)"],
          ["failed", "var(--bar-failed)"],
          ["abandoned", "var(--bar-abandoned)"],
        ].map(([name, colour]) =>
          h("li", null, h("span", { class: "swatch", style: `background: ${colour}`, "aria-hidden": "true" }), name),
        ),
      ),
    ),
    h(
      "div",
      { class: "timeline" },
      h(
        "div",
        { class: "tl-axis", "aria-hidden": "true" },
        ticks.map((offset) =>
          h("span", { class: "tl-tick", style: `left: ${at(start + offset)}%` }, formatTick(offset)),
        ),
      ),
      h(
        "div",
        { class: "tl-grid", "aria-hidden": "true" },
        ticks.map((offset) => h("span", { class: "tl-gridline", style: `left: ${at(start + offset)}%` })),
        endMarker,
      ),
      steps.length
        ? h("ol", { class: "tl-rows", "aria-label": "Steps on a time axis" }, rows)
        : h("p", { class: "muted" }, "No steps yet."),
    ),
  );
}

// A table in its scrolling wrapper: `headers` the header cells, `rows` the body's rows.
function dataTable(headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", null, h("thead", null, h("tr", null, headers)), h("tbody", null, rows)),
  );
}

function stepsCard(saga) {
  const steps = saga.steps ?? [];
  return h(
    "section",
    { class: "card", "aria-labelledby": "steps-title" },
    h("div", { class: "card-head" }, h("h2", { id: "steps-title" }, "Steps")),
    dataTable(
      ["Step", "State", "Attempts", "Started", "Finished", "Took", "Error"].map((name) =>
        h("th", { scope: "col", class: ["Attempts", "Took"].includes(name) ? "num" : null }, name),
      ),
      steps.map((step) =>
        h(
          "tr",
          { dataset: { step: step.step } },
          h("td", null, STEPS[step.step]?.label ?? step.step),
          h("td", null, stepBadge(step.state)),
          h("td", { class: "num" }, STEPS[step.step]?.command ? String(step.attempts) : "—"),
          h("td", { class: "time" }, timeElement(step.started_at, { millis: true })),
          h("td", { class: "time" }, timeElement(step.finished_at, { millis: true })),
          h(
            "td",
            { class: "num" },
            formatDuration((step.finished_at ? ms(step.finished_at) : Date.now()) - ms(step.started_at)),
          ),
          h("td", { class: step.state === "failed" ? "error-text" : "muted" }, step.error ?? ""),
        ),
      ),
    ),
  );
}

// The saga's message log (GET /sagas/{order_id}: `messages`): what moved it, and what it sent.
function logMessages(saga) {
  return (saga.messages ?? []).map((message) => ({
    direction: message.direction,
    type: message.event_type,
    topic: message.topic,
    at: message.at,
    eventId: message.event_id,
    causationId: message.causation_id,
  }));
}

function messagesCard(saga) {
  const messages = logMessages(saga);
  const start = ms(saga.created_at);
  const arrows = { sent: "→", received: "←" };
  return h(
    "section",
    { class: "card", "aria-labelledby": "messages-title" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: "messages-title" }, "Commands and replies"),
      h(
        "p",
        { class: "card-note" },
        "Correlation id ",
        saga.correlation_id ? h("code", null, saga.correlation_id) : "—",
        " (the request that placed the order)",
      ),
    ),
    dataTable(
      ["When", "", "Message", "Topic", "Event id"].map((name) =>
        h("th", { scope: "col" }, name || h("span", { class: "visually-hidden" }, "Direction")),
      ),
      messages.map((message) =>
        h(
          "tr",
          { dataset: { message: message.type, direction: message.direction } },
          h(
            "td",
            { class: "time" },
            message.at
              ? [
                  formatOffset(ms(message.at) - start),
                  " ",
                  h("span", { class: "times" }, formatTime(message.at, { millis: true })),
                ]
              : "—",
          ),
          h(
            "td",
            null,
            h(
              "span",
              { class: `dir dir-${message.direction}` },
              h("span", { class: "dir-arrow", "aria-hidden": "true" }, arrows[message.direction]),
              message.direction,
            ),
          ),
          h("td", null, h("span", { class: "msg-type" }, message.type)),
          h("td", { class: "muted" }, message.topic),
          h(
            "td",
            null,
            h(
              "code",
              { class: "event-id", title: message.causationId ? `caused by ${message.causationId}` : "" },
              message.eventId,
            ),
          ),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------------------------------------------ operations

const OPERATIONS_LIMIT = 50;

// Asks before an action that cannot be undone; resolves true on confirm. A modal <dialog>: Esc cancels.
function confirmAction({ title, message, confirm }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "card confirm", "aria-labelledby": "confirm-title" });
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h("h2", { id: "confirm-title" }, title),
      h("p", null, message),
      h(
        "div",
        { class: "panel-actions" },
        h("button", { type: "button", class: "button", onclick: () => close(false) }, "Cancel"),
        h("button", { type: "button", class: "button danger", onclick: () => close(true) }, confirm),
      ),
    );
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A card of the operations page: its content is replaced as a whole, or by the error that kept it from loading.
function opsCard(id, title, note) {
  const body = h("div", { class: "ops-body" }, h("p", { class: "loading" }, "Loading…"));
  const element = h(
    "section",
    { class: "card ops-card", id: `ops-${id}`, "aria-labelledby": `ops-${id}-title` },
    h("div", { class: "card-head" }, h("h2", { id: `ops-${id}-title` }, title), h("p", { class: "card-note" }, note)),
    body,
  );
  return {
    element,
    show(content) {
      body.replaceChildren(...[content].flat().filter((part) => part !== null));
    },
    fail(error) {
      body.replaceChildren(
        h(
          "div",
          { class: "ops-error", role: "alert" },
          h("strong", null, errorTitle(error)),
          h("p", null, error.message),
          error instanceof ApiError ? errorDetails(error) : null,
        ),
      );
    },
  };
}

const headings = (names, numeric = []) =>
  names.map((name) => h("th", { scope: "col", class: numeric.includes(name) ? "num" : null }, name));

const figure = (name, value, { warn = false } = {}) =>
  h("td", { class: `num${warn && value ? " figure-warn" : ""}`, dataset: { figure: name } }, String(value));

const empty = (text, colspan) => h("tr", null, h("td", { class: "empty", colspan }, text));

function operationsView(main) {
  document.title = "Operations · Saga console";
  const updated = updatedLine();
  const openLetters = new Set(); // dead letters whose details are open, kept across refreshes
  const cards = {
    outboxes: opsCard("outboxes", "Outboxes", "Events committed with their change, until the relay publishes them."),
    consumers: opsCard("consumers", "Consumers", "Each group's position on each partition, as the broker sees it."),
    letters: opsCard(
      "dead-letters",
      "Dead letters",
      "Events the relay could not publish or a consumer could not apply. Fix the cause, then re-drive them.",
    ),
    stuck: opsCard(
      "stuck",
      "Stuck orders",
      "Sagas that gave up, and pending orders whose order.placed the reconciler had to publish again.",
    ),
  };
  const loads = {
    outboxes: () => api("GET", "/operations/outboxes"),
    consumers: () => api("GET", "/operations/consumers"),
    letters: () => api("GET", `/operations/dead-letters?limit=${OPERATIONS_LIMIT * 2}`),
    stuck: async () => {
      const [failed, orphans] = await Promise.all([
        api("GET", `/sagas?state=FAILED&limit=${OPERATIONS_LIMIT}`),
        api("GET", `/orders/orphans?limit=${OPERATIONS_LIMIT}`),
      ]);
      return { failed, orphans };
    },
  };
  const shown = {}; // what each card shows, to repaint only on change
  let data = {};

  const poll = poller(async () => {
    const names = Object.keys(loads);
    const results = await Promise.allSettled(names.map((name) => loads[name]()));
    for (const [index, result] of results.entries()) {
      if (result.status === "rejected" && result.reason instanceof SessionEnded) throw result.reason;
      const name = names[index];
      if (result.status === "rejected") {
        cards[name].fail(result.reason);
        shown[name] = null;
      } else {
        data = { ...data, [name]: result.value };
        paint(name);
      }
    }
    notices.clear("poll");
    updated.mark();
    return true;
  });

  const painters = { outboxes: outboxesTable, consumers: consumersTable, letters: lettersContent, stuck: stuckContent };
  function paint(name, { force = false } = {}) {
    const key = JSON.stringify(data[name]);
    if (key === shown[name] && !force) return;
    shown[name] = key;
    cards[name].show(painters[name](data[name]));
  }

  function outboxesTable({ outboxes }) {
    const numeric = ["Unpublished", "Oldest waiting", "Published / s", "Dead letters"];
    return dataTable(
      headings(["Store", ...numeric], numeric),
      outboxes.map((outbox) =>
        h(
          "tr",
          { dataset: { store: outbox.store } },
          h("td", null, h("code", null, outbox.store)),
          outbox.reachable
            ? [
                figure("unpublished", outbox.unpublished, { warn: true }),
                h(
                  "td",
                  { class: "num" },
                  outbox.unpublished ? formatDuration(outbox.oldest_unpublished_seconds * 1000) : "—",
                ),
                h("td", { class: "num" }, outbox.published_per_second.toFixed(2)),
                figure("dead_letters", outbox.dead_letters, { warn: true }),
              ]
            : h("td", { class: "error-text", colspan: 4 }, `Cannot be read: ${outbox.error}`),
        ),
      ),
    );
  }

  function consumersTable({ partitions }) {
    const numeric = ["Partition", "Committed", "Log end", "Lag"];
    const behind = partitions.filter((partition) => partition.lag > 0).length;
    return [
      h(
        "p",
        { class: "ops-summary" },
        `${plural(new Set(partitions.map((partition) => partition.group)).size, "group")}, `,
        behind ? `${plural(behind, "partition")} behind` : "none behind",
      ),
      dataTable(
        headings(["Group", "Topic", ...numeric, "Last moved"], numeric),
        partitions.length
          ? partitions.map((partition) =>
              h(
                "tr",
                { dataset: { group: partition.group, topic: partition.topic, partition: partition.partition } },
                h("td", null, partition.group),
                h("td", { class: "muted" }, partition.topic),
                h("td", { class: "num" }, String(partition.partition)),
                h("td", { class: "num" }, String(partition.committed)),
                h("td", { class: "num" }, String(partition.end)),
                figure("lag", partition.lag, { warn: true }),
                h("td", { class: "time" }, timeElement(partition.moved_at)),
              ),
            )
          : empty("No consumer group has committed an offset yet.", 7),
      ),
    ];
  }

  function lettersContent({ dead_letters: letters, unreachable }) {
    const kinds = new Map();
    for (const letter of letters) {
      const key = JSON.stringify([letter.source, letter.store, letter.event_type]);
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    const toolbar = [...kinds].map(([key, count]) => {
      const [source, store, eventType] = JSON.parse(key);
      const button = h(
        "button",
        { type: "button", class: "button", dataset: { redriveKind: eventType } },
        `Re-drive all ${eventType} · ${source} of ${store} (${count})`,
      );
      button.addEventListener("click", () =>
        redrive(
          { source, store, event_type: eventType },
          `Every ${eventType} dead letter of the ${store} ${source}`,
          button,
        ),
      );
      return button;
    });
    const rows = letters.flatMap((letter) => letterRows(letter));
    return [
      unreachable.length
        ? h("p", { class: "error-text", role: "alert" }, `Could not be read: ${unreachable.join(", ")}`)
        : null,
      toolbar.length ? h("div", { class: "ops-actions" }, toolbar) : null,
      dataTable(
        headings(["Dead since", "Source", "Store", "Event", "Aggregate", "Error", "Attempts", "Actions"], ["Attempts"]),
        rows.length ? rows : empty("No dead letters: nothing has failed for good.", 8),
      ),
    ];
  }

  function letterRows(letter) {
    const key = `${letter.source}:${letter.store}:${letter.event_id}`;
    const open = openLetters.has(key);
    const details = h(
      "button",
      { type: "button", class: "button ghost", "aria-expanded": String(open) },
      open ? "Hide" : "Details",
    );
    details.addEventListener("click", () => {
      if (openLetters.has(key)) openLetters.delete(key);
      else openLetters.add(key);
      paint("letters", { force: true });
    });
    const again = h("button", { type: "button", class: "button" }, "Re-drive");
    again.addEventListener("click", () =>
      redrive(
        { source: letter.source, store: letter.store, event_id: letter.event_id },
        `The ${letter.event_type} event ${letter.event_id}`,
        again,
      ),
    );
    const row = h(
      "tr",
      { dataset: { eventId: letter.event_id, source: letter.source } },
      h("td", { class: "time" }, timeElement(letter.dead_at)),
      h("td", null, h("span", { class: `badge source-${letter.source}` }, letter.source)),
      h("td", null, h("code", null, letter.store)),
      h("td", null, h("span", { class: "msg-type" }, letter.event_type ?? "—")),
      h("td", { class: "muted" }, letter.aggregate_id ? `${letter.aggregate_type} ${letter.aggregate_id}` : "—"),
      h("td", { class: "error-text ops-letter-error" }, letter.error ?? ""),
      h("td", { class: "num" }, String(letter.attempts)),
      h("td", null, h("div", { class: "ops-row-actions" }, details, again)),
    );
    if (!open) return [row];
    const json = (value) => h("pre", { class: "ops-json" }, JSON.stringify(value, null, 2));
    return [
      row,
      h(
        "tr",
        { class: "ops-details", dataset: { detailsOf: letter.event_id } },
        h(
          "td",
          { colspan: 8 },
          h(
            "dl",
            { class: "ops-facts" },
            h("dt", null, "Event id"),
            h("dd", null, h("code", null, letter.event_id)),
            h("dt", null, "Topic"),
            h("dd", null, letter.topic),
            letter.consumer ? [h("dt", null, "Consumer"), h("dd", null, letter.consumer)] : null,
          ),
          h(
            "div",
            { class: "ops-json-pair" },
            h("div", null, h("h3", null, "Payload"), json(letter.payload)),
            h("div", null, h("h3", null, "Headers"), json(letter.headers)),
          ),
        ),
      ),
    ];
  }

  async function redrive(selector, description, button) {
    const confirmed = await confirmAction({
      title: "Re-drive dead letters?",
      message: `${description} will go through the pipeline again. If its cause is not fixed it comes back here.`,
      confirm: "Re-drive",
    });
    if (!confirmed) return;
    button.disabled = true;
    try {
      const { redriven } = await api("POST", "/operations/dead-letters/redrive", { json: selector });
      notices.show("redrive", {
        kind: "success",
        title: `Re-drove ${plural(redriven, "dead letter")}`,
        message: redriven ? "Sent again: a letter leaves this list once it is through." : "Nothing was left to send.",
        timeout: 6000,
      });
    } catch (error) {
      if (!(error instanceof SessionEnded)) notices.error("redrive", error, "The re-drive was refused");
    } finally {
      button.disabled = false;
      poll.now();
    }
  }

  function stuckContent({ failed, orphans }) {
    return [
      h("h3", null, "Failed sagas"),
      dataTable(
        headings(["Order", "Reason", "Failed at", "Actions"]),
        failed.length
          ? failed.map((saga) => {
              const retry = h("button", { type: "button", class: "button primary" }, "Retry");
              retry.addEventListener("click", () => retrySaga(saga.order_id, retry));
              const cancel = h("button", { type: "button", class: "button" }, "Cancel order");
              cancel.addEventListener("click", () => cancelOrder(saga.order_id, cancel));
              return h(
                "tr",
                { dataset: { orderId: saga.order_id } },
                h("td", null, h("a", { class: "order-link", href: `#/sagas/${saga.order_id}` }, saga.order_id)),
                h("td", { class: "reason" }, saga.reason ?? ""),
                h("td", { class: "time" }, timeElement(saga.updated_at)),
                h("td", null, h("div", { class: "ops-row-actions" }, retry, cancel)),
              );
            })
          : empty("No saga has failed.", 4),
      ),
      h("h3", null, "Orders the reconciler published again"),
      dataTable(
        headings(["Order", "Placed", "Published again", "Total"], ["Total"]),
        orphans.length
          ? orphans.map((order) =>
              h(
                "tr",
                { dataset: { orderId: order._id } },
                h("td", null, h("a", { class: "order-link", href: `#/sagas/${order._id}` }, order._id)),
                h("td", { class: "time" }, timeElement(order.created_at)),
                h("td", { class: "time" }, timeElement(order.placed_again_at)),
                h("td", { class: "num" }, formatMoney(order.total_price)),
              ),
            )
          : empty("None: every order placed reached its saga.", 4),
      ),
    ];
  }

  async function retrySaga(orderId, button) {
    button.disabled = true;
    try {
      const saga = await api("POST", `/sagas/${encodeURIComponent(orderId)}/retry`);
      notices.show("retry", { kind: "success", title: "Retry started", message: `The saga is ${saga.state} again.` });
    } catch (error) {
      if (!(error instanceof SessionEnded)) notices.error("retry", error, "The retry was refused");
    } finally {
      button.disabled = false;
      poll.now();
    }
  }

  async function cancelOrder(orderId, button) {
    const confirmed = await confirmAction({
      title: "Cancel the order?",
      message: `Order ${orderId} is cancelled for its customer and its saga releases whatever stock it holds.`,
      confirm: "Cancel order",
    });
    if (!confirmed) return;
    button.disabled = true;
    try {
      await api("DELETE", `/orders/${encodeURIComponent(orderId)}`);
      notices.show("cancel", { kind: "success", title: "Order cancelled", message: orderId, timeout: 6000 });
    } catch (error) {
      if (!(error instanceof SessionEnded)) notices.error("cancel", error, "The cancellation was refused");
    } finally {
      button.disabled = false;
      poll.now();
    }
  }

  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        null,
        h("h1", null, "Operations"),
        h(
          "p",
          { class: "lede" },
          "Is anything waiting to be published, is any consumer behind, what failed for good, which orders are stuck.",
        ),
      ),
      h("div", { class: "toolbar" }, liveToggle(poll), updated.element),
    ),
    cards.outboxes.element,
    cards.consumers.element,
    cards.letters.element,
    cards.stuck.element,
  );
  poll.now();
  return { dispose: () => poll.dispose() };
}

// ------------------------------------------------------------------------------------------------ start

$("#sign-out").addEventListener("click", async () => {
  const token = session.refresh;
  session.clear();
  if (token) {
    // Revoke the refresh token's family; signing out locally does not wait for it.
    api("POST", "/auth/logout", { json: { refresh_token: token }, auth: false }).catch(() => {});
  }
  notices.clear("poll");
  notices.show("session", { kind: "info", title: "You are signed out.", timeout: 5000 });
  route();
});

window.addEventListener("hashchange", async () => {
  await route();
  focusHeading($("#main"));
});

// Never a blank page: a bug in the console shows as a message too.
window.addEventListener("error", (event) => {
  notices.show("bug", { title: "Something went wrong in the console", message: String(event.message) });
});
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof SessionEnded) return;
  notices.show("bug", {
    title: "Something went wrong in the console",
    message: String(event.reason?.message ?? event.reason),
  });
});

route();
