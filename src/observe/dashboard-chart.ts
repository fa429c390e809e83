// The dashboard's canvas chart, a piece of its browser script (dashboard-client.ts puts it inside
// the script's function, where it uses el, clear, color, clock and niceStep): stacked areas and
// lines over a time window, a grid on round values and clock times, and a tooltip for the slot
// under the pointer. Written without backticks or "${" so it can live in this template literal.

export const DASHBOARD_CHART_SCRIPT = String.raw`
  // ---- charts ----
  // spec: { t, series: [{ label, color, values, stack, dash, fill }], format, minMax }
  function Chart(box, title, format, minMax, minStep, counts, axisFormat) {
    this.box = box;
    this.format = format;
    this.axisFormat = axisFormat || format;
    this.minMax = minMax;
    this.minStep = minStep;
    this.counts = counts;
    box.appendChild(el('h3', '', title));
    this.legend = box.appendChild(el('div', 'legend'));
    this.canvas = box.appendChild(el('canvas'));
    this.tip = box.appendChild(el('div', 'tip'));
    this.hover = null;
    this.spec = null;
    var self = this;
    this.canvas.addEventListener('mousemove', function (ev) {
      var r = self.canvas.getBoundingClientRect();
      self.hover = ev.clientX - r.left;
      self.draw();
    });
    this.canvas.addEventListener('mouseleave', function () { self.hover = null; self.draw(); });
  }
  Chart.prototype.set = function (spec) {
    this.spec = spec;
    this.canvas.setAttribute('data-points', String(spec.t.length));
    clear(this.legend);
    var self = this;
    spec.series.forEach(function (s) {
      var last = null;
      for (var i = s.values.length - 1; i >= 0; i--) if (s.values[i] !== null) { last = s.values[i]; break; }
      var item = self.legend.appendChild(el('span'));
      var sw = item.appendChild(el('i'));
      sw.style.background = s.color;
      item.appendChild(document.createTextNode(s.label + ' ' + self.format(last)));
    });
    this.draw();
  };
  Chart.prototype.draw = function () {
    var spec = this.spec;
    if (!spec) return;
    var canvas = this.canvas;
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var padL = 48, padR = 8, padT = 8, padB = 20;
    var pw = w - padL - padR, ph = h - padT - padB;
    var n = spec.t.length;
    var tMax = n ? spec.t[n - 1] : Date.now();
    var tMin = tMax - spec.windowMs + spec.stepMs;
    var first = 0;
    while (first < n && spec.t[first] < tMin) first++;
    // Stacked series are drawn on top of the ones before them.
    var stacked = [];
    var base = new Array(n).fill(0);
    var yMax = 0;
    spec.series.forEach(function (s) {
      var lo = base.slice(), hi = new Array(n);
      for (var i = 0; i < n; i++) {
        var v = s.values[i];
        if (s.stack) { hi[i] = v === null ? null : lo[i] + v; if (v !== null) base[i] = hi[i]; }
        else hi[i] = v;
        if (i >= first && hi[i] !== null && hi[i] > yMax) yMax = hi[i];
      }
      stacked.push({ s: s, lo: lo, hi: hi });
    });
    var LINES = 4;
    var step = niceStep(Math.max(yMax * 1.05, this.minMax) / LINES, this.minStep, this.counts);
    yMax = step * LINES;
    function x(t) { return padL + ((t - tMin) / (tMax - tMin || 1)) * pw; }
    function y(v) { return padT + ph - (v / yMax) * ph; }
    // grid and axes
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = color('muted');
    g.strokeStyle = color('grid');
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (var k = 0; k <= LINES; k++) {
      var v = step * k, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(padL, yy); g.lineTo(w - padR, yy); g.stroke();
      g.fillText(this.axisFormat(v), padL - 6, yy);
    }
    // Time labels at least 70 px apart, on round clock times.
    var ticks = [10000, 15000, 30000, 60000, 120000, 300000, 600000];
    var tick = ticks[ticks.length - 1];
    for (var q = 0; q < ticks.length; q++) if ((pw * ticks[q]) / (tMax - tMin || 1) >= 70) { tick = ticks[q]; break; }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (var tt = Math.ceil(tMin / tick) * tick; tt <= tMax; tt += tick) {
      var xx = Math.round(x(tt)) + 0.5;
      g.beginPath(); g.moveTo(xx, padT); g.lineTo(xx, padT + ph); g.stroke();
      g.fillText(clock(tt), xx, padT + ph + 4);
    }
    // areas, then lines
    stacked.forEach(function (d) {
      var s = d.s;
      if (!s.fill) return;
      g.fillStyle = s.color;
      g.globalAlpha = s.stack ? 0.55 : 0.15;
      var i = first;
      while (i < n) {
        while (i < n && d.hi[i] === null) i++;
        if (i >= n) break;
        var start = i;
        g.beginPath();
        g.moveTo(x(spec.t[i]), y(d.hi[i]));
        while (i + 1 < n && d.hi[i + 1] !== null) { i++; g.lineTo(x(spec.t[i]), y(d.hi[i])); }
        for (var j = i; j >= start; j--) g.lineTo(x(spec.t[j]), y(s.stack ? d.lo[j] : 0));
        g.closePath();
        g.fill();
        i++;
      }
      g.globalAlpha = 1;
    });
    stacked.forEach(function (d) {
      var s = d.s;
      g.strokeStyle = s.color;
      g.lineWidth = s.width || 1.6;
      g.setLineDash(s.dash ? [5, 4] : []);
      g.beginPath();
      var pen = false;
      for (var i = first; i < n; i++) {
        // A stacked layer with nothing in it draws no line over the layers below.
        if (d.hi[i] === null || (s.stack && !(s.values[i] > 0) && !(i + 1 < n && s.values[i + 1] > 0) && !(i > 0 && s.values[i - 1] > 0))) { pen = false; continue; }
        if (!pen) g.moveTo(x(spec.t[i]), y(d.hi[i])); else g.lineTo(x(spec.t[i]), y(d.hi[i]));
        pen = true;
      }
      g.stroke();
      g.setLineDash([]);
    });
    // hover: the nearest slot's values
    var tip = this.tip;
    if (this.hover === null || n === 0) { tip.style.display = 'none'; return; }
    var tAt = tMin + ((this.hover - padL) / pw) * (tMax - tMin);
    var best = first;
    for (var m = first; m < n; m++) if (Math.abs(spec.t[m] - tAt) < Math.abs(spec.t[best] - tAt)) best = m;
    var hx = Math.round(x(spec.t[best])) + 0.5;
    g.strokeStyle = color('limit');
    g.globalAlpha = 0.5;
    g.beginPath(); g.moveTo(hx, padT); g.lineTo(hx, padT + ph); g.stroke();
    g.globalAlpha = 1;
    clear(tip);
    tip.appendChild(el('div', 'meta', clock(spec.t[best])));
    var fmt = this.format;
    spec.series.forEach(function (s) {
      var row = tip.appendChild(el('div'));
      var sw = row.appendChild(el('i'));
      sw.style.cssText = 'display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px;background:' + s.color;
      row.appendChild(document.createTextNode(s.label + ': ' + fmt(s.values[best])));
    });
    tip.style.display = 'block';
    var left = hx + 12;
    if (left + tip.offsetWidth > this.box.clientWidth) left = hx - tip.offsetWidth - 12;
    tip.style.left = left + 'px';
    tip.style.top = '34px';
  };
`;
