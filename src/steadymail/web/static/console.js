// steadymail console: the little that is not plain HTML. Loaded as a file (the CSP allows no
// inline script); everything works without it except the live preview and the charts.
"use strict";

// The template editor: re-render the preview frame shortly after the typing stops.
function setUpPreview() {
  const form = document.getElementById("template-form");
  const button = document.getElementById("preview-button");
  if (!form || !button) return;
  let timer = null;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(() => form.requestSubmit(button), 400);
  };
  form.addEventListener("input", refresh);
  refresh();
}

// Charts: [data-chart] elements draw the JSON at data-src with uPlot.
function bands(u, spans, color) {
  const ctx = u.ctx;
  const top = u.bbox.top;
  const height = u.bbox.height;
  ctx.save();
  ctx.fillStyle = color;
  for (const [a, b] of spans) {
    const x0 = u.valToPos(a, "x", true);
    const x1 = u.valToPos(b, "x", true);
    ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
  }
  ctx.restore();
}

function lines(u, times, color) {
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  for (const t of times) {
    const x = u.valToPos(t, "x", true);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

function seriesChart(el, data) {
  const xs = data.points.map((p) => p[0]);
  const ys = data.points.map((p) => p[1]);
  const spans = data.anomalies
    .filter((a) => a.window_start != null)
    .map((a) => [a.window_start, a.window_end ?? xs[xs.length - 1]]);
  const changes = data.flag_changes.map((c) => c.at);
  const opts = {
    width: el.clientWidth || 800,
    height: 300,
    scales: { x: { time: true, range: () => data.window } },
    series: [{}, { label: data.name, stroke: "#1f5fbf", width: 2, points: { show: xs.length < 60, size: 6 } }],
    hooks: {
      drawClear: [(u) => bands(u, spans, "rgba(200, 30, 30, 0.15)")],
      draw: [(u) => lines(u, changes, "#7a3db8")],
    },
  };
  return new uPlot(opts, [xs, ys], el);
}

function engagementChart(el, data) {
  if (data.t.length === 0) {
    el.textContent = "No opens or clicks yet.";
    return null;
  }
  const opts = {
    width: el.clientWidth || 800,
    height: 260,
    scales: { x: { time: true, range: () => data.window } },
    series: [
      {},
      { label: "opens", stroke: "#1f7a3d", width: 2, points: { show: true, size: 8 } },
      { label: "clicks", stroke: "#b85c00", width: 2, points: { show: true, size: 8 } },
    ],
  };
  return new uPlot(opts, [data.t, data.opens, data.clicks], el);
}

const DRAW = { series: seriesChart, engagement: engagementChart };

async function drawChart(el) {
  const response = await fetch(el.dataset.src, { credentials: "same-origin" });
  if (!response.ok) {
    el.textContent = "The chart's data could not be loaded (" + response.status + ").";
    return;
  }
  const data = await response.json();
  el.replaceChildren();
  DRAW[el.dataset.chart](el, data);
  el.dataset.drawn = "1"; // what the browser tests wait for
}

function setUpCharts() {
  if (typeof uPlot === "undefined") return;
  for (const el of document.querySelectorAll("[data-chart]")) {
    drawChart(el);
    const every = Number(el.dataset.refresh || 0);
    if (every > 0) setInterval(() => drawChart(el), every * 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpPreview();
  setUpCharts();
});
