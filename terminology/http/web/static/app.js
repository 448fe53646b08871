// Search as you type: fetch the server-rendered results block (debounced) and swap it in.
// Without JavaScript the form still works: it submits to /?q=... which renders the same block.
(function () {
  "use strict";
  var form = document.querySelector("form.search");
  var results = document.getElementById("results");
  var status = document.getElementById("search-status");
  if (!form || !results || !window.fetch) return;
  var input = form.querySelector("#q");
  var system = form.querySelector("#system");
  var timer = null;
  var pending = null;

  function query() {
    var params = new URLSearchParams();
    var q = input.value.trim();
    if (q) params.set("q", q);
    if (system && system.value) params.set("system", system.value);
    return params.toString();
  }

  function refresh() {
    var qs = query();
    if (pending) pending.abort();
    pending = new AbortController();
    results.setAttribute("aria-busy", "true");
    fetch(form.dataset.resultsUrl + (qs ? "?" + qs : ""), { signal: pending.signal })
      .then(function (resp) { return resp.text(); })
      .then(function (html) {
        results.innerHTML = html;
        results.removeAttribute("aria-busy");
        // Announce a short count, not the whole list, to screen readers.
        var found = results.querySelectorAll("ul.hits li").length;
        if (status) status.textContent = qs ? found + (found === 1 ? " result" : " results") : "";
        // Keep the address shareable: it reproduces these results without JavaScript.
        history.replaceState(null, "", qs ? "?" + qs : location.pathname);
      })
      .catch(function (err) { if (err.name !== "AbortError") results.removeAttribute("aria-busy"); });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  input.addEventListener("input", later);
  if (system) system.addEventListener("change", refresh);
})();
