// Offline filtering of the findings. No request, no storage, no dependency.
// Nothing walks the rows until the reader first touches the filter: a province's page holds tens
// of thousands of them, and the page must open without waiting for a script.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) { return; }
  var fields = {
    sev: document.getElementById("f-sev"),
    status: document.getElementById("f-status"),
    owner: document.getElementById("f-owner"),
    system: document.getElementById("f-system"),
    text: document.getElementById("f-text")
  };
  var counter = document.getElementById("f-count");
  var empty = document.getElementById("f-empty");
  var total = counter.dataset.total;
  var SHOWN = "[data-sev]:not([hidden])";
  var rows = null, where, status, texts = null, containers, folds;

  // Every row the filter counts carries its severity (data-sev); its status is its own or its
  // group's (a table body, a list), its owner and system its system section's: read once.
  function collect() {
    rows = Array.prototype.slice.call(document.querySelectorAll("#details [data-sev]"));
    where = rows.map(function (row) { return row.closest(".system").dataset; });
    status = rows.map(function (row) { return row.dataset.status || row.parentNode.dataset.status; });
    containers = Array.prototype.slice.call(document.querySelectorAll(
      "#details tbody[data-status], #details .host, #details .system, #details .owner"));
    folds = Array.prototype.slice.call(document.querySelectorAll("#details details.passes"));
  }

  function matches(row, i, want, needle) {
    if (want.sev && row.dataset.sev !== want.sev) { return false; }
    if (want.status && status[i] !== want.status) { return false; }
    if (want.owner && where[i].owner !== want.owner) { return false; }
    if (want.system && where[i].system !== want.system) { return false; }
    if (needle) {
      if (texts === null) { texts = rows.map(function (r) { return r.textContent.toLowerCase(); }); }
      if (texts[i].indexOf(needle) < 0) { return false; }
    }
    return true;
  }

  function apply() {
    if (rows === null) { collect(); }
    var want = { sev: fields.sev.value, status: fields.status.value, owner: fields.owner.value, system: fields.system.value };
    var needle = fields.text.value.trim().toLowerCase();
    var active = Boolean(want.sev || want.status || want.owner || want.system || needle);
    var shown = 0;
    rows.forEach(function (row, i) {
      var ok = matches(row, i, want, needle);
      if (row.hidden === ok) { row.hidden = !ok; }
      if (ok) { shown += 1; }
    });
    containers.forEach(function (box) {
      box.hidden = active && box.querySelector(SHOWN) === null;
    });
    folds.forEach(function (fold) {
      fold.open = active && fold.querySelector(SHOWN) !== null;
    });
    counter.textContent = shown + " / " + total;
    empty.hidden = shown > 0;
  }

  form.addEventListener("input", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  counter.textContent = total + " / " + total;
}());
