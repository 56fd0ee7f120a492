// The Trellis console: plain ES module, no framework, no build step. Every value from the server is
// put on the page as text (textContent), never as HTML, so a thing named "<img onerror=…>" shows as
// those characters. API calls carry the session cookie (HttpOnly: this script cannot read it) and,
// for changes, the session's CSRF token; the role decides which buttons exist, and the server
// refuses anything the role does not allow anyway.

import { MqttClient } from "./mqtt.js";

const main = document.getElementById("main");
let session = null;
let timer = null;
let live = null; // the page's MQTT connection, closed when the page is left

/** An element with attributes and children (strings become text nodes). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
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
  if (live) { live.close(); live = null; }
  main.replaceChildren(...nodes);
}

/**
 * Opens the page's MQTT connection as the signed-in user (closed by the next show()). `anchor` is
 * an element of the page: when it has left the document (the user moved on while the page was
 * still loading) nothing is opened, and a connection that completes after that is closed.
 */
async function openLive(anchor, onMessage, onState) {
  if (!anchor.isConnected) throw new Error("the page was left");
  const client = new MqttClient(onMessage, onState);
  if (live) live.close();
  live = client;
  await client.connect(`console-${(session.name || "user").replace(/[^A-Za-z0-9_-]/g, "")}-${Math.random().toString(36).slice(2, 10)}`);
  if (!anchor.isConnected) { client.close(); throw new Error("the page was left"); }
  return client;
}

/** Repeats `run` every `ms` while `anchor` is on the page (the next show() stops it). */
function every(anchor, run, ms) {
  if (anchor.isConnected) timer = setInterval(run, ms);
}

/** A table with a header row; rows are arrays of cells; an empty list shows `empty`. */
function table(headers, rows, empty, attributes = {}) {
  return el("table", attributes, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))
      : [el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, empty))]));
}

/** The operations that page with marker and pageSize (AWS's older style) instead of nextToken and maxResults. */
const MARKER_PAGED = /^\/(policies|certificates|cacertificates)(\?|$)/;

/** Every page of a List operation, up to `limit` items. */
async function listAll(path, field, limit = 2000, service) {
  const items = [];
  const marker = MARKER_PAGED.test(path);
  let token;
  do {
    const paging = marker ? `pageSize=250${token ? `&marker=${encodeURIComponent(token)}` : ""}` : `maxResults=250${token ? `&nextToken=${encodeURIComponent(token)}` : ""}`;
    const page = await api("GET", `${path}${path.includes("?") ? "&" : "?"}${paging}`, undefined, service);
    items.push(...(page[field] ?? []));
    token = marker ? page.nextMarker : page.nextToken;
  } while (token && items.length < limit);
  return items;
}

/** A button that runs an action, shows its error in `message`, then reloads with `after`. */
function action(label, message, run, after, className = "secondary") {
  return el("button", { type: "button", class: className, onclick: async () => {
    message.className = "error"; message.textContent = "";
    try { await run(); if (after) await after(); } catch (e) { message.textContent = e.message; }
  } }, label);
}

const msgTime = (ms) => new Date(ms).toLocaleTimeString();
const payloadText = (bytes) => { try { return new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { return `(${bytes.length} bytes, not UTF-8)`; } };

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
  every(cards, refresh, 2000);
}

const PAGE = 50;

async function things() {
  const body = el("div");
  const message = el("p", { class: "error", role: "alert" });
  const status = el("p", { class: "muted", role: "status" });
  const query = el("input", { type: "search", name: "query", "aria-label": "Search things" });
  const pager = el("div", { class: "inline" });
  let indexed = false, all = [], start = 0, tokens = [undefined], pageIndex = 0;
  try { indexed = (await api("GET", "/indexing/config")).thingIndexingConfiguration?.thingIndexingMode !== "OFF"; } catch { indexed = false; }
  query.placeholder = indexed ? "Fleet index query, e.g. connectivity.connected:true AND attributes.floor:3" : "Filter by name";

  const groups = canChange() ? await listAll("/thing-groups", "thingGroups").catch(() => []) : [];
  const groupPicker = el("select", { "aria-label": "Thing group" }, el("option", { value: "" }, "Add selected to group…"), groups.map((g) => el("option", { value: g.groupName }, g.groupName)));

  const draw = async (rows, connectivity) => {
    body.replaceChildren(table(["", "Name", "Connected", "Type", "Attributes", ""], rows.map((t) => [
      canChange() ? el("input", { type: "checkbox", "aria-label": `Select ${t.thingName}`, "data-thing": t.thingName }) : "",
      el("a", { href: `#/things/${encodeURIComponent(t.thingName)}` }, t.thingName),
      el("span", { "data-field": "connected", class: connectivity(t) === true ? "ok" : "muted" }, connectivity(t) === true ? "online" : connectivity(t) === false ? "offline" : "—"),
      t.thingTypeName ?? "",
      Object.entries(t.attributes ?? {}).map(([k, v]) => `${k}=${v}`).join(", "),
      canChange() ? el("button", { class: "danger", type: "button", "aria-label": `Delete ${t.thingName}`, onclick: async () => {
        if (!confirm(`Delete ${t.thingName}?`)) return;
        try { await api("DELETE", `/things/${encodeURIComponent(t.thingName)}`); await load(); } catch (e) { message.textContent = e.message; }
      } }, "Delete") : ""]), all.length || query.value ? "No thing matches." : "No things yet.", { "data-table": "things" }));
  };

  // Connectivity of the rows shown, one call each (the fleet index's results carry it already).
  const connected = async (rows) => {
    const answers = await Promise.all(rows.map((t) => api("POST", `/things/${encodeURIComponent(t.thingName)}/connectivity-data`).catch(() => ({}))));
    const byName = new Map(rows.map((t, i) => [t.thingName, answers[i].connected]));
    return (t) => byName.get(t.thingName);
  };

  const pageButtons = (hasPrevious, hasNext, total) => pager.replaceChildren(
    el("button", { type: "button", class: "secondary", disabled: !hasPrevious, onclick: () => move(-1) }, "Previous"),
    el("button", { type: "button", class: "secondary", disabled: !hasNext, onclick: () => move(1) }, "Next"),
    el("span", { class: "muted" }, total));

  // Only the latest drawing shows: one started before the search box changed (the first load's,
  // waiting on its rows' connectivity) must not replace the search's rows when it ends later.
  let drawing = 0;
  const drawPage = async () => {
    const mine = ++drawing;
    message.textContent = "";
    if (indexed && query.value.trim()) {
      const found = await api("POST", "/indices/search", { indexName: "AWS_Things", queryString: query.value.trim(), maxResults: PAGE, nextToken: tokens[pageIndex] });
      if (mine !== drawing) return;
      if (found.nextToken) tokens[pageIndex + 1] = found.nextToken;
      const rows = (found.things ?? []).map((t) => ({ ...t, attributes: t.attributes ?? {} }));
      await draw(rows, (t) => t.connectivity?.connected);
      pageButtons(pageIndex > 0, !!found.nextToken, `page ${pageIndex + 1}`);
      return;
    }
    const filter = indexed ? "" : query.value.toLowerCase();
    const matching = all.filter((t) => t.thingName.toLowerCase().includes(filter));
    const rows = matching.slice(start, start + PAGE);
    const connectivity = await connected(rows);
    if (mine !== drawing) return;
    await draw(rows, connectivity);
    pageButtons(start > 0, start + PAGE < matching.length, matching.length ? `${start + 1}–${start + rows.length} of ${matching.length}` : "");
  };
  const move = async (step) => {
    if (indexed && query.value.trim()) pageIndex = Math.max(0, pageIndex + step); else start = Math.max(0, start + step * PAGE);
    try { await drawPage(); } catch (e) { message.textContent = e.message; }
  };
  const load = async () => {
    all = await listAll("/things", "things", 10000);
    await drawPage();
  };
  let typing;
  query.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(async () => { start = 0; pageIndex = 0; tokens = [undefined]; try { await drawPage(); } catch (e) { message.textContent = e.message; } }, indexed ? 400 : 0);
  });

  const create = canChange() ? el("form", { class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = "";
      try { await api("POST", `/things/${encodeURIComponent(create.name.value.trim())}`, {}); create.reset(); await load(); } catch (e) { message.textContent = e.message; }
    } }, el("input", { name: "name", placeholder: "New thing name", "aria-label": "New thing name", required: true }), el("button", { type: "submit" }, "Create thing")) : "";
  const addToGroup = canChange() ? el("div", { class: "inline" }, groupPicker, el("button", { type: "button", class: "secondary", onclick: async () => {
      const picked = [...body.querySelectorAll("input[data-thing]:checked")].map((box) => box.dataset.thing);
      status.textContent = ""; message.textContent = "";
      if (!groupPicker.value || !picked.length) { message.textContent = "Select things and a group first."; return; }
      try {
        for (const thingName of picked) await api("PUT", "/thing-groups/addThingToThingGroup", { thingGroupName: groupPicker.value, thingName });
        status.textContent = `Added ${picked.length} thing${picked.length === 1 ? "" : "s"} to ${groupPicker.value}.`;
      } catch (e) { message.textContent = e.message; }
    } }, "Add to group")) : "";
  show(el("h1", {}, "Things"), create, el("form", { class: "inline", role: "search", onsubmit: (e) => e.preventDefault() }, query), addToGroup, message, status, body, pager);
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
  every(section, draw, 5000); // not when the page was left meanwhile
  return draw;
}

/** What the thing is part of: groups, certificates (revocable), policies in effect, jobs, alarms. */
async function thingParts(name, section) {
  const message = el("p", { class: "error", role: "alert" });
  const reload = () => thingParts(name, section);
  const [groups, principals, jobs, alarms, violations] = await Promise.all([
    listAll(`/things/${encodeURIComponent(name)}/thing-groups`, "thingGroups").catch(() => []),
    listAll(`/things/${encodeURIComponent(name)}/principals`, "principals").catch(() => []),
    listAll(`/things/${encodeURIComponent(name)}/jobs`, "executionSummaries").catch(() => []),
    api("GET", `/api/alarms?thing=${encodeURIComponent(name)}&state=ACTIVE,ACKNOWLEDGED`).then((a) => a.alarms ?? []).catch(() => []),
    api("GET", `/active-violations?thingName=${encodeURIComponent(name)}`).then((v) => v.activeViolations ?? []).catch(() => []),
  ]);
  const certificates = await Promise.all(principals.filter((p) => p.includes(":cert/")).map(async (arn) => {
    const id = arn.slice(arn.lastIndexOf("/") + 1);
    const [described, policies] = await Promise.all([
      api("GET", `/certificates/${id}`).then((d) => d.certificateDescription).catch(() => ({ certificateId: id, status: "?" })),
      api("POST", `/attached-policies/${encodeURIComponent(arn)}?recursive=true&pageSize=250`).then((a) => a.policies ?? []).catch(() => []),
    ]);
    return { id, arn, status: described.status, created: described.creationDate, policies };
  }));
  const groupPolicies = await Promise.all(groups.map(async (g) => ({ group: g.groupName, policies: await api("POST", `/attached-policies/${encodeURIComponent(g.groupArn)}?pageSize=250`).then((a) => a.policies ?? []).catch(() => []) })));
  const policyRows = [
    ...certificates.flatMap((c) => c.policies.map((p) => [el("a", { href: `#/policies/${encodeURIComponent(p.policyName)}` }, p.policyName), `certificate ${c.id.slice(0, 12)}…`])),
    ...groupPolicies.flatMap((g) => g.policies.map((p) => [el("a", { href: `#/policies/${encodeURIComponent(p.policyName)}` }, p.policyName), `group ${g.group}`])),
  ];
  section.replaceChildren(
    el("h2", {}, "Groups"),
    groups.length ? el("p", {}, groups.map((g, i) => [i ? ", " : "", el("a", { href: `#/groups/${encodeURIComponent(g.groupName)}` }, g.groupName)])) : el("p", { class: "empty" }, "In no thing group."),
    el("h2", {}, "Certificates"), message,
    table(["Certificate", "Status", "Created", ""], certificates.map((c) => [
      el("code", {}, c.id), el("span", { "data-field": "certificate-status" }, c.status), when(c.created),
      canChange() && c.status === "ACTIVE" ? action("Revoke", message, async () => {
        if (!confirm(`Revoke certificate ${c.id}? The device using it is disconnected and cannot connect with it again.`)) throw new Error("Not revoked.");
        await api("PUT", `/certificates/${c.id}?newStatus=REVOKED`);
      }, reload, "danger") : ""]), "No certificate attached (devices with tokens have none)."),
    el("h2", {}, "Policies in effect"),
    table(["Policy", "Attached to"], policyRows, "No policy: the thing's principals may not connect."),
    el("h2", {}, "Job executions"),
    table(["Job", "Status", "Queued", "Last update"], jobs.map((j) => [
      el("a", { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, j.jobId), j.jobExecutionSummary?.status ?? "", when(j.jobExecutionSummary?.queuedAt), when(j.jobExecutionSummary?.lastUpdatedAt)]), "No job executions."),
    el("h2", {}, "Alarms and violations"),
    table(["What", "Severity or behavior", "State", "Since"], [
      ...alarms.map((a) => [el("a", { href: "#/alarms" }, a.model), a.severity, a.state, when(a.startedAt)]),
      ...violations.map((v) => [`violation of ${v.securityProfileName}`, v.behavior?.name ?? "", v.verificationState ?? "active", when(v.violationStartTime)]),
    ], "No open alarms or violations."));
}

async function thing(name) {
  const message = el("p", { class: "error", role: "alert" });
  const info = el("div");
  const shadowView = el("div", { class: "columns" });
  const shadowTabs = el("div", { class: "inline", role: "tablist", "aria-label": "Shadows" });
  const parts = el("section");
  const telemetrySection = el("section");
  const recent = el("ol", { class: "messages", "aria-live": "polite", "data-list": "recent" });
  const liveState = el("span", { class: "muted", "data-field": "live" }, "connecting…");
  show(el("h1", {}, name), message, info, el("h2", {}, "Shadow"), shadowTabs, shadowView, telemetrySection,
    el("h2", {}, "Recent messages ", liveState), recent, parts);
  try {
    const [described, connectivity] = await Promise.all([
      api("GET", `/things/${encodeURIComponent(name)}`),
      api("POST", `/things/${encodeURIComponent(name)}/connectivity-data`).catch(() => ({})),
    ]);
    info.replaceChildren(el("table", {}, el("tbody", {},
      el("tr", {}, el("th", {}, "Connected"), el("td", { "data-field": "connected" }, connectivity.connected ? `yes, since ${when(connectivity.timestamp)}` : `no${connectivity.disconnectReason && connectivity.disconnectReason !== "NONE" ? ` (${connectivity.disconnectReason})` : ""}`)),
      el("tr", {}, el("th", {}, "Type"), el("td", {}, described.thingTypeName ? el("a", { href: "#/types" }, described.thingTypeName) : "")),
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

  const named = await api("GET", `/api/things/shadow/ListNamedShadowsForThing/${encodeURIComponent(name)}?pageSize=100`, undefined, "iotdata").then((n) => n.results ?? []).catch(() => []);
  const showShadow = async (shadowName) => {
    shadowTabs.replaceChildren(...["", ...named].map((n) => el("button", { type: "button", role: "tab", class: n === shadowName ? "" : "secondary", "aria-selected": String(n === shadowName),
      onclick: () => showShadow(n) }, n || "Classic")));
    const query = shadowName ? `?name=${encodeURIComponent(shadowName)}` : "";
    let shadow = { state: {}, version: undefined };
    try { shadow = await api("GET", `/things/${encodeURIComponent(name)}/shadow${query}`, undefined, "iotdata"); }
    catch (e) { if (e.status !== 404) message.textContent = e.message; }
    const part = (label, value) => el("div", {}, el("h3", {}, label), el("pre", { "data-part": label.toLowerCase() }, value === undefined ? "—" : JSON.stringify(value, null, 2)));
    shadowView.replaceChildren(part("Desired", shadow.state?.desired), part("Reported", shadow.state?.reported), part("Delta", shadow.state?.delta));
    main.querySelector("form[data-form=desired]")?.remove();
    if (!canChange()) return;
    const editor = el("textarea", { "aria-label": "Desired state (JSON)" }, JSON.stringify(shadow.state?.desired ?? {}, null, 2));
    const result = el("p", { role: "status" });
    shadowView.after(el("form", { "data-form": "desired", onsubmit: async (event) => {
        event.preventDefault();
        result.className = ""; result.textContent = "";
        let desired;
        try { desired = JSON.parse(editor.value); } catch (e) { result.className = "error"; result.textContent = `Not JSON: ${e.message}`; return; }
        const update = { state: { desired } };
        if (shadow.version !== undefined) update.version = shadow.version;
        try {
          await api("POST", `/things/${encodeURIComponent(name)}/shadow${query}`, update, "iotdata");
          await showShadow(shadowName);
        } catch (e) {
          result.className = "error";
          result.textContent = e.status === 409 ? "The shadow changed meanwhile (the device or someone else wrote a newer version): reload to see it, then edit again." : e.message;
        }
      } }, el("h2", {}, `Edit desired state${shadowName ? ` of ${shadowName}` : ""}`), editor, el("p", {}, el("button", { type: "submit" }, "Update desired")), result));
  };
  await showShadow("");
  const redraw = await telemetry(name, telemetrySection);
  thingParts(name, parts).catch((e) => { message.textContent = e.message; });

  // Messages on the thing's topics, live over MQTT as the signed-in user; a message redraws the charts.
  let pending;
  try {
    const client = await openLive(recent, (topic, payload) => {
      recent.prepend(el("li", {}, el("time", {}, msgTime(Date.now())), " ", el("code", {}, topic), " ", el("span", { class: "payload" }, payloadText(payload))));
      while (recent.children.length > 50) recent.lastChild.remove();
      if (redraw && !topic.startsWith("$aws/")) { clearTimeout(pending); pending = setTimeout(redraw, 500); }
    }, (text, ok) => { liveState.textContent = ok ? "live" : text; });
    const filters = [`$aws/things/${name}/#`, `${name}/#`, `+/${name}/#`, `+/+/${name}/#`];
    for (const filter of filters) await client.subscribe(filter, 0);
    liveState.textContent = "live";
  } catch (e) { liveState.textContent = `not live: ${e.message}`; }
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

  // The test box: the SQL above on a sample message, without creating anything.
  const tested = el("pre", { "data-field": "rule-test" }, "—");
  const test = canChange() ? el("form", { onsubmit: async (event) => {
      event.preventDefault();
      tested.className = "";
      try {
        const answer = await api("POST", "/api/rules/test", { sql: form.sql.value, topic: test.topic.value.trim(), payload: test.payload.value });
        tested.textContent = !answer.topicMatches ? `The topic does not match FROM '${answer.topicFilter}': the rule would not see this message.`
          : answer.where !== true ? `WHERE is ${answer.where === false ? "false" : "neither true nor false (a member the message lacks)"}: no action would run.`
            : `The actions would get:\n${JSON.stringify(answer.output, null, 2)}`;
      } catch (e) { tested.className = "error"; tested.textContent = e.message; }
    } },
    el("h2", {}, "Test the SQL on a sample message"),
    el("p", {}, el("input", { name: "topic", value: "plant/boiler-1/telemetry", "aria-label": "Sample topic", size: 40 })),
    el("textarea", { name: "payload", "aria-label": "Sample payload", spellcheck: "false" }, JSON.stringify({ temp: 35.5, hum: 40 }, null, 2)),
    el("p", {}, el("button", { type: "submit", class: "secondary" }, "Test")), tested) : "";

  const destinations = el("div");
  const loadDestinations = async () => {
    const items = await listAll("/destinations", "destinationSummaries", 500);
    destinations.replaceChildren(table(["Destination", "Status", "Reason"], items.map((d) => [d.httpUrlSummary?.confirmationUrl ?? d.arn, d.status, d.statusReason ?? ""]),
      "No HTTP destinations: an http action's URL must be confirmed as one first (docs/rules.md)."));
  };
  show(el("h1", {}, "Rules"), message, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Topic"), el("th", {}, "State"), el("th", {}, ""))), list), form, result, test,
    el("h2", {}, "Destinations"), destinations);
  try { await load(); await loadDestinations(); } catch (e) { message.textContent = e.message; }
}

/** A page's frame: a title, an error line, a body that `load` fills (again after each change). */
async function page(title, load, ...before) {
  const message = el("p", { class: "error", role: "alert" });
  const body = el("div");
  const reload = async () => { try { message.textContent = ""; await load(body, message, reload); } catch (e) { message.textContent = e.message; } };
  show(el("h1", {}, title), ...before.map((b) => (typeof b === "function" ? b(message, reload) : b)), message, body);
  await reload();
  return reload;
}

/** A one-line creation form: inputs (name → attributes), a button, and what to call. */
function createForm(label, fields, run) {
  return (message, reload) => {
    if (!canChange()) return "";
    const form = el("form", { class: "inline", onsubmit: async (event) => {
        event.preventDefault();
        message.textContent = "";
        const values = Object.fromEntries(fields.map(([name]) => [name, form.elements[name].value.trim()]));
        try { await run(values); form.reset(); await reload(); } catch (e) { message.textContent = e.message; }
      } }, fields.map(([name, attributes]) => el(attributes.tag ?? "input", { name, "aria-label": attributes.placeholder, ...attributes, tag: undefined })), el("button", { type: "submit" }, label));
    return form;
  };
}

async function groups() {
  await page("Thing groups", async (body, message, reload) => {
    const items = await listAll("/thing-groups", "thingGroups");
    body.replaceChildren(table(["Group", ""], items.map((g) => [
      el("a", { href: `#/groups/${encodeURIComponent(g.groupName)}` }, g.groupName),
      canChange() ? action("Delete", message, async () => { if (confirm(`Delete group ${g.groupName}?`)) await api("DELETE", `/thing-groups/${encodeURIComponent(g.groupName)}`); }, reload, "danger") : ""]),
      "No thing groups yet."));
  }, createForm("Create group", [["name", { placeholder: "Group name", required: true }], ["description", { placeholder: "Description" }]],
    ({ name, description }) => api("POST", `/thing-groups/${encodeURIComponent(name)}`, description ? { thingGroupProperties: { thingGroupDescription: description } } : {})));
}

async function group(name) {
  await page(`Group ${name}`, async (body, message, reload) => {
    const [described, members] = await Promise.all([api("GET", `/thing-groups/${encodeURIComponent(name)}`), listAll(`/thing-groups/${encodeURIComponent(name)}/things`, "things")]);
    const policies = await api("POST", `/attached-policies/${encodeURIComponent(described.thingGroupArn)}?pageSize=250`).then((a) => a.policies ?? []).catch(() => []);
    body.replaceChildren(
      el("p", {}, described.thingGroupProperties?.thingGroupDescription ?? "", described.queryString ? ` Dynamic: ${described.queryString}` : ""),
      el("h2", {}, "Policies attached"), el("p", {}, policies.length ? policies.map((p, i) => [i ? ", " : "", el("a", { href: `#/policies/${encodeURIComponent(p.policyName)}` }, p.policyName)]) : "None."),
      el("h2", {}, `Members (${members.length})`),
      table(["Thing", ""], members.map((t) => [el("a", { href: `#/things/${encodeURIComponent(t)}` }, t),
        canChange() && !described.queryString ? action("Remove", message, () => api("PUT", "/thing-groups/removeThingFromThingGroup", { thingGroupName: name, thingName: t }), reload) : ""]), "No members."));
  }, createForm("Add thing", [["thing", { placeholder: "Thing name", required: true }]], ({ thing }) => api("PUT", "/thing-groups/addThingToThingGroup", { thingGroupName: name, thingName: thing })));
}

async function types() {
  await page("Thing types", async (body, message, reload) => {
    const items = await listAll("/thing-types", "thingTypes");
    body.replaceChildren(table(["Type", "Searchable attributes", "State", ""], items.map((t) => [
      t.thingTypeName, (t.thingTypeProperties?.searchableAttributes ?? []).join(", "), t.thingTypeMetadata?.deprecated ? "deprecated" : "active",
      canChange() ? el("span", { class: "inline" },
        t.thingTypeMetadata?.deprecated ? "" : action("Deprecate", message, () => api("POST", `/thing-types/${encodeURIComponent(t.thingTypeName)}/deprecate`, {}), reload),
        action("Delete", message, () => api("DELETE", `/thing-types/${encodeURIComponent(t.thingTypeName)}`), reload, "danger")) : ""]),
      "No thing types yet."));
  }, createForm("Create type", [["name", { placeholder: "Type name", required: true }], ["attributes", { placeholder: "Searchable attributes, comma-separated" }]],
    ({ name, attributes }) => api("POST", `/thing-types/${encodeURIComponent(name)}`, attributes ? { thingTypeProperties: { searchableAttributes: attributes.split(",").map((a) => a.trim()).filter(Boolean) } } : {})));
}

const POLICY_EXAMPLE = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["iot:Connect"], Resource: ["arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"] },
  { Effect: "Allow", Action: ["iot:Publish", "iot:Receive"], Resource: ["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"] },
  { Effect: "Allow", Action: ["iot:Subscribe"], Resource: ["arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*"] }] }, null, 2);

/** Checks a policy document before it is sent: JSON, then the server says what AWS's grammar refuses. */
function policyJson(text) {
  try { return JSON.stringify(JSON.parse(text)); } catch (e) { throw new Error(`The policy is not JSON: ${e.message}`); }
}

async function policies() {
  await page("Policies", async (body, message, reload) => {
    const items = await listAll("/policies", "policies");
    body.replaceChildren(table(["Policy", ""], items.map((p) => [el("a", { href: `#/policies/${encodeURIComponent(p.policyName)}` }, p.policyName),
      canChange() ? action("Delete", message, async () => { if (confirm(`Delete policy ${p.policyName}?`)) await api("DELETE", `/policies/${encodeURIComponent(p.policyName)}`); }, reload, "danger") : ""]),
      "No policies yet."));
    if (!canChange()) return;
    const form = el("form", { onsubmit: async (event) => {
        event.preventDefault();
        message.textContent = "";
        try { await api("POST", `/policies/${encodeURIComponent(form.elements.name.value.trim())}`, { policyDocument: policyJson(form.elements.document.value) }); await reload(); }
        catch (e) { message.textContent = e.message; }
      } }, el("h2", {}, "New policy"), el("p", {}, el("input", { name: "name", placeholder: "Policy name", "aria-label": "Policy name", required: true })),
      el("textarea", { name: "document", "aria-label": "Policy document (JSON)", spellcheck: "false", class: "tall" }, POLICY_EXAMPLE),
      el("p", {}, el("button", { type: "submit" }, "Create policy")));
    body.append(form);
  });
}

async function policy(name) {
  await page(`Policy ${name}`, async (body, message, reload) => {
    const [described, versions, targets] = await Promise.all([
      api("GET", `/policies/${encodeURIComponent(name)}`),
      api("GET", `/policies/${encodeURIComponent(name)}/version`).then((v) => v.policyVersions ?? []),
      api("POST", `/policy-targets/${encodeURIComponent(name)}?pageSize=250`).then((t) => t.targets ?? []).catch(() => []),
    ]);
    const pretty = JSON.stringify(JSON.parse(described.policyDocument), null, 2);
    const result = el("p", { role: "status", "data-field": "policy-result" });
    body.replaceChildren(
      el("p", {}, `Default version ${described.defaultVersionId}; versions ${versions.map((v) => v.versionId).join(", ")}.`),
      el("h2", {}, "Attached to"), table(["Target"], targets.map((t) => [t]), "Attached to nothing."),
      el("h2", {}, "Document"),
      canChange() ? el("form", { onsubmit: async (event) => {
          event.preventDefault();
          result.className = ""; result.textContent = "";
          try {
            const made = await api("POST", `/policies/${encodeURIComponent(name)}/version?setAsDefault=true`, { policyDocument: policyJson(event.target.elements.document.value) });
            await reload();
            body.querySelector("[data-field=policy-result]").className = "ok";
            body.querySelector("[data-field=policy-result]").textContent = `Version ${made.policyVersionId} is now the default; connected devices are checked against it from their next action.`;
          } catch (e) { result.className = "error"; result.textContent = e.message; }
        } }, el("textarea", { name: "document", "aria-label": "Policy document (JSON)", spellcheck: "false", class: "tall" }, pretty),
        el("p", {}, el("button", { type: "submit" }, "Save as new default version")), result)
        : el("pre", {}, pretty));
  });
}

async function certificates() {
  await page("Certificates", async (body, message, reload) => {
    const [certs, cas] = await Promise.all([listAll("/certificates", "certificates"), listAll("/cacertificates", "certificates").catch(() => [])]);
    const status = (kind, id, next) => action(next === "REVOKED" ? "Revoke" : next === "ACTIVE" ? "Activate" : "Deactivate", message, async () => {
      if (next === "REVOKED" && !confirm(`Revoke ${id}? A device using it is disconnected and cannot connect with it again.`)) throw new Error("Not revoked.");
      await api("PUT", `/${kind}/${id}?newStatus=${next}`);
    }, reload, next === "REVOKED" ? "danger" : "secondary");
    body.replaceChildren(
      table(["Certificate", "Status", "Created", ""], certs.map((c) => [el("code", {}, c.certificateId), el("span", { "data-field": "certificate-status" }, c.status), when(c.creationDate),
        canChange() ? el("span", { class: "inline" }, c.status === "ACTIVE" ? [status("certificates", c.certificateId, "INACTIVE"), status("certificates", c.certificateId, "REVOKED")]
          : c.status === "INACTIVE" ? status("certificates", c.certificateId, "ACTIVE") : "") : ""]), "No certificates yet.", { "data-table": "certificates" }),
      el("h2", {}, "Certificate authorities"),
      table(["CA", "Status", "Created", ""], cas.map((c) => [el("code", {}, c.certificateId), c.status, when(c.creationDate),
        session.role === "admin" ? (c.status === "ACTIVE" ? status("cacertificate", c.certificateId, "INACTIVE") : status("cacertificate", c.certificateId, "ACTIVE")) : ""]),
        "No CA registered besides the server's own (docs/provisioning.md registers one for JITP)."));
  });
}

/** Offers text as a file download (a claim certificate, its key). */
function download(name, text) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

async function provisioning() {
  await page("Provisioning templates", async (body, message) => {
    const items = await listAll("/provisioning-templates", "templates");
    const note = el("p", { role: "status" });
    body.replaceChildren(table(["Template", "Type", "Enabled", "Description", ""], items.map((t) => [
      el("details", {}, el("summary", {}, t.templateName), el("pre", { "data-template": t.templateName }, "")), t.type ?? "FLEET_PROVISIONING", t.enabled ? "yes" : "no", t.description ?? "",
      canChange() && (t.type ?? "FLEET_PROVISIONING") === "FLEET_PROVISIONING" ? action("Claim certificate", message, async () => {
        const claim = await api("POST", `/provisioning-templates/${encodeURIComponent(t.templateName)}/provisioning-claim`, { durationInSeconds: 3600 });
        download(`${t.templateName}-claim.cert.pem`, claim.certificatePem);
        download(`${t.templateName}-claim.private.key`, claim.keyPair.PrivateKey);
        note.textContent = `Downloaded a claim certificate for ${t.templateName} and its key, valid until ${when(claim.expiration)}: devices present it to provision themselves (docs/provisioning.md).`;
      }) : ""]), "No provisioning templates yet (docs/provisioning.md makes one)."), note);
    for (const details of body.querySelectorAll("details")) {
      details.addEventListener("toggle", async () => {
        const pre = details.querySelector("pre");
        if (!details.open || pre.textContent) return;
        try {
          const described = await api("GET", `/provisioning-templates/${encodeURIComponent(pre.dataset.template)}`);
          pre.textContent = JSON.stringify(JSON.parse(described.templateBody), null, 2);
        } catch (e) { pre.textContent = e.message; }
      });
    }
  });
}

/** AWS's OTA job document for a signed image (what FreeRTOS's OTA library reads), as `trellis jobs create --firmware` makes it. */
function otaDocument(image, version) {
  const file = { filepath: image.name, filesize: image.size, fileid: 0, certfile: "code-signing.pem", "sig-sha256-ecdsa": image.signature, sha256: image.sha256,
    update_data_url: image.placeholder, auth_scheme: "aws.s3.presigned" };
  if (version) file.version = version;
  return { afr_ota: { protocols: ["HTTP"], files: [file] } };
}

const JOB_COUNTS = ["numberOfQueuedThings", "numberOfInProgressThings", "numberOfSucceededThings", "numberOfFailedThings", "numberOfTimedOutThings", "numberOfRejectedThings", "numberOfCanceledThings", "numberOfRemovedThings"];

async function jobs() {
  await page("Jobs", async (body, message, reload) => {
    const [items, images] = await Promise.all([listAll("/jobs", "jobs", 500), api("GET", "/api/firmware").then((f) => f.firmware ?? []).catch(() => [])]);
    body.replaceChildren(table(["Job", "Status", "Targets", "Created", ""], items.map((j) => [
      el("a", { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, j.jobId), el("span", { "data-field": "job-status" }, j.status), j.targetSelection ?? "", when(j.createdAt),
      canChange() && j.status === "IN_PROGRESS" ? action("Cancel", message, () => api("PUT", `/jobs/${encodeURIComponent(j.jobId)}/cancel`, { comment: "canceled from the console" }), reload, "danger") : ""]),
      "No jobs yet."),
      el("h2", {}, "Firmware images"),
      table(["Image", "Size", "Signed", "SHA-256", "Uploaded"], images.map((i) => [i.name, `${(i.size / 1024).toFixed(1)} KiB`, i.signature ? "yes" : el("span", { class: "error" }, "no: trellis firmware sign"),
        el("code", {}, `${i.sha256.slice(0, 16)}…`), when(i.createdAt)]), "No firmware images (trellis firmware upload, docs/ota.md)."));
    if (!canChange()) return;
    const signed = images.filter((i) => i.signature);
    const form = el("form", { onsubmit: async (event) => {
        event.preventDefault();
        message.textContent = "";
        const f = form.elements;
        const image = signed.find((i) => i.name === f.firmware.value);
        const targets = [...f.things.value.split(",").map((t) => t.trim()).filter(Boolean).map((t) => `arn:aws:iot:us-east-1:000000000000:thing/${t}`),
          ...f.groups.value.split(",").map((g) => g.trim()).filter(Boolean).map((g) => `arn:aws:iot:us-east-1:000000000000:thinggroup/${g}`)];
        const request = { targets, targetSelection: f.continuous.checked ? "CONTINUOUS" : "SNAPSHOT" };
        if (image) request.document = JSON.stringify(otaDocument(image, f.version.value.trim()));
        else {
          try { request.document = JSON.stringify(JSON.parse(f.document.value)); } catch (e) { message.textContent = `The job document is not JSON: ${e.message}`; return; }
        }
        if (f.perMinute.value) request.jobExecutionsRolloutConfig = { maximumPerMinute: Number(f.perMinute.value) };
        if (f.abortPercent.value) request.abortConfig = { criteriaList: [{ failureType: "FAILED", action: "CANCEL", thresholdPercentage: Number(f.abortPercent.value), minNumberOfExecutedThings: Number(f.abortMin.value || 10) }] };
        try { await api("PUT", `/jobs/${encodeURIComponent(f.jobId.value.trim())}`, request); location.hash = `#/jobs/${encodeURIComponent(f.jobId.value.trim())}`; }
        catch (e) { message.textContent = e.message; }
      } },
      el("h2", {}, "New job"),
      el("div", { class: "grid" },
        el("label", {}, "Job id", el("input", { name: "jobId", required: true, pattern: "[a-zA-Z0-9_-]+" })),
        el("label", {}, "Things (comma-separated)", el("input", { name: "things" })),
        el("label", {}, "Groups (comma-separated)", el("input", { name: "groups" })),
        el("label", {}, "Firmware (signed images)", el("select", { name: "firmware" }, el("option", { value: "" }, "none: give a document below"), signed.map((i) => el("option", { value: i.name }, i.name)))),
        el("label", {}, "Version the image brings", el("input", { name: "version" })),
        el("label", {}, "Rollout: things per minute", el("input", { name: "perMinute", type: "number", min: 1 })),
        el("label", {}, "Abort when failed % reaches", el("input", { name: "abortPercent", type: "number", min: 1, max: 100 })),
        el("label", {}, "… after at least this many finished", el("input", { name: "abortMin", type: "number", min: 1 })),
        el("label", { class: "check" }, el("input", { name: "continuous", type: "checkbox" }), " Continuous (things joining a group later get it too)")),
      el("textarea", { name: "document", "aria-label": "Job document (JSON)", spellcheck: "false" }, JSON.stringify({ operation: "reboot" }, null, 2)),
      el("p", {}, el("button", { type: "submit" }, "Create job")));
    body.append(form);
  });
}

async function job(id) {
  await page(`Job ${id}`, async (body, message, reload) => {
    const draw = async () => {
      const [described, executions] = await Promise.all([api("GET", `/jobs/${encodeURIComponent(id)}`), listAll(`/jobs/${encodeURIComponent(id)}/things`, "executionSummaries", 500)]);
      const j = described.job;
      const counts = j.jobProcessDetails ?? {};
      const total = JOB_COUNTS.reduce((sum, c) => sum + (counts[c] ?? 0), 0);
      const done = (counts.numberOfSucceededThings ?? 0) + (counts.numberOfFailedThings ?? 0) + (counts.numberOfTimedOutThings ?? 0) + (counts.numberOfRejectedThings ?? 0) + (counts.numberOfCanceledThings ?? 0) + (counts.numberOfRemovedThings ?? 0);
      body.replaceChildren(
        el("p", {}, "Status ", el("strong", { "data-field": "job-status" }, j.status), j.comment ? ` (${j.comment})` : "", j.jobExecutionsRolloutConfig?.maximumPerMinute ? `; rollout ${j.jobExecutionsRolloutConfig.maximumPerMinute} things per minute` : ""),
        el("progress", { max: total || 1, value: done, "aria-label": "Finished executions" }), el("span", { class: "muted" }, ` ${done} of ${total} finished`),
        el("div", { class: "cards" }, JOB_COUNTS.map((c) => el("div", { class: "card", "data-field": c }, el("div", { class: "value" }, counts[c] ?? 0), el("div", { class: "label" }, c.replace(/^numberOf|Things$/g, ""))))),
        canChange() && j.status === "IN_PROGRESS" ? el("p", {}, action("Cancel job", message, () => api("PUT", `/jobs/${encodeURIComponent(id)}/cancel`, { comment: "canceled from the console" }), draw, "danger")) : "",
        el("h2", {}, "Executions"),
        table(["Thing", "Status", "Queued", "Last update"], executions.map((e) => [el("a", { href: `#/things/${encodeURIComponent(e.thingArn.slice(e.thingArn.lastIndexOf("/") + 1))}` }, e.thingArn.slice(e.thingArn.lastIndexOf("/") + 1)),
          e.jobExecutionSummary?.status ?? "", when(e.jobExecutionSummary?.queuedAt), when(e.jobExecutionSummary?.lastUpdatedAt)]), "No executions yet."));
    };
    await draw();
    every(body, () => draw().catch((e) => { message.textContent = e.message; }), 2000);
  });
}

async function alarms() {
  const state = el("select", { "aria-label": "Alarm state" }, ["ACTIVE,ACKNOWLEDGED", "ACTIVE", "ACKNOWLEDGED", "CLEARED"].map((s) => el("option", { value: s }, s.replace(",", " and ").toLowerCase())));
  // Only the latest drawing shows: a refresh still waiting when the filter changed must not put the
  // old filter's alarms back when it ends after the new one's.
  let drawing = 0;
  const reload = await page("Alarms", async (body, message, reload) => {
    const mine = ++drawing;
    const [items, violations] = await Promise.all([
      api("GET", `/api/alarms?state=${state.value}&maxResults=250`).then((a) => a.alarms ?? []),
      api("GET", "/active-violations?maxResults=250").then((v) => v.activeViolations ?? []).catch(() => []),
    ]);
    if (mine !== drawing) return;
    const step = (a, verb) => action(verb === "acknowledge" ? "Acknowledge" : "Clear", message, async () => {
      const comment = prompt(`Comment (optional) on ${verb === "acknowledge" ? "acknowledging" : "clearing"} ${a.model} of ${a.thingName}:`) ?? undefined;
      await api("POST", `/api/alarms/${encodeURIComponent(a.id)}/${verb}`, comment ? { comment } : {});
    }, reload);
    // An alarm's history (who acknowledged or cleared it, with what comment) is read when opened.
    const history = (a) => {
      const steps = el("ol", { "data-list": "history" });
      const details = el("details", { "data-alarm": a.id }, el("summary", {}, "History"), steps);
      details.addEventListener("toggle", async () => {
        if (!details.open) return;
        try {
          const full = await api("GET", `/api/alarms/${encodeURIComponent(a.id)}`);
          steps.replaceChildren(...full.history.map((h) => el("li", {}, `${when(h.at)}: ${h.state.toLowerCase()} by ${h.by}`, h.comment ? `: “${h.comment}”` : "")));
        } catch (e) { steps.replaceChildren(el("li", { class: "error" }, e.message)); }
      });
      return details;
    };
    const open = new Set([...body.querySelectorAll("details[data-alarm][open]")].map((d) => d.dataset.alarm));
    body.replaceChildren(
      table(["Alarm", "Thing", "Severity", "State", "Since", "History", ""], items.map((a) => [a.model,
        el("a", { href: `#/things/${encodeURIComponent(a.thingName)}` }, a.thingName), a.severity, el("span", { "data-field": "alarm-state" }, a.state), when(a.startedAt),
        history(a),
        canChange() ? el("span", { class: "inline" }, a.state === "ACTIVE" ? step(a, "acknowledge") : "", a.state !== "CLEARED" ? step(a, "clear") : "") : ""]),
        "No alarms in this state.", { "data-table": "alarms" }),
      el("h2", {}, "Active violations (Device Defender)"),
      table(["Thing", "Security profile", "Behavior", "Since"], violations.map((v) => [v.thingName, v.securityProfileName, v.behavior?.name ?? "", when(v.violationStartTime)]), "No active violations."));
    for (const details of body.querySelectorAll("details[data-alarm]")) if (open.has(details.dataset.alarm)) details.open = true; // kept open across refreshes
  }, el("div", { class: "inline" }, state));
  state.addEventListener("change", reload);
  every(state, reload, 5000);
}

async function audit() {
  const filters = el("form", { class: "inline", role: "search" },
    el("input", { name: "operation", placeholder: "Operation, e.g. CreateThing", "aria-label": "Operation" }),
    el("input", { name: "accessKeyId", placeholder: "Access key id", "aria-label": "Access key id" }),
    el("input", { name: "target", placeholder: "Target, e.g. a thing name", "aria-label": "Target" }),
    el("label", {}, "Since ", el("input", { name: "since", type: "datetime-local" })),
    el("select", { name: "failed", "aria-label": "Outcome" }, el("option", { value: "" }, "all outcomes"), el("option", { value: "true" }, "failed only"), el("option", { value: "false" }, "succeeded only")),
    el("button", { type: "submit" }, "Filter"));
  let token;
  const reload = await page("Audit log", async (body) => {
    const f = filters.elements;
    const query = new URLSearchParams({ order: "newest", maxResults: "100" });
    for (const name of ["operation", "accessKeyId", "target", "failed"]) if (f[name].value.trim()) query.set(name, f[name].value.trim());
    if (f.since.value) query.set("since", new Date(f.since.value).toISOString());
    if (token) query.set("nextToken", token);
    const answer = await api("GET", `/api/audit?${query}`);
    const entries = answer.events ?? [];
    body.replaceChildren(table(["When", "Who", "Operation", "Target", "Outcome"], entries.map((e) => [
      new Date(e.time).toLocaleString(), e.accessKeyId ?? "", e.operation, e.target ?? "",
      el("span", { class: e.status >= 400 ? "error" : "ok" }, `${e.status}${e.errorType ? ` ${e.errorType}` : ""}`)]), "No entries match.", { "data-table": "audit" }),
      answer.nextToken ? el("p", {}, el("button", { type: "button", class: "secondary", onclick: () => { token = answer.nextToken; reload(); } }, "Older")) : "");
  }, filters);
  filters.addEventListener("submit", (event) => { event.preventDefault(); token = undefined; reload(); });
}

async function mqttPage() {
  const state = el("p", { role: "status", "data-field": "mqtt-state" }, "Connecting…");
  const messages = el("ol", { class: "messages", "aria-live": "polite", "data-list": "messages" });
  const subscriptions = el("ul", { "data-list": "subscriptions" });
  const message = el("p", { class: "error", role: "alert" });
  const subscribe = el("form", { class: "inline" },
    el("input", { name: "filter", placeholder: "Topic filter, e.g. devices/#", "aria-label": "Topic filter", required: true }),
    el("select", { name: "qos", "aria-label": "Subscription QoS" }, el("option", { value: "0" }, "QoS 0"), el("option", { value: "1" }, "QoS 1")),
    el("button", { type: "submit" }, "Subscribe"));
  const publish = canChange() ? el("form", {},
    el("h2", {}, "Publish"),
    el("div", { class: "inline" }, el("input", { name: "topic", placeholder: "Topic", "aria-label": "Publish topic", required: true }),
      el("select", { name: "qos", "aria-label": "Publish QoS" }, el("option", { value: "0" }, "QoS 0"), el("option", { value: "1" }, "QoS 1")),
      el("label", { class: "check" }, el("input", { name: "retain", type: "checkbox" }), " retain")),
    el("textarea", { name: "payload", "aria-label": "Payload", spellcheck: "false" }, JSON.stringify({ hello: "from the console" })),
    el("p", {}, el("button", { type: "submit" }, "Publish"))) : el("p", { class: "muted" }, "Your role may subscribe and receive; publishing needs an operator or admin key.");
  show(el("h1", {}, "MQTT client"), el("p", { class: "muted" }, `Connected as ${session.name} (${session.role}): the broker applies your rights, as it does to any MQTT client.`),
    state, message, subscribe, el("h2", {}, "Subscriptions"), subscriptions, publish, el("h2", {}, "Messages"), messages);
  let client;
  try {
    client = await openLive(messages, (topic, payload, retained) => {
      messages.prepend(el("li", {}, el("time", {}, msgTime(Date.now())), " ", el("code", {}, topic), retained ? " (retained) " : " ", el("span", { class: "payload" }, payloadText(payload))));
      while (messages.children.length > 200) messages.lastChild.remove();
    }, (text, ok) => { state.textContent = ok ? "Connected." : `Not connected: ${text}`; state.className = ok ? "ok" : "error"; });
  } catch (e) { state.className = "error"; state.textContent = `Not connected: ${e.message}`; return; }
  subscribe.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const filter = subscribe.elements.filter.value.trim();
    try {
      const granted = await client.subscribe(filter, Number(subscribe.elements.qos.value));
      const item = el("li", {}, el("code", {}, filter), ` (QoS ${granted}) `, el("button", { type: "button", class: "secondary", onclick: async () => {
        try { await client.unsubscribe(filter); item.remove(); } catch (e) { message.textContent = e.message; }
      } }, "Unsubscribe"));
      subscriptions.append(item);
      subscribe.reset();
    } catch (e) { message.textContent = e.message; }
  });
  if (publish instanceof HTMLFormElement) {
    publish.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.textContent = "";
      const f = publish.elements;
      try {
        await client.publish(f.topic.value.trim(), f.payload.value, Number(f.qos.value), f.retain.checked);
        state.className = "ok"; state.textContent = `Published to ${f.topic.value.trim()}.`;
      } catch (e) { message.textContent = e.message; }
    });
  }
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
  const [section, ...rest] = route.split("/");
  const id = rest.join("/");
  const pages = { things: [things, thing], groups: [groups, group], types: [types], policies: [policies, policy], certificates: [certificates],
    provisioning: [provisioning], rules: [rules], jobs: [jobs, job], alarms: [alarms], mqtt: [mqttPage], audit: [audit] };
  const [list, one] = pages[section] ?? [overview];
  for (const link of document.querySelectorAll("#nav a")) link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${section}`);
  if (id && one) await one(id);
  else await list();
}

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("DELETE", "/console/session"); } finally { session = null; location.hash = "#/"; signIn(); }
});
window.addEventListener("hashchange", render);
render();
