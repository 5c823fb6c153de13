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
 * The page sees `sessionwarden:connected` and `sessionwarden:ended` events on `document`
 * (detail: {reason, revocationId, at, via}); `window.sessionwarden` holds the same state.
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
  };
  // session: the fingerprint of this tab's session, from its stream (null until connected).
  var state = (window.sessionwarden = { connected: false, ended: null, session: null });
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("sessionwarden") : null;
  var source = null;

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

  source = new EventSource(streamUrl);
  source.onopen = function () {
    state.connected = true;
    emit("connected", {});
  };
  source.addEventListener("session", function (msg) {
    try { state.session = String(JSON.parse(msg.data).session || "") || null; } catch (e) { /* none */ }
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
    // CLOSED: the service refused this tab's stream (no session, or revoked): this tab fails
    // closed; the other tabs have streams of their own and are not told.
    if (source.readyState === EventSource.CLOSED) end("ended", "", "closed", null);
  };
})();
