// The browser view of blobs-emulator: sites, their stores, a store's keys with a preview of
// each value, and the job records the job layer writes under `jobs/`.
//
// Every piece of stored data (site IDs, store names, keys, values, metadata, job fields)
// reaches the page as text: through `textContent`, a text node, or an attribute set with
// `setAttribute`. Nothing is ever parsed as HTML, so a key holding `<script>` shows as those
// characters. The token lives in this tab's session storage and goes out only in the
// `authorization` header of the page's own API calls.
'use strict';

(function () {
  const API = 'api/';
  const TOKEN_KEY = 'blobs-emulator-token';
  const KEYS_PER_PAGE = 100;
  const JOBS_PER_PAGE = 50;
  const LIVE_MS = 1000;
  const HEX_BYTES = 4096;
  const STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let timer = null;
  // Bumped on every navigation, so that an answer for a view that is gone is dropped.
  let generation = 0;

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  /** An element with properties (or attributes) and children; strings become text nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = String(value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (typeof value !== 'string' && name in node) node[name] = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const link = {
    sites: () => '#/',
    site: (site) => `#/site/${enc(site)}`,
    keys: (site, store) => `#/site/${enc(site)}/store/${enc(store)}`,
    jobs: (site, store) => `#/site/${enc(site)}/store/${enc(store)}/jobs`,
  };

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const decoded = [];
    for (const part of parts) {
      try {
        decoded.push(decodeURIComponent(part));
      } catch {
        return {};
      }
    }
    const [siteWord, site, storeWord, store, tab] = decoded;
    if (siteWord !== 'site' || !site) return {};
    if (storeWord !== 'store' || !store) return { site };
    return { site, store, tab: tab === 'jobs' ? 'jobs' : 'keys' };
  }

  class SignedOut extends Error {}

  /** Calls the page's API; a refused token signs the tab out. */
  async function api(name, params, method) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
    }
    const response = await fetch(`${API}${name}?${query}`, {
      method: method || 'GET',
      headers: { authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
    if (response.status === 401 || response.status === 403) {
      signOut('The emulator refused this token.');
      throw new SignedOut('signed out');
    }
    if (!response.ok) {
      const text = (await response.text()).trim();
      throw new Error(text || `${response.status} ${response.statusText}`);
    }
    return response.status === 204 ? null : response.json();
  }

  function startLive(load) {
    stopLive();
    timer = setInterval(load, LIVE_MS);
  }

  function stopLive() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  function showLogin(message) {
    stopLive();
    $('view').replaceChildren();
    $('crumbs').replaceChildren();
    $('signout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function signOut(message) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(message);
  }

  function fail(error, gen, box) {
    if (error instanceof SignedOut || gen !== generation) return;
    (box || $('view')).replaceChildren(el('p', { class: 'error', role: 'alert', text: error.message }));
  }

  function crumbs(...items) {
    const nav = $('crumbs');
    nav.replaceChildren();
    items.forEach((item, i) => {
      if (i) nav.append(el('span', { class: 'sep', text: '/' }));
      nav.append(Array.isArray(item) ? el('a', { href: item[1], text: item[0] }) : el('span', { text: item }));
    });
  }

  function table(headings, rows) {
    return el('table', {},
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', { text: h })))),
      el('tbody', {}, rows));
  }

  /** A table row that acts like a link or button, with the mouse or the keyboard. */
  function row(action, props, ...cells) {
    return el('tr', {
      ...props,
      tabindex: '0',
      onclick: action,
      onkeydown: (event) => { if (event.key === 'Enter') action(); },
    }, ...cells);
  }

  function storeLabel(raw) {
    if (raw.startsWith('site:')) return raw.slice(5);
    if (raw.startsWith('deploy:')) {
      const rest = raw.slice(7);
      const colon = rest.indexOf(':');
      return colon < 0 ? `deploy ${rest}` : `${rest.slice(colon + 1)} (deploy ${rest.slice(0, colon)})`;
    }
    return raw;
  }

  function size(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
    return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
  }

  function time(ms) {
    if (typeof ms !== 'number') return '—';
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  function relative(ms) {
    const s = Math.round(Math.abs(ms) / 1000);
    return ms >= 0 ? `expires in ${s} s` : `expired ${s} s ago`;
  }

  function compact(metadata) {
    const text = JSON.stringify(metadata || {});
    return text === '{}' ? '' : text;
  }

  // Views ------------------------------------------------------------------------------

  async function sitesView() {
    crumbs('Sites');
    const gen = generation;
    const view = $('view');
    view.replaceChildren(el('h1', { text: 'Sites' }), el('p', { class: 'note', text: 'Loading…' }));
    let data;
    try {
      data = await api('sites');
    } catch (error) {
      return fail(error, gen);
    }
    if (gen !== generation) return;
    const rows = data.sites.map((site) => row(() => { location.hash = link.site(site.id); }, {},
      el('td', {}, el('a', { href: link.site(site.id), text: site.id })),
      el('td', { class: 'num', text: site.stores })));
    view.replaceChildren(el('h1', { text: 'Sites' }), rows.length
      ? table(['Site', 'Stores'], rows)
      : el('p', { class: 'note', text: 'Nothing is stored yet. Write a key with @netlify/blobs and it shows here.' }));
  }

  async function storesView(site) {
    crumbs(['Sites', link.sites()], site);
    const gen = generation;
    const view = $('view');
    view.replaceChildren(el('h1', { text: site }), el('p', { class: 'note', text: 'Loading…' }));
    let data;
    try {
      data = await api('stores', { site });
    } catch (error) {
      return fail(error, gen);
    }
    if (gen !== generation) return;
    const rows = data.stores.map((store) => row(() => { location.hash = link.keys(site, store.name); }, {},
      el('td', {}, el('a', { href: link.keys(site, store.name), text: storeLabel(store.name) })),
      el('td', {}, el('span', { class: 'tag', text: store.kind })),
      el('td', { class: 'mono', text: store.name })));
    view.replaceChildren(el('h1', { text: `Stores of ${site}` }), rows.length
      ? table(['Store', 'Kind', 'Name on the wire'], rows)
      : el('p', { class: 'note', text: 'This site has no store with a key in it.' }));
  }

  function tabs(site, store, active) {
    return el('nav', { class: 'tabs' },
      el('a', { href: link.keys(site, store), class: active === 'keys' ? 'active' : null, text: 'Keys' }),
      el('a', { href: link.jobs(site, store), class: active === 'jobs' ? 'active' : null, text: 'Jobs' }));
  }

  /** A page of a listing: previous and next, with the cursors seen so far. */
  function pager(state, count, perPage, load) {
    const first = state.page * perPage + 1;
    return [
      el('button', { type: 'button', text: 'Previous', disabled: state.page === 0,
        onclick: () => { state.page -= 1; load(); } }),
      el('span', { class: 'note', text: count ? `Page ${state.page + 1} (${first}–${first + count - 1})` : `Page ${state.page + 1}` }),
      el('button', { type: 'button', text: 'Next', disabled: !state.next,
        onclick: () => { state.cursors[state.page + 1] = state.next; state.page += 1; load(); } }),
    ];
  }

  /** What a value is, and the text that shows it: JSON pretty-printed, text, or hex. */
  function describe(bytes, truncated) {
    if (bytes.length === 0) return { kind: 'empty', text: '' };
    let text = null;
    try {
      // A preview cut in the middle of a character is still text: `stream` keeps the
      // incomplete end back instead of failing.
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: truncated });
    } catch {
      text = null;
    }
    if (text !== null && !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text)) {
      if (!truncated) {
        try {
          const value = JSON.parse(text);
          if (value !== null && typeof value === 'object') return { kind: 'JSON', text: JSON.stringify(value, null, 2) };
        } catch {
          // Not JSON: plain text.
        }
      }
      return { kind: 'text', text };
    }
    return { kind: 'binary', text: hexdump(bytes) };
  }

  function hexdump(bytes) {
    const end = Math.min(bytes.length, HEX_BYTES);
    const lines = [];
    for (let i = 0; i < end; i += 16) {
      const chunk = bytes.subarray(i, Math.min(i + 16, end));
      const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, '0')).join(' ');
      const ascii = Array.from(chunk, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
    }
    if (bytes.length > end) lines.push(`… ${bytes.length - end} more bytes of the preview not shown`);
    return lines.join('\n');
  }

  function previewPanel(data) {
    const blob = data.blob;
    const raw = atob(data.preview);
    const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    const shown = describe(bytes, data.truncated);
    const hasMetadata = Object.keys(blob.metadata || {}).length > 0;
    return [
      el('h2', { class: 'mono key', text: blob.key }),
      el('dl', {},
        el('dt', { text: 'Size' }), el('dd', { text: `${size(blob.size)} (${blob.size} bytes)` }),
        el('dt', { text: 'ETag' }), el('dd', { class: 'mono', text: blob.etag }),
        el('dt', { text: 'Last modified' }), el('dd', { text: time(blob.lastModified) }),
        el('dt', { text: 'Metadata' }), el('dd', {}, hasMetadata
          ? el('pre', { class: 'metadata', text: JSON.stringify(blob.metadata, null, 2) })
          : el('span', { class: 'muted', text: 'none' }))),
      el('div', {}, el('strong', { text: 'Value ' }), el('span', { class: 'tag value-kind', text: shown.kind }),
        data.truncated ? el('span', { class: 'note', text: ` first ${size(bytes.length)} of ${size(blob.size)}` }) : null),
      el('pre', { class: shown.kind === 'binary' ? 'value hex' : 'value', text: shown.text }),
    ];
  }

  function deleteControls(site, store, key, done) {
    const box = el('div', { class: 'toolbar' });
    const ask = el('button', { type: 'button', class: 'danger', text: 'Delete',
      onclick: () => box.replaceChildren(
        el('span', { text: 'Delete this key for good?' }),
        el('button', { type: 'button', class: 'danger', text: 'Yes, delete', onclick: remove }),
        el('button', { type: 'button', text: 'Keep it', onclick: () => box.replaceChildren(ask) })) });
    async function remove() {
      try {
        await api('value', { site, store, key }, 'DELETE');
      } catch (error) {
        if (!(error instanceof SignedOut)) box.replaceChildren(el('span', { class: 'error', text: error.message }));
        return;
      }
      done();
    }
    box.append(ask);
    return box;
  }

  /** The preview of one key in `panel`, reloaded only when its ETag changed. */
  function previewer(site, store, panel, afterDelete) {
    const state = { key: null, etag: null };
    async function show(key, etag) {
      if (key === state.key && etag === state.etag) return;
      const first = key !== state.key;
      state.key = key;
      state.etag = etag;
      panel.hidden = false;
      if (first) panel.replaceChildren(el('p', { class: 'note', text: 'Loading…' }));
      const gen = generation;
      let data;
      try {
        data = await api('value', { site, store, key });
      } catch (error) {
        return fail(error, gen, panel);
      }
      if (gen !== generation || state.key !== key) return;
      state.etag = data.blob.etag;
      panel.replaceChildren(...previewPanel(data), deleteControls(site, store, key, () => {
        state.key = null;
        state.etag = null;
        panel.replaceChildren(el('p', { class: 'note', text: `Deleted ${key}.` }));
        afterDelete();
      }));
    }
    return { show, state };
  }

  function keysView(site, store) {
    crumbs(['Sites', link.sites()], [site, link.site(site)], storeLabel(store));
    const state = { cursors: [''], page: 0, next: null, prefix: '' };
    const prefix = el('input', { type: 'search', placeholder: 'Key prefix', 'aria-label': 'Key prefix' });
    const live = el('input', { type: 'checkbox', onchange: () => (live.checked ? startLive(load) : stopLive()) });
    const list = el('div', {}, el('p', { class: 'note', text: 'Loading…' }));
    const pages = el('div', { class: 'pager' });
    const panel = el('div', { class: 'panel', hidden: true });
    const preview = previewer(site, store, panel, () => load());
    $('view').replaceChildren(
      el('h1', { text: storeLabel(store) }),
      tabs(site, store, 'keys'),
      el('form', { class: 'toolbar', onsubmit: (event) => {
        event.preventDefault();
        state.prefix = prefix.value;
        state.cursors = [''];
        state.page = 0;
        load();
      } }, prefix, el('button', { type: 'submit', text: 'Filter' }), el('span', { class: 'grow' }),
      el('label', {}, live, ' Live'), el('button', { type: 'button', text: 'Refresh', onclick: () => load() })),
      el('div', { class: 'split' }, el('div', {}, list, pages), panel));

    let busy = false;
    async function load() {
      if (busy) return;
      busy = true;
      const gen = generation;
      try {
        const data = await api('keys', {
          site, store, prefix: state.prefix, cursor: state.cursors[state.page], limit: KEYS_PER_PAGE,
        });
        if (gen !== generation) return;
        state.next = data.nextCursor;
        render(data.keys);
      } catch (error) {
        fail(error, gen, list);
      } finally {
        busy = false;
      }
    }

    function render(keys) {
      const rows = keys.map((k) => row(() => select(k), {
        class: k.key === preview.state.key ? 'selected' : null, 'data-key': k.key,
      },
      el('td', { class: 'key mono', text: k.key }),
      el('td', { class: 'num', text: size(k.size) }),
      el('td', { class: 'nowrap', text: time(k.lastModified) }),
      el('td', { class: 'mono', text: k.etag.replace(/"/g, '').slice(0, 10), title: k.etag }),
      el('td', { class: 'meta mono', text: compact(k.metadata), title: compact(k.metadata) })));
      list.replaceChildren(rows.length
        ? table(['Key', 'Size', 'Last modified', 'ETag', 'Metadata'], rows)
        : el('p', { class: 'note', text: state.prefix ? 'No key starts with this prefix.' : 'This store is empty.' }));
      pages.replaceChildren(...pager(state, keys.length, KEYS_PER_PAGE, load));
      const selected = keys.find((k) => k.key === preview.state.key);
      if (selected) preview.show(selected.key, selected.etag);
    }

    function select(k) {
      for (const tr of list.querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.key === k.key);
      preview.show(k.key, k.etag);
    }

    load();
  }

  function jobsView(site, store) {
    crumbs(['Sites', link.sites()], [site, link.site(site)], [storeLabel(store), link.keys(site, store)], 'Jobs');
    const state = { cursors: [''], page: 0, next: null, status: '' };
    const filter = el('select', { 'aria-label': 'Status', onchange: () => {
      state.status = filter.value;
      state.cursors = [''];
      state.page = 0;
      load();
    } }, el('option', { value: '', text: 'all statuses' }), STATUSES.map((s) => el('option', { value: s, text: s })));
    const live = el('input', { type: 'checkbox', checked: true, onchange: () => (live.checked ? startLive(load) : stopLive()) });
    const list = el('div', {}, el('p', { class: 'note', text: 'Loading…' }));
    const pages = el('div', { class: 'pager' });
    const panel = el('div', { class: 'panel', hidden: true });
    const preview = previewer(site, store, panel, () => load());
    $('view').replaceChildren(
      el('h1', { text: `Jobs in ${storeLabel(store)}` }),
      tabs(site, store, 'jobs'),
      el('div', { class: 'toolbar' }, el('label', {}, 'Status ', filter), el('span', { class: 'grow' }),
        el('label', {}, live, ' Live'), el('button', { type: 'button', text: 'Refresh', onclick: () => load() })),
      el('div', { class: 'stack' }, el('div', {}, list, pages), panel));

    let busy = false;
    async function load() {
      if (busy) return;
      busy = true;
      const gen = generation;
      try {
        const data = await api('jobs', {
          site, store, status: state.status, cursor: state.cursors[state.page], limit: JOBS_PER_PAGE,
        });
        if (gen !== generation) return;
        state.next = data.nextCursor;
        render(data);
      } catch (error) {
        fail(error, gen, list);
      } finally {
        busy = false;
      }
    }

    function render(data) {
      const rows = data.jobs.map((entry) => {
        const job = entry.job;
        const progress = job.progress;
        return row(() => select(entry), {
          class: entry.key === preview.state.key ? 'selected' : null, 'data-key': entry.key, 'data-status': job.status,
        },
        el('td', { class: 'key mono', text: job.id }),
        el('td', { text: job.kind }),
        el('td', {}, el('span', { class: `status status-${job.status}`, text: job.status }),
          entry.expired ? el('span', { class: 'tag', text: ' expired' }) : null),
        el('td', {}, progress
          ? [el('span', { class: 'nowrap' }, el('progress', { max: 100, value: progress.percent }), `${progress.percent}%`),
            progress.message ? el('div', { class: 'muted', text: progress.message }) : null]
          : el('span', { class: 'muted', text: '—' })),
        el('td', { class: 'num', text: job.attempts }),
        el('td', {}, job.lease
          ? [el('div', { class: 'mono', text: job.lease.owner }), el('div', { class: 'muted', text: relative(job.lease.expires_at - data.now) })]
          : el('span', { class: 'muted', text: '—' })),
        el('td', { class: 'nowrap', text: time(job.created_at) }),
        el('td', { class: 'nowrap', text: time(job.updated_at) }));
      });
      list.replaceChildren(rows.length
        ? table(['Job', 'Kind', 'Status', 'Progress', 'Attempts', 'Lease', 'Created', 'Updated'], rows)
        : el('p', { class: 'note', text: state.status ? `No ${state.status} job on this page.` : 'No job records (jobs/<id>) in this store.' }));
      if (data.other) {
        list.append(el('p', { class: 'note', text: `${data.other} key(s) under jobs/ on this page are not job records.` }));
      }
      pages.replaceChildren(...pager(state, rows.length, JOBS_PER_PAGE, load));
      const selected = data.jobs.find((entry) => entry.key === preview.state.key);
      if (selected) preview.show(selected.key, selected.etag);
    }

    function select(entry) {
      for (const tr of list.querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.key === entry.key);
      preview.show(entry.key, entry.etag);
    }

    load();
    startLive(load);
  }

  function route() {
    stopLive();
    generation += 1;
    if (!token) {
      showLogin('');
      return;
    }
    $('login').hidden = true;
    $('signout').hidden = false;
    const r = parseRoute();
    if (r.store && r.tab === 'jobs') jobsView(r.site, r.store);
    else if (r.store) keysView(r.site, r.store);
    else if (r.site) storesView(r.site);
    else sitesView();
  }

  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    token = $('token').value.trim();
    if (!token) return;
    try {
      await api('sites');
    } catch (error) {
      if (!(error instanceof SignedOut)) showLogin(error.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    route();
  });
  $('signout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', route);

  // The signed-in link carries the token in the fragment; it is taken and then removed from
  // the address bar, so it does not stay in the history.
  const fragment = location.hash.match(/^#token=(.*)$/);
  if (fragment) {
    try {
      token = decodeURIComponent(fragment[1]);
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      token = '';
    }
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  }
  route();
}());
