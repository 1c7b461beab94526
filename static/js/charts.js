// Draws every `.chart` from the JSON the server put in data-chart; again after each HTMX swap.
(function () {
  "use strict";
  if (!window.echarts) return;
  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function formatter(kind) {
    if (kind === "currency") return function (v) { return v === null || v === undefined ? "—" : money.format(v); };
    if (kind === "percent") return function (v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; };
    return function (v) { return v === null || v === undefined ? "—" : whole.format(v); };
  }

  function draw(element) {
    if (element.dataset.drawn) return;
    let spec;
    try { spec = JSON.parse(element.dataset.chart); } catch (err) { return; }
    const format = formatter(spec.valueKind);
    const option = spec.option;
    option.tooltip = Object.assign({}, option.tooltip || {}, { valueFormatter: format });
    if (option.yAxis && option.yAxis.type === "value") {
      option.yAxis.axisLabel = { formatter: spec.valueKind === "percent" ? format : function (v) { return whole.format(v); } };
    }
    const chart = window.echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(option);
    element.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll(root) { (root || document).querySelectorAll(".chart").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.body.addEventListener("htmx:afterSwap", function (event) { drawAll(event.detail.target.parentNode || document); });
})();
