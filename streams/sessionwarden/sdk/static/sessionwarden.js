/* Sessionwarden browser script: log the page out the moment its session is revoked.
 *
 *   <script src="/_sessionwarden/sessionwarden.js" data-login="/login" defer></script>
 *
 * Opens one EventSource per tab on the service's revocation stream (the session is the one the
 * service's cookie names; no id in the URL). The stream first names its session by a
 * fingerprint (a hash, never the id). On a `revoked` event it clears what the page holds
 * (elements marked data-sessionwarden-protected, sessionStorage, localStorage), says why
 * ("Your session ended: idle timeout"), tells the other tabs of this origin of that session
 * (a BroadcastChannel message carrying the fingerprint: tabs of another account signed in
 * in the same browser ignore it), and returns to the login page. No build step, no
 * dependencies.
 *
 * Attributes of the script tag (all optional):
 *   data-stream       the stream URL (default /_sessionwarden/events)
 *   data-login        the login page (default /login); the reason is passed as ?ended=<reason>
 *   data-protected    CSS selector of what to clear (default [data-sessionwarden-protected])
 *   data-redirect-ms  how long the reason is shown before leaving (default 2500)
 *   data-keep-storage "true": leave sessionStorage and localStorage alone
 *
 * A stream the service refuses for capacity (429/503: its stream caps are full) is not a
 * revocation: the page stays as it is and the stream is opened again after Retry-After, with
 * backoff. Only a `revoked` event or a 401/403/400/204 answer ends the page.
 *
 * The page sees `sessionwarden:connected`, `sessionwarden:waiting` (detail: {status,
 * retryInMs, at}) and `sessionwarden:ended` events on `document` (detail: {reason,
 * revocationId, at, via}); `window.sessionwarden` holds the same state.
 */
(function () {
  "use strict";
  var tag = document.currentScript;
  var data = (tag && tag.dataset) || {};
  var streamUrl = data.stream || "/_sessionwarden/events";
  var loginUrl = data.login || "/login";
  var protectedSelector = data.protected || "[data-sessionwarden-protected]";
  var redirectMs = parseInt(data.redirectMs || "2500", 10);
  var keepStorage = data.keepStorage === "true";
  var LABELS = {
    idle_timeout: "idle timeout",
    absolute_timeout: "session time limit reached",
    logout: "signed out",
    permissions_revoked: "permissions revoked",
    step_up_required: "sign-in required again",
    session_limit: "signed in on too many devices",
    operator: "ended by an administrator",
    signal: "ended on a security signal from your sign-in provider",
  };
  // session: the fingerprint of this tab's session, from its stream (set when connected).
  // waiting: {status, retryInMs, at} while the stream is refused for capacity (null otherwise).
  var state = (window.sessionwarden = {
    connected: false, ended: null, session: null, waiting: null,
  });
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("sessionwarden") : null;
  var source = null;
  var failures = 0;  // refusals in a row, for the backoff
  var timer = null;  // the pending reconnect

  function label(reason) {
    return LABELS.hasOwnProperty(reason) ? LABELS[reason] : "ended";
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent("sessionwarden:" + name, { detail: detail }));
  }

  function clearPage() {
    var nodes = document.querySelectorAll(protectedSelector);
    for (var i = 0; i < nodes.length; i++) nodes[i].replaceChildren();
    if (!keepStorage) {
      try { window.sessionStorage.clear(); } catch (e) { /* storage disabled */ }
      try { window.localStorage.clear(); } catch (e) { /* storage disabled */ }
    }
  }

  function showReason(reason) {
    var box = document.createElement("div");
    box.id = "sessionwarden-ended";
    box.setAttribute("role", "alert");
    box.style.cssText =
      "position:fixed;inset:0;display:flex;align-items:center;justify-content:center;" +
      "background:rgba(20,20,30,.92);color:#fff;font:600 1.4rem system-ui,sans-serif;z-index:2147483647";
    box.textContent = "Your session ended: " + label(reason);
    document.body.appendChild(box);
  }

  function end(reason, revocationId, via, session) {
    if (state.ended) return;
    if (source) source.close();
    if (timer !== null) window.clearTimeout(timer);
    clearPage();
    showReason(reason);
    // `at`: when the page had been cleared and the reason was on it (epoch ms).
    state.ended = { reason: reason, revocationId: revocationId, at: Date.now(), via: via };
    // Only a revocation the stream announced, and only to the tabs of that session.
    if (via === "stream" && session && channel) {
      channel.postMessage({
        type: "revoked", session: session, reason: reason, revocationId: revocationId,
      });
    }
    emit("ended", state.ended);
    var target = new URL(loginUrl, window.location.href);
    target.searchParams.set("ended", reason);
    window.setTimeout(function () { window.location.replace(target.href); }, redirectMs);
  }

  if (channel) {
    channel.onmessage = function (msg) {
      var data = msg.data;
      if (data && data.type === "revoked" && state.session && data.session === state.session) {
        end(String(data.reason), String(data.revocationId || ""), "tab", null);
      }
    };
  }

  // Why a stream was refused. EventSource cannot read a status, so when it gives up (CLOSED)
  // the script asks the stream once more with fetch, reads only the status, and lets go at once
  // (no slot is held). Only a revocation ends the page: a `revoked` event, or 401/403 (the
  // service no longer knows the session), 400 (the session is named ambiguously: the API
  // refuses it too) or 204 (the stream says it is revoked). Anything else -- 429/503 (the
  // service's stream caps are full), another 5xx, a network error -- keeps the page and opens
  // the stream again later: after Retry-After, backing off, with jitter. The data stays safe
  // meanwhile: the API refuses a revoked session by itself.
  var ENDS = { 204: true, 400: true, 401: true, 403: true };
  var MAX_BACKOFF_MS = 60000;

  function retryAfterMs(header) {
    if (!header) return 0;
    var seconds = parseInt(header, 10);
    if (String(seconds) === header.trim()) return Math.max(0, seconds) * 1000;
    var at = Date.parse(header);
    return isNaN(at) ? 0 : Math.max(0, at - Date.now());
  }

  function later(status, minimumMs) {
    if (state.ended || timer !== null) return;
    failures += 1;
    var backoff = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.min(failures - 1, 6)));
    var delay = Math.min(Math.max(minimumMs, backoff), 10 * MAX_BACKOFF_MS);
    delay += Math.floor(Math.random() * delay * 0.2);
    state.waiting = { status: status, retryInMs: delay, at: Date.now() };
    emit("waiting", state.waiting);
    timer = window.setTimeout(function () { timer = null; connect(); }, delay);
  }

  function probe() {
    if (state.ended || typeof window.fetch !== "function") {
      if (!state.ended) later(0, 0);
      return;
    }
    var abort = "AbortController" in window ? new AbortController() : null;
    window.fetch(streamUrl, {
      credentials: "same-origin", cache: "no-store", redirect: "manual",
      headers: { accept: "text/event-stream" }, signal: abort ? abort.signal : undefined,
    }).then(function (response) {
      if (abort) abort.abort();  // the status is all we wanted: give the slot back
      var status = response.status;
      if (ENDS[status]) end("ended", "", "closed", null);
      else if (status === 200) later(200, 0);
      else later(status, retryAfterMs(response.headers.get("retry-after")));
    }, function () {
      later(0, 0);  // no answer (the service is down): try again later
    });
  }

  function connect() {
    if (state.ended) return;
    source = new EventSource(streamUrl);
    // Connected once the stream has named its session (its first event), not at open: a
    // page that sees `connected` knows which session its tabs share.
    source.addEventListener("session", function (msg) {
      try { state.session = String(JSON.parse(msg.data).session || "") || null; } catch (e) { /* none */ }
      failures = 0;
      state.connected = true;
      state.waiting = null;
      emit("connected", {});
    });
    source.addEventListener("revoked", function (msg) {
      var doc = {};
      try { doc = JSON.parse(msg.data); } catch (e) { /* keep the defaults */ }
      var session = String(doc.session || "") || state.session;
      end(String(doc.reason || "ended"), String(doc.revocation_id || ""), "stream", session);
    });
    source.onerror = function () {
      state.connected = false;
      // CONNECTING: the browser retries by itself (network error, service restart).
      // CLOSED: the service answered something other than a stream: find out what.
      if (source.readyState === EventSource.CLOSED && !state.ended) {
        source.close();
        probe();
      }
    };
  }

  connect();
})();
