// The web catalog works without this script; with it, the search filters as you type and the
// copy buttons put a command on the clipboard.
(function () {
  "use strict";
  function filter(input) {
    var list = document.querySelector(input.getAttribute("data-filter"));
    if (!list) { return; }
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var items = list.querySelectorAll("li[data-search]");
    var shown = 0;
    items.forEach(function (item) {
      var text = item.getAttribute("data-search");
      var match = words.every(function (w) { return text.indexOf(w) !== -1; });
      item.hidden = !match;
      if (match) { shown += 1; }
    });
    var count = document.getElementById("count");
    if (count) { count.textContent = shown + " of " + items.length + " shown"; }
  }
  function copy(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    var label = button.textContent;
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-filter]").forEach(function (input) {
      input.addEventListener("input", function () { filter(input); });
      if (input.value) { filter(input); }
    });
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copy(button); });
    });
  });
})();
