// vlexplore's thumbnail grid: a Streamlit custom component (v2), a plain ES module (no build, no dependencies).
//
// data: {items: [{i, src, caption, title, selected, error}], columns, selectable, similar, similarHelp}
//   src is a data: URL of the cached JPEG thumbnail ("" when it could not be read: error says why).
// Out: trigger `similar` ({i, n}: "Similar" clicked under image i), trigger `toggle` ({i, n}: its checkbox
// ticked or unticked; the box changes at once, the next data confirms it). n counts clicks, so the same
// image twice in a row is two events.
// Cells are kept per index between renders: a rerun with the same images moves no bytes into the DOM.

const STYLE_ID = 'vx-grid-style';
const CSS = `
.vx-grid {
  display: grid;
  grid-template-columns: repeat(var(--vx-cols, 8), minmax(0, 1fr));
  gap: 1rem 1rem;
  font-family: var(--st-font, "Source Sans", sans-serif);
  color: var(--st-text-color, #1f2430);
  font-size: 0.875rem;
  line-height: 1.4;
}
.vx-grid-cell { display: flex; flex-direction: column; min-width: 0; gap: 0.15rem; }
.vx-grid-img {
  display: block; width: 100%; height: auto;
  aspect-ratio: 1 / 1; object-fit: contain; /* every cell the same square: names and buttons line up */
  border-radius: calc(var(--st-base-radius, 0.5rem) * 0.5);
  background: var(--st-secondary-background-color, #f3f5f8);
  outline: 2px solid transparent; outline-offset: 1px;
  transition: outline-color 0.1s;
}
.vx-grid-selectable .vx-grid-img { cursor: pointer; }
.vx-grid-cell.vx-selected .vx-grid-img { outline-color: var(--st-primary-color, #2f6fdb); }
.vx-grid-caption {
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; text-align: center;
  color: color-mix(in srgb, var(--st-text-color, #1f2430) 60%, transparent);
  font-size: 0.875rem; padding-top: 0.1rem;
}
.vx-grid-caption:empty { display: none; }
.vx-grid-error {
  display: flex; gap: 0.3rem; align-items: flex-start; overflow-wrap: anywhere;
  color: color-mix(in srgb, var(--st-text-color, #1f2430) 60%, transparent);
}
.vx-grid-error svg { flex: none; width: 1.1rem; height: 1.1rem; fill: currentColor; margin-top: 0.05rem; }
.vx-grid-tools { display: flex; align-items: center; gap: 0.25rem; min-height: 1.6rem; flex-wrap: wrap; }
.vx-grid-tools:empty { display: none; }
.vx-grid-check {
  width: 1rem; height: 1rem; margin: 0 0.25rem 0 0; cursor: pointer;
  accent-color: var(--st-primary-color, #2f6fdb);
}
.vx-grid-similar {
  display: inline-flex; align-items: center; gap: 0.25rem;
  border: none; background: none; padding: 0.1rem 0.15rem; margin: 0; cursor: pointer;
  font: inherit; font-size: 0.875rem; color: inherit; white-space: nowrap;
  border-radius: calc(var(--st-base-radius, 0.5rem) * 0.5);
}
.vx-grid-similar svg { width: 1.1rem; height: 1.1rem; fill: currentColor; flex: none; }
.vx-grid-similar:hover, .vx-grid-similar:focus-visible { color: var(--st-primary-color, #2f6fdb); }
.vx-grid-similar:focus-visible { outline: 2px solid var(--st-primary-color, #2f6fdb); outline-offset: 1px; }
.vx-grid-similar:active { opacity: 0.7; }
`;

// Material icons (Apache 2.0): image_search and broken_image
const ICON_SEARCH =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M18 13v7H4V6h5.02c.05-.71.22-1.38.48-2H4c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h14c1.1 0 2-.9 2-2v-5l-2-2zm-1.5 5h-11l2.75-3.53 1.96 2.36 2.75-3.54L16.5 18zm2.8-9.11c.44-.7.7-1.51.7-2.39C20 4.01 17.99 2 15.5 2S11 4.01 11 6.5s2.01 4.5 4.49 4.5c.88 0 1.7-.26 2.39-.7L21 13.42 22.42 12 19.3 8.89zM15.5 9C14.12 9 13 7.88 13 6.5S14.12 4 15.5 4 18 5.12 18 6.5 16.88 9 15.5 9z"/></svg>';
const ICON_BROKEN =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M21 5v6.59l-3-3.01-4 4.01-4-4-4 4-3-3.01V5c0-1.1.9-2 2-2h14c1.1 0 2 .9 2 2zm-3 6.42 3 3.01V19c0 1.1-.9 2-2 2H5c-1.1 0-2-.9-2-2v-6.58l3 2.99 4-4 4 4 4-3.99z"/></svg>';

const GRIDS = new WeakMap(); // parentElement -> {root, cells: Map(i -> cell), send, n}

function ensureStyle(parentElement) {
  const doc = parentElement.ownerDocument || document;
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.appendChild(style);
}

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

function send(g, name, i) {
  g.n += 1;
  g.send(name, { i, n: g.n });
}

function makeCell(g, i) {
  const cell = el('div', 'vx-grid-cell');
  cell.dataset.index = String(i);
  const c = { cell, i, src: null, error: null };
  c.media = el('div', 'vx-grid-media', cell);
  c.caption = el('div', 'vx-grid-caption', cell);
  c.tools = el('div', 'vx-grid-tools', cell);
  c.check = el('input', 'vx-grid-check');
  c.check.type = 'checkbox';
  c.check.addEventListener('change', () => {
    cell.classList.toggle('vx-selected', c.check.checked);
    send(g, 'toggle', i);
  });
  c.similar = el('button', 'vx-grid-similar');
  c.similar.type = 'button';
  c.similar.innerHTML = `${ICON_SEARCH}<span>Similar</span>`;
  c.similar.addEventListener('click', () => send(g, 'similar', i));
  return c;
}

function updateCell(g, c, item, data) {
  if (item.src !== c.src || item.error !== c.error) {
    c.src = item.src;
    c.error = item.error;
    c.media.replaceChildren();
    if (item.src) {
      const img = el('img', 'vx-grid-img', c.media);
      img.alt = item.caption || item.title || '';
      img.decoding = 'async';
      img.src = item.src;
      img.addEventListener('click', () => {
        if (!g.selectable) return;
        c.check.checked = !c.check.checked; // in select mode the image ticks its box too
        c.check.dispatchEvent(new Event('change'));
      });
      c.img = img;
    } else {
      const err = el('div', 'vx-grid-error', c.media);
      err.innerHTML = ICON_BROKEN;
      el('span', '', err).textContent = item.error || 'cannot show this image';
      c.img = null;
    }
  }
  if (c.img) c.img.title = item.title || '';
  c.caption.textContent = item.src ? item.caption || '' : '';
  c.caption.title = item.title || '';
  c.cell.classList.toggle('vx-selected', !!(data.selectable && item.selected));
  const tools = [];
  if (data.selectable) {
    c.check.checked = !!item.selected;
    c.check.setAttribute('aria-label', `select ${item.title || ''}`);
    tools.push(c.check);
  }
  if (data.similar) {
    c.similar.title = data.similarHelp || '';
    c.similar.setAttribute('aria-label', 'Similar');
    tools.push(c.similar);
  }
  if (c.tools.childNodes.length !== tools.length || tools.some((t, k) => c.tools.childNodes[k] !== t)) {
    c.tools.replaceChildren(...tools);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data || !Array.isArray(data.items)) return undefined;
  ensureStyle(parentElement);
  let g = GRIDS.get(parentElement);
  if (!g) {
    const root = el('div', 'vx-grid', parentElement);
    g = { root, cells: new Map(), n: 0 };
    GRIDS.set(parentElement, g);
    parentElement.__vxGrid = g; // for tests and the benchmark
  }
  g.send = setTriggerValue;
  g.selectable = !!data.selectable;
  g.root.style.setProperty('--vx-cols', String(Math.max(1, data.columns | 0 || 8)));
  g.root.classList.toggle('vx-grid-selectable', g.selectable);
  const cells = new Map();
  const order = [];
  for (const item of data.items) {
    let c = g.cells.get(item.i) || makeCell(g, item.i);
    if (cells.has(item.i)) c = makeCell(g, item.i); // an index twice: its own cell
    else cells.set(item.i, c);
    updateCell(g, c, item, data);
    order.push(c.cell);
  }
  g.cells = cells;
  if (g.root.childNodes.length !== order.length || order.some((n, k) => g.root.childNodes[k] !== n)) {
    g.root.replaceChildren(...order);
  }
  g.root.dataset.n = String(order.length);
  return () => {
    GRIDS.delete(parentElement);
    g.root.remove();
  };
}
