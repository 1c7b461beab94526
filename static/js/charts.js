// Draws every `.chart` from the JSON the server put in data-chart; again after each HTMX swap
// and after HTMX restores a page from its history (back/forward).
(function () {
  "use strict";
  if (!window.echarts) return;
  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const charts = new Set();

  function formatter(kind) {
    if (kind === "currency") return function (v) { return v === null || v === undefined ? "—" : money.format(v); };
    if (kind === "percent") return function (v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; };
    return function (v) { return v === null || v === undefined ? "—" : whole.format(v); };
  }

  function liveChart(element) {
    const chart = window.echarts.getInstanceByDom(element);
    return chart && !chart.isDisposed() && chart.getDom() === element ? chart : null;
  }

  function draw(element) {
    if (liveChart(element)) return;
    let spec;
    try { spec = JSON.parse(element.dataset.chart); } catch (err) { return; }
    // HTMX's history restores saved HTML: a drawn chart comes back as a blank canvas carrying the
    // old instance's id. Start afresh in this element.
    element.removeAttribute("_echarts_instance_");
    element.replaceChildren();
    const format = formatter(spec.valueKind);
    const option = spec.option;
    option.tooltip = Object.assign({}, option.tooltip || {}, { valueFormatter: format });
    if (option.yAxis && option.yAxis.type === "value") {
      option.yAxis.axisLabel = { formatter: spec.valueKind === "percent" ? format : function (v) { return whole.format(v); } };
    }
    const heatmap = (option.series || []).some(function (series) { return series.type === "heatmap"; });
    if (heatmap && !option.tooltip.formatter) {
      // Name both axes (branch and product line), not just the column; names are data: escaped.
      const escape = window.echarts.format.encodeHTML;
      const xs = option.xAxis.data, ys = option.yAxis.data;
      option.tooltip.formatter = function (point) {
        const v = point.value;
        return escape(String(ys[v[1]])) + " · " + escape(String(xs[v[0]])) + "<br>" + point.marker + format(v[2]);
      };
    }
    if (option.visualMap && !option.visualMap.formatter) {
      // The heatmap's colour scale: margins as 4.8%, not the bare fraction rounded to "0".
      option.visualMap.formatter = format;
    }
    const chart = window.echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(option);
    charts.add(chart);
  }

  function refresh() {
    // Charts whose element a swap removed are disposed, so they don't pile up in memory.
    charts.forEach(function (chart) {
      if (chart.isDisposed() || !chart.getDom().isConnected) {
        if (!chart.isDisposed()) chart.dispose();
        charts.delete(chart);
      }
    });
    document.querySelectorAll(".chart").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSwap", refresh);
  document.addEventListener("htmx:historyRestore", refresh);
  window.addEventListener("resize", function () { charts.forEach(function (chart) { chart.resize(); }); });
})();
