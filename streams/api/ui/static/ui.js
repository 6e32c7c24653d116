// Sign-in, live refresh and table sorting for the /ui/ pages. The token is kept in
// sessionStorage (this tab only, gone when it closes) and sent as an Authorization
// header; it never goes into an address or a log.
"use strict";
(function () {
  var KEY = "kpi-token";
  var body = document.body;
  var auth = body.dataset.auth === "on";
  var poll = parseFloat(body.dataset.poll || "5") * 1000;
  var content = document.getElementById("content");
  var status = document.getElementById("status");
  var signin = document.getElementById("signin");
  var refused = document.getElementById("refused");
  var signout = document.getElementById("signout");
  var sort = null; // [column, direction] the reader chose, kept across refreshes
  var timer = null;

  function token() { return sessionStorage.getItem(KEY); }
  function show(el, on) { el.hidden = !on; }
  function fragmentUrl() { return "/ui/f" + (location.pathname.slice(3) || "/home").replace(/^\/$/, "/home") + location.search; }

  function refuse(text) {
    show(refused, true); show(signin, false); content.innerHTML = "";
    document.getElementById("refused-detail").textContent = text;
  }

  function refresh() {
    var headers = {};
    if (auth) {
      var t = token();
      if (!t) { show(signin, true); show(signout, false); content.innerHTML = ""; return; }
      headers.Authorization = "Bearer " + t;
      show(signout, true);
    }
    fetch(fragmentUrl(), { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status === 401) {
        sessionStorage.removeItem(KEY);
        refuse("This token was refused: it is mistyped, revoked or has expired. Ask for a new one and sign in again.");
        return null;
      }
      if (r.status === 403) {
        refuse("This page is outside what your token may see (your own page, or your departments). Go to the start page or sign in with another token.");
        return null;
      }
      return r.text().then(function (html) {
        if (!r.ok) {
          var detail = "";
          try { detail = JSON.parse(html).detail; } catch (err) { detail = ""; }
          if (!content.textContent.trim()) { content.textContent = detail || ("Error " + r.status); }
          status.textContent = "Not refreshed (" + r.status + (detail ? ": " + detail : "") + "); retrying.";
          return;
        }
        show(refused, false); show(signin, false);
        content.innerHTML = html;
        applySort();
        status.textContent = "Updated " + new Date().toLocaleTimeString();
      });
    }).catch(function () {
      status.textContent = "Connection lost; retrying.";
    }).then(schedule);
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) { timer = setTimeout(refresh, poll); }
  }

  function cellValue(row, col) {
    var c = row.children[col];
    if (!c) { return ""; }
    var v = c.getAttribute("data-v");
    return v === null ? null : (isNaN(Number(v)) ? v : Number(v));
  }

  function applySort() {
    var table = content.querySelector("table.sortable");
    if (!table || !sort) { return; }
    var col = sort[0], dir = sort[1];
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === null) { return 1; }     // no figure: always last
      if (y === null) { return -1; }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === col ? (dir > 0 ? "ascending" : "descending") : "none");
    });
  }

  content.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-sort]");
    if (b) {
      var col = parseInt(b.dataset.sort, 10);
      sort = [col, sort && sort[0] === col ? -sort[1] : 1];
      applySort();
      return;
    }
    var row = e.target.closest("tr[data-employee]");
    if (row && !e.target.closest("a")) { row.querySelector("a").click(); }
  });

  content.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-picker]");
    if (!form) { return; }
    e.preventDefault();
    var input = form.querySelector("input");
    var q = input.value ? "?" + input.name + "=" + encodeURIComponent(input.value) : "";
    history.pushState(null, "", location.pathname + q);
    refresh();
  });

  document.getElementById("signin-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var field = document.getElementById("token");
    var t = field.value.trim();
    field.value = "";
    if (t) { sessionStorage.setItem(KEY, t); refresh(); }
  });
  document.getElementById("again").addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    show(refused, false); refresh();
  });
  signout.addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    show(signout, false); refresh();
  });
  window.addEventListener("popstate", refresh);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });

  if (auth) { refresh(); } else { schedule(); }
})();
