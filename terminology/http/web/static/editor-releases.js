// The order-set editor, part 3: what the newest loaded release changes in the draft.
//   POST /fhir/ValueSet/$diff with the draft inline (`valueSet`), `from` the release before
//   the newest and `to` the newest: codes a rule now picks up, codes that leave (deleted
//   from the code system, or no rule selects them), descriptors revised. A code the draft
//   lists by name that the new release deleted is marked as a code to fix.
(function () {
  "use strict";
  var E = window.txEditor;
  if (!E || !E.cfg.releases || !E.cfg.releases.length) return;
  var $ = E.$, el = E.el, fhir = E.fhir, issuesOf = E.issuesOf, issueText = E.issueText;
  var pair = E.cfg.releases[0];

  function parts(p) {
    var out = {};
    (p.part || []).forEach(function (q) {
      Object.keys(q).forEach(function (k) { if (k.indexOf("value") === 0) out[q.name] = q[k]; });
    });
    return out;
  }

  function what(kind, row) {
    if (kind === "added") return "added (a rule picks it up)";
    if (kind === "removed") return "removed (" + (row.reason === "deleted" ? "deleted from CPT" : "no rule selects it") + ")";
    return "descriptor revised";
  }

  function show(answer) {
    var rows = (answer.parameter || []).filter(function (p) { return p.part; });
    var tbody = $("release-changes").querySelector("tbody");
    tbody.textContent = "";
    var fixes = 0;
    rows.forEach(function (p) {
      var row = parts(p);
      var fix = p.name === "removed" && row.reason === "deleted" && row.listed;
      if (fix) fixes += 1;
      var change = el("td", {}, [what(p.name, row)]);
      if (fix) change.appendChild(el("strong", { class: "fix-mark" }, [" fix: listed code deleted"]));
      var text = row.display || "";
      if (row.previous) text += " (was: " + row.previous + ")";
      tbody.appendChild(el("tr", { class: p.name + (fix ? " to-fix" : "") },
        [change, el("td", {}, [el("code", {}, [row.code])]), el("td", {}, [text])]));
    });
    $("release-changes").hidden = rows.length === 0;
    $("release-count").textContent = rows.length === 0
      ? "Nothing: the same codes and descriptors under both releases"
      : rows.length + (rows.length === 1 ? " change" : " changes") +
        (fixes ? " · " + fixes + (fixes === 1 ? " code" : " codes") + " to fix" : "");
  }

  function check() {
    var vs = E.cleanDraft();
    if (!vs.compose.include.length) { $("release-count").textContent = "No codes yet"; return; }
    $("release-count").textContent = "Checking…";
    var body = { resourceType: "Parameters", parameter: [
      { name: "valueSet", resource: vs }, { name: "system", valueUri: pair.system },
      { name: "from", valueString: pair.from }, { name: "to", valueString: pair.to },
    ] };
    fhir("POST", "/fhir/ValueSet/$diff", body).then(function (r) {
      if (r.status !== 200) {
        $("release-changes").hidden = true;
        $("release-count").textContent = issuesOf(r.json).map(issueText).join(" ") || "The check failed";
        return;
      }
      show(r.json);
    }).catch(function () { $("release-count").textContent = "The check could not be fetched"; });
  }

  E.hooks.push(function () {
    $("release-check").addEventListener("click", check);
    check();
  });
})();
