import {
  describeState,
  formatCost,
  formatCount,
  formatLatency,
  formatTime,
  formatWorkers,
  isDegraded,
  parseMessage
} from '../src/model';

describe('parseMessage', () => {
  it('fills a partial snapshot with defaults', () => {
    expect(parseMessage({ type: 'snapshot', totals: { calls: 3 } })).toEqual({
      type: 'snapshot',
      pools: [],
      recent: [],
      totals: { calls: 3, errors: 0, tokens: 0, cost: 0 },
      progress: null
    });
  });

  it('reads acks and rejects unknown payloads', () => {
    expect(parseMessage({ type: 'ack', action: 'restart_pools', ok: 1, message: 'done' })).toEqual({
      type: 'ack',
      action: 'restart_pools',
      ok: true,
      message: 'done'
    });
    expect(parseMessage({ type: 'other' })).toBeNull();
    expect(parseMessage('snapshot')).toBeNull();
    expect(parseMessage(null)).toBeNull();
  });
});

describe('formatting', () => {
  it('formats latency, counts and cost', () => {
    expect(formatLatency(12.4)).toBe('12 ms');
    expect(formatLatency(1250)).toBe('1.25 s');
    expect(formatLatency(null)).toBe('–');
    expect(formatCount(950)).toBe('950');
    expect(formatCount(12345)).toBe('12.3k');
    expect(formatCount(4_500_000)).toBe('4.5M');
    expect(formatCount(undefined)).toBe('–');
    expect(formatCost(0)).toBe('$0');
    expect(formatCost(0.00123)).toBe('$0.0012');
    expect(formatCost(1.234)).toBe('$1.23');
    expect(formatCost(Number.NaN)).toBe('–');
  });

  it('formats times as local HH:MM:SS', () => {
    const ts = new Date(2024, 0, 2, 3, 4, 5).getTime() / 1000;
    expect(formatTime(ts)).toBe('03:04:05');
  });

  it('shows workers and flags degraded pools', () => {
    expect(formatWorkers({ name: 'p', size: 4, alive: 3 })).toBe('3/4');
    expect(formatWorkers({ name: 'p', alive: 2 })).toBe('2');
    expect(isDegraded({ name: 'p', size: 4, alive: 3 })).toBe(true);
    expect(isDegraded({ name: 'p', size: 4, alive: 4 })).toBe(false);
    expect(isDegraded({ name: 'p' })).toBe(false);
  });

  it('tells the user how to load the extension when the target is missing', () => {
    expect(describeState('unregistered')).toContain('%load_ext dspex_lab');
    expect(describeState('connected')).toBe('Live');
  });
});
