// The console's only script: conveniences on top of pages that work without
// it. It never inserts text as HTML except the server's own escaped chart
// fragment.
"use strict";
(function () {
  // Poison list: "select all" and the selection count.
  var all = document.getElementById("select-all");
  var form = document.getElementById("selection");
  if (form) {
    var boxes = form.querySelectorAll('input[name="id"]');
    var count = document.getElementById("selected-count");
    var update = function () {
      var n = 0;
      boxes.forEach(function (b) { if (b.checked) n++; });
      if (count) count.textContent = n ? n + " selected" : "Select messages to act on them.";
      form.querySelectorAll(".selection-bar button").forEach(function (b) { b.disabled = n === 0; });
    };
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    if (all) {
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        update();
      });
    }
    update();
  }

  // Confirm buttons: one click only.
  document.querySelectorAll("form.confirm-form").forEach(function (f) {
    f.addEventListener("submit", function () {
      var b = f.querySelector("button");
      if (b) { b.disabled = true; b.textContent = "Working…"; }
    });
  });

  // Topic page: refresh the charts in place every few seconds.
  var charts = document.getElementById("charts");
  if (charts && charts.dataset.src) {
    setInterval(function () {
      if (document.hidden) return;
      fetch(charts.dataset.src, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) charts.innerHTML = html; })
        .catch(function () {});
    }, 5000);
  }

  // Bulk action page: follow its progress.
  var job = document.getElementById("job");
  if (job && job.dataset.done !== "true") {
    var bar = document.getElementById("job-progress");
    var state = document.getElementById("job-state");
    var poll = function () {
      fetch(job.dataset.status, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          bar.value = j.percent;
          if (j.done) { location.reload(); return; }
          var p = j.progress;
          state.textContent = "Working… " + p.scanned + " of " + p.total + " looked at, " + p.done + " done.";
          setTimeout(poll, 400);
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 200);
  }
})();
