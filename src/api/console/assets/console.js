// bulkexport console: refreshes each [data-live] region every two seconds
// while it shows work under way ([data-running]), without a page reload.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  function schedule(region) {
    if (region.querySelector("[data-running]")) {
      window.setTimeout(function () { refresh(region); }, PERIOD_MS);
    }
  }
  function refresh(region) {
    fetch(region.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { region.innerHTML = html; }
        schedule(region);
      })
      .catch(function () { schedule(region); });
  }
  document.querySelectorAll("[data-live]").forEach(schedule);
})();
