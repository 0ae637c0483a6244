// The timeline: lays out every time-positioned SVG element from its data-t* attributes, so
// zooming and panning is one re-layout. User text only ever goes in via textContent.
(function () {
  "use strict";
  var svg = document.getElementById("timeline");
  if (!svg) { return; }
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var wrap = document.getElementById("tl-wrap");
  var tooltip = document.getElementById("tooltip");
  var details = document.getElementById("details");
  var NS = "http://www.w3.org/2000/svg";
  var LABEL = 230, RIGHT = 16, AXIS = 26;
  var pad = (data.end - data.first) * 0.03 + 0.05;
  var first = Math.max(data.start, data.first - pad);
  var workload = { t0: first, t1: data.end + (data.end - first) * 0.1 };  // room for verdict tags
  var view = { t0: workload.t0, t1: workload.t1 };
  var width = 1240;

  function all(selector) { return Array.prototype.slice.call(svg.querySelectorAll(selector)); }
  function num(el, name) { return parseFloat(el.getAttribute(name)); }
  var spans = all("#plot rect[data-t0], #plot line[data-t0]");
  var points = all("#plot line[data-t]");
  var placed = all("#plot g[data-t], #plot path.death");
  var links = all("#plot path.link");
  var labels = all("#plot text[data-t0]");
  var faults = all("#plot g.fault-marker");

  function x(t) { return LABEL + (t - view.t0) / (view.t1 - view.t0) * (width - LABEL - RIGHT); }

  function fmt(t) {
    var a = Math.abs(t);
    return (t < 0 ? "-" : "+") + (a < 1 ? (a * 1000).toFixed(0) + " ms" : a.toFixed(2) + " s");
  }

  function niceStep(span, px) {
    var raw = span / Math.max(1, px / 90), pow = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * pow >= raw) { return steps[i] * pow; } }
    return 10 * pow;
  }

  function drawAxis() {
    var axis = document.getElementById("axis");
    while (axis.firstChild) { axis.removeChild(axis.firstChild); }
    var step = niceStep(view.t1 - view.t0, width - LABEL - RIGHT);
    var digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    var height = num(svg, "height");
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var px = x(t), line = document.createElementNS(NS, "line");
      line.setAttribute("class", Math.abs(t) < step / 1000 ? "axis-zero" : "axis-tick");
      line.setAttribute("x1", px); line.setAttribute("x2", px);
      line.setAttribute("y1", AXIS - 6); line.setAttribute("y2", height);
      axis.appendChild(line);
      var text = document.createElementNS(NS, "text");
      text.setAttribute("class", "axis-label"); text.setAttribute("x", px + 3); text.setAttribute("y", 14);
      text.textContent = (Math.abs(t) < step / 1000 ? 0 : t).toFixed(digits) + " s";
      axis.appendChild(text);
    }
  }

  function placeFaultLabels() {
    var rowsEnd = [];
    for (var i = 0; i < data.rows; i++) { rowsEnd.push(-1e9); }
    faults.forEach(function (g) {
      var px = x(num(g, "data-t")), text = g.querySelector("text");
      var w = text.getComputedTextLength ? text.getComputedTextLength() + 14 : 90;
      var row = 0;
      while (row < rowsEnd.length - 1 && rowsEnd[row] > px) { row++; }
      rowsEnd[row] = px + w;
      g.setAttribute("transform", "translate(" + px + " " + (num(g, "data-y") + row * 16) + ")");
    });
  }

  function layout() {
    width = Math.max(600, wrap.clientWidth);
    svg.setAttribute("width", width);
    var clip = document.getElementById("plot-clip-rect");
    clip.setAttribute("x", LABEL); clip.setAttribute("width", width - LABEL);
    drawAxis();
    spans.forEach(function (el) {
      var a = x(num(el, "data-t0")), b = x(num(el, "data-t1"));
      if (el.tagName === "line") { el.setAttribute("x1", a); el.setAttribute("x2", b); return; }
      var minimum = el.classList.contains("bar") ? 2 : 3;
      el.setAttribute("x", a); el.setAttribute("width", Math.max(minimum, b - a));
    });
    points.forEach(function (el) { var px = x(num(el, "data-t")); el.setAttribute("x1", px); el.setAttribute("x2", px); });
    placed.forEach(function (el) {
      if (el.classList.contains("fault-marker")) { return; }
      var px = x(num(el, "data-t"));
      el.setAttribute("transform", "translate(" + px + " " + num(el, "data-y") + ")");
      if (el.hasAttribute("data-t-start")) {  // a death mark: only where its bar is wide enough
        el.style.display = px - x(num(el, "data-t-start")) >= 6 ? "" : "none";
      }
    });
    links.forEach(function (el) {
      var x0 = x(num(el, "data-t0")), x1 = x(num(el, "data-t1"));
      var y0 = num(el, "data-y0"), y1 = num(el, "data-y1"), top = Math.min(y0, y1) - 16;
      var bend = Math.max(6, (x1 - x0) * 0.35);
      el.setAttribute("d", "M" + x0 + " " + y0 + " C" + (x0 + bend) + " " + top + " " +
        (x1 - bend) + " " + top + " " + x1 + " " + y1);
      el.style.display = x1 - x0 >= 14 || y0 !== y1 ? "" : "none";  // dense loops: zoom in
    });
    labels.forEach(function (el) {
      var a = x(num(el, "data-t0")), b = x(num(el, "data-t1"));
      el.setAttribute("x", (a + b) / 2);
      el.setAttribute("text-anchor", "middle");
      if (el.hasAttribute("data-y")) { el.setAttribute("y", num(el, "data-y")); }
      el.style.display = b - a >= (el.classList.contains("bar-label") ? 30 : 46) ? "" : "none";
    });
    placeFaultLabels();
  }

  function zoom(factor, at) {
    var center = at === undefined ? (view.t0 + view.t1) / 2 : at;
    var span = Math.max(0.002, (view.t1 - view.t0) * factor);
    var left = (center - view.t0) / (view.t1 - view.t0);
    view.t0 = center - span * left; view.t1 = view.t0 + span;
    layout();
  }

  function timeAt(clientX) {
    var box = svg.getBoundingClientRect();
    return view.t0 + (clientX - box.left - LABEL) / (width - LABEL - RIGHT) * (view.t1 - view.t0);
  }

  function barLines(b) {
    var end = b.ending === "running" ? "still running at the end" : b.ending;
    return [
      ["task", b.task], ["id", b.task_id], ["attempt", b.attempt],
      ["worker", b.worker], ["pid", b.pid], ["redelivered", b.redelivered ? "yes" : "no"],
      ["start", fmt(b.start)], ["end", fmt(b.end) + " (" + fmt(b.end - b.start).slice(1) + ")"],
      ["ended", end + (b.state ? " (" + b.state + ")" : "")],
      ["exit reason", b.exit_reason || "-"],
      ["hit by fault", b.interrupted_by === null || b.interrupted_by === undefined ? "-" : "#" + b.interrupted_by],
      ["last checkpoint", b.last_checkpoint || "-"]
    ];
  }

  function faultLines(f) {
    return [
      ["fault", "#" + f.fault + " " + f.kind], ["status", f.status], ["at", fmt(f.t)],
      ["worker", f.worker || "-"], ["task", f.task_id || "-"], ["pid", f.pid || "-"],
      ["attempts hit", f.hits], ["detail", f.detail || "-"]
    ];
  }

  function dispatchLines(d) {
    return [["dispatched", "#" + d.index + " " + d.task], ["id", d.task_id],
      ["args", JSON.stringify(d.args || [])], ["kwargs", JSON.stringify(d.kwargs || {})]];
  }

  function markLines(m) {
    return Object.keys(m).filter(function (k) { return k !== "ts"; }).map(function (k) { return [k, m[k]]; });
  }

  function linesOf(el) {
    if (el.hasAttribute("data-i")) { return barLines(data.bars[+el.getAttribute("data-i")]); }
    if (el.hasAttribute("data-f")) { return faultLines(data.faults[+el.getAttribute("data-f")]); }
    if (el.hasAttribute("data-m")) { return markLines(data.marks[+el.getAttribute("data-m")]); }
    if (el.hasAttribute("data-d")) { return dispatchLines(data.dispatches[+el.getAttribute("data-d")]); }
    if (el.hasAttribute("data-g")) {
      var tag = data.tags[+el.getAttribute("data-g")];
      return [["tasks", tag.task_ids.join(", ")], ["verdicts", tag.verdicts]];
    }
    return null;
  }

  function target(event) {
    var el = event.target;
    while (el && el !== svg) {
      if (el.hasAttribute && ["data-i", "data-f", "data-m", "data-d", "data-g"].some(function (a) { return el.hasAttribute(a); })) { return el; }
      el = el.parentNode;
    }
    return null;
  }

  function select(taskId) {
    svg.classList.toggle("dim", !!taskId);
    all(".sel").forEach(function (el) { el.classList.remove("sel"); });
    document.querySelectorAll("tr.task-row.sel").forEach(function (el) { el.classList.remove("sel"); });
    if (!taskId) { return; }
    all("[data-task]").forEach(function (el) {
      if (el.getAttribute("data-task") === taskId) { el.classList.add("sel"); }
    });
    document.querySelectorAll("tr.task-row").forEach(function (row) {
      if (row.getAttribute("data-task") === taskId) { row.classList.add("sel"); }
    });
  }

  function showDetails(lines, taskId) {
    while (details.firstChild) { details.removeChild(details.firstChild); }
    var list = document.createElement("div");
    list.className = "pairs";
    lines.forEach(function (pair) {
      var item = document.createElement("span"), key = document.createElement("span");
      key.className = "muted"; key.textContent = pair[0] + " ";
      item.appendChild(key); item.appendChild(document.createTextNode(String(pair[1])));
      list.appendChild(item);
    });
    details.appendChild(list);
    if (taskId) {
      var link = document.createElement("a");
      link.href = "#task-" + taskId; link.textContent = "→ this task in the task table";
      details.appendChild(link);
    }
  }

  svg.addEventListener("mousemove", function (event) {
    var el = target(event), lines = el && linesOf(el);
    if (!lines) { tooltip.style.display = "none"; return; }
    tooltip.textContent = lines.map(function (p) { return p[0] + ": " + p[1]; }).join("\n");
    tooltip.style.display = "block";
    tooltip.style.left = Math.min(event.clientX + 14, window.innerWidth - 470) + "px";
    tooltip.style.top = (event.clientY + 14) + "px";
  });
  svg.addEventListener("mouseleave", function () { tooltip.style.display = "none"; });

  var drag = null, moved = false;
  svg.addEventListener("mousedown", function (event) { drag = { x: event.clientX, t0: view.t0, t1: view.t1 }; moved = false; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (event) {
    if (!drag) { return; }
    var dx = event.clientX - drag.x;
    if (Math.abs(dx) > 3) { moved = true; }
    var dt = dx / (width - LABEL - RIGHT) * (drag.t1 - drag.t0);
    view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt;
    layout();
  });
  svg.addEventListener("click", function (event) {
    if (moved) { return; }
    var el = target(event), lines = el && linesOf(el);
    if (!lines) { select(null); return; }
    var taskId = el.getAttribute("data-task");
    select(taskId);
    showDetails(lines, taskId);
  });
  svg.addEventListener("dblclick", function (event) { zoom(0.5, timeAt(event.clientX)); });
  svg.addEventListener("wheel", function (event) {
    if (!(event.ctrlKey || event.metaKey || event.altKey)) { return; }
    event.preventDefault();
    zoom(event.deltaY > 0 ? 1.25 : 0.8, timeAt(event.clientX));
  }, { passive: false });
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(0.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(2); });
  document.getElementById("zoom-fit").addEventListener("click", function () {
    view.t0 = workload.t0; view.t1 = workload.t1; layout();
  });
  document.getElementById("zoom-all").addEventListener("click", function () {
    view.t0 = data.start; view.t1 = data.end + (data.end - data.start) * 0.1; layout();
  });
  document.querySelectorAll("button.show-task").forEach(function (button) {
    button.addEventListener("click", function () {
      select(button.getAttribute("data-task"));
      wrap.scrollIntoView({ behavior: "smooth", block: "center" });
    });
  });
  function fromHash() {
    var hash = decodeURIComponent(window.location.hash || "");
    if (hash.indexOf("#task-") === 0) { select(hash.slice(6)); }
  }
  window.addEventListener("hashchange", fromHash);
  window.addEventListener("resize", layout);
  layout();
  fromHash();
}());
