// The order-set editor: a ValueSet draft edited in the page, on the FHIR API only.
//   search   the search page's $expand request with `filter` (per code system, from the page)
//   preview  POST /fhir/ValueSet/$expand with the draft inline (`valueSet`), paged, plus
//            $batch-validate-code of the listed codes (unknown codes, displays that differ)
//   save, history: editor-save.js
(function () {
  "use strict";
  var configEl = document.getElementById("editor-config");
  if (!configEl || !window.fetch) return;
  var cfg = JSON.parse(configEl.textContent);
  var PAGE = 20;
  var MAX_CHECKED = 1000; // listed codes checked by $batch-validate-code per preview
  var FIELDS = ["title", "name", "url", "version", "status", "description"];
  var readOnly = !!cfg.versionId; // the page of one saved version: preview only

  var state = {
    id: cfg.id,
    draft: cfg.draft,
    versionId: (cfg.draft.meta || {}).versionId || null,
    offset: 0,
    deriveName: !cfg.draft.name,
    deriveUrl: !cfg.draft.url,
    hits: [],
    previewSeq: 0,
    searchSeq: 0,
  };
  if (!state.draft.compose) state.draft.compose = { include: [] };
  if (!state.draft.compose.include) state.draft.compose.include = [];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "onclick") node.addEventListener("click", attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function announce(text) { $("editor-status").textContent = text; }

  function systemInfo(url) {
    for (var i = 0; i < cfg.systems.length; i++) if (cfg.systems[i].url === url) return cfg.systems[i];
    return null;
  }

  function currentSystem() { return systemInfo($("vs-system").value) || cfg.systems[0]; }

  // -- the FHIR API ----------------------------------------------------------------------

  function fhir(method, url, body, headers) {
    var h = { "Accept": "application/fhir+json" };
    if (body) h["Content-Type"] = "application/fhir+json";
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(url, { method: method, headers: h, body: body ? JSON.stringify(body) : undefined })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var json = null;
          try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
          return { status: resp.status, headers: resp.headers, json: json };
        });
      });
  }

  function issuesOf(outcome) {
    return outcome && outcome.resourceType === "OperationOutcome" ? outcome.issue || [] : [];
  }

  function issueText(issue) {
    return (issue.details && issue.details.text) || issue.diagnostics || issue.code || "Error";
  }

  // -- names and urls made from the title ------------------------------------------------

  function words(text) { return (text || "").match(/[A-Za-z0-9]+/g) || []; }

  // FHIR name: [A-Z][A-Za-z0-9_]* ("CT spine, any contrast" -> "CtSpineAnyContrast")
  function nameFrom(title) {
    var name = words(title).map(function (w) { return w.charAt(0).toUpperCase() + w.slice(1).toLowerCase(); }).join("");
    if (name && !/^[A-Za-z]/.test(name)) name = "Vs" + name;
    return name.slice(0, 255);
  }

  function slugFrom(title) { return words(title).join("-").toLowerCase().slice(0, 64); }

  // -- the draft -------------------------------------------------------------------------

  function compose() { return state.draft.compose; }

  function isListed(inc) { return !inc.filter && !inc.valueSet; }

  function listedInclude(system, create) {
    var incs = compose().include;
    for (var i = 0; i < incs.length; i++) if (incs[i].system === system && isListed(incs[i])) return incs[i];
    if (!create) return null;
    var inc = { system: system, concept: [] };
    incs.push(inc);
    return inc;
  }

  function hasListed(system, code) {
    var inc = listedInclude(system, false);
    return !!(inc && (inc.concept || []).some(function (c) { return c.code === code; }));
  }

  function unexclude(system, code) {
    (compose().exclude || []).forEach(function (exc) {
      if (exc.system === system && exc.concept) exc.concept = exc.concept.filter(function (c) { return c.code !== code; });
    });
  }

  function addCode(system, code, display) {
    if (hasListed(system, code)) return false;
    unexclude(system, code);
    var inc = listedInclude(system, true);
    inc.concept = inc.concept || [];
    var concept = { code: code };
    if (display) concept.display = display;
    inc.concept.push(concept);
    return true;
  }

  function excludeCode(system, code, display) {
    var inc = listedInclude(system, false);
    if (inc && hasListed(system, code)) {
      inc.concept = inc.concept.filter(function (c) { return c.code !== code; });
      return "Removed " + code;
    }
    var excludes = compose().exclude = compose().exclude || [];
    var exc = excludes.filter(function (e) { return e.system === system && !e.filter && !e.valueSet; })[0];
    if (!exc) { exc = { system: system, concept: [] }; excludes.push(exc); }
    exc.concept = exc.concept || [];
    if (!exc.concept.some(function (c) { return c.code === code; })) {
      var c = { code: code };
      if (display) c.display = display;
      exc.concept.push(c);
    }
    return "Excluded " + code;
  }

  // The draft as sent: empty lists dropped, no server-managed meta.
  function cleanDraft() {
    var vs = JSON.parse(JSON.stringify(state.draft));
    var c = vs.compose;
    c.include = c.include.filter(function (i) { return i.filter || i.valueSet || (i.concept && i.concept.length); });
    if (c.exclude) {
      c.exclude = c.exclude.filter(function (i) { return i.filter || i.valueSet || (i.concept && i.concept.length); });
      if (!c.exclude.length) delete c.exclude;
    }
    if (vs.meta) {
      delete vs.meta.versionId;
      delete vs.meta.lastUpdated;
      if (!Object.keys(vs.meta).length) delete vs.meta;
    }
    delete vs.expansion;
    delete vs.text;
    return vs;
  }

  // Includes and excludes left empty are dropped at once, so the draft's indexes are the
  // ones the server names in its issues (ValueSet.compose.include[1].concept[0]).
  function prune() {
    var c = compose();
    var keep = function (i) { return i.filter || i.valueSet || (i.concept && i.concept.length); };
    c.include = c.include.filter(keep);
    if (c.exclude) { c.exclude = c.exclude.filter(keep); if (!c.exclude.length) delete c.exclude; }
  }

  function changed(what) {
    prune();
    clearComposeErrors();
    renderCompose();
    state.offset = 0;
    schedulePreview();
    if (what) announce(what);
  }

  // -- details ---------------------------------------------------------------------------

  function fieldInput(f) { return $("vs-" + f); }

  function bindDetails() {
    FIELDS.forEach(function (f) {
      var input = fieldInput(f);
      input.value = state.draft[f] || (f === "status" ? "draft" : "");
      if (readOnly) { input.disabled = true; return; }
      input.addEventListener("input", function () { setField(f, input.value); });
      input.addEventListener("change", function () { setField(f, input.value); });
    });
    if (!state.draft.status) state.draft.status = "draft";
    if (!readOnly && state.draft.title && (state.deriveName || state.deriveUrl)) setField("title", state.draft.title);
  }

  function setField(f, value) {
    if (value.trim()) state.draft[f] = f === "description" ? value : value.trim();
    else delete state.draft[f];
    clearFieldError(f);
    if (f === "name") state.deriveName = !value.trim();
    if (f === "url") state.deriveUrl = !value.trim();
    if (f === "title") {
      if (state.deriveName) { fieldInput("name").value = nameFrom(value); setDerived("name"); }
      if (state.deriveUrl) {
        var slug = slugFrom(value);
        fieldInput("url").value = slug ? cfg.urlBase + "/" + slug : "";
        setDerived("url");
      }
    }
  }

  function setDerived(f) {
    var v = fieldInput(f).value;
    if (v) state.draft[f] = v; else delete state.draft[f];
  }

  // -- search ----------------------------------------------------------------------------

  var searchTimer = null;

  function searchLater() { clearTimeout(searchTimer); searchTimer = setTimeout(search, 250); }

  function search() {
    var text = $("code-search").value.trim();
    var sys = currentSystem();
    var seq = ++state.searchSeq;
    if (!text || !sys) { showHits([], 0, ""); return; }
    var req = sys.search, done;
    if (req.method === "GET") {
      var u = new URL(req.url, location.href);
      u.searchParams.set("filter", text);
      done = fhir("GET", u.pathname + u.search);
    } else {
      var body = JSON.parse(JSON.stringify(req.body));
      body.parameter.push({ name: "filter", valueString: text });
      done = fhir("POST", req.url, body);
    }
    done.then(function (r) {
      if (seq !== state.searchSeq) return;
      if (r.status !== 200) {
        showHits([], 0, text, issuesOf(r.json).map(issueText).join("; ") || "Search failed (" + r.status + ")");
        return;
      }
      var exp = r.json.expansion || {};
      var hits = (exp.contains || []).filter(function (c) { return c.system === sys.url; });
      showHits(hits, exp.total === undefined ? hits.length : exp.total, text);
    });
  }

  function showHits(hits, total, text, error) {
    state.hits = hits;
    var list = $("search-results");
    list.textContent = "";
    hits.forEach(function (h) {
      var already = hasListed(h.system, h.code);
      list.appendChild(el("li", {}, [
        el("span", { "class": "hit" }, [el("code", { "class": "code", text: h.code }), " ", el("span", { text: h.display || "" })]),
        el("button", { type: "button", "class": "secondary add-code", "aria-label": "Add " + h.code + " " + (h.display || ""),
                       disabled: already ? "disabled" : null, text: already ? "Added" : "Add",
                       onclick: function (ev) {
                         if (addCode(h.system, h.code, h.display)) {
                           ev.target.textContent = "Added";
                           ev.target.disabled = true;
                           changed("Added " + h.code);
                           focusNextAdd(ev.target);
                         }
                       } }),
      ]));
    });
    var status = $("search-status");
    if (error) status.textContent = error;
    else if (!text) status.textContent = "";
    else if (!hits.length) status.textContent = "No codes match “" + text + "”.";
    else status.textContent = total + (total === 1 ? " match" : " matches") + (total > hits.length ? ", first " + hits.length + " shown" : "");
    var addAll = $("add-all");
    addAll.hidden = hits.length < 2;
    addAll.textContent = "Add all " + hits.length + " shown";
    copyrightNotice("search", hits.length ? [currentSystem().url] : []);
  }

  // After adding a hit, keep the keyboard in the list: the next Add button that is enabled.
  function focusNextAdd(button) {
    var buttons = Array.prototype.slice.call(document.querySelectorAll("#search-results button.add-code"));
    var next = buttons.slice(buttons.indexOf(button) + 1).concat(buttons).filter(function (b) { return !b.disabled; })[0];
    (next || $("code-search")).focus();
  }

  function addAll() {
    var n = 0;
    state.hits.forEach(function (h) { if (addCode(h.system, h.code, h.display)) n++; });
    showHits(state.hits, state.hits.length, $("code-search").value.trim());
    $("code-search").focus();
    changed(n ? "Added " + n + (n === 1 ? " code" : " codes") : "All shown codes are already in the order set");
  }

  function addTyped() {
    var input = $("code-entry");
    var codes = input.value.split(/[\s,;]+/).filter(Boolean);
    var sys = currentSystem();
    var n = 0;
    codes.forEach(function (code) { if (addCode(sys.url, code, null)) n++; });
    input.value = "";
    changed(n ? "Added " + codes.join(", ") : "Nothing added");
  }

  // -- rules -----------------------------------------------------------------------------

  function renderFacets() {
    var sys = currentSystem();
    var box = $("facets");
    box.textContent = "";
    var panel = $("rules-panel");
    panel.hidden = !sys || (!sys.facets.length && !sys.code_ranges);
    if (!sys) return;
    $("ranges-field").hidden = !sys.code_ranges;
    sys.facets.forEach(function (f) {
      var fs = el("fieldset", { "class": "facet", "data-property": f.property }, [el("legend", { text: f.label })]);
      f.values.forEach(function (v) {
        var id = "facet-" + f.property + "-" + v[0].replace(/[^A-Za-z0-9_-]/g, "_");
        fs.appendChild(el("div", { "class": "check" }, [
          el("input", { type: "checkbox", id: id, value: v[0] }),
          el("label", { "for": id, text: v[1] }),
        ]));
      });
      box.appendChild(fs);
    });
  }

  function addRule() {
    var sys = currentSystem();
    var filters = [];
    document.querySelectorAll("#facets fieldset").forEach(function (fs) {
      var values = Array.prototype.map.call(fs.querySelectorAll("input:checked"), function (i) { return i.value; });
      if (values.length) {
        filters.push({ property: fs.dataset.property, op: values.length === 1 ? "=" : "in", value: values.join(",") });
      }
    });
    var ranges = $("code-ranges").value.split(/[\s,;]+/).filter(Boolean).join(",");
    if (ranges) filters.push({ property: "code", op: "in", value: ranges });
    if (!filters.length) { announce("Tick at least one facet value or give a code range"); $("facets").querySelector("input") && $("facets").querySelector("input").focus(); return; }
    compose().include.push({ system: sys.url, filter: filters });
    document.querySelectorAll("#facets input:checked").forEach(function (i) { i.checked = false; });
    $("code-ranges").value = "";
    changed("Rule added: " + describeFilters(filters));
  }

  function facetLabel(property, value) {
    var sys = systemInfo($("vs-system").value);
    var f = sys && sys.facets.filter(function (x) { return x.property === property; })[0];
    var v = f && f.values.filter(function (x) { return x[0] === value; })[0];
    return v ? v[1] : value;
  }

  function describeFilters(filters) {
    return filters.map(function (f) {
      var label = property(f.property);
      var values = String(f.value).split(",").map(function (v) { return facetLabel(f.property, v); });
      if (f.property === "code") return "code in " + f.value;
      return label + (f.op === "in" ? " is any of " + values.join(", ") : f.op === "=" ? " is " + values[0] : " " + f.op + " " + f.value);
    }).join("; ");
  }

  function property(code) {
    for (var i = 0; i < cfg.systems.length; i++) {
      var f = cfg.systems[i].facets.filter(function (x) { return x.property === code; })[0];
      if (f) return f.label;
    }
    return code;
  }

  // -- the definition list ---------------------------------------------------------------

  function systemLabel(url) { var s = systemInfo(url); return s ? s.label : url || "(no system)"; }

  function renderCompose() {
    var list = $("compose-list");
    list.textContent = "";
    var parts = [["include", compose().include], ["exclude", compose().exclude || []]];
    parts.forEach(function (part) {
      part[1].forEach(function (inc, i) {
        var path = "ValueSet.compose." + part[0] + "[" + i + "]";
        if (isListed(inc) && !(inc.concept && inc.concept.length) && !inc.valueSet) return;
        var item = el("li", { "class": "rule " + part[0], "data-expression": path });
        var head = (part[0] === "include" ? "Include" : "Exclude");
        item.appendChild(el("strong", { text: head }));
        item.appendChild(document.createTextNode(" " + (isListed(inc) ? "these codes" : "codes") + " from " + systemLabel(inc.system)));
        if (inc.filter) {
          item.appendChild(document.createTextNode(" where " + describeFilters(inc.filter) + " "));
          if (!readOnly) item.appendChild(el("button", { type: "button", "class": "link", text: "Remove rule",
            "aria-label": "Remove rule " + describeFilters(inc.filter),
            onclick: function () { part[1].splice(i, 1); changed("Rule removed"); $("add-rule").focus(); } }));
        }
        if (inc.valueSet) item.appendChild(document.createTextNode(" in " + inc.valueSet.join(", ")));
        item.appendChild(el("p", { "class": "field-error", hidden: "hidden" }));
        if (inc.concept && inc.concept.length) {
          var ul = el("ul", { "class": "concepts" });
          inc.concept.forEach(function (c, j) {
            var li = el("li", { "data-expression": path + ".concept[" + j + "]" }, [
              el("code", { "class": "code", text: c.code }), " ", el("span", { text: c.display || "" }), " ",
            ]);
            if (!readOnly) li.appendChild(el("button", { type: "button", "class": "link",
              text: part[0] === "include" ? "Remove" : "Put back", "aria-label": (part[0] === "include" ? "Remove " : "Put back ") + c.code,
              onclick: function () {
                inc.concept.splice(j, 1);
                changed((part[0] === "include" ? "Removed " : "Put back ") + c.code);
                $("compose-list").focus();
              } }));
            li.appendChild(el("p", { "class": "field-error", hidden: "hidden" }));
            ul.appendChild(li);
          });
          item.appendChild(ul);
        }
        list.appendChild(item);
      });
    });
    if (!list.children.length) list.appendChild(el("li", { "class": "empty", text: "Nothing yet: add codes or a rule." }));
    list.setAttribute("tabindex", "-1");
  }

  // -- preview ---------------------------------------------------------------------------

  var previewTimer = null;

  function schedulePreview() { clearTimeout(previewTimer); previewTimer = setTimeout(preview, 300); }

  function hasContent(vs) { return vs.compose.include.length > 0; }

  function preview() {
    var vs = cleanDraft();
    var seq = ++state.previewSeq;
    var count = $("preview-count");
    if (!hasContent(vs)) {
      count.textContent = "No codes yet";
      showPreview(null, []);
      return;
    }
    $("preview-panel").setAttribute("aria-busy", "true");
    var body = { resourceType: "Parameters", parameter: [
      { name: "valueSet", resource: vs },
      { name: "offset", valueInteger: state.offset },
      { name: "count", valueInteger: PAGE },
    ] };
    Promise.all([fhir("POST", "/fhir/ValueSet/$expand", body), checkListed(vs)]).then(function (answers) {
      if (seq !== state.previewSeq) return;
      $("preview-panel").removeAttribute("aria-busy");
      var r = answers[0], listedIssues = answers[1];
      if (r.status !== 200) {
        count.textContent = "The server cannot expand this draft";
        showPreview(null, issuesOf(r.json).map(function (i) {
          return { severity: i.severity, text: issueText(i), expression: (i.expression || [])[0] };
        }).concat(listedIssues));
        return;
      }
      var exp = r.json.expansion || {};
      var total = exp.total === undefined ? (exp.contains || []).length : exp.total;
      count.textContent = total === 0 ? "No codes" : total + (total === 1 ? " code" : " codes");
      showPreview(exp, listedIssues);
    }).catch(function () {
      if (seq !== state.previewSeq) return;
      $("preview-panel").removeAttribute("aria-busy");
      count.textContent = "The preview could not be fetched";
    });
  }

  // Listed codes checked against their code systems: unknown codes, displays that differ.
  function checkListed(vs) {
    var checks = [];
    ["include", "exclude"].forEach(function (kind) {
      (vs.compose[kind] || []).forEach(function (inc, i) {
        if (!inc.system) return;
        (inc.concept || []).forEach(function (c, j) {
          var path = "ValueSet.compose." + kind + "[" + i + "].concept[" + j + "]";
          checks.push({ path: path, code: c.code, coding: { system: inc.system, version: inc.version, code: c.code, display: c.display } });
        });
      });
    });
    checks = checks.slice(0, MAX_CHECKED);
    if (!checks.length) return Promise.resolve([]);
    var body = { resourceType: "Parameters", parameter: [
      { name: "valueSet", resource: { resourceType: "ValueSet", status: "active",
        compose: { include: uniqueSystems(checks).map(function (s) { return { system: s }; }) } } },
    ].concat(checks.map(function (c) {
      var coding = {};
      Object.keys(c.coding).forEach(function (k) { if (c.coding[k]) coding[k] = c.coding[k]; });
      return { name: "validation", resource: { resourceType: "Parameters", parameter: [{ name: "coding", valueCoding: coding }] } };
    })) };
    return fhir("POST", "/fhir/ValueSet/$batch-validate-code", body).then(function (r) {
      if (r.status !== 200) return [];
      var out = [];
      (r.json.parameter || []).filter(function (p) { return p.name === "validation"; }).forEach(function (p, n) {
        var check = checks[n], res = p.resource || {};
        var issues = issuesOf(res); // the validation failed as a whole
        (res.parameter || []).forEach(function (x) { if (x.name === "issues") issues = issues.concat(issuesOf(x.resource)); });
        issues.forEach(function (i) {
          out.push({ severity: i.severity, text: check.code + ": " + issueText(i), expression: check.path });
        });
      });
      return out;
    }, function () { return []; });
  }

  function uniqueSystems(checks) {
    var seen = {};
    return checks.map(function (c) { return c.coding.system; }).filter(function (s) { return seen[s] ? false : (seen[s] = true); });
  }

  function showPreview(exp, issues) {
    var table = $("preview"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    var contains = (exp && exp.contains) || [];
    table.hidden = !contains.length;
    contains.forEach(function (c) {
      var row = el("tr", {}, [el("td", {}, [el("code", { "class": "code", text: c.code })]), el("td", { text: c.display || "" })]);
      var action = el("td");
      if (!readOnly) {
        action.appendChild(el("button", { type: "button", "class": "link", text: hasListed(c.system, c.code) ? "Remove" : "Exclude",
          "aria-label": (hasListed(c.system, c.code) ? "Remove " : "Exclude ") + c.code,
          onclick: function () { changed(excludeCode(c.system, c.code, c.display)); $("preview-count").focus(); } }));
      }
      row.appendChild(action);
      tbody.appendChild(row);
    });
    var total = exp ? (exp.total === undefined ? contains.length : exp.total) : 0;
    var prev = $("preview-prev"), next = $("preview-next");
    prev.hidden = !exp || state.offset === 0;
    next.hidden = !exp || state.offset + PAGE >= total;
    if (exp && total) $("preview-count").textContent += " · showing " + (state.offset + 1) + "–" + Math.min(state.offset + PAGE, total);
    var box = $("preview-issues");
    box.textContent = "";
    document.querySelectorAll("#compose-list [data-expression] > .field-error").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    if (issues.length) {
      var ul = el("ul", { "class": "result invalid", role: "status" });
      issues.forEach(function (i) {
        ul.appendChild(el("li", { "class": "issue-" + (i.severity || "error") }, [
          el("span", { "class": "severity", text: (i.severity || "error") + ": " }), i.text]));
        if (i.expression) showBeside(i.expression, i.text, true);
      });
      box.appendChild(ul);
    }
    copyrightNotice("preview", contains.map(function (c) { return c.system; }));
  }

  function copyrightNotice(where, systems) {
    var box = document.querySelector('[data-copyright-for="' + where + '"]');
    box.textContent = "";
    var seen = {};
    systems.forEach(function (url) {
      var s = systemInfo(url);
      if (s && s.copyright && !seen[url]) {
        seen[url] = true;
        box.appendChild(el("p", { "class": "copyright" }, [el("strong", { text: s.label + ": " }), s.copyright]));
      }
    });
  }

  // -- issues beside fields --------------------------------------------------------------

  function normalize(expr) { return /^ValueSet\b/.test(expr) ? expr : "ValueSet." + expr; }

  // The element whose data-expression is the longest prefix of `expr` (ValueSet.title,
  // ValueSet.compose.include[1].concept[0], ... ValueSet.compose for any other compose path).
  function fieldFor(expr) {
    expr = normalize(expr);
    var best = null, bestLen = -1;
    document.querySelectorAll("[data-expression]").forEach(function (node) {
      var e = node.getAttribute("data-expression");
      var hit = expr === e || expr.indexOf(e + ".") === 0 || expr.indexOf(e + "[") === 0;
      if (hit && e.length > bestLen) { best = node; bestLen = e.length; }
    });
    return best;
  }

  function showBeside(expr, text, quiet) {
    var node = fieldFor(expr);
    if (!node) return null;
    var err = node.querySelector(":scope > .field-error");
    if (!err) return null;
    err.textContent = err.textContent ? err.textContent + " " + text : text;
    err.hidden = false;
    var input = node.querySelector(":scope > input, :scope > select, :scope > textarea");
    if (input && !quiet) input.setAttribute("aria-invalid", "true");
    return input || node;
  }

  function clearFieldError(f) {
    var err = $("vs-" + f + "-error");
    if (err) { err.hidden = true; err.textContent = ""; }
    fieldInput(f).removeAttribute("aria-invalid");
  }

  function clearComposeErrors() {
    var err = $("compose-error");
    err.hidden = true;
    err.textContent = "";
  }

  function clearAllErrors() {
    FIELDS.forEach(clearFieldError);
    clearComposeErrors();
    document.querySelectorAll("#compose-list .field-error").forEach(function (p) { p.hidden = true; p.textContent = ""; });
  }

  // -- start -----------------------------------------------------------------------------

  function start() {
    if (!readOnly) { init(); return; }
    // One saved version: read it (vread), then show it and its expansion.
    fhir("GET", "/fhir/ValueSet/" + encodeURIComponent(state.id) + "/_history/" + encodeURIComponent(cfg.versionId)).then(function (r) {
      if (r.status !== 200 || !r.json || r.json.resourceType !== "ValueSet") {
        $("preview-count").textContent = "Version " + cfg.versionId + " could not be read (" + r.status + ")";
        showPreview(null, issuesOf(r.json).map(function (i) { return { severity: i.severity, text: issueText(i) }; }));
        return;
      }
      state.draft = r.json;
      if (!state.draft.compose) state.draft.compose = { include: [] };
      init();
    });
  }

  function init() {
    var select = $("vs-system");
    cfg.systems.forEach(function (s) { select.appendChild(el("option", { value: s.url, text: s.label })); });
    bindDetails();
    renderCompose();
    if (readOnly) {
      document.querySelectorAll(".editor .edit-only").forEach(function (n) { n.hidden = true; });
    } else {
      renderFacets();
      select.addEventListener("change", function () { renderFacets(); search(); });
      $("code-search").addEventListener("input", searchLater);
      $("code-search").addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); search(); } });
      $("code-entry").addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); addTyped(); } });
      $("add-all").addEventListener("click", addAll);
      $("add-codes").addEventListener("click", addTyped);
      $("add-rule").addEventListener("click", addRule);
    }
    $("preview-prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - PAGE); preview(); });
    $("preview-next").addEventListener("click", function () { state.offset += PAGE; preview(); });
    $("preview-count").setAttribute("tabindex", "-1");
    $("editor").addEventListener("submit", function (ev) { ev.preventDefault(); });
    preview();
    api.hooks.forEach(function (hook) { hook(); }); // editor-save.js: token, save, history
  }

  // What editor-save.js builds on (loaded after this file; both run before DOMContentLoaded).
  var api = window.txEditor = {
    cfg: cfg, state: state, readOnly: readOnly, hooks: [],
    $: $, el: el, fhir: fhir, issuesOf: issuesOf, issueText: issueText, announce: announce,
    cleanDraft: cleanDraft, renderCompose: renderCompose, showBeside: showBeside,
    clearAllErrors: clearAllErrors,
  };
  document.addEventListener("DOMContentLoaded", start);
})();
