// Offline filtering of the findings. No request, no storage, no dependency.
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
  var rows = Array.prototype.slice.call(document.querySelectorAll("#details .finding, #details .folded > li"));
  // A row's owner and system are its system section's, a folded line's status is its list's:
  // read once, so the page does not repeat them on every row.
  var where = rows.map(function (row) { return row.closest(".system").dataset; });
  var status = rows.map(function (row) { return row.dataset.status || row.parentNode.dataset.status; });
  var texts = null;
  var containers = Array.prototype.slice.call(document.querySelectorAll("#details .host, #details .system, #details .owner"));
  var folds = Array.prototype.slice.call(document.querySelectorAll("#details details.passes"));

  function matches(row, i, want, needle) {
    var d = row.dataset;
    if (want.sev && d.sev !== want.sev) { return false; }
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
    var want = { sev: fields.sev.value, status: fields.status.value, owner: fields.owner.value, system: fields.system.value };
    var needle = fields.text.value.trim().toLowerCase();
    var active = Boolean(want.sev || want.status || want.owner || want.system || needle);
    var shown = 0;
    rows.forEach(function (row, i) {
      var ok = matches(row, i, want, needle);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    containers.forEach(function (box) {
      box.hidden = active && box.querySelector(".finding:not([hidden]), .folded > li:not([hidden])") === null;
    });
    folds.forEach(function (fold) {
      fold.open = active && fold.querySelector(".finding:not([hidden]), .folded > li:not([hidden])") !== null;
    });
    counter.textContent = shown + " / " + counter.dataset.total;
    empty.hidden = shown > 0;
  }

  form.addEventListener("input", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });

  apply();
}());
