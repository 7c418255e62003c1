// vlexplore's Map: a regl-scatterplot (WebGL) Streamlit component, plus a tiny thumbnail channel.
//
// One bundle serves two components (told apart by `component.name`):
//   *.scatter         the plot. `data` is one binary payload (vlexplore/mapdata.py `encode`): a JSON header,
//                     then x, y float32, category uint16 and the selection uint32. A header with
//                     points=false carries the selection only: the browser keeps the last points it drew
//                     (by version) and says which one it holds through the state value `have`.
//                     Out: trigger `selection` ({b64: uint32 indices}), trigger `click` (index), state `have`.
//   *.scatter_thumbs  the thumbnail channel, mounted in a Streamlit fragment: trigger `want` asks for the
//                     thumbnails of a few points, `data.thumbs` answers with data URLs (only that fragment
//                     reruns, the points are not sent again).
// The two talk through an EventTarget on window (components are not sandboxed; they share the page).

import createScatterplot, { createRenderer } from 'regl-scatterplot';
import CSS from './scatter.css';

const BUS = (window.__vxScatterBus ||= {
  target: new EventTarget(),
  thumbs: new Map(), // "key:index" -> {src, caption}
  pending: new Map(), // channel key -> Set of indices not yet answered
  points: null, // {version, x, y, category}: the points last drawn, reused when a payload has none
});
const THUMB_CACHE_MAX = 2000;
const PLOTS = new WeakMap(); // parentElement -> plot state

// ---------------------------------------------------------------- payload

function parsePayload(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length < 8) return null;
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== 'VXM1') return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)).replace(/\0+$/, ''));
  let off = 8 + hlen;
  // copy each block into its own aligned buffer (protobuf hands us a view at any byte offset)
  const take = (Type, count) => {
    const nbytes = count * Type.BYTES_PER_ELEMENT;
    const arr = new Type(bytes.slice(off, off + nbytes).buffer);
    off += nbytes + ((4 - (nbytes % 4)) % 4);
    return arr;
  };
  let pts = null;
  if (header.points) {
    const x = take(Float32Array, header.n);
    const y = take(Float32Array, header.n);
    const category = take(Uint16Array, header.n);
    pts = { version: header.version, x, y, category };
  }
  const selection = take(Uint32Array, header.m);
  return { header, points: pts, selection };
}

function b64Indices(indices) {
  const u32 = Uint32Array.from(indices);
  const u8 = new Uint8Array(u32.buffer);
  let s = '';
  const CH = 0x8000;
  for (let i = 0; i < u8.length; i += CH) s += String.fromCharCode.apply(null, u8.subarray(i, i + CH));
  return btoa(s);
}

function sameSelection(a, b) {
  if (a.length !== b.length) return false;
  const sa = Uint32Array.from(a).sort();
  const sb = Uint32Array.from(b).sort();
  for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return false;
  return true;
}

// ---------------------------------------------------------------- DOM

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function buildDom(parentElement, height) {
  if (!document.getElementById('vx-scatter-style')) {
    const style = el('style', null, document.head, CSS);
    style.id = 'vx-scatter-style';
  }
  const root = el('div', 'vx-scatter', parentElement);
  root.style.height = `${height + 40}px`;
  const bar = el('div', 'vx-scatter-bar', root);
  const modes = {};
  for (const [mode, label, title] of [
    ['lasso', 'Lasso', 'Drag to lasso-select (hold Shift in any mode)'],
    ['rectangle', 'Box', 'Drag to box-select'],
    ['pan', 'Pan', 'Drag to pan; scroll to zoom'],
  ]) {
    const b = el('button', 'vx-scatter-btn', bar, label);
    b.type = 'button';
    b.title = title;
    b.dataset.mode = mode;
    modes[mode] = b;
  }
  const reset = el('button', 'vx-scatter-btn', bar, 'Reset view');
  reset.type = 'button';
  reset.dataset.action = 'reset';
  const clear = el('button', 'vx-scatter-btn', bar, 'Clear selection');
  clear.type = 'button';
  clear.dataset.action = 'clear';
  const status = el('span', 'vx-scatter-status', bar);
  const wrap = el('div', 'vx-scatter-canvas', root);
  const canvas = el('canvas', null, wrap);
  const tip = el('div', 'vx-scatter-tip', wrap);
  const tipImg = el('img', 'vx-scatter-tip-img', tip);
  tipImg.alt = '';
  const tipText = el('div', 'vx-scatter-tip-text', tip);
  const pinned = el('div', 'vx-scatter-pinned', wrap);
  const pinnedClose = el('button', 'vx-scatter-pinned-close', pinned, '×');
  pinnedClose.type = 'button';
  pinnedClose.title = 'Close';
  const pinnedImg = el('img', 'vx-scatter-pinned-img', pinned);
  pinnedImg.alt = '';
  const pinnedText = el('div', 'vx-scatter-pinned-text', pinned);
  const legend = el('div', 'vx-scatter-legend', wrap);
  return { root, bar, modes, reset, clear, status, wrap, canvas, tip, tipImg, tipText, pinned, pinnedClose,
    pinnedImg, pinnedText, legend };
}

// ---------------------------------------------------------------- thumbnails

function thumbKey(channel, i) {
  return `${channel}:${i}`;
}

function requestThumb(channel, i) {
  if (BUS.thumbs.has(thumbKey(channel, i))) return;
  let set = BUS.pending.get(channel);
  if (!set) BUS.pending.set(channel, (set = new Set()));
  set.delete(i);
  set.add(i); // most recent last
  BUS.target.dispatchEvent(new CustomEvent('request', { detail: { channel } }));
}

function thumbChannel(component) {
  const { data, setTriggerValue, parentElement } = component;
  const channel = (data && data.channel) || 'map';
  const answers = (data && data.thumbs) || {};
  for (const [i, t] of Object.entries(answers)) {
    BUS.thumbs.set(thumbKey(channel, Number(i)), t);
    BUS.pending.get(channel)?.delete(Number(i));
  }
  while (BUS.thumbs.size > THUMB_CACHE_MAX) BUS.thumbs.delete(BUS.thumbs.keys().next().value);
  if (Object.keys(answers).length) {
    BUS.target.dispatchEvent(new CustomEvent('thumbs', { detail: { channel } }));
  }
  // one listener per mounted channel element; re-invocations (new data) only update the setter
  let st = PLOTS.get(parentElement);
  if (!st) {
    st = { timer: null, setTriggerValue };
    PLOTS.set(parentElement, st);
    const ask = (ev) => {
      if (ev.detail.channel !== channel) return;
      clearTimeout(st.timer);
      st.timer = setTimeout(() => {
        const want = [...(BUS.pending.get(channel) || [])].slice(-6);
        if (want.length) st.setTriggerValue('want', want);
      }, 60);
    };
    BUS.target.addEventListener('request', ask);
    st.cleanup = () => BUS.target.removeEventListener('request', ask);
    if (BUS.pending.get(channel)?.size) ask({ detail: { channel } });
  } else {
    st.setTriggerValue = setTriggerValue;
  }
  return () => st.cleanup?.();
}

// ---------------------------------------------------------------- the plot

function pointSizeFor(n) {
  if (n < 1000) return 7;
  if (n < 10000) return 5;
  if (n < 100000) return 3;
  if (n < 1000000) return 2;
  return 1.5;
}

function setMode(st, mode) {
  st.mode = mode;
  for (const [m, b] of Object.entries(st.dom.modes)) b.classList.toggle('vx-active', m === mode);
  if (mode === 'pan') st.plot.set({ mouseMode: 'panZoom' });
  else st.plot.set({ mouseMode: 'lasso', lassoType: mode === 'rectangle' ? 'rectangle' : 'freeform' });
}

function showTip(st, i, pos) {
  const { tip, tipImg, tipText } = st.dom;
  st.hovered = i;
  const t = BUS.thumbs.get(thumbKey(st.channel, i));
  const cat = st.points ? st.points.category[i] : 0;
  const cluster = st.header?.names?.[cat] ?? '';
  if (t) {
    tipImg.src = t.src;
    tipImg.style.display = '';
    tipImg.dataset.index = String(i);
    tipText.textContent = t.caption ? `${t.caption} · ${cluster}` : cluster;
  } else {
    tipImg.removeAttribute('src');
    tipImg.style.display = 'none';
    delete tipImg.dataset.index;
    tipText.textContent = `${cluster} · loading…`;
    requestThumb(st.channel, i);
  }
  tip.style.borderColor = st.header?.palette?.[cat] ?? '#888';
  tip.style.display = 'block';
  if (pos) placeTip(st, pos);
}

function placeTip(st, [mx, my]) {
  const { tip, wrap } = st.dom;
  const w = wrap.clientWidth;
  const h = wrap.clientHeight;
  const tw = tip.offsetWidth || 180;
  const th = tip.offsetHeight || 200;
  const x = mx + 16 + tw > w ? mx - 16 - tw : mx + 16;
  const y = Math.min(Math.max(4, my - th / 2), Math.max(4, h - th - 4));
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${y}px`;
}

function showPinned(st, i) {
  const { pinned, pinnedImg, pinnedText } = st.dom;
  st.pinnedIndex = i;
  const t = BUS.thumbs.get(thumbKey(st.channel, i));
  const cat = st.points ? st.points.category[i] : 0;
  const cluster = st.header?.names?.[cat] ?? '';
  pinned.style.display = 'block';
  pinned.dataset.index = String(i);
  if (t) {
    pinnedImg.src = t.src;
    pinnedImg.style.display = '';
    pinnedText.textContent = t.caption ? `${t.caption} · ${cluster}` : cluster;
  } else {
    pinnedImg.style.display = 'none';
    pinnedText.textContent = `${cluster} · loading…`;
    requestThumb(st.channel, i);
  }
}

function drawLegend(st) {
  const { legend } = st.dom;
  legend.textContent = '';
  const h = st.header;
  if (!h || !h.names) return;
  const counts = new Map();
  if (st.points) {
    const c = st.points.category;
    const tally = new Uint32Array(h.names.length);
    for (let i = 0; i < c.length; i++) tally[c[i]]++;
    tally.forEach((v, k) => counts.set(k, v));
  }
  const shown = h.names.map((name, k) => k).filter((k) => (counts.get(k) ?? 1) > 0).slice(0, 30);
  for (const k of shown) {
    const row = el('div', 'vx-scatter-legend-row', legend);
    const dot = el('span', 'vx-scatter-dot', row);
    dot.style.background = h.palette[k];
    el('span', null, row, `${h.names[k]} (${(counts.get(k) ?? 0).toLocaleString()})`);
  }
  const more = h.names.length - shown.length;
  if (more > 0) el('div', 'vx-scatter-legend-row', legend, `… ${more} more`);
}

// ---------------------------------------------------------------- the frame after a selection
//
// Without a GPU (WebGL on the CPU, e.g. headless chromium) a frame of a million points holds the page for
// a second or more: the library copies each frame onto the page's canvas, which waits for the frame. The
// frame that highlights a new lasso selection would run before the page can take the app's answer and
// show the grid of the selected images. So, where frames are that slow, that frame waits until the app
// has answered and the page's images have loaded (the map keeps its last frame, the lasso drawn on it, and
// the bar says how many are selected), or until the user presses, scrolls or types on the map, or at
// most HOLD_MAX_MS. With a GPU a frame takes milliseconds and nothing waits.
const SLOW_FRAME_MS = 150;
const HOLD_MAX_MS = 8000;
const SETTLED_POLL_MS = 25;
// ... and the page has not changed, nor fetched anything, for this long: the app's elements are all in place
// (Streamlit may first fetch an element's code, e.g. st.image's on the first image of a session, then render)
const QUIET_MS = 300;

function heldRenderer(st) {
  const renderer = createRenderer();
  const onFrame = renderer.onFrame;
  renderer.onFrame = (draw) =>
    onFrame(() => {
      if (st.hold) return;
      const t0 = performance.now();
      draw();
      const dt = performance.now() - t0;
      if (dt > 2) st.frameMs = dt; // a frame with nothing to draw returns at once
    });
  return renderer;
}

function holdFrames(st) {
  releaseFrames(st, 'new selection');
  if (!(st.frameMs >= SLOW_FRAME_MS || st.alwaysHold)) return; // alwaysHold: for tests on a fast page
  const hold = { since: performance.now(), answered: false, changed: performance.now() };
  hold.observer = new MutationObserver(() => {
    hold.changed = performance.now();
  });
  hold.observer.observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true });
  if (typeof PerformanceObserver !== 'undefined') {
    hold.fetches = new PerformanceObserver(() => {
      hold.changed = performance.now();
    });
    try {
      hold.fetches.observe({ type: 'resource' });
    } catch {
      hold.fetches = null;
    }
  }
  st.hold = hold;
  st.stats.holdStart = hold.since;
  st.holdTimer = setTimeout(() => releaseFrames(st, 'timeout'), HOLD_MAX_MS);
}

function releaseFrames(st, why) {
  clearTimeout(st.holdTimer);
  if (!st.hold) return;
  st.hold.observer.disconnect();
  st.hold.fetches?.disconnect();
  st.hold = null;
  st.stats.holdEnd = performance.now();
  st.stats.releasedBy = why;
  const log = (st.stats.releases ||= []);
  log.push([why, Math.round(st.stats.holdStart), Math.round(st.stats.holdEnd)]);
  if (log.length > 50) log.shift();
}

function pageSettled() {
  // the app's rerun has finished and every image on the page (the grid's thumbnails) has loaded
  const app = document.querySelector('[data-testid="stApp"]');
  if (app && app.dataset.testScriptState && app.dataset.testScriptState !== 'notRunning') return false;
  for (const img of document.images) if (img.getAttribute('src') && !img.complete) return false;
  return true;
}

function answered(st) {
  // the app has rerun with the selection: release once the page has settled and stayed unchanged a while
  const hold = st.hold;
  if (!hold || hold.answered) return;
  hold.answered = true;
  const poll = () => {
    if (st.hold !== hold) return;
    if (performance.now() - hold.changed >= QUIET_MS && pageSettled()) {
      // let the page paint what it has (the grid) before the slow frame runs
      requestAnimationFrame(() => setTimeout(() => st.hold === hold && releaseFrames(st, 'settled'), 0));
    } else setTimeout(poll, SETTLED_POLL_MS);
  };
  setTimeout(poll, SETTLED_POLL_MS);
}

function createPlot(component, header) {
  const { parentElement } = component;
  const dom = buildDom(parentElement, header.height || 640);
  const st = {
    dom,
    header,
    channel: header.channel || 'map',
    points: null,
    version: null,
    selection: [],
    lassoing: false,
    restoring: false,
    hovered: -1,
    mouse: [0, 0],
    setTriggerValue: component.setTriggerValue,
    setStateValue: component.setStateValue,
    stats: { created: performance.now() },
  };
  const { width, height } = dom.wrap.getBoundingClientRect();
  st.renderer = heldRenderer(st);
  st.plot = createScatterplot({
    renderer: st.renderer,
    canvas: dom.canvas,
    width: Math.max(50, width),
    height: Math.max(50, height),
    pointSize: pointSizeFor(header.n),
    pointSizeSelected: 1,
    pointOutlineWidth: 1,
    opacityInactiveScale: 0.35,
    backgroundColor: [1, 1, 1, 1],
    pointColorHover: [0.1, 0.1, 0.1, 1],
    lassoColor: [0.18, 0.44, 0.86, 1],
    lassoMinDelay: 10,
    lassoMinDist: 3,
    actionKeyMap: { lasso: 'shift', merge: 'meta', remove: 'alt' },
    deselectOnDblClick: true,
    deselectOnEscape: true,
    // events in the same task: a lasso's selection goes to the server before the next frame is drawn
    // (a frame of a million points takes a second on a software renderer)
    syncEvents: true,
  });
  parentElement.__vxScatter = st; // for tests and the benchmark
  dom.root.__vxScatter = st;

  const plot = st.plot;
  plot.subscribe('pointover', (i) => showTip(st, i, st.mouse));
  plot.subscribe('pointout', () => {
    st.hovered = -1;
    dom.tip.style.display = 'none';
  });
  plot.subscribe('lassoStart', () => {
    st.lassoing = true;
  });
  // timings for the benchmarks: the last lasso's end, each frame drawn
  plot.subscribe('lassoEnd', () => {
    st.stats.lassoEnd = performance.now();
  });
  plot.subscribe('drawing', () => {
    const t = performance.now();
    st.stats.lastFrame = t;
    const f = (st.stats.frameTimes ||= []);
    f.push(t);
    if (f.length > 200) f.shift();
  });
  plot.subscribe('select', ({ points }) => {
    if (st.restoring) return;
    if (st.lassoing) {
      st.lassoing = false;
      sendSelection(st, points);
    } else if (points.length === 1) {
      // a click on a point: open it, keep the selection as it was
      const i = points[0];
      st.setTriggerValue('click', i);
      showPinned(st, i);
      restoreSelection(st);
    }
  });
  plot.subscribe('deselect', () => {
    if (st.restoring) return;
    st.lassoing = false;
    if (st.selection.length) sendSelection(st, []);
  });
  // the user acts on the map: it needs its frames back
  for (const type of ['mousedown', 'wheel', 'keydown']) {
    dom.wrap.addEventListener(type, () => releaseFrames(st, `input (${type})`), true);
  }
  dom.wrap.addEventListener('mousemove', (ev) => {
    const r = dom.wrap.getBoundingClientRect();
    st.mouse = [ev.clientX - r.left, ev.clientY - r.top];
    if (st.hovered >= 0) placeTip(st, st.mouse);
  });
  dom.wrap.addEventListener('mouseleave', () => {
    dom.tip.style.display = 'none';
  });
  for (const [mode, b] of Object.entries(dom.modes)) b.addEventListener('click', () => setMode(st, mode));
  dom.reset.addEventListener('click', () => plot.reset());
  dom.clear.addEventListener('click', () => {
    withRestoring(st, () => plot.deselect({ preventEvent: true }));
    if (st.selection.length) sendSelection(st, []);
  });
  dom.pinnedClose.addEventListener('click', () => {
    dom.pinned.style.display = 'none';
    st.pinnedIndex = undefined;
  });
  const onThumbs = (ev) => {
    if (ev.detail.channel !== st.channel) return;
    if (st.hovered >= 0 && dom.tip.style.display !== 'none') showTip(st, st.hovered, null);
    if (st.pinnedIndex !== undefined) showPinned(st, st.pinnedIndex);
  };
  BUS.target.addEventListener('thumbs', onThumbs);
  const ro = new ResizeObserver(() => {
    const r = dom.wrap.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) plot.set({ width: r.width, height: r.height });
  });
  ro.observe(dom.wrap);
  st.cleanup = () => {
    ro.disconnect();
    BUS.target.removeEventListener('thumbs', onThumbs);
    releaseFrames(st, 'gone');
    plot.destroy();
    st.renderer.destroy();
    dom.root.remove();
    PLOTS.delete(parentElement);
  };
  setMode(st, header.mode || 'lasso');
  return st;
}

function withRestoring(st, fn) {
  st.restoring = true;
  try {
    fn();
  } finally {
    // keep ignoring events for this tick (a select() in an event handler may publish more)
    setTimeout(() => {
      st.restoring = false;
    }, 0);
  }
}

function restoreSelection(st) {
  withRestoring(st, () => {
    if (st.selection.length) st.plot.select(Array.from(st.selection), { preventEvent: true });
    else st.plot.deselect({ preventEvent: true });
  });
}

function sendSelection(st, points) {
  st.selection = Array.from(points);
  st.stats.lastSelectionSent = performance.now();
  holdFrames(st);
  st.dom.status.textContent = points.length ? `${points.length.toLocaleString()} selected` : '';
  st.setTriggerValue('selection', { b64: b64Indices(st.selection), n: st.selection.length });
}

function applySelection(st, sel) {
  if (sameSelection(sel, st.selection) && sameSelection(st.plot.get('selectedPoints'), sel)) return;
  st.selection = Array.from(sel);
  st.dom.status.textContent = sel.length ? `${sel.length.toLocaleString()} selected` : '';
  withRestoring(st, () => {
    if (sel.length) st.plot.select(Array.from(sel), { preventEvent: true });
    else st.plot.deselect({ preventEvent: true });
  });
}

function scatter(component) {
  const { data, parentElement } = component;
  const parsed = parsePayload(data);
  if (!parsed) return undefined;
  const { header, selection } = parsed;
  const arrived = performance.now();
  let st = PLOTS.get(parentElement);
  if (!st) {
    st = createPlot(component, header);
    PLOTS.set(parentElement, st);
  }
  st.setTriggerValue = component.setTriggerValue;
  st.setStateValue = component.setStateValue;
  st.header = header;
  st.stats.lastPayload = arrived;
  st.stats.lastPayloadM = header.m;
  st.channel = header.channel || 'map';
  if (header.height) st.dom.root.style.height = `${header.height + 40}px`;

  let pts = parsed.points;
  if (pts) BUS.points = pts;
  else if (BUS.points && BUS.points.version === header.version) pts = BUS.points;
  if (!pts) {
    // the server thought we held these points; we do not: ask for them
    st.dom.status.textContent = 'loading points…';
    component.setStateValue('have', null);
    return st.cleanup;
  }
  if (st.version !== header.version) {
    st.version = header.version;
    st.points = pts;
    st.stats.received = performance.now();
    st.plot.set({ pointColor: header.palette, colorBy: 'valueA', pointSize: pointSizeFor(header.n) });
    st.selection = Array.from(selection);
    st.drawn = st.plot
      .draw({ x: pts.x, y: pts.y, valueA: pts.category }, {
        zDataType: 'categorical',
        select: selection.length ? Array.from(selection) : undefined,
        preventFilterReset: false,
      })
      .then(() => {
        st.stats.drawn = performance.now();
        st.dom.root.dataset.drawn = header.version;
        st.dom.root.dataset.n = String(header.n);
        drawLegend(st);
        component.setStateValue('have', header.version);
      });
    st.dom.status.textContent = selection.length ? `${selection.length.toLocaleString()} selected` : '';
  } else {
    if (st.hold) answered(st);
    st.drawn.then(() => applySelection(st, selection));
  }
  return st.cleanup;
}

export default function (component) {
  if (String(component.name).endsWith('scatter_thumbs')) return thumbChannel(component);
  return scatter(component);
}
