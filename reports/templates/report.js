/* report.html's script: renders the findings tables from the JSON in #report-data, one page of
   rows at a time, with filters and sorting that follow the URL fragment (#rule=UNLINKED&state=all),
   and folds the per-org metrics table. Data is only ever written with textContent, never as HTML.
   Plain ES5 on purpose: stewards' browsers are not always recent. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var L = data.labels, COLS = data.columns, CODES = data.codes, N = data.count;
  var ACTIVE = { "new": 1, "open": 1, "reopened": 1 };
  var SEVERITY_RANK = { "error": 0, "warning": 1, "info": 2 };
  var STATE_RANK = { "new": 0, "reopened": 1, "open": 2, "resolved": 3 };
  var DEFAULTS = { rule: "", org: "", type: "", state: "active", owner: "", severity: "", q: "",
                   sort: "rule", dir: "asc", page: "1", size: "100" };
  var FILTERS = ["rule", "org", "type", "state", "owner", "severity"];

  function text(key, values) {
    var s = L.text[key] || key;
    for (var name in values) { s = s.split("{" + name + "}").join(String(values[name])); }
    return s;
  }
  function label(table, code) { return code === null ? "" : (L[table][code] || code); }
  function coded(column, i) {
    var k = COLS[column] ? COLS[column][i] : null;
    return k === null || k === undefined ? null : CODES[column][k];
  }
  function value(column, i) { var v = COLS[column] ? COLS[column][i] : null; return v === null || v === undefined ? "" : String(v); }
  function orgName(code) { return code === null ? "" : (data.orgs[code] ? data.orgs[code].name : code); }
  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (content !== undefined && content !== null) { node.textContent = content; }
    return node;
  }
  function indexOf(list, item) { for (var i = 0; i < list.length; i++) { if (list[i] === item) { return i; } } return -1; }

  var ruleRank = {};
  for (var r = 0; r < data.rule_order.length; r++) { ruleRank[data.rule_order[r]] = r; }
  // Each org code's chain up the tree, so choosing a city also finds its counties' findings.
  var orgChains = (CODES.org_code || []).map(function (code) {
    var chain = [code], seen = {}, parent = data.orgs[code] ? data.orgs[code].parent : null;
    seen[code] = 1;
    while (parent && !seen[parent]) { chain.push(parent); seen[parent] = 1; parent = data.orgs[parent] ? data.orgs[parent].parent : null; }
    return chain;
  });

  // The table's columns: header key, sort key, and how a cell is filled.
  var COLUMNS = [
    { key: "rule", sort: function (i) { return ruleRank[coded("rule_id", i)]; },
      fill: function (td, i) { var id = coded("rule_id", i); td.appendChild(el("span", null, label("rules", id))); td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "rid", id)); } },
    { key: "severity", sort: function (i) { return SEVERITY_RANK[coded("severity", i)]; },
      fill: function (td, i) { var s = coded("severity", i); td.appendChild(el("span", "sev sev-" + s, label("severities", s))); } },
    { key: "state", sort: function (i) { return STATE_RANK[coded("state", i)]; },
      fill: function (td, i) { var s = coded("state", i); td.appendChild(el("span", "st st-" + s, label("states", s))); } },
    { key: "asset_type", sort: function (i) { return indexOf(data.asset_type_order, coded("asset_type", i)); },
      fill: function (td, i) { td.textContent = label("asset_types", coded("asset_type", i)); } },
    { key: "asset_name", cls: "name", sort: function (i) { return value("asset_name", i); },
      fill: function (td, i) { td.textContent = value("asset_name", i); } },
    { key: "org_name", cls: "org", sort: function (i) { return coded("org_code", i) || ""; },
      fill: function (td, i) { var c = coded("org_code", i); td.textContent = orgName(c); if (c) { td.title = c; } } },
    { key: "field", sort: function (i) { return label("fields", coded("field", i)); },
      fill: function (td, i) { td.textContent = label("fields", coded("field", i)); } },
    { key: "pms_value", cls: "val", sort: function (i) { return value("pms_value", i); },
      fill: function (td, i) { td.textContent = value("pms_value", i); } },
    { key: "marketing_value", cls: "val", sort: function (i) { return value("marketing_value", i); },
      fill: function (td, i) { td.textContent = value("marketing_value", i); } },
    { key: "ids", cls: "ids", sort: function (i) { return value("pms_id", i) + "/" + value("marketing_id", i); },
      fill: function (td, i) {
        td.appendChild(el("div", null, "PMS " + (value("pms_id", i) || "—")));
        td.appendChild(el("div", null, text("marketing_system") + " " + (value("marketing_id", i) || "—")));
      } },
    { key: "detail", cls: "detail", sort: function (i) { return value("detail", i); },
      fill: function (td, i) { td.textContent = value("detail", i); } },
    { key: "owner", sort: function (i) { return coded("owner", i) || ""; },
      fill: function (td, i) { td.textContent = coded("owner", i) || ""; } },
    { key: "first_seen", cls: "seen", sort: function (i) { return value("first_seen", i); },
      fill: function (td, i) { var s = value("first_seen", i); td.textContent = s.slice(0, 16).replace("T", " "); td.title = s; } }
  ];
  var WAIVER_COLUMNS = ["waiver_reason", "waived_by", "waiver_expires"].filter(function (k) { return COLS[k]; }).map(function (k) {
    return { key: k, sort: function (i) { return value(k, i); }, fill: function (td, i) { td.textContent = value(k, i); } };
  });

  var haystack = null; // lower-cased searchable text per finding, built on the first search
  function searchText(i) {
    if (haystack === null) {
      haystack = new Array(N);
      for (var j = 0; j < N; j++) {
        haystack[j] = [value("asset_name", j), value("pms_id", j), value("marketing_id", j), value("finding_id", j),
                       value("detail", j), value("pms_value", j), value("marketing_value", j), orgName(coded("org_code", j))].join("\n").toLowerCase();
      }
    }
    return haystack[i];
  }

  function FindingTable(box, waived, columns) {
    this.box = box; this.waived = waived; this.columns = columns;
    this.state = {}; for (var k in DEFAULTS) { this.state[k] = DEFAULTS[k]; }
    if (waived) { this.state.state = ""; }
    this.sortKeys = {};
    this.build();
  }
  FindingTable.prototype.build = function () {
    var self = this;
    this.pagerTop = this.pager(true);
    this.table = el("table");
    var head = el("thead"), tr = el("tr");
    this.columns.forEach(function (column) {
      var th = el("th", "sortable", L.columns[column.key] || column.key);
      th.setAttribute("data-sort", column.key);
      th.addEventListener("click", function () {
        var s = self.state;
        s.dir = s.sort === column.key && s.dir === "asc" ? "desc" : "asc";
        s.sort = column.key; s.page = "1";
        self.changed();
      });
      tr.appendChild(th);
    });
    head.appendChild(tr);
    this.body = el("tbody");
    this.table.appendChild(head); this.table.appendChild(this.body);
    this.box.appendChild(this.pagerTop.root);
    var scroll = el("div", "scroll"); scroll.appendChild(this.table);
    this.box.appendChild(scroll);
    this.pagerBottom = this.pager(false);
    this.box.appendChild(this.pagerBottom.root);
  };
  FindingTable.prototype.pager = function (top) {
    var self = this, root = el("div", "pager");
    var count = el("span", "count");
    if (top) { count.id = this.waived ? "waived-shown" : "findings-count"; }
    var prev = el("button", null, text("prev")), next = el("button", null, text("next"));
    prev.type = next.type = "button";
    prev.addEventListener("click", function () { self.state.page = String(Math.max(1, +self.state.page - 1)); self.changed(); });
    next.addEventListener("click", function () { self.state.page = String(+self.state.page + 1); self.changed(); });
    root.appendChild(prev); root.appendChild(next); root.appendChild(count);
    if (top) {
      var size = el("select");
      size.className = "page-size";
      [50, 100, 200, 500].forEach(function (n) { var o = el("option", null, String(n)); o.value = String(n); size.appendChild(o); });
      size.addEventListener("change", function () { self.state.size = size.value; self.state.page = "1"; self.changed(); });
      var lab = el("label", null, text("page_size") + " ");
      lab.appendChild(size); root.appendChild(lab);
      this.sizeSelect = size;
    }
    return { root: root, count: count, prev: prev, next: next };
  };
  FindingTable.prototype.changed = function () { this.render(); if (this.onchange) { this.onchange(); } };
  FindingTable.prototype.matching = function () {
    var s = this.state, want = {}, rows = [], i;
    function codeIndex(column, v) { return v === "" ? null : indexOf(CODES[column] || [], v); }
    want.rule = codeIndex("rule_id", s.rule); want.type = codeIndex("asset_type", s.type);
    want.owner = codeIndex("owner", s.owner); want.severity = codeIndex("severity", s.severity);
    var stateOk = (CODES.state || []).map(function (code) {
      return s.state === "" || s.state === "all" || (s.state === "active" ? ACTIVE[code] === 1 : code === s.state);
    });
    var orgOk = orgChains.map(function (chain) { return s.org === "" || indexOf(chain, s.org) >= 0; });
    var q = s.q.toLowerCase().replace(/^\s+|\s+$/g, "");
    var apartCol = COLS.apart, ruleCol = COLS.rule_id, typeCol = COLS.asset_type, ownerCol = COLS.owner,
        sevCol = COLS.severity, stateCol = COLS.state, orgCol = COLS.org_code;
    for (i = 0; i < N; i++) {
      if (apartCol[i] !== this.waived) { continue; }
      if (want.rule !== null && ruleCol[i] !== want.rule) { continue; }
      if (want.type !== null && typeCol[i] !== want.type) { continue; }
      if (want.owner !== null && ownerCol[i] !== want.owner) { continue; }
      if (want.severity !== null && sevCol[i] !== want.severity) { continue; }
      if (stateCol[i] === null ? !(s.state === "" || s.state === "all") : !stateOk[stateCol[i]]) { continue; }
      if (s.org !== "" && (orgCol[i] === null || !orgOk[orgCol[i]])) { continue; }
      if (q && searchText(i).indexOf(q) < 0) { continue; }
      rows.push(i);
    }
    return rows;
  };
  FindingTable.prototype.sorted = function (rows) {
    var s = this.state, column = null;
    for (var c = 0; c < this.columns.length; c++) { if (this.columns[c].key === s.sort) { column = this.columns[c]; } }
    if (!column) { return rows; }
    var keys = this.sortKeys[column.key];
    if (!keys) {
      keys = new Array(N);
      for (var i = 0; i < N; i++) { var k = column.sort(i); keys[i] = k === undefined || k === null ? "" : k; }
      this.sortKeys[column.key] = keys;
    }
    var sign = s.dir === "desc" ? -1 : 1;
    return rows.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      return x < y ? -sign : x > y ? sign : a - b;
    });
  };
  FindingTable.prototype.render = function () {
    var s = this.state, self = this;
    var rows = this.sorted(this.matching());
    var size = Math.max(1, parseInt(s.size, 10) || 100), pages = Math.max(1, Math.ceil(rows.length / size));
    var page = Math.min(Math.max(1, parseInt(s.page, 10) || 1), pages);
    s.page = String(page);
    var start = (page - 1) * size, end = Math.min(rows.length, start + size);
    var body = el("tbody");
    for (var n = start; n < end; n++) {
      var i = rows[n], tr = el("tr");
      tr.setAttribute("data-finding-id", value("finding_id", i));
      tr.setAttribute("data-rule", coded("rule_id", i) || "");
      tr.setAttribute("data-state", coded("state", i) || "");
      for (var c = 0; c < this.columns.length; c++) {
        var td = el("td", this.columns[c].cls);
        this.columns[c].fill(td, i);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    if (rows.length === 0) {
      var empty = el("tr"), td0 = el("td", "none", text("none_shown"));
      td0.colSpan = this.columns.length; empty.appendChild(td0); body.appendChild(empty);
    }
    this.table.replaceChild(body, this.body);
    this.body = body;
    var summary = rows.length ? text("shown", { from: start + 1, to: end, count: rows.length }) : text("none_shown");
    [this.pagerTop, this.pagerBottom].forEach(function (p) {
      p.count.textContent = summary + " · " + page + "/" + pages;
      p.prev.disabled = page <= 1; p.next.disabled = page >= pages;
    });
    var counter = this.pagerTop.count;
    counter.setAttribute("data-count", String(rows.length));
    counter.setAttribute("data-shown", String(end - start));
    counter.setAttribute("data-page", String(page));
    counter.setAttribute("data-pages", String(pages));
    if (this.sizeSelect) { this.sizeSelect.value = String(size); }
    var ths = this.table.tHead.rows[0].cells;
    for (var h = 0; h < ths.length; h++) {
      var key = ths[h].getAttribute("data-sort");
      if (key === s.sort) { ths[h].setAttribute("aria-sort", s.dir === "desc" ? "descending" : "ascending"); }
      else { ths[h].removeAttribute("aria-sort"); }
    }
    self.box.setAttribute("data-count", String(rows.length));
  };

  // --- the filter form of the main table --------------------------------------------------
  function option(select, val, txt) { var o = el("option", null, txt); o.value = val; select.appendChild(o); }
  function present(column) {
    var seen = {}, list = [];
    (COLS[column] || []).forEach(function (k) { if (k !== null && !seen[k]) { seen[k] = 1; list.push(CODES[column][k]); } });
    return list;
  }
  function fillFilters() {
    var sel = function (name) { return document.getElementById("filter-" + name); };
    option(sel("rule"), "", text("filter_all"));
    var rules = present("rule_id");
    data.rule_order.forEach(function (id) { if (indexOf(rules, id) >= 0) { option(sel("rule"), id, label("rules", id) + " " + id); } });
    option(sel("org"), "", text("filter_all"));
    orgOptions().forEach(function (o) { option(sel("org"), o.code, o.text); });
    option(sel("type"), "", text("filter_all"));
    var types = present("asset_type");
    data.asset_type_order.forEach(function (t) { if (indexOf(types, t) >= 0) { option(sel("type"), t, label("asset_types", t)); } });
    option(sel("state"), "active", text("filter_active"));
    ["new", "open", "reopened", "resolved"].forEach(function (st) { option(sel("state"), st, label("states", st)); });
    option(sel("state"), "all", text("filter_all"));
    option(sel("owner"), "", text("filter_all"));
    present("owner").sort().forEach(function (o) { option(sel("owner"), o, o); });
    option(sel("severity"), "", text("filter_all"));
    ["error", "warning", "info"].forEach(function (v) { if (indexOf(present("severity"), v) >= 0) { option(sel("severity"), v, label("severities", v)); } });
  }
  function orgOptions() {
    // Depth-first over the org tree, indented, so a city is followed by its counties.
    var children = {}, roots = [], out = [];
    Object.keys(data.orgs).sort().forEach(function (code) {
      var parent = data.orgs[code].parent;
      if (parent && data.orgs[parent]) { (children[parent] = children[parent] || []).push(code); } else { roots.push(code); }
    });
    function walk(code, depth) {
      var pad = new Array(depth + 1).join("\u3000");
      out.push({ code: code, text: pad + (code === "?" ? text("unknown_org") : orgName(code)) + (orgName(code) !== code ? " " + code : "") });
      (children[code] || []).forEach(function (child) { walk(child, depth + 1); });
    }
    roots.forEach(function (code) { walk(code, 0); });
    return out;
  }

  function readHash(state) {
    var hash = window.location.hash.replace(/^#/, "");
    if (hash.indexOf("=") < 0) { return false; }
    for (var k in DEFAULTS) { state[k] = DEFAULTS[k]; }
    hash.split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq < 0) { return; }
      var key = decodeURIComponent(part.slice(0, eq)), val = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
      if (Object.prototype.hasOwnProperty.call(DEFAULTS, key)) { state[key] = val; }
    });
    return true;
  }
  function writeHash(state) {
    var parts = [];
    for (var k in DEFAULTS) { if (state[k] !== DEFAULTS[k]) { parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(state[k])); } }
    var url = parts.length ? "#" + parts.join("&") : window.location.pathname + window.location.search;
    try { window.history.replaceState(null, "", url); } catch (e) { /* file:// in some browsers: the filters still work */ }
  }
  function syncForm(state) {
    FILTERS.forEach(function (name) {
      var select = document.getElementById("filter-" + name);
      select.value = state[name];
      if (select.value !== state[name]) { // a value the data does not have: add it, so the filter shows what it does
        option(select, state[name], state[name]); select.value = state[name];
      }
    });
    document.getElementById("filter-q").value = state.q;
  }

  // --- the per-org metrics table: city rows fold their counties ---------------------------
  function foldOrgs() {
    var table = document.getElementById("org-metrics");
    if (!table) { return; }
    var rows = Array.prototype.slice.call(table.tBodies[0].rows), groups = {}, collapsed = {};
    rows.forEach(function (row) { if (/kind-group/.test(row.className)) { groups[row.getAttribute("data-org")] = row; } });
    function hiddenBy(row) {
      var parent = row.getAttribute("data-parent"), seen = {};
      while (parent && groups[parent] && !seen[parent]) {
        if (collapsed[parent]) { return true; }
        seen[parent] = 1; parent = groups[parent].getAttribute("data-parent");
      }
      return false;
    }
    function refresh() {
      rows.forEach(function (row) {
        row.hidden = hiddenBy(row);
        var code = row.getAttribute("data-org");
        if (groups[code] === row) { row.className = row.className.replace(/ ?collapsed/g, "") + (collapsed[code] ? " collapsed" : ""); }
      });
    }
    Object.keys(groups).forEach(function (code) {
      if (groups[code].getAttribute("data-parent")) { collapsed[code] = true; } // counties folded at first
      groups[code].addEventListener("click", function () { collapsed[code] = !collapsed[code]; refresh(); });
    });
    document.getElementById("orgs-expand").addEventListener("click", function () { collapsed = {}; refresh(); });
    document.getElementById("orgs-collapse").addEventListener("click", function () {
      Object.keys(groups).forEach(function (code) { if (groups[code].getAttribute("data-parent")) { collapsed[code] = true; } });
      refresh();
    });
    refresh();
  }

  // --- wiring -------------------------------------------------------------------------------
  var main = new FindingTable(document.getElementById("findings"), 0, COLUMNS);
  var waived = new FindingTable(document.getElementById("waived"), 1, COLUMNS.concat(WAIVER_COLUMNS));
  fillFilters();
  var fromLink = readHash(main.state);
  syncForm(main.state);
  main.onchange = function () { writeHash(main.state); };
  main.render();
  waived.render();
  foldOrgs();

  var form = document.getElementById("filters");
  function fromForm() {
    FILTERS.forEach(function (name) { main.state[name] = document.getElementById("filter-" + name).value; });
    main.state.q = document.getElementById("filter-q").value;
    main.state.page = "1";
    main.changed();
  }
  FILTERS.forEach(function (name) { document.getElementById("filter-" + name).addEventListener("change", fromForm); });
  var typing = null;
  document.getElementById("filter-q").addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(fromForm, 200); });
  form.addEventListener("submit", function (event) { event.preventDefault(); fromForm(); });
  form.addEventListener("reset", function (event) {
    event.preventDefault();
    for (var k in DEFAULTS) { main.state[k] = DEFAULTS[k]; }
    syncForm(main.state); main.changed();
  });
  window.addEventListener("hashchange", function () {
    if (readHash(main.state)) {
      syncForm(main.state); main.render();
      document.getElementById("sec-findings").scrollIntoView();
    }
  });
  if (fromLink) { document.getElementById("sec-findings").scrollIntoView(); }
  // The browser test waits for data-ready; data-ready-ms (since navigation start) is for the benchmark.
  document.documentElement.setAttribute("data-ready-ms", String(Math.round(window.performance ? performance.now() : 0)));
  document.documentElement.setAttribute("data-ready", "1");
})();
