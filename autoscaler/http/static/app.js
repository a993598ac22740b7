// Leadtime status page: polls the JSON API every 2 s and draws the selected service.
// No dependencies; every API string goes through textContent or setAttribute, never innerHTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const W = 880, H = 320;
  const M = { top: 26, right: 58, bottom: 40, left: 62 };

  // "namespace/name"; a link may preselect one with #namespace%2Fname
  let selected = null;
  try { selected = decodeURIComponent(location.hash.slice(1)) || null; } catch { /* bad link */ }
  let detailSeq = 0; // discards detail responses that a newer request overtook

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, text = null, ns = null) {
    const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== null) e.textContent = String(text);
    return e;
  }
  const svg = (tag, attrs = {}, text = null) => el(tag, attrs, text, SVG_NS);

  const finite = (x) => typeof x === "number" && Number.isFinite(x);
  const keyOf = (s) => `${s.namespace}/${s.name}`;
  const fmtInt = (x) => (finite(x) ? String(Math.round(x)) : "–");
  // A share as a percentage rounded down (an attainment shown is never above the one measured).
  const fmtPct = (x) => (finite(x) ? `${Math.floor(x * 1e4 + 1e-6) / 100} %` : "n/a");
  const fmtCount = (x) => (finite(x) ? Math.round(x).toLocaleString("en") : "–");

  // The objective and what was measured against it; `slo` is the API's (absent in old answers).
  function sloText(slo) {
    if (!slo) return { cell: "n/a", cls: "", title: "" };
    const target = finite(slo.target) ? ` (target ${fmtPct(slo.target)})` : "";
    const cls = slo.meets_target === true ? "ok" : slo.meets_target === false ? "warn" : "";
    const ttft = finite(slo.ttft_s) ? `TTFT ≤ ${+slo.ttft_s.toPrecision(6)} s` : "";
    const title = [ttft, slo.source || ""].filter(Boolean).join("; ");
    return { cell: fmtPct(slo.attainment) + target, cls, title };
  }

  function sloLine(slo) {
    if (!slo) return "SLO: n/a";
    const want = finite(slo.ttft_s) && finite(slo.target)
      ? `TTFT ≤ ${+slo.ttft_s.toPrecision(6)} s for ${fmtPct(slo.target)} of requests` : "";
    let got = `attained ${fmtPct(slo.attainment)}`;
    if (finite(slo.attainment)) got += ` (${fmtCount(slo.met)} of ${fmtCount(slo.total)} requests)`;
    else if (slo.total === 0) got += " (no request judged in the window)";
    const from = slo.source ? `, from ${slo.source}` : "";
    return `SLO: ${want}${want ? " — " : ""}${got}${from}`;
  }

  function fmtClock(t) {
    if (!finite(t)) return "–";
    if (t > 1e9) return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
    return `t = ${t.toFixed(1)} s`;
  }

  function fmtSpan(s) {
    const a = Math.abs(s);
    if (a < 90) return `${Math.round(a)} s`;
    if (a < 5400) return `${Math.round(a / 60)} min`;
    return `${(a / 3600).toFixed(1)} h`;
  }

  async function getJSON(url) {
    let r;
    try {
      r = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    } catch (e) {
      throw new Error(`cannot reach the Leadtime service (${e.message})`);
    }
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${r.statusText}`);
    return r.json();
  }

  function setError(msg) {
    const e = $("error");
    e.hidden = !msg;
    e.textContent = msg ? `${msg} — retrying every ${POLL_MS / 1000} s` : "";
  }

  // ---- services table -------------------------------------------------------------------

  function serviceRow(key) {
    const tr = el("tr", { class: "service", "data-key": key });
    const name = el("td");
    name.append(el("button", { type: "button", class: "select" }, key));
    tr.append(name);
    for (const cls of ["status", "num ready", "num pending", "num desired", "num slo", "reason"]) {
      tr.append(el("td", { class: cls }));
    }
    return tr;
  }

  function renderServices(list) {
    const body = $("services");
    const services = Array.isArray(list.services) ? list.services : [];
    const keys = services.map(keyOf);
    if (!keys.includes(selected)) selected = keys.length ? keys[0] : null;

    const rows = new Map();
    for (const tr of body.querySelectorAll("tr.service")) rows.set(tr.dataset.key, tr);
    for (const tr of body.querySelectorAll("tr:not(.service)")) tr.remove();

    services.forEach((s, i) => {
      const key = keys[i];
      const tr = rows.get(key) || serviceRow(key);
      rows.delete(key);
      const c = tr.cells;
      const ok = s.status === "ok";
      c[1].textContent = (s.status || "unknown") + (s.paused ? " · paused" : "");
      c[1].className = `status ${ok ? "ok" : "warn"}${s.paused ? " paused" : ""}`;
      c[2].textContent = fmtInt(s.ready);
      c[3].textContent = fmtInt(s.pending);
      c[4].textContent = fmtInt(s.desired);
      const slo = sloText(s.slo);
      c[5].textContent = slo.cell;
      c[5].className = `num slo ${slo.cls}`.trim();
      c[5].title = slo.title;
      const d = s.last_decision;
      c[6].textContent = d ? d.reason : "–";
      c[6].title = d && d.detail ? d.detail : "";
      tr.classList.toggle("selected", key === selected);
      tr.querySelector("button").setAttribute("aria-pressed", String(key === selected));
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    for (const tr of rows.values()) tr.remove();
    if (!services.length) {
      const tr = el("tr", { class: "empty" });
      tr.append(el("td", { colspan: 7 }, "No services yet."));
      body.append(tr);
    }
  }

  function markSelected() {
    for (const tr of $("services").querySelectorAll("tr.service")) {
      const on = tr.dataset.key === selected;
      tr.classList.toggle("selected", on);
      tr.querySelector("button").setAttribute("aria-pressed", String(on));
    }
  }

  // ---- chart ----------------------------------------------------------------------------

  function niceStep(max, count) {
    const raw = max / count;
    const p = 10 ** Math.floor(Math.log10(raw));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function extent(arrays, init) {
    let [lo, hi] = init;
    for (const a of arrays) for (const v of a) if (finite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }

  // Quantile lists of the forecast: the p50–p90 band (nearest keys when those are absent).
  function forecastBand(fc) {
    if (!fc || !fc.quantiles || !finite(fc.start) || !(fc.step_s > 0)) return null;
    const keys = Object.keys(fc.quantiles).filter((k) => finite(Number(k)));
    if (!keys.length) return null;
    keys.sort((a, b) => Number(a) - Number(b));
    const lo = fc.quantiles["0.5"] || fc.quantiles[keys[0]];
    const hi = fc.quantiles["0.9"] || fc.quantiles[keys[keys.length - 1]];
    const n = Math.min(lo.length, hi.length);
    if (!n) return null;
    const time = Array.from({ length: n }, (_, i) => fc.start + i * fc.step_s);
    return { time, lo: lo.slice(0, n), hi: hi.slice(0, n) };
  }

  function linePath(ts, vs, x, y) {
    let d = "", pen = false;
    for (let i = 0; i < ts.length; i++) {
      if (!finite(ts[i]) || !finite(vs[i])) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(ts[i]).toFixed(1)},${y(vs[i]).toFixed(1)}`;
      pen = true;
    }
    return d;
  }

  function stepPath(ts, vs, x, y, until) {
    let d = "";
    for (let i = 0; i < ts.length; i++) {
      if (!finite(ts[i]) || !finite(vs[i])) continue;
      d += d ? `H${x(ts[i]).toFixed(1)}V${y(vs[i]).toFixed(1)}`
             : `M${x(ts[i]).toFixed(1)},${y(vs[i]).toFixed(1)}`;
    }
    if (d && finite(until)) d += `H${x(until).toFixed(1)}`;
    return d;
  }

  function renderChart(d, key) {
    const series = d.series || {}, reps = d.replicas || {};
    const st = series.time || [], arr = series.arrivals || [];
    const rt = reps.time || [], ready = reps.ready || [], desired = reps.desired || [];
    const band = forecastBand(d.forecast);
    const now = finite(d.now) ? d.now : NaN;
    const lead = finite(d.lead_time_s) ? d.lead_time_s : NaN;

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Arrivals per second, forecast and replicas of ${key}` });
    const fig = $("chart");
    fig.replaceChildren(root);

    const xs = [st, rt, band ? band.time : [], [now, now + lead]];
    let [x0, x1] = extent(xs, [Infinity, -Infinity]);
    if (!(x1 > x0)) {
      root.append(svg("text", { x: W / 2, y: H / 2, class: "empty" }, "No data yet"));
      fig.append(legend(false));
      return;
    }
    // Headroom above the highest value so lines do not run along the frame.
    const yMax = Math.max(extent([arr, band ? band.hi : []], [0, 0])[1] * 1.1, 1);
    const yStep = niceStep(yMax, 4);
    const yTop = Math.ceil(yMax / yStep) * yStep;
    const rMax = extent([ready, desired], [0, 0])[1] + 1;
    const rStep = Math.max(1, Math.round(niceStep(rMax, 4)));
    const rTop = Math.ceil(rMax / rStep) * rStep;

    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const x = (t) => M.left + ((t - x0) / (x1 - x0)) * pw;
    const y = (v) => M.top + ph - (v / yTop) * ph;
    const yr = (v) => M.top + ph - (v / rTop) * ph;

    // Axes: gridlines on the left (arrivals/s) scale, ticks on both sides, time relative to now.
    const axes = svg("g", { class: "axes" });
    for (let v = 0; v <= yTop + 1e-9; v += yStep) {
      axes.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      axes.append(svg("text", { class: "tick left", x: M.left - 6, y: y(v) + 4 }, +v.toPrecision(6)));
    }
    for (let v = 0; v <= rTop; v += rStep) {
      axes.append(svg("text", { class: "tick right", x: W - M.right + 6, y: yr(v) + 4 }, v));
    }
    const ref = finite(now) ? now : x1;
    const span = x1 - x0;
    const tStep = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => span / s <= 8) || 7200;
    for (let t = ref + Math.ceil((x0 - ref) / tStep) * tStep; t <= x1; t += tStep) {
      const rel = Math.round(t - ref);
      const label = rel === 0 ? "now" : `${rel < 0 ? "−" : "+"}${fmtSpan(rel)}`;
      axes.append(svg("line", { class: "xtick", x1: x(t), x2: x(t), y1: M.top + ph, y2: M.top + ph + 4 }));
      axes.append(svg("text", { class: "tick bottom", x: x(t), y: M.top + ph + 16 }, label));
    }
    axes.append(svg("rect", { class: "frame", x: M.left, y: M.top, width: pw, height: ph }));
    axes.append(svg("text", { class: "axis-label", x: W / 2, y: H - 4 }, "time (relative to now)"));
    axes.append(svg("text", { class: "axis-label", transform: `translate(14 ${M.top + ph / 2}) rotate(-90)` },
      "arrivals / s"));
    axes.append(svg("text", { class: "axis-label", transform: `translate(${W - 10} ${M.top + ph / 2}) rotate(90)` },
      "replicas"));
    root.append(axes);

    if (band) {
      const upper = band.time.map((t, i) => `${x(t).toFixed(1)},${y(band.hi[i]).toFixed(1)}`);
      const lower = band.time.map((t, i) => `${x(t).toFixed(1)},${y(band.lo[i]).toFixed(1)}`).reverse();
      root.append(svg("path", { class: "forecast-band", d: `M${upper.join("L")}L${lower.join("L")}Z` }));
      root.append(svg("path", { class: "forecast-median", d: linePath(band.time, band.lo, x, y) }));
    }
    root.append(svg("path", { class: "load", d: linePath(st, arr, x, y) }));
    root.append(svg("path", { class: "desired", d: stepPath(rt, desired, x, yr, now) }));
    root.append(svg("path", { class: "ready", d: stepPath(rt, ready, x, yr, now) }));

    if (finite(now)) {
      root.append(svg("line", { class: "now", x1: x(now), x2: x(now), y1: M.top, y2: M.top + ph }));
      if (finite(lead) && lead > 0) {
        const xl = x(now + lead);
        root.append(svg("line", { class: "lead", x1: xl, x2: xl, y1: M.top, y2: M.top + ph }));
        root.append(svg("text", { class: "marker", x: xl, y: M.top - 9 }, "lead time"));
      }
    }
    fig.append(legend(Boolean(band)));
  }

  function legend(withBand) {
    const cap = el("figcaption", { class: "legend" });
    const items = [["load", "arrivals/s"], ["ready", "ready replicas"], ["desired", "desired replicas"]];
    if (withBand) items.splice(1, 0, ["forecast-band", "forecast p50–p90"]);
    for (const [cls, label] of items) {
      const item = el("span", { class: "item" });
      item.append(el("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), label);
      cap.append(item);
    }
    return cap;
  }

  // ---- detail ---------------------------------------------------------------------------

  function renderDecisions(decisions, now) {
    const body = $("decisions");
    const rows = (Array.isArray(decisions) ? decisions : []).map((dec) => {
      const tr = el("tr", { class: "decision" });
      const ago = finite(now) && finite(dec.time) ? ` (${fmtSpan(now - dec.time)} ago)` : "";
      tr.append(el("td", { class: "time" }, fmtClock(dec.time) + ago), el("td", { class: "num" }, fmtInt(dec.desired)),
        el("td", { class: "reason" }, dec.reason ?? ""), el("td", { class: "detail" }, dec.detail ?? ""));
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr", { class: "empty" });
      tr.append(el("td", { colspan: 4 }, "No decisions yet."));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderDetail(d, key) {
    $("detail").hidden = false;
    $("detail-title").textContent = key + (d.paused ? " (paused)" : "");
    $("lead-time").textContent = finite(d.lead_time_s) ? `Lead time ${fmtSpan(d.lead_time_s)}` : "";
    $("slo").textContent = sloLine(d.slo);
    renderChart(d, key);
    const note = d.forecast_note || (d.forecast ? "" : "No forecast yet.");
    $("forecast-note").textContent = note ? `Forecast: ${note}` : "";
    renderDecisions(d.decisions, d.now);
  }

  async function refreshDetail() {
    const key = selected;
    const seq = ++detailSeq;
    if (!key) { $("detail").hidden = true; return; }
    const [ns, name] = [key.slice(0, key.indexOf("/")), key.slice(key.indexOf("/") + 1)];
    const d = await getJSON(`api/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
    if (seq === detailSeq && key === selected) renderDetail(d, key);
  }

  // ---- polling --------------------------------------------------------------------------

  function renderHeader(list) {
    const mode = $("mode");
    mode.textContent = list.mode || "unknown";
    mode.className = `mode ${list.mode === "live" ? "live" : "dry-run"}`;
    const now = $("now");
    now.textContent = fmtClock(list.now);
    if (finite(list.now) && list.now > 1e9) now.dateTime = new Date(list.now * 1000).toISOString();
  }

  async function poll() {
    try {
      const list = await getJSON("api/v1/services");
      renderHeader(list);
      renderServices(list);
      await refreshDetail();
      const n = (list.services || []).length;
      // aria-live: only changes when the count does, so screen readers are not told every 2 s.
      const line = `${n} service${n === 1 ? "" : "s"} managed`;
      if ($("status").textContent !== line) $("status").textContent = line;
      setError(null);
    } catch (e) {
      setError(e.message);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function select(key) {
    if (!key || key === selected) return;
    selected = key;
    history.replaceState(null, "", `#${encodeURIComponent(key)}`);
    markSelected();
    refreshDetail().then(() => setError(null), (e) => setError(e.message));
  }

  $("services").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr.service");
    if (tr) select(tr.dataset.key);
  });

  poll();
})();
