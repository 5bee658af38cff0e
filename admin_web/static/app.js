// Progressive enhancement only: every page works without this file.
"use strict";

(function () {
  // Copy buttons: <button data-copy="#selector" hidden> become visible with JS.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });

  // Confirmation for destructive forms: <form data-confirm="question">.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Live activity feed: server-sent events from /events, rendered as text only.
  var live = document.getElementById("live");
  var feed = document.getElementById("feed");
  if (!live || !feed || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var hint = document.getElementById("live-hint");
  var refresh = document.getElementById("refresh");
  var MAX_ROWS = 50;
  var MAX_SHOWN = 1000;
  // Requests already shown, by log id: the page lists the latest ones and the
  // feed announces recent ones again (on connecting, and after a reconnect).
  var shown = new Set();
  Array.prototype.forEach.call(feed.rows, function (row) {
    if (row.dataset.id) { shown.add(row.dataset.id); }
  });

  function setState(text, cls) {
    state.hidden = false;
    state.textContent = text;
    state.className = "live-state " + (cls || "");
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function badgeClass(status) {
    if (status >= 500) { return "badge badge-bad"; }
    if (status >= 400) { return "badge badge-warn"; }
    return "badge badge-ok";
  }

  function addRequest(data) {
    var id = String(data.id || "");
    if (id && shown.has(id)) { return; }
    if (id) {
      shown.add(id);
      // Bounded: the oldest ids go first (a Set keeps insertion order).
      if (shown.size > MAX_SHOWN) { shown.delete(shown.values().next().value); }
    }
    var row = document.createElement("tr");
    row.className = "fresh";
    row.dataset.id = id;
    var timeCell = cell(row, "", "nowrap");
    var link = document.createElement("a");
    if (typeof data.url === "string" && data.url.indexOf("/logs/") === 0) { link.href = data.url; }
    link.textContent = String(data.time || "");
    timeCell.appendChild(link);
    cell(row, String(data.key || ""));
    cell(row, String(data.endpoint || ""), "mono hide-sm");
    cell(row, String(data.model || ""), "hide-sm");
    var statusCell = cell(row, "");
    var badge = document.createElement("span");
    badge.className = badgeClass(Number(data.status));
    badge.textContent = String(data.status || "—");
    statusCell.appendChild(badge);
    if (data.outcome && data.outcome !== "ok") {
      var extra = document.createElement("span");
      extra.className = "badge badge-muted";
      extra.textContent = String(data.outcome);
      statusCell.appendChild(document.createTextNode(" "));
      statusCell.appendChild(extra);
    }
    cell(row, String(data.latency || ""), "num");
    cell(row, String(data.tokens || 0), "num hide-sm");
    cell(row, String(data.cost || ""), "num hide-sm");
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > MAX_ROWS) { feed.deleteRow(feed.rows.length - 1); }
    var emptyNote = document.getElementById("feed-empty");
    if (emptyNote) { emptyNote.remove(); }
  }

  function addNote(text) {
    var row = document.createElement("tr");
    row.className = "fresh note-row";
    var td = cell(row, text, "muted");
    td.colSpan = 8;
    feed.insertBefore(row, feed.firstChild);
  }

  var source = new EventSource(live.getAttribute("data-events"));
  setState("connecting…");
  source.addEventListener("open", function () {
    setState("live", "on");
    if (hint) { hint.textContent = "The latest requests, updated as they finish."; }
    if (refresh) { refresh.hidden = true; }
  });
  source.addEventListener("error", function () {
    setState("reconnecting…", "off");
    if (refresh) { refresh.hidden = false; }
  });
  source.addEventListener("request", function (event) {
    try { addRequest(JSON.parse(event.data)); } catch (e) { /* ignore a bad event */ }
  });
  source.addEventListener("key", function (event) {
    try {
      var d = JSON.parse(event.data);
      addNote(String(d.time || "") + " · key " + String(d.name || d.id || "") + " " + String(d.action || "changed"));
    } catch (e) { /* ignore */ }
  });
  source.addEventListener("config", function (event) {
    try {
      var d = JSON.parse(event.data);
      addNote(String(d.time || "") + " · configuration version " + String(d.version) + " by " + String(d.by || "service"));
    } catch (e) { /* ignore */ }
  });
  source.addEventListener("gone", function () {
    source.close();
    setState("disconnected", "off");
    if (refresh) { refresh.hidden = false; }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
