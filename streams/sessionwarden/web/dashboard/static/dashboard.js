/* Sessionwarden dashboard: renders the snapshots the server pushes over /events.
 * Everything from the server is inserted as text (textContent), never as HTML, and
 * type-checked before use: a value of the wrong type is shown as empty, a row that cannot be
 * rendered is replaced by a note, and a section that fails leaves the others rendering. */
(function () {
  "use strict";
  var seen = { recent: {}, alerts: {} };
  var SEVERITIES = { low: 1, medium: 1, high: 1, critical: 1 };

  function str(v) { return typeof v === "string" || typeof v === "number" ? String(v) : ""; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function obj(v) { return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {}; }
  function count(v) { return typeof v === "number" && isFinite(v) ? v : 0; }
  function token(v) { return typeof v === "string" && /^[a-z_]{1,40}$/.test(v) ? v : "other"; }
  function safely(what, fn) {
    try { fn(); } catch (err) {
      if (window.console) console.error("dashboard: cannot render " + what, err);
    }
  }

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
  function time(ts) {
    return typeof ts === "number" && isFinite(ts) ? new Date(ts * 1000).toLocaleTimeString() : "";
  }
  function ms(value) { return typeof value === "number" && isFinite(value) ? Math.round(value) + " ms" : "–"; }

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
      table.appendChild(row(cells, "reason-" + token(reason)));
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
        num(typeof entry.lag === "number" ? entry.lag : "unknown")], "lag-" + token(name)));
    });
  }

  function renderFeed(id, items, key, cells) {
    var body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    arr(items).forEach(function (item) {
      try {
        item = obj(item);
        var k = key(item);
        var fresh = !seen[id][k];
        seen[id][k] = true;
        body.appendChild(row(cells(item), fresh ? "new" : ""));
      } catch (err) {
        body.appendChild(row([el("td", "(a record that cannot be shown)", "summary")], "bad"));
      }
    });
  }

  function evidence(ev) {
    ev = obj(ev);
    var parts = [];
    var sessions = arr(ev.sessions).map(str), roles = arr(ev.roles).map(str), counts = obj(ev.counts);
    var more = count(ev.more_sessions);
    if (sessions.length) parts.push("sessions " + sessions.join(", ") + (more ? " +" + more : ""));
    if (roles.length) parts.push("roles " + roles.join(", "));
    Object.keys(counts).forEach(function (k) { parts.push(k + "=" + str(counts[k])); });
    return el("td", parts.join("; "), "summary");
  }

  function render(snap) {
    snap = obj(snap);
    safely("live sessions", function () { renderLive(snap.live); });
    safely("revocations", function () { renderReasons(snap.revocations); });
    safely("latency", function () { renderLatency(snap.latency); });
    safely("lag", function () { renderLag(obj(snap.lag)); });
    safely("recent revocations", function () {
      renderFeed("recent", snap.recent, function (r) { return str(r.session) + str(r.at); }, function (r) {
        return [el("td", time(r.at)), el("td", str(r.reason)), el("td", str(r.tenant)),
          el("td", str(r.user_id)), el("td", str(r.session), "session"), num(ms(r.latency_ms))];
      });
    });
    safely("alerts", function () {
      renderFeed("alerts", snap.alerts, function (a) { return str(a.kind) + str(a.user_id) + str(a.at); }, function (a) {
        var severity = SEVERITIES[a.severity] === 1 ? a.severity : "";
        return [el("td", time(a.at)), el("td", severity || str(a.severity), "sev-" + (severity || "other")),
          el("td", str(a.kind)), el("td", str(a.tenant)), el("td", str(a.user_id)),
          el("td", str(a.summary), "summary"), evidence(a.evidence)];
      });
    });
    document.getElementById("status").textContent = "live · updated " + time(snap.now);
    window.sessionwardenDashboard = { version: snap.version, at: Date.now() };
  }

  // Revocation actions: shown only when the server has them on (dashboard_operator).
  function setupActions(info) {
    if (!info || info.enabled !== true || typeof info.csrf !== "string") return;
    var section = document.getElementById("actions");
    var form = document.getElementById("revoke-form");
    var result = document.getElementById("revoke-result");
    section.hidden = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = {};
      ["tenant", "user_id", "session_id", "reason_admin"].forEach(function (name) {
        var value = form.elements[name].value.trim();
        if (value) data[name] = value;
      });
      var what = data.session_id
        ? "session " + data.session_id + " of user " + data.user_id
        : "every session of user " + data.user_id;
      if (!window.confirm("End " + what + " in tenant " + data.tenant + " now?\nReason: " +
                          data.reason_admin)) {
        result.textContent = "cancelled: nothing sent";
        return;
      }
      result.textContent = "sending…";
      fetch("/api/revoke", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-sessionwarden-csrf": info.csrf },
        body: JSON.stringify(data),
      }).then(function (res) {
        return res.json().then(function (body) { return { ok: res.ok, body: obj(body) }; });
      }).then(function (r) {
        result.textContent = r.ok
          ? "sent: command " + str(r.body.command_id) + " (" + what + ")"
          : "refused: " + str(r.body.error);
      }).catch(function () { result.textContent = "failed: the dashboard did not answer"; });
    });
  }
  fetch("/api/actions", { credentials: "same-origin" })
    .then(function (res) { return res.ok ? res.json() : null; })
    .then(setupActions)
    .catch(function () {});

  var source = new EventSource("/events");
  source.addEventListener("snapshot", function (msg) {
    var snap;
    try { snap = JSON.parse(msg.data); } catch (err) { return; }
    render(snap);
  });
  source.onerror = function () {
    document.getElementById("status").textContent =
      source.readyState === EventSource.CLOSED ? "disconnected (reload to sign in again)" : "reconnecting…";
  };
})();
