// The compose form's Markdown toolbar (publisher/console/templates/items/compose.html):
// each button wraps the selection in the body textarea, or starts its lines, with the
// Markdown of its action, then fires "input" so the live preview follows.
(function () {
  "use strict";
  var WRAP = { bold: ["**", "**", "加粗文字"], link: ["[", "](https://)", "链接文字"] };
  var LINE = { heading: "## ", list: "- ", quote: "> " };

  function apply(area, action) {
    var start = area.selectionStart, end = area.selectionEnd;
    var text = area.value, chosen = text.slice(start, end);
    var before = text.slice(0, start), after = text.slice(end), inserted;
    if (WRAP[action]) {
      var w = WRAP[action];
      inserted = w[0] + (chosen || w[2]) + w[1];
    } else {
      var lineStart = before.lastIndexOf("\n") + 1;
      chosen = text.slice(lineStart, end);
      before = text.slice(0, lineStart);
      inserted = chosen.split("\n").map(function (line) { return LINE[action] + line; }).join("\n");
    }
    area.value = before + inserted + after;
    area.focus();
    area.setSelectionRange(before.length, before.length + inserted.length);
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-markdown]");
    if (!button) { return; }
    var toolbar = button.closest("[role=toolbar]");
    var area = toolbar && document.getElementById(toolbar.getAttribute("aria-controls"));
    if (area) { apply(area, button.getAttribute("data-markdown")); }
  });
})();
