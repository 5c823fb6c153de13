/* Sessionwarden dashboard: renders the snapshots the server pushes over /events.
 * Everything from the server is inserted as text (textContent), never as HTML. */
(function () {
  "use strict";
  var seen = { recent: {}, alerts: {} };

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function row(cells, cls) {
    var tr = el("tr", null, cls);
    cells.forEach(function (c) { tr.appendChild(c instanceof Node ? c : el("td", c)); });
    return tr;
  }
  function num(value) { return el("td", value, "num"); }
  function time(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : ""; }
  function ms(value) { return value === null || value === undefined ? "–" : Math.round(value) + " ms"; }

  function renderLive(live) {
    document.getElementById("live-total").textContent = live.total + " in all";
    var table = document.getElementById("live-table");
    table.replaceChildren();
    var head = [el("th", "user type \\ risk")];
    live.risks.forEach(function (r) { head.push(el("th", r)); });
    table.appendChild(row(head));
    var counts = {};
    live.cells.forEach(function (c) { counts[c[0] + "\u0000" + c[1]] = c[2]; });
    live.user_types.forEach(function (u) {
      var cells = [el("th", u)];
      live.risks.forEach(function (r) { cells.push(num(counts[u + "\u0000" + r] || 0)); });
      table.appendChild(row(cells));
    });
  }

  function renderReasons(rev) {
    var minutes = Math.round(rev.buckets * rev.bucket_s / 60);
    document.getElementById("window").textContent =
      "last " + minutes + " min, per " + Math.round(rev.bucket_s) + " s (newest right)";
    var table = document.getElementById("reason-table");
    table.replaceChildren();
    var head = [el("th", "reason"), el("th", "total")];
    for (var i = rev.buckets; i > 0; i--) head.push(el("th", "-" + i));
    table.appendChild(row(head));
    Object.keys(rev.by_reason).sort().forEach(function (reason) {
      var counts = rev.by_reason[reason];
      var cells = [el("td", reason), num(counts.reduce(function (a, b) { return a + b; }, 0))];
      counts.forEach(function (n) { cells.push(num(n)); });
      table.appendChild(row(cells, "reason-" + reason));
    });
  }

  function renderLatency(lat) {
    document.getElementById("latency-summary").textContent = lat.count
      ? lat.count + " deadline revocations: p50 " + ms(lat.p50_ms) + ", p99 " + ms(lat.p99_ms)
      : "no deadline revocation seen live yet";
    var bars = document.getElementById("latency-bars");
    bars.replaceChildren();
    var top = Math.max.apply(null, lat.bins.concat([1]));
    lat.bins.forEach(function (n, i) {
      var label = i < lat.edges_ms.length ? "≤" + lat.edges_ms[i] : ">" + lat.edges_ms[i - 1];
      var bar = el("div", null, "bar");
      bar.appendChild(el("span", n));
      var fill = el("div");
      fill.style.height = (100 * n / top) + "%";
      bar.appendChild(fill);
      bar.appendChild(el("span", label));
      bar.title = n + " revocation(s), " + label + " ms";
      bars.appendChild(bar);
    });
  }

  function renderLag(lag) {
    var table = document.getElementById("lag-table");
    table.replaceChildren();
    table.appendChild(row([el("th", "process"), el("th", "group"), el("th", "lag (records)", "num")]));
    Object.keys(lag).sort().forEach(function (name) {
      var entry = lag[name];
      table.appendChild(row([el("td", name), el("td", entry.group, "summary"),
        num(entry.lag === null ? "unknown" : entry.lag)], "lag-" + name));
    });
  }

  function renderFeed(id, items, key, cells) {
    var body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    items.forEach(function (item) {
      var k = key(item);
      var fresh = !seen[id][k];
      seen[id][k] = true;
      body.appendChild(row(cells(item), fresh ? "new" : ""));
    });
  }

  function evidence(ev) {
    var parts = [];
    if (ev.sessions.length) parts.push("sessions " + ev.sessions.join(", ") + (ev.more_sessions ? " +" + ev.more_sessions : ""));
    if (ev.roles.length) parts.push("roles " + ev.roles.join(", "));
    Object.keys(ev.counts).forEach(function (k) { parts.push(k + "=" + ev.counts[k]); });
    return el("td", parts.join("; "), "summary");
  }

  function render(snap) {
    renderLive(snap.live);
    renderReasons(snap.revocations);
    renderLatency(snap.latency);
    renderLag(snap.lag);
    renderFeed("recent", snap.recent, function (r) { return r.session + r.at; }, function (r) {
      return [el("td", time(r.at)), el("td", r.reason), el("td", r.tenant), el("td", r.user_id),
        el("td", r.session, "session"), num(ms(r.latency_ms))];
    });
    renderFeed("alerts", snap.alerts, function (a) { return a.kind + a.user_id + a.at; }, function (a) {
      return [el("td", time(a.at)), el("td", a.severity, "sev-" + a.severity), el("td", a.kind),
        el("td", a.tenant), el("td", a.user_id), el("td", a.summary, "summary"), evidence(a.evidence)];
    });
    document.getElementById("status").textContent = "live · updated " + time(snap.now);
    window.sessionwardenDashboard = { version: snap.version, at: Date.now() };
  }

  var source = new EventSource("/events");
  source.addEventListener("snapshot", function (msg) { render(JSON.parse(msg.data)); });
  source.onerror = function () {
    document.getElementById("status").textContent =
      source.readyState === EventSource.CLOSED ? "disconnected (reload to sign in again)" : "reconnecting…";
  };
})();
