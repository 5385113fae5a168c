/**
 * The "DSPex" side panel: live pool status and telemetry for the current notebook's kernel.
 *
 * A view only: it renders what `DSPexConnection` receives and tells the connection when it is
 * visible (a hidden panel holds no comm open, so the kernel sends nothing).
 */

import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { DSPexConnection } from './connection';
import {
  ConnectionState,
  IPoolStatus,
  IRecentCall,
  ISnapshot,
  KernelMessage,
  describeState,
  formatCost,
  formatCount,
  formatLatency,
  formatTime,
  formatWorkers,
  isDegraded
} from './model';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M2 3h6.5a9 9 0 0 1 0 18H2zm3.2 3.2v11.6h3.3a5.8 5.8 0 0 0 0-11.6z"/>
    <circle cx="20.5" cy="5" r="2.3"/><circle cx="20.5" cy="12" r="2.3"/>
    <circle cx="20.5" cy="19" r="2.3"/>
  </g>
</svg>`;

/** The DSPex icon (a "D" next to a tiny pool of workers). */
export const dspexIcon = new LabIcon({ name: 'dspex-lab:icon', svgstr: ICON_SVG });

const TOTALS: [key: string, label: string, format: (n: number | null) => string][] = [
  ['calls', 'LM calls', formatCount],
  ['errors', 'Errors', formatCount],
  ['tokens', 'Tokens', formatCount],
  ['cost', 'Cost', formatCost],
  ['latency_ms', 'Latency', formatLatency],
  ['tasks', 'Pool tasks', formatCount]
];

const TITLES: Record<string, string> = {
  cost: 'Total cost in USD (litellm prices; $0 for local models)',
  latency_ms: 'Mean LM-call latency',
  tasks: 'Tasks finished by the worker pools'
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** One table row: its cells, a row class, and an optional full-width detail line below it. */
interface IRow {
  cells: string[];
  className?: string;
  detail?: string;
}

function table(headers: [label: string, title: string][], rows: IRow[]): HTMLElement {
  const t = el('table', 'jp-DSPexPanel-table');
  const head = t.createTHead().insertRow();
  for (const [label, title] of headers) {
    head.appendChild(el('th', '', label)).title = title;
  }
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.className = row.className ?? '';
    for (const c of row.cells) {
      tr.insertCell().textContent = c;
    }
    if (row.detail) {
      const detail = body.insertRow();
      detail.className = `jp-DSPexPanel-detail ${row.className ?? ''}`;
      const td = detail.insertCell();
      td.colSpan = row.cells.length;
      td.textContent = row.detail;
      td.title = row.detail;
    }
  }
  const scroller = el('div', 'jp-DSPexPanel-scroll');
  scroller.appendChild(t);
  return scroller;
}

export class DSPexPanel extends Widget {
  private _status = el('div', 'jp-DSPexPanel-status');
  private _kernel = el('div', 'jp-DSPexPanel-kernel');
  private _notice = el('div', 'jp-DSPexPanel-notice');
  private _totals = el('div', 'jp-DSPexPanel-totals');
  private _progress = el('div', 'jp-DSPexPanel-progress');
  private _pools = el('div', 'jp-DSPexPanel-pools');
  private _recent = el('div', 'jp-DSPexPanel-recent');

  constructor(readonly connection: DSPexConnection, restartPools: () => void) {
    super();
    this.id = 'dspex-lab-panel';
    this.addClass('jp-DSPexPanel');
    this.title.icon = dspexIcon;
    this.title.caption = 'DSPex: pools and telemetry';
    this.node.append(...this._buildNodes(restartPools));
    connection.stateChanged.connect(this._onState, this);
    connection.received.connect(this._onMessage, this);
    connection.sessionChanged.connect(this._onSession, this);
    this._onState(connection, connection.state);
    this._onSession();
    this.render(null);
  }

  /** Show one snapshot (or the empty state for `null`). */
  render(snapshot: ISnapshot | null): void {
    this._renderTotals(snapshot);
    this._renderProgress(snapshot?.progress ?? null);
    this._pools.replaceChildren(el('h3', '', 'Pools'), this._poolTable(snapshot?.pools ?? []));
    this._recent.replaceChildren(
      el('h3', '', 'Recent calls'),
      this._recentTable(snapshot?.recent ?? [])
    );
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.connection.active = false;
    }
    super.dispose();
  }

  protected onAfterShow(): void {
    this.connection.active = true;
  }

  protected onAfterHide(): void {
    this.connection.active = false;
  }

  private _buildNodes(restartPools: () => void): HTMLElement[] {
    const header = el('div', 'jp-DSPexPanel-header');
    header.append(el('h2', '', 'DSPex'), this._kernel);
    const bar = el('div', 'jp-DSPexPanel-toolbar');
    const refresh = el('button', 'jp-Button jp-mod-styled jp-mod-reject', 'Refresh');
    refresh.onclick = () => {
      if (!this.connection.send({ type: 'refresh' })) {
        this.connection.connect();
      }
    };
    const restart = el('button', 'jp-Button jp-mod-styled jp-mod-warn', 'Restart pools');
    restart.onclick = restartPools;
    bar.append(refresh, restart);
    return [header, this._status, bar, this._notice, this._totals, this._progress, this._pools,
      this._recent];
  }

  private _renderTotals(snapshot: ISnapshot | null): void {
    const tiles = TOTALS.map(([key, label, format]) => {
      const tile = el('div', 'jp-DSPexPanel-total');
      tile.dataset.key = key;
      tile.title = TITLES[key] ?? label;
      const value = (snapshot?.totals as unknown as Record<string, number | null>)?.[key];
      tile.append(el('div', 'jp-DSPexPanel-value', snapshot ? format(value ?? null) : '–'),
        el('div', 'jp-DSPexPanel-label', label));
      if (key === 'errors' && (value ?? 0) > 0) {
        tile.classList.add('jp-mod-error');
      }
      return tile;
    });
    this._totals.replaceChildren(...tiles);
  }

  private _renderProgress(progress: Record<string, unknown> | null): void {
    const done = Number(progress?.done);
    const total = Number(progress?.total);
    if (!progress || !Number.isFinite(done) || !Number.isFinite(total) || total <= 0) {
      this._progress.replaceChildren();
      return;
    }
    const bar = el('progress');
    bar.max = total;
    bar.value = done;
    const label = progress.name ? `${progress.name}: ` : 'Run: ';
    this._progress.replaceChildren(el('span', '', `${label}${done}/${total}`), bar);
  }

  private _poolTable(pools: IPoolStatus[]): HTMLElement {
    if (pools.length === 0) {
      return el('div', 'jp-DSPexPanel-empty', 'No worker pools yet (they start on first use).');
    }
    const rows = pools.map(p => ({
      cells: [
        p.name,
        formatWorkers(p),
        formatCount(p.busy),
        formatCount(p.queued),
        formatCount(p.tasks_done),
        formatCount(p.restarts)
      ],
      className: isDegraded(p) ? 'jp-mod-warn' : ''
    }));
    return table(
      [
        ['Pool', 'Pool name'],
        ['Alive', 'Live workers / pool size'],
        ['Busy', 'Workers running a task'],
        ['Queue', 'Tasks waiting for a worker'],
        ['Done', 'Tasks finished'],
        ['Rst', 'Worker restarts']
      ],
      rows
    );
  }

  private _recentTable(recent: IRecentCall[]): HTMLElement {
    if (recent.length === 0) {
      return el('div', 'jp-DSPexPanel-empty', 'No calls yet.');
    }
    const rows = [...recent].reverse().map(c => ({
      cells: [
        formatTime(c.ts),
        c.label || c.kind,
        formatLatency(c.latency_ms),
        formatCount(c.tokens),
        formatCost(c.cost)
      ],
      className: c.error ? 'jp-mod-error' : '',
      detail: c.error ?? undefined
    }));
    return table(
      [
        ['Time', 'When the call finished'],
        ['Call', 'Model (LM calls) or pool (pool tasks)'],
        ['Latency', 'Wall-clock latency'],
        ['Tok', 'Prompt + completion tokens'],
        ['Cost', 'Cost in USD (litellm prices)']
      ],
      rows
    );
  }

  private _onState(_: DSPexConnection, state: ConnectionState): void {
    this._status.textContent = describeState(state);
    this._status.dataset.state = state;
    if (state !== 'connected') {
      this._notice.textContent = '';
    }
  }

  private _onMessage(_: DSPexConnection, msg: KernelMessage): void {
    if (msg.type === 'snapshot') {
      this.render(msg);
    } else {
      this._notice.textContent = msg.message;
      this._notice.classList.toggle('jp-mod-error', !msg.ok);
    }
  }

  private _onSession(): void {
    const session = this.connection.session;
    this._kernel.textContent = session ? session.name || session.path : 'No notebook';
  }
}
