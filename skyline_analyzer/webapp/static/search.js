// Prefix suggestions for the search box, from /api/metrics (names are inserted as option values: text, never HTML).
"use strict";
(function () {
  const box = document.getElementById("search-box");
  const list = document.getElementById("search-suggestions");
  if (!box || !list) return;
  let timer = null;
  let asked = "";
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(suggest, 150);
  });
  function suggest() {
    const prefix = box.value;
    if (prefix === asked || prefix.length === 0 || prefix.length > 1000) return;
    asked = prefix;
    fetch("/api/metrics?limit=20&prefix=" + encodeURIComponent(prefix))
      .then(function (response) { return response.ok ? response.json() : { metrics: [] }; })
      .then(function (data) {
        if (box.value !== prefix) return;
        list.replaceChildren.apply(list, data.metrics.map(function (name) {
          const option = document.createElement("option");
          option.value = name;
          return option;
        }));
      })
      .catch(function () { /* a failed suggestion leaves the box usable */ });
  }
  // Picking a suggestion opens the metric rather than searching for it again.
  box.addEventListener("change", function () {
    const chosen = Array.prototype.some.call(list.options, function (o) { return o.value === box.value; });
    if (chosen) window.location.href = "/metric?name=" + encodeURIComponent(box.value);
  });
})();
