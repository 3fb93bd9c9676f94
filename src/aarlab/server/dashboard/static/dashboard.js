// Auto-refresh so a person can watch a run: reload every data-refresh seconds, but never while the
// viewer is typing (focused field, or a note already written) or the tab is hidden.
(function () {
  "use strict";
  var secs = Number(document.body.getAttribute("data-refresh") || "0");
  if (!secs) { return; }
  function busy() {
    var el = document.activeElement;
    if (el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) { return true; }
    var areas = document.querySelectorAll("textarea");
    for (var i = 0; i < areas.length; i++) { if (areas[i].value.trim()) { return true; } }
    return false;
  }
  window.setInterval(function () {
    if (!document.hidden && !busy()) { window.location.reload(); }
  }, secs * 1000);
})();
