// Progressive enhancement only: every page reads without JavaScript.
(function () {
  "use strict";

  var STATUS_COLORS = {
    succeeded: "#1f7a3a", failed: "#b3261e", timed_out: "#d9480f", canceled: "#9aa5b4",
    pending_dependencies: "#9a6200", queued: "#2457c5", dispatched: "#4c6ef5", running: "#15aabf",
    never_ran: "#c2c8d0",
  };

  function readJson(el) {
    return el ? JSON.parse(el.textContent) : null;
  }

  function formatDuration(ms) {
    var s = Math.round(Math.abs(ms) / 1000), sign = ms < 0 ? "-" : "";
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return sign + d + " d " + h + " h";
    if (h) return sign + h + " h " + m + " min";
    if (m) return sign + m + " min " + (s % 60) + " s";
    return sign + s + " s";
  }

  // "Fresh until" countdowns on the metric page.
  function tickCountdowns() {
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Date.parse(el.dataset.until) - Date.now();
      el.textContent = left > 0 ? "(stale in " + formatDuration(left) + ")" : "(stale since " + formatDuration(-left) + ")";
    });
  }

  function drawCharts() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas.chart").forEach(function (canvas) {
      var data = readJson(canvas.nextElementSibling);
      if (!data) return;
      if (canvas.dataset.chart === "hourly") {
        new window.Chart(canvas, {
          type: "bar",
          data: {
            labels: data.labels,
            datasets: data.datasets.map(function (ds) {
              return { label: ds.label, data: ds.data, backgroundColor: STATUS_COLORS[ds.status] || "#888" };
            }),
          },
          options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
        });
      } else {
        new window.Chart(canvas, {
          type: "line",
          data: { labels: data.labels, datasets: [{ label: data.label, data: data.points, borderColor: "#2457c5", pointRadius: 0 }] },
          options: { animation: false, responsive: true, maintainAspectRatio: false },
        });
      }
    });
  }

  function nodeColor(node) {
    var kind = node.data("kind");
    if (kind === "dataset") return "#4b5563";
    if (kind === "series") return "#8b9bb4";
    return STATUS_COLORS[node.data("state")] || "#c2c8d0";
  }

  // dagre's crossing minimisation takes many seconds beyond a few hundred nodes. The graph
  // always has three ranks (dataset, series, metric), so big graphs get a linear-time layout
  // instead: each column ordered by the mean position of a node's inputs (one barycentre pass).
  var RANKS = { dataset: 0, series: 1, metric: 2 };

  function threeColumnPositions(cy) {
    var columns = [[], [], []], place = {};
    cy.nodes().forEach(function (n) { columns[RANKS[n.data("kind")]].push(n); });
    columns.forEach(function (column, rank) {
      if (rank > 0) {
        column.forEach(function (n) {
          var inputs = n.incomers("node"), sum = 0;
          inputs.forEach(function (i) { sum += place[i.id()] || 0; });
          n.scratch("_order", inputs.length ? sum / inputs.length : 0);
        });
        column.sort(function (a, b) { return a.scratch("_order") - b.scratch("_order"); });
      }
      column.forEach(function (n, index) { place[n.id()] = index / Math.max(column.length - 1, 1); });
    });
    var height = 18 * Math.max(columns[0].length, columns[1].length, columns[2].length);
    return function (n) {
      return { x: 320 * RANKS[n.data("kind")], y: place[n.id()] * height };
    };
  }

  function graphLayout(cy, dagreMaxNodes) {
    if (window.cytoscapeDagre && cy.nodes().length <= dagreMaxNodes) {
      return { name: "dagre", rankDir: "LR", nodeSep: 6, rankSep: 140, animate: false };
    }
    return { name: "preset", positions: threeColumnPositions(cy), fit: false };
  }

  function drawGraph() {
    var container = document.getElementById("graph");
    if (!container || typeof window.cytoscape === "undefined") return;
    if (window.cytoscapeDagre) window.cytoscape.use(window.cytoscapeDagre);
    var elements = readJson(document.getElementById("graph-data"));
    var started = performance.now();
    var cy = window.cytoscape({
      container: container,
      elements: elements,
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: {
          label: "data(label)", "font-size": 10, "text-valign": "center", "text-halign": "right",
          "text-margin-x": 4, width: 14, height: 14, "background-color": nodeColor,
          "min-zoomed-font-size": 7, color: getComputedStyle(document.body).color } },
        { selector: "node[kind = 'dataset']", style: { shape: "round-rectangle", width: 18, height: 18 } },
        { selector: "node[kind = 'series']", style: { shape: "diamond", width: 10, height: 10 } },
        { selector: "edge", style: { width: 1, "line-color": "#9aa5b4", "target-arrow-color": "#9aa5b4",
          "target-arrow-shape": "triangle", "arrow-scale": 0.6, "curve-style": "bezier" } },
      ],
    });
    var layout = graphLayout(cy, Number(container.dataset.dagreMaxNodes || 250));
    cy.layout(layout).run();
    if (layout.name === "preset") {
      // Too tall to fit readably: open at label-readable zoom on the top; drag or scroll on.
      cy.zoom(Math.min(1, container.clientWidth / 960));
      cy.pan({ x: 24, y: 24 });
    }
    cy.on("tap", "node", function (event) { window.location.href = event.target.data("href"); });
    window.moGraph = cy;  // the browser tests count nodes through this
    container.dataset.layoutMs = String(Math.round(performance.now() - started));
    container.dataset.rendered = String(cy.nodes().length);
  }

  document.addEventListener("DOMContentLoaded", function () {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    drawCharts();
    drawGraph();
  });
})();
