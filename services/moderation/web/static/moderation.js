// Dozor moderation queue: keyboard shortcuts and live refresh. Vanilla JS, no build step.
// The server renders every row (escaped by Jinja); this script only swaps server HTML in.
(function () {
  "use strict";
  var queue = document.getElementById("queue");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function post(url, fields) {
    var body = new URLSearchParams();
    body.set("csrf_token", csrf);
    Object.keys(fields || {}).forEach(function (k) { body.set(k, fields[k]); });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Dozor-Fetch": "1", "Accept": "application/json" }
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) { throw new Error(data.detail || ("ошибка " + resp.status)); }
        return data;
      });
    });
  }

  if (!queue) { return; }

  var selectedId = null;
  var knownIds = null;
  var pollMs = parseInt(queue.getAttribute("data-poll-ms"), 10) || 5000;

  function rows() { return Array.prototype.slice.call(queue.querySelectorAll("tr.item-row")); }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); });
    if (!row) { selectedId = null; return; }
    row.classList.add("selected");
    selectedId = row.getAttribute("data-flag-id");
    row.scrollIntoView({ block: "nearest" });
  }

  function selectedRow() {
    if (!selectedId) { return null; }
    return rows().filter(function (r) { return r.getAttribute("data-flag-id") === selectedId; })[0] || null;
  }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.indexOf(selectedRow());
    var next = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[next]);
  }

  function rememberIds() {
    knownIds = {};
    rows().forEach(function (r) { knownIds[r.getAttribute("data-flag-id")] = true; });
  }

  function refresh() {
    var url = queue.getAttribute("data-rows-url");
    var current = queue.querySelector(".queue-summary");
    var version = current ? current.getAttribute("data-version") : "";
    return fetch(url, { credentials: "same-origin", headers: { "X-Dozor-Fetch": "1" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location.href = "/"; return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        var holder = document.createElement("div");
        holder.innerHTML = html;  // server-rendered, escaped fragment
        var summary = holder.querySelector(".queue-summary");
        if (summary && summary.getAttribute("data-version") === version) { return; }
        var old = knownIds || {};
        queue.innerHTML = html;
        rows().forEach(function (r) {
          if (!old[r.getAttribute("data-flag-id")]) { r.classList.add("fresh"); }
        });
        rememberIds();
        var again = selectedRow();
        if (again) { select(again); } else if (selectedId) { selectedId = null; }
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  function notify(text, kind) {
    var box = document.createElement("div");
    box.className = "notice " + (kind || "ok");
    box.setAttribute("role", "status");
    box.textContent = text;
    var main = document.querySelector("main");
    main.insertBefore(box, main.firstChild);
    setTimeout(function () { box.remove(); }, 4000);
  }

  function act(path, fields, done) {
    var row = selectedRow();
    if (!row) { notify("Сначала выберите строку клавишами j/k.", "error"); return; }
    post("/items/" + encodeURIComponent(row.getAttribute("data-flag-id")) + "/" + path, fields)
      .then(function (data) { notify(data.message || done, "ok"); return refresh(); })
      .catch(function (err) { notify(err.message, "error"); });
  }

  queue.addEventListener("click", function (ev) {
    var row = ev.target.closest("tr.item-row");
    if (!row || ev.target.closest("a")) { return; }
    window.location.href = row.getAttribute("data-href");
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.target.isContentEditable) { return; }
    if (ev.key === "j") { move(1); ev.preventDefault(); }
    else if (ev.key === "k") { move(-1); ev.preventDefault(); }
    else if (ev.key === "Enter") {
      var row = selectedRow();
      if (row) { window.location.href = row.getAttribute("data-href"); ev.preventDefault(); }
    } else if (ev.key === "t") { act("take", {}, "Взято в работу"); ev.preventDefault(); }
    else if (ev.key === "r") {
      ev.preventDefault();
      if (!selectedRow()) { notify("Сначала выберите строку клавишами j/k.", "error"); return; }
      var note = window.prompt("Решить с комментарием: что сделано?");
      if (note === null) { return; }
      act("resolve", { resolution: "answered", note: note }, "Решено");
    }
  });

  rememberIds();
  window.setInterval(refresh, pollMs);
})();
