// Progressive enhancement only: every page reads without JavaScript.
(function () {
  "use strict";

  var STATUS_COLORS = {
    succeeded: "#1f7a3a", failed: "#b3261e", timed_out: "#d9480f", canceled: "#9aa5b4",
    pending_dependencies: "#9a6200", queued: "#2457c5", dispatched: "#4c6ef5", running: "#15aabf",
  };

  // A metric node's colour is its state (domain/metric_state.py); waiting is neutral grey-blue.
  var STATE_COLORS = {
    healthy: "#1f7a3a", waiting: "#7b8794", running: "#2457c5", failing: "#b3261e", disabled: "#c2c8d0",
  };

  function shortDate(ms) {
    // obs_time as a short UTC date; the time of day only when it is not midnight
    var iso = new Date(ms).toISOString();
    var time = iso.slice(11, 16);
    return time === "00:00" ? iso.slice(0, 10) : iso.slice(0, 10) + " " + time;
  }

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

  // Freshness objectives (SPEC §9): "due in 3 h 12 min" counting down from data-due, then
  // "due 5 min ago" (whether it is late is the server's judgement, by its clock, on reload).
  function tickDue() {
    document.querySelectorAll(".due-countdown[data-due]").forEach(function (el) {
      var left = Date.parse(el.dataset.due) - Date.now();
      if (isNaN(left)) return;
      el.textContent = left > 0 ? "due in " + formatDuration(left) : "due " + formatDuration(-left) + " ago";
    });
  }

  function drawCharts() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas.chart").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;  // drawn already (see redrawAfterSwaps)
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
        // A linear axis over epoch milliseconds, so irregularly spaced observations are drawn
        // at their real distance (the vendored Chart.js has no date adapter for type "time").
        var points = data.points;  // [{x: epoch ms, y: value}], sorted by obs_time
        var markers = placeMarkers(points, data.markers || []);
        var xs = points.map(function (p) { return p.x; }).concat(markers.map(function (m) { return m.x; }));
        new window.Chart(canvas, {
          type: "line",
          data: { datasets: [{ label: data.label, data: points, borderColor: "#2457c5", pointRadius: points.length > 60 ? 0 : 2 }] },
          options: {
            animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
            // the axis spans the markers too: a version usually takes effect after its last observation
            scales: { x: { type: "linear", min: Math.min.apply(null, xs), max: Math.max.apply(null, xs),
              ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8, callback: shortDate } } },
            plugins: { tooltip: { callbacks: { title: function (items) { return items.length ? shortDate(items[0].parsed.x) : ""; } } } },
          },
          plugins: markers.length ? [inputMarkers(markers)] : [],
        });
      }
    });
  }

  // Input versions ([{x: epoch ms, label: dataset}]) where the chart draws them: the axis
  // stretches to a version at most a quarter of the data's span beyond it (a version usually
  // takes effect shortly after its last observation); one further away is drawn at the edge,
  // its label saying its date and which way it lies, so the values are not squeezed.
  function placeMarkers(points, markers) {
    if (!points.length) return [];
    var first = points[0].x, last = points[points.length - 1].x;
    var room = Math.max(last - first, 86400000) / 4;
    return markers.map(function (m) {
      if (m.x > last + room) return { x: last + room, label: m.label + " " + shortDate(m.x) + " \u2192" };
      if (m.x < first - room) return { x: first - room, label: "\u2190 " + m.label + " " + shortDate(m.x) };
      return m;
    });
  }

  // A Chart.js plugin drawing a dashed vertical line, labelled with its dataset, at the
  // effective time of each input version a run consumed (its lineage). Labels of versions
  // close together step down so they do not overlap. The canvas says how many it drew.
  function inputMarkers(markers) {
    return {
      id: "inputMarkers",
      afterDatasetsDraw: function (chart) {
        var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx, drawn = 0, lastRight = -Infinity, row = 0;
        ctx.save();
        ctx.font = "11px sans-serif";
        ctx.strokeStyle = "#9a6200";
        ctx.fillStyle = "#9a6200";
        ctx.setLineDash([4, 3]);
        markers.forEach(function (m) {
          var px = x.getPixelForValue(m.x);
          if (px < area.left - 1 || px > area.right + 1) return;
          ctx.beginPath();
          ctx.moveTo(px, area.top);
          ctx.lineTo(px, area.bottom);
          ctx.stroke();
          var width = ctx.measureText(m.label).width;
          var left = Math.max(area.left, Math.min(px + 3, area.right - width));
          row = left < lastRight + 4 ? row + 1 : 0;
          ctx.fillText(m.label, left, area.top + 11 + 12 * row);
          lastRight = Math.max(lastRight, left + width);
          drawn += 1;
        });
        ctx.restore();
        chart.canvas.dataset.markersDrawn = String(drawn);
      },
    };
  }

  // The runs list: select runs (a checkbox per row, one for the page) to retry or cancel them
  // together. While any run is selected the live list holds still (its refresh would undo the
  // selection), and says so.
  function selectedRuns() {
    return document.querySelectorAll("#run-rows input[name='run']:checked");
  }

  function showSelection() {
    var count = selectedRuns().length;
    var counter = document.querySelector("#bulk-form .selected-count");
    if (counter) counter.textContent = count ? count + " selected" : "";
    var live = document.querySelector("#runs-table .live");
    if (live) {
      live.dataset.base = live.dataset.base || live.textContent;
      live.textContent = count ? "live: paused while runs are selected" : live.dataset.base;
    }
    var all = document.getElementById("select-all");
    var boxes = document.querySelectorAll("#run-rows input[name='run']");
    if (all) all.checked = boxes.length > 0 && count === boxes.length;
  }

  function setUpSelection() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("#run-rows input[name='run']").forEach(function (box) { box.checked = all.checked; });
      showSelection();
    });
    document.addEventListener("change", function (event) {
      if (event.target.matches && event.target.matches("#run-rows input[name='run']")) showSelection();
    });
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      if (event.target.id === "run-rows" && selectedRuns().length) event.preventDefault();
    });
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      if (event.target.id === "run-rows" && selectedRuns().length) event.detail.shouldSwap = false;
    });
  }

  // Codes have no spaces (BCRA_LELIQ_NOTALIQ_ARS_BN_D): allow a line break after _ . / @ -.
  function wrappableLabel(node) {
    return String(node.data("label")).replace(/([_./@-])/g, "$1\u200b");
  }

  function nodeColor(node) {
    var kind = node.data("kind");
    if (kind === "dataset") return "#4b5563";
    if (kind === "series") return "#8b9bb4";
    return STATE_COLORS[node.data("state")] || "#c2c8d0";
  }

  // Every node carries its column (interfaces/web/graph.py): datasets, series, then metrics by
  // depth (SPEC §8), so every edge points right.
  function column(n) {
    return Number(n.data("column")) || 0;
  }

  // dagre's crossing minimisation takes many seconds beyond a few hundred nodes, so big graphs
  // use the positions the server computed (one barycentre pass per column, linear time).
  function graphLayout(cy, dagreMaxNodes) {
    if (window.cytoscapeDagre && cy.nodes().length <= dagreMaxNodes) {
      // Labels sit under their node and wrap (see drawGraph): the layout sizes nodes with their
      // labels, so labels neither overlap each other nor sit on an edge. An edge spans at least
      // as many ranks as columns between its ends, so dagre keeps the columns by depth.
      return { name: "dagre", rankDir: "LR", nodeSep: 14, rankSep: 90, edgeSep: 8,
        nodeDimensionsIncludeLabels: true, animate: false,
        minLen: function (edge) { return Math.max(column(edge.target()) - column(edge.source()), 1); } };
    }
    return { name: "preset", fit: false };
  }

  // Each edge turns down (or up) in the free band before its target's column, at an x of its
  // own target: edges into one node share a vertical, edges into different nodes never merge
  // into one trunk, and no vertical runs through a label (labels stay inside their column's band).
  function spreadEdgeTurns(cy) {
    var byColumn = [];
    cy.nodes().forEach(function (n) { (byColumn[column(n)] = byColumn[column(n)] || []).push(n); });
    var right = [], left = [];
    for (var c = 0; c < byColumn.length; c++) {
      var boxes = (byColumn[c] || []).map(function (n) { return n.boundingBox({ includeLabels: true }); });
      right.push(Math.max.apply(null, boxes.map(function (b) { return b.x2; }).concat([-Infinity])));
      left.push(Math.min.apply(null, boxes.map(function (b) { return b.x1; }).concat([Infinity])));
    }
    cy.batch(function () {
      for (var rank = 1; rank < byColumn.length; rank++) {
        var targets = (byColumn[rank] || []).slice().sort(function (a, b) { return a.position("y") - b.position("y"); });
        var before = Math.max.apply(null, right.slice(0, rank));
        var free = left[rank] - before;
        if (!(free > 0)) continue;
        targets.forEach(function (target, i) {
          var x = before + free * (0.15 + 0.7 * (targets.length > 1 ? i / (targets.length - 1) : 0.5));
          target.incomers("edge").forEach(function (edge) {
            var start = edge.source().position("x");
            edge.style("taxi-turn", Math.max(x - start, 1) + "px");
          });
        });
      }
    });
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
          label: wrappableLabel, "font-size": 10, "text-valign": "bottom", "text-halign": "center",
          "text-margin-y": 3, "text-wrap": "wrap", "text-max-width": 120, "line-height": 1.1,
          width: 14, height: 14, "background-color": nodeColor,
          "min-zoomed-font-size": 7, color: getComputedStyle(document.body).color } },
        { selector: "node[kind = 'dataset']", style: { shape: "round-rectangle", width: 18, height: 18 } },
        { selector: "node[kind = 'series']", style: { shape: "diamond", width: 10, height: 10 } },
        { selector: "edge", style: { width: 1, "line-color": "#9aa5b4", "target-arrow-color": "#9aa5b4",
          "target-arrow-shape": "triangle", "arrow-scale": 0.6,
          // right-angled edges: out of a node sideways, turning halfway between two columns,
          // so an edge never runs through a label (labels sit under their node)
          "curve-style": "taxi", "taxi-direction": "rightward", "taxi-turn": "50%" } },
      ],
    });
    var layout = graphLayout(cy, Number(container.dataset.dagreMaxNodes || 250));
    cy.layout(layout).run();
    spreadEdgeTurns(cy);
    if (layout.name === "preset") {
      // Too tall to fit readably: open at label-readable zoom on the top; drag or scroll on.
      // (x: room for the first column's labels, centred under their nodes)
      cy.zoom(Math.min(1, container.clientWidth / 960));
      cy.pan({ x: 72, y: 24 });
    }
    cy.on("tap", "node", function (event) { window.location.href = event.target.data("href"); });
    window.moGraph = cy;  // the browser tests count nodes through this
    container.dataset.layoutMs = String(Math.round(performance.now() - started));
    container.dataset.rendered = String(cy.nodes().length);
  }

  // A part of a page that re-renders itself through htmx (the live overview): Chart.js keeps
  // every chart it drew, so the charts about to be swapped out are destroyed first, and the
  // new part's charts are drawn once it is in the page.
  function redrawAfterSwaps() {
    document.addEventListener("htmx:beforeSwap", function (event) {
      if (typeof window.Chart === "undefined") return;
      event.detail.target.querySelectorAll("canvas.chart").forEach(function (canvas) {
        var chart = window.Chart.getChart(canvas);
        if (chart) chart.destroy();
      });
    });
    document.addEventListener("htmx:afterSettle", drawCharts);
  }

  document.addEventListener("DOMContentLoaded", function () {
    redrawAfterSwaps();
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    tickDue();
    setInterval(tickDue, 1000);
    drawCharts();
    drawGraph();
    setUpSelection();
  });
})();
