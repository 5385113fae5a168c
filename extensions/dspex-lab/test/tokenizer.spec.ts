import {
  IToken,
  magicKind,
  tokenizeBodyLine,
  tokenizeCell,
  tokenizeSignature
} from '../src/tokenizer';

/** The tokens as `[text, kind]` pairs, which read better than offsets. */
function spans(text: string, tokens: IToken[]): [string, string][] {
  return tokens.map(t => [text.slice(t.from, t.to), t.kind]);
}

function sig(line: string): [string, string][] {
  return spans(line, tokenizeSignature(line));
}

describe('magicKind', () => {
  it('tells cell magics from line magics', () => {
    expect(magicKind('%%dspex q -> a')).toBe('cell');
    expect(magicKind('%dspex pools')).toBe('line');
    expect(magicKind('%%dspexx q -> a')).toBeNull();
    expect(magicKind(' %%dspex q -> a')).toBeNull();
    expect(magicKind('print(1)')).toBeNull();
  });
});

describe('tokenizeSignature', () => {
  it('marks the magic, fields, types, arrow and description', () => {
    expect(sig('%%dspex question: str, context: list[str] -> answer: str "short"')).toEqual([
      ['%%dspex', 'magic'],
      ['question', 'field'],
      ['str', 'type'],
      ['context', 'field'],
      ['list', 'type'],
      ['str', 'type'],
      ['->', 'arrow'],
      ['answer', 'field'],
      ['str', 'type'],
      ['"short"', 'desc']
    ]);
  });

  it('handles untyped fields without spaces around the arrow', () => {
    expect(sig('%%dspex q->a')).toEqual([
      ['%%dspex', 'magic'],
      ['q', 'field'],
      ['->', 'arrow'],
      ['a', 'field']
    ]);
  });

  it('gives exact offsets', () => {
    expect(tokenizeSignature('%%dspex q -> a')).toEqual([
      { from: 0, to: 7, kind: 'magic' },
      { from: 8, to: 9, kind: 'field' },
      { from: 10, to: 12, kind: 'arrow' },
      { from: 13, to: 14, kind: 'field' }
    ]);
  });

  it('reads nested, union and literal types as one type', () => {
    expect(sig("%%dspex m: dict[str, list[int]], k: Literal['a', 'b'] -> o: str | None")).toEqual([
      ['%%dspex', 'magic'],
      ['m', 'field'],
      ['dict', 'type'],
      ['str', 'type'],
      ['list', 'type'],
      ['int', 'type'],
      ['k', 'field'],
      ['Literal', 'type'],
      ["'a'", 'type'],
      ["'b'", 'type'],
      ['->', 'arrow'],
      ['o', 'field'],
      ['str', 'type'],
      ['None', 'type']
    ]);
  });

  it('marks options and their values', () => {
    expect(sig('%%dspex q -> a --model fast --n=3 --cot --out "res df"')).toEqual([
      ['%%dspex', 'magic'],
      ['q', 'field'],
      ['->', 'arrow'],
      ['a', 'field'],
      ['--model', 'option'],
      ['fast', 'value'],
      ['--n', 'option'],
      ['3', 'value'],
      ['--cot', 'option'],
      ['--out', 'option'],
      ['"res df"', 'value']
    ]);
  });

  it('marks a verb before the signature and a bare verb', () => {
    expect(sig('%dspex run q -> a --df df')).toEqual([
      ['%dspex', 'magic'],
      ['run', 'verb'],
      ['q', 'field'],
      ['->', 'arrow'],
      ['a', 'field'],
      ['--df', 'option'],
      ['df', 'value']
    ]);
    expect(sig('%dspex pools --stop')).toEqual([
      ['%dspex', 'magic'],
      ['pools', 'verb'],
      ['--stop', 'option']
    ]);
  });

  it('keeps descriptions with escaped quotes and unterminated strings', () => {
    expect(sig('%%dspex q "say \\"hi\\"" -> a "open')).toEqual([
      ['%%dspex', 'magic'],
      ['q', 'field'],
      ['"say \\"hi\\""', 'desc'],
      ['->', 'arrow'],
      ['a', 'field'],
      ['"open', 'desc']
    ]);
  });

  it('survives odd characters and never loops', () => {
    const line = '%%dspex q: ] ?? -> a: [[ "x';
    const tokens = tokenizeSignature(line);
    expect(tokens[0]).toEqual({ from: 0, to: 7, kind: 'magic' });
    for (const t of tokens) {
      expect(t.to).toBeGreaterThan(t.from);
      expect(t.to).toBeLessThanOrEqual(line.length);
    }
  });

  it('ignores lines that are not the magic', () => {
    expect(tokenizeSignature('x = 1 -> 2')).toEqual([]);
    expect(tokenizeSignature('')).toEqual([]);
  });
});

describe('tokenizeBodyLine', () => {
  it('marks the field name and interpolations', () => {
    const line = '  question: tell me about {topic} and { other }';
    expect(spans(line, tokenizeBodyLine(line))).toEqual([
      ['question', 'field'],
      ['{topic}', 'interp'],
      ['{ other }', 'interp']
    ]);
  });

  it('leaves prose and dict literals alone', () => {
    expect(tokenizeBodyLine('just some text')).toEqual([]);
    expect(tokenizeBodyLine('{"a": 1}')).toEqual([]);
  });
});

describe('tokenizeCell', () => {
  it('tokenizes the body of a cell magic with absolute offsets', () => {
    const text = '%%dspex q -> a\nq: hi {name}\nplain';
    expect(spans(text, tokenizeCell(text))).toEqual([
      ['%%dspex', 'magic'],
      ['q', 'field'],
      ['->', 'arrow'],
      ['a', 'field'],
      ['q', 'field'],
      ['{name}', 'interp']
    ]);
  });

  it('leaves the Python body of a line magic alone', () => {
    const text = '%dspex run q -> a\nx: int = 3';
    expect(spans(text, tokenizeCell(text)).map(s => s[0])).toEqual(['%dspex', 'run', 'q', '->', 'a']);
  });

  it('returns nothing for an ordinary cell', () => {
    expect(tokenizeCell('print("%%dspex")\nx: 1')).toEqual([]);
  });
});
