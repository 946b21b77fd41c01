/* Usage charts: Chart.js, themed from the tenant's CSS variables, readable without colour
   (bars for usage, a dashed line with square markers for the limit, labelled axes, and the same
   numbers in the table under each chart). */
(function () {
  "use strict";
  var source = document.getElementById("usage-chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  if (!data) return;
  var css = getComputedStyle(document.documentElement);
  function token(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  var primary = token("--color-primary", "#4f46e5");
  var accent = token("--color-accent", "#f59e0b");
  var text = token("--color-text", "#111827");
  var muted = token("--color-muted", "#5b6472");
  var border = token("--color-border", "#e3e6ea");
  var font = token("--font-body", "system-ui, sans-serif");
  Chart.defaults.color = muted;
  Chart.defaults.borderColor = border;
  Chart.defaults.font.family = font;
  Chart.defaults.animation = false;
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "en", { maximumFractionDigits: 2 });
  var unit = data.unit ? " " + data.unit : "";

  function draw(id, series, withLimit, title) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    var datasets = [{
      type: "bar", label: data.label + " (" + title + ")", data: series.values,
      backgroundColor: primary, borderColor: text, borderWidth: { top: 1, left: 0, right: 0, bottom: 0 },
      borderSkipped: false, order: 2,
    }];
    if (withLimit && data.limit !== null) {
      datasets.push({
        type: "line", label: "Plan limit", data: series.labels.map(function () { return data.limit; }),
        borderColor: accent, backgroundColor: accent, borderDash: [8, 5], borderWidth: 2,
        pointStyle: "rectRot", pointRadius: 4, order: 1,
      });
    }
    new Chart(canvas, {
      data: { labels: series.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false,
        plugins: {
          legend: { labels: { usePointStyle: true, color: text } },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + fmt.format(ctx.parsed.y) + unit; } } },
        },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 }, grid: { display: false } },
          y: { beginAtZero: true, title: { display: !!data.unit, text: data.unit, color: muted },
               ticks: { callback: function (v) { return fmt.format(v); } } },
        },
      },
    });
    canvas.setAttribute("data-rendered", "true");
  }
  draw("usage-daily-chart", data.daily, false, "daily");
  draw("usage-monthly-chart", data.monthly, true, "monthly");
})();
