// The order-set editor, part 2: the author's token, Save and the version history, on the
// FHIR write API (the draft, search, rules and preview are editor.js, loaded first).
//   save     POST /fhir/ValueSet or PUT /fhir/ValueSet/{id} with If-Match: W/"n" and the
//            author's bearer token (kept in sessionStorage for this tab, never a cookie/URL);
//            412 -> conflict message with reload, 401 -> token message, 403 -> scope message,
//            422/400 -> the server's issues beside the fields their `expression` names
//   history  GET /fhir/ValueSet/{id}/_history; each version's expansion on its own page
(function () {
  "use strict";
  var E = window.txEditor;
  if (!E) return;
  var TOKEN_KEY = "tx-write-token";
  var state = E.state, $ = E.$, el = E.el, fhir = E.fhir, issuesOf = E.issuesOf,
      issueText = E.issueText, announce = E.announce;

  // -- token and save --------------------------------------------------------------------

  function token() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }

  function showToken() {
    var has = !!token();
    $("token-entry").hidden = has;
    $("token-set").hidden = !has;
  }

  function useToken() {
    var value = $("token").value.trim();
    if (!value) { $("token").focus(); return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showToken();
    announce("Token set for this tab");
    $("save").focus();
  }

  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    $("token").focus();
    announce("Token forgotten");
  }

  function saveMessage(kind, parts) {
    var box = $("save-status");
    box.textContent = "";
    var div = el("div", { "class": "result " + kind, role: kind === "valid" ? "status" : "alert", tabindex: "-1" }, parts);
    box.appendChild(div);
    return div;
  }

  function save() {
    // A token typed but not yet set with "Use token" is the one this save uses (and keeps).
    var typed = $("token").value.trim();
    if (typed && !token()) {
      sessionStorage.setItem(TOKEN_KEY, typed);
      $("token").value = "";
      showToken();
    }
    E.clearAllErrors();
    var body = E.cleanDraft();
    var headers = { "Prefer": "return=representation" };
    var t = token();
    if (t) headers.Authorization = "Bearer " + t;
    var method = "POST", url = "/fhir/ValueSet";
    if (state.id) {
      method = "PUT";
      url = "/fhir/ValueSet/" + encodeURIComponent(state.id);
      body.id = state.id;
      if (state.versionId) headers["If-Match"] = 'W/"' + state.versionId + '"';
    }
    $("save").disabled = true;
    saveMessage("pending", ["Saving…"]);
    fhir(method, url, body, headers).then(function (r) {
      $("save").disabled = false;
      if (r.status === 200 || r.status === 201) saved(r);
      else if (r.status === 412) conflict();
      else if (r.status === 401) unauthorized(r);
      else if (r.status === 403) forbidden(r);
      else if (r.status >= 500) unavailable(r);
      else refused(r);
    }, function () {
      $("save").disabled = false;
      saveMessage("invalid", ["The server could not be reached; nothing was saved."]);
    });
  }

  function versionFrom(r) {
    var etag = r.headers.get("ETag") || "";
    var m = /^(?:W\/)?"([^"]+)"$/.exec(etag.trim());
    if (m) return m[1];
    return r.json && r.json.meta ? r.json.meta.versionId : null;
  }

  function idFrom(r) {
    if (r.json && r.json.resourceType === "ValueSet" && r.json.id) return r.json.id;
    var loc = r.headers.get("Location") || r.headers.get("Content-Location") || "";
    var m = /ValueSet\/([^/]+)/.exec(loc);
    return m ? m[1] : state.id;
  }

  function saved(r) {
    state.id = idFrom(r);
    state.versionId = versionFrom(r);
    if (r.json && r.json.resourceType === "ValueSet") {
      state.draft = r.json;
      if (!state.draft.compose) state.draft.compose = { include: [] };
      E.renderCompose();
    }
    if (location.pathname !== "/editor/" + state.id) history.replaceState(null, "", "/editor/" + encodeURIComponent(state.id));
    $("editor-heading").textContent = "Edit order set: " + (state.draft.title || state.draft.name || state.id);
    saveMessage("valid", ["Saved" + (state.versionId ? " as version " + state.versionId : "") + ". ",
      el("a", { href: "/valueset?url=" + encodeURIComponent(state.draft.url || "") , text: "Open the value set page" })]);
    announce("Saved" + (state.versionId ? " version " + state.versionId : ""));
    loadHistory();
  }

  function conflict() {
    var box = saveMessage("invalid", [
      el("p", { text: "Someone else saved this order set after you opened it, so your save was refused (nothing was overwritten)." }),
      el("p", { text: "Reload to get their version; your changes on this page will be lost, so note them first." }),
      el("button", { type: "button", id: "reload-latest", text: "Reload the latest version", onclick: function () { location.reload(); } }),
    ]);
    box.classList.add("conflict");
    $("reload-latest").focus();
  }

  function unauthorized(r) {
    var had = !!token();
    if (had) sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    saveMessage("invalid", [el("p", { text: had
      ? "The server did not accept your write token (401). Enter a valid token and save again."
      : "Saving needs a write token (401). Enter your token above and save again." }),
      el("p", { "class": "meta", text: issuesOf(r.json).map(issueText).join(" ") })]);
    $("token").focus();
  }

  function forbidden(r) {
    saveMessage("invalid", [el("p", { text: "Your token is valid but does not allow writing value sets (403)." }),
      el("p", { "class": "meta", text: issuesOf(r.json).map(issueText).join(" ") })]);
  }

  // 503 when the store cannot be reached: nothing was written, the draft is still here.
  function unavailable(r) {
    saveMessage("invalid", [el("p", { text: "The server could not store the order set just now (" + r.status +
      "); nothing was saved. Your draft is still on this page: try again in a moment." }),
      el("p", { "class": "meta", text: issuesOf(r.json).map(issueText).join(" ") })]).focus();
  }

  function refused(r) {
    var issues = issuesOf(r.json);
    var elsewhere = [], first = null;
    issues.forEach(function (i) {
      var placed = null;
      (i.expression || []).forEach(function (e) { placed = E.showBeside(e, issueText(i)) || placed; });
      if (placed) first = first || placed; else elsewhere.push(i);
    });
    var errors = issues.filter(function (i) { return i.severity === "error" || i.severity === "fatal"; }).length;
    var parts = [el("p", { text: "The server refused the order set (" + r.status + "): " + (errors || issues.length) +
      ((errors || issues.length) === 1 ? " problem" : " problems") + (first ? ", shown beside the fields they concern." : ".") })];
    if (elsewhere.length) {
      parts.push(el("ul", {}, elsewhere.map(function (i) { return el("li", { text: issueText(i) + ((i.expression || []).length ? " (" + i.expression.join(", ") + ")" : "") }); })));
    }
    var box = saveMessage("invalid", parts);
    (first || box).focus();
  }

  // -- history ---------------------------------------------------------------------------

  function loadHistory() {
    if (!state.id) return;
    fhir("GET", "/fhir/ValueSet/" + encodeURIComponent(state.id) + "/_history").then(function (r) {
      if (r.status !== 200 || !r.json || r.json.resourceType !== "Bundle") return;
      var list = $("history");
      list.textContent = "";
      (r.json.entry || []).forEach(function (e) {
        var res = e.resource;
        if (!res || !res.meta) {
          list.appendChild(el("li", { text: "Deleted" }));
          return;
        }
        var n = res.meta.versionId;
        var when = res.meta.lastUpdated ? new Date(res.meta.lastUpdated).toLocaleString() : "";
        list.appendChild(el("li", { "data-version": n }, [
          el("a", { href: "/editor/" + encodeURIComponent(state.id) + "/_history/" + encodeURIComponent(n),
                    text: "Version " + n + " expansion" }),
          el("span", { "class": "meta", text: " " + [res.version ? "v" + res.version : "", res.status, when].filter(Boolean).join(" · ") + " · " }),
          el("a", { "class": "meta", href: "/fhir/ValueSet/" + encodeURIComponent(state.id) + "/_history/" + encodeURIComponent(n),
                    text: "FHIR", "aria-label": "Version " + n + " as FHIR JSON" }),
        ]));
      });
      $("history-panel").hidden = !list.children.length;
    });
  }

  E.hooks.push(function () {
    if (!E.readOnly && E.cfg.writes) { // a read-only server's page has no token box or Save
      $("use-token").addEventListener("click", useToken);
      $("token").addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); useToken(); } });
      $("forget-token").addEventListener("click", forgetToken);
      $("save").addEventListener("click", save);
      showToken();
    }
    loadHistory();
  });
})();
