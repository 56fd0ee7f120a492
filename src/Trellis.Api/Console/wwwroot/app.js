// The Trellis console: plain ES module, no framework, no build step. Every value from the server is
// put on the page as text (textContent), never as HTML, so a thing named "<img onerror=…>" shows as
// those characters. API calls carry the session cookie (HttpOnly: this script cannot read it) and,
// for changes, the session's CSRF token; the role decides which buttons exist, and the server
// refuses anything the role does not allow anyway.

const main = document.getElementById("main");
let session = null;
let timer = null;

/** An element with attributes and children (strings become text nodes). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

/** A call to the API under the session; throws an Error with the server's message. */
async function api(method, path, body, service) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-Trellis-Csrf"] = session.csrfToken;
  if (service) headers["X-Trellis-Service"] = service;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (response.status === 401 && path !== "/console/session") { session = null; render(); }
  if (!response.ok) {
    const error = new Error(json.message || json.Message || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.type = response.headers.get("x-amzn-ErrorType") || json.__type || "";
    throw error;
  }
  return json;
}

const canChange = () => session && session.role !== "viewer";
const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

function show(...nodes) {
  clearInterval(timer);
  main.replaceChildren(...nodes);
}

function signIn() {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  const message = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "signin", onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = "";
      try {
        session = await api("POST", "/console/session", { accessKeyId: form.key.value.trim(), secretAccessKey: form.secret.value });
        render();
      } catch (error) { message.textContent = error.message; }
    } },
    el("h1", {}, "Sign in to Trellis"),
    el("p", {}, "With an API user's access key id and secret (trellis users create), or the admin key in the data folder's credentials file."),
    el("label", { for: "key" }, "Access key id"), el("input", { id: "key", name: "key", autocomplete: "username", required: true }),
    el("label", { for: "secret" }, "Secret access key"), el("input", { id: "secret", name: "secret", type: "password", autocomplete: "current-password", required: true }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")),
    message);
  show(form);
  form.key.focus();
}

async function overview() {
  const cards = el("div", { class: "cards", "aria-live": "polite" });
  const error = el("p", { class: "error" });
  show(el("h1", {}, "Overview"), cards, error);
  const labels = [["things", "Things"], ["online", "Online now"], ["messagesInPerSecond", "Messages in /s"], ["messagesOutPerSecond", "Messages out /s"],
    ["activeAlarms", "Active alarms"], ["runningJobs", "Running jobs"], ["storageBytes", "Storage"]];
  const refresh = async () => {
    try {
      const summary = await api("GET", "/api/fleet/summary");
      cards.replaceChildren(...labels.map(([field, label]) => el("div", { class: "card", "data-field": field },
        el("div", { class: "value" }, field === "storageBytes" ? `${(summary[field] / 1048576).toFixed(1)} MiB` : summary[field] ?? 0),
        el("div", { class: "label" }, label))));
      error.textContent = "";
    } catch (e) { error.textContent = e.message; }
  };
  await refresh();
  timer = setInterval(refresh, 2000);
}

async function things() {
  const list = el("tbody");
  const filter = el("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter things by name" });
  const message = el("p", { class: "error", role: "alert" });
  let all = [];
  const draw = () => {
    const shown = all.filter((t) => t.thingName.toLowerCase().includes(filter.value.toLowerCase()));
    list.replaceChildren(...(shown.length ? shown.map((t) => el("tr", {},
      el("td", {}, el("a", { href: `#/things/${encodeURIComponent(t.thingName)}` }, t.thingName)),
      el("td", {}, t.thingTypeName ?? ""),
      el("td", {}, Object.entries(t.attributes ?? {}).map(([k, v]) => `${k}=${v}`).join(", ")),
      el("td", {}, canChange() ? el("button", { class: "danger", type: "button", "aria-label": `Delete ${t.thingName}`, onclick: async () => {
        if (!confirm(`Delete ${t.thingName}?`)) return;
        try { await api("DELETE", `/things/${encodeURIComponent(t.thingName)}`); await load(); } catch (e) { message.textContent = e.message; }
      } }, "Delete") : "")))
      : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, all.length ? "No thing matches the filter." : "No things yet."))]));
  };
  const load = async () => {
    all = [];
    let token;
    do {
      const page = await api("GET", `/things?maxResults=250${token ? `&nextToken=${encodeURIComponent(token)}` : ""}`);
      all.push(...(page.things ?? []));
      token = page.nextToken;
    } while (token && all.length < 5000);
    draw();
  };
  filter.addEventListener("input", draw);
  const create = canChange() ? el("form", { class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = "";
      try { await api("POST", `/things/${encodeURIComponent(create.name.value.trim())}`, {}); create.reset(); await load(); } catch (e) { message.textContent = e.message; }
    } }, el("input", { name: "name", placeholder: "New thing name", "aria-label": "New thing name", required: true }), el("button", { type: "submit" }, "Create thing")) : "";
  show(el("h1", {}, "Things"), create, el("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, filter), message,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Type"), el("th", {}, "Attributes"), el("th", {}, ""))), list));
  try { await load(); } catch (e) { message.textContent = e.message; }
}

const SVG = "http://www.w3.org/2000/svg";
const RANGES = { hour: [3600, 60], day: [86400, 900], week: [604800, 3600] };

/** A line chart of one measure's per-bucket averages as SVG (drawn here: no chart library). */
function chart(measure, buckets, seconds) {
  const width = 560, height = 160, pad = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("data-measure", measure);
  const points = buckets.filter((b) => b.avg !== null && b.avg !== undefined);
  svg.setAttribute("data-points", String(points.length));
  svg.setAttribute("aria-label", `${measure}: ${points.length} points over the last ${seconds / 3600} h`);
  const text = (x, y, value, anchor = "start") => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor); t.setAttribute("class", "axis");
    t.textContent = value;
    svg.append(t);
  };
  if (points.length === 0) { text(width / 2, height / 2, "no points in this range", "middle"); return svg; }
  const now = Date.now(), from = now - seconds * 1000;
  let low = Math.min(...points.map((p) => p.min ?? p.avg)), high = Math.max(...points.map((p) => p.max ?? p.avg));
  if (low === high) { low -= 1; high += 1; }
  const x = (t) => pad + ((t - from) / (now - from)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - low) / (high - low)) * (height - 2 * pad);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map((p) => `${x(p.t).toFixed(1)},${y(p.avg).toFixed(1)}`).join(" "));
  line.setAttribute("class", "line");
  svg.append(line);
  for (const p of points.slice(-120)) { // a dot per bucket, so that one reading shows too
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(p.t).toFixed(1)); dot.setAttribute("cy", y(p.avg).toFixed(1)); dot.setAttribute("r", "2.5"); dot.setAttribute("class", "dot");
    svg.append(dot);
  }
  text(4, pad, String(+high.toPrecision(4)));
  text(4, height - pad, String(+low.toPrecision(4)));
  text(pad, height - 6, new Date(from).toLocaleTimeString());
  text(width - pad, height - 6, new Date(now).toLocaleTimeString(), "end");
  return svg;
}

/** The thing's measures from the time-series store, charted over a range, redrawn every 5 s. */
async function telemetry(name, section) {
  let range = "hour";
  const charts = el("div", { class: "charts" });
  const picker = el("div", { class: "inline", role: "group", "aria-label": "Chart range" },
    ...Object.keys(RANGES).map((r) => el("button", { type: "button", class: "secondary", "data-range": r, onclick: () => { range = r; draw(); } }, `Last ${r}`)));
  section.replaceChildren(el("h2", {}, "Telemetry"), picker, charts);
  const draw = async () => {
    const [seconds, bucket] = RANGES[range];
    try {
      const latest = await api("GET", `/api/telemetry/things/${encodeURIComponent(name)}`);
      if (!latest.measures.length) { charts.replaceChildren(el("p", { class: "empty" }, "No telemetry stored for this thing (a rule with the timestream action stores it: docs/telemetry.md).")); return; }
      const from = Date.now() - seconds * 1000;
      const drawn = await Promise.all(latest.measures.slice(0, 8).map(async (m) => {
        const data = await api("GET", `/api/telemetry/things/${encodeURIComponent(name)}/${encodeURIComponent(m.measure)}/downsample?from=${from}&bucketSeconds=${bucket}`);
        return el("figure", {}, el("figcaption", {}, `${m.measure}: ${+m.v.toPrecision(6)} at ${new Date(m.t).toLocaleTimeString()}`), chart(m.measure, data.buckets, seconds));
      }));
      charts.replaceChildren(...drawn);
    } catch (e) { charts.replaceChildren(el("p", { class: "error" }, e.message)); }
  };
  await draw();
  if (section.isConnected) timer = setInterval(draw, 5000); // not when the page was left meanwhile
}

async function thing(name) {
  const message = el("p", { class: "error", role: "alert" });
  const info = el("div");
  const shadowView = el("div", { class: "columns" });
  const telemetrySection = el("section");
  show(el("h1", {}, name), message, info, el("h2", {}, "Shadow"), shadowView, telemetrySection);
  try {
    const [described, connectivity] = await Promise.all([
      api("GET", `/things/${encodeURIComponent(name)}`),
      api("POST", `/things/${encodeURIComponent(name)}/connectivity-data`).catch(() => ({})),
    ]);
    info.replaceChildren(el("table", {}, el("tbody", {},
      el("tr", {}, el("th", {}, "Connected"), el("td", { "data-field": "connected" }, connectivity.connected ? `yes, since ${when(connectivity.timestamp)}` : `no${connectivity.disconnectReason && connectivity.disconnectReason !== "NONE" ? ` (${connectivity.disconnectReason})` : ""}`)),
      el("tr", {}, el("th", {}, "Type"), el("td", {}, described.thingTypeName ?? "")),
      ...Object.entries(described.attributes ?? {}).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))));
  } catch (e) { message.textContent = e.message; return; }
  if (canChange()) {
    const note = el("p", { role: "status" });
    info.append(el("p", {}, el("button", { type: "button", class: "secondary", onclick: async () => {
      note.className = ""; note.textContent = "";
      try {
        const response = await fetch(`/api/things/${encodeURIComponent(name)}/bundle`, { method: "POST", headers: { "X-Trellis-Csrf": session.csrfToken }, credentials: "same-origin" });
        if (!response.ok) throw new Error((await response.json().catch(() => ({}))).message || `${response.status} ${response.statusText}`);
        const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${name}-bundle.zip` });
        document.body.append(link);
        link.click();
        link.remove();
        note.textContent = `Downloaded ${name}-bundle.zip: a new certificate and its key (kept nowhere else), ca.pem and connect.sh. Unzip it on the device and run ${name}/connect.sh.`;
      } catch (e) { note.className = "error"; note.textContent = e.message; }
    } }, "Download a device bundle")), note);
  }

  let shadow = { state: {}, version: undefined };
  try { shadow = await api("GET", `/things/${encodeURIComponent(name)}/shadow`, undefined, "iotdata"); }
  catch (e) { if (e.status !== 404) message.textContent = e.message; }
  const part = (label, value) => el("div", {}, el("h3", {}, label), el("pre", { "data-part": label.toLowerCase() }, value === undefined ? "—" : JSON.stringify(value, null, 2)));
  const editor = el("textarea", { "aria-label": "Desired state (JSON)" }, JSON.stringify(shadow.state?.desired ?? {}, null, 2));
  const result = el("p", { role: "status" });
  shadowView.replaceChildren(part("Desired", shadow.state?.desired), part("Reported", shadow.state?.reported), part("Delta", shadow.state?.delta));
  telemetry(name, telemetrySection);
  if (!canChange()) return;
  shadowView.after(el("form", { onsubmit: async (event) => {
      event.preventDefault();
      result.className = ""; result.textContent = "";
      let desired;
      try { desired = JSON.parse(editor.value); } catch (e) { result.className = "error"; result.textContent = `Not JSON: ${e.message}`; return; }
      const update = { state: { desired } };
      if (shadow.version !== undefined) update.version = shadow.version;
      try {
        await api("POST", `/things/${encodeURIComponent(name)}/shadow`, update, "iotdata");
        await thing(name);
      } catch (e) {
        result.className = "error";
        result.textContent = e.status === 409 ? "The shadow changed meanwhile (the device or someone else wrote a newer version): reload to see it, then edit again." : e.message;
      }
    } }, el("h2", {}, "Edit desired state"), editor, el("p", {}, el("button", { type: "submit" }, "Update desired")), result));
}

async function rules() {
  const list = el("tbody");
  const message = el("p", { class: "error", role: "alert" });
  const load = async () => {
    const answer = await api("GET", "/rules?maxResults=1000");
    const items = answer.rules ?? [];
    list.replaceChildren(...(items.length ? items.map((r) => el("tr", {},
      el("td", {}, r.ruleName), el("td", {}, r.topicPattern ?? ""), el("td", {}, r.ruleDisabled ? "disabled" : "enabled"),
      el("td", {}, canChange() ? el("button", { type: "button", class: "secondary", onclick: async () => {
        try { await api("POST", `/rules/${encodeURIComponent(r.ruleName)}/${r.ruleDisabled ? "enable" : "disable"}`); await load(); } catch (e) { message.textContent = e.message; }
      } }, r.ruleDisabled ? "Enable" : "Disable") : "")))
      : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No rules yet."))]));
  };
  const form = canChange() ? el("form", { onsubmit: async (event) => {
      event.preventDefault();
      result.className = ""; result.textContent = "";
      let actions;
      try { actions = JSON.parse(form.actions.value); } catch (e) { result.className = "error"; result.textContent = `The actions are not JSON: ${e.message}`; return; }
      try {
        await api("POST", `/rules/${encodeURIComponent(form.rule.value.trim())}`, { sql: form.sql.value, actions: Array.isArray(actions) ? actions : [actions] });
        result.className = "ok"; result.textContent = `Rule ${form.rule.value.trim()} created.`;
        await load();
      } catch (e) { result.className = "error"; result.textContent = e.message; } // a SQL mistake names its line and column
    } },
    el("h2", {}, "New rule"),
    el("p", {}, el("input", { name: "rule", placeholder: "rule_name", "aria-label": "Rule name", required: true, pattern: "[a-zA-Z0-9_]+" })),
    el("textarea", { name: "sql", "aria-label": "Rule SQL", spellcheck: "false" }, "SELECT temp, topic(2) AS device\nFROM 'plant/+/telemetry'\nWHERE temp > 30"),
    el("textarea", { name: "actions", "aria-label": "Actions (JSON)", spellcheck: "false" }, JSON.stringify([{ republish: { topic: "alerts/${topic(2)}", roleArn: "arn:aws:iam::000000000000:role/any" } }], null, 2)),
    el("p", {}, el("button", { type: "submit" }, "Create rule"))) : "";
  const result = el("p", { role: "status", "data-field": "rule-result" });
  show(el("h1", {}, "Rules"), message, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Topic"), el("th", {}, "State"), el("th", {}, ""))), list), form, result);
  try { await load(); } catch (e) { message.textContent = e.message; }
}

async function render() {
  if (!session) {
    try { session = await api("GET", "/console/session"); } catch { session = null; }
  }
  if (!session) { signIn(); return; }
  document.getElementById("nav").hidden = false;
  const signout = document.getElementById("signout");
  signout.hidden = false;
  document.getElementById("who").textContent = `${session.name} (${session.role})`;
  const route = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  if (route === "things") await things();
  else if (route === "rules") await rules();
  else if (route.startsWith("things/")) await thing(route.slice("things/".length));
  else await overview();
}

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("DELETE", "/console/session"); } finally { session = null; location.hash = "#/"; signIn(); }
});
window.addEventListener("hashchange", render);
render();
