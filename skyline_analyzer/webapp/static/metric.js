// The metric's series as an interactive uPlot chart: drag to zoom, double-click to reset, values on hover.
"use strict";
(function () {
  const holder = document.getElementById("chart");
  const source = document.getElementById("series-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  const data = JSON.parse(source.textContent);
  const last = data.timestamps.length - 1;
  // The last datapoint, the one the algorithms voted on, as a second series drawn as a single red dot.
  const marked = data.values.map(function (v, i) { return i === last ? v : null; });
  const options = {
    width: Math.max(320, holder.clientWidth),
    height: 320,
    cursor: { drag: { x: true, y: false } },
    series: [
      {},
      { label: "value", stroke: "#3b6ea5", width: 1 },
      { label: "last datapoint", stroke: "#d62828", width: 0, points: { show: true, size: 8, fill: "#d62828" } },
    ],
  };
  const chart = new uPlot(options, [data.timestamps, data.values, marked], holder);
  window.skylineChart = chart;
  window.addEventListener("resize", function () {
    chart.setSize({ width: Math.max(320, holder.clientWidth), height: 320 });
  });
})();
