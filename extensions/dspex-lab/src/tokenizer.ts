/**
 * A pure tokenizer for `%%dspex` / `%dspex` cells (no JupyterLab or CodeMirror imports, so
 * jest runs it directly).
 *
 * The signature line looks like
 *
 *     %%dspex [verb] question: str, context: list[str] -> answer: str "short" --model m
 *
 * and the body of a `%%dspex` cell holds `field: value` lines with `{name}` interpolations.
 * Offsets in every token are relative to the start of the line.
 *
 * Example:
 *
 *     tokenizeSignature('%%dspex q -> a')
 *     // [{from: 0, to: 7, kind: 'magic'}, {from: 8, to: 9, kind: 'field'},
 *     //  {from: 10, to: 12, kind: 'arrow'}, {from: 13, to: 14, kind: 'field'}]
 */

/** The kinds of token; each maps to the CSS class `cm-dspex-<kind>`. */
export type TokenKind =
  | 'magic'
  | 'verb'
  | 'field'
  | 'type'
  | 'arrow'
  | 'desc'
  | 'option'
  | 'value'
  | 'interp';

/** One highlighted span: `[from, to)` within the line. */
export interface IToken {
  from: number;
  to: number;
  kind: TokenKind;
}

const MAGIC = /^(%%?)dspex\b/;
const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
const TYPE_WORD = /[A-Za-z_][A-Za-z0-9_.]*/y;
const OPTION = /--?[A-Za-z][A-Za-z0-9_-]*/y;
const BODY_FIELD = /^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*):/;
const INTERP = /\{\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}/g;

/** The magic of a line: `'cell'` for `%%dspex`, `'line'` for `%dspex`, else `null`. */
export function magicKind(line: string): 'cell' | 'line' | null {
  const match = MAGIC.exec(line);
  if (!match) {
    return null;
  }
  return match[1] === '%%' ? 'cell' : 'line';
}

/** A cursor over one line; every reader returns the new position. */
class Scanner {
  readonly tokens: IToken[] = [];

  constructor(readonly text: string) {}

  push(from: number, to: number, kind: TokenKind): number {
    if (to > from) {
      this.tokens.push({ from, to, kind });
    }
    return to;
  }

  skipSpace(pos: number): number {
    while (pos < this.text.length && /\s/.test(this.text[pos])) {
      pos++;
    }
    return pos;
  }

  match(re: RegExp, pos: number): number {
    re.lastIndex = pos;
    return re.test(this.text) ? re.lastIndex : pos;
  }

  /** A quoted string from `pos` (which holds the quote); unterminated runs to the end. */
  quoted(pos: number): number {
    const quote = this.text[pos];
    let end = pos + 1;
    while (end < this.text.length && this.text[end] !== quote) {
      end += this.text[end] === '\\' ? 2 : 1;
    }
    return Math.min(end + 1, this.text.length);
  }

  /** A type expression such as `list[str]`, `dict[str, int]`, `str | None`, `Literal['a']`. */
  type(pos: number): number {
    let depth = 0;
    while (pos < this.text.length) {
      const ch = this.text[pos];
      const word = this.match(TYPE_WORD, pos);
      if (word > pos) {
        pos = this.push(pos, word, 'type');
      } else if (ch === '[') {
        depth++;
        pos++;
      } else if (ch === ']' && depth > 0) {
        depth--;
        pos++;
      } else if (depth > 0 && (ch === '"' || ch === "'")) {
        pos = this.push(pos, this.quoted(pos), 'type');
      } else if (depth > 0 && /[\s,|0-9.-]/.test(ch)) {
        pos++;
      } else if (ch === '|') {
        pos = this.skipSpace(pos + 1);
      } else if (/\s/.test(ch)) {
        const next = this.skipSpace(pos);
        if (this.text[next] !== '|') {
          return pos;
        }
        pos = next;
      } else {
        return pos;
      }
    }
    return pos;
  }

  /** `--name` followed by an optional value (`--n 3`, `--model "x y"`, `--out=res`). */
  option(pos: number): number {
    pos = this.push(pos, this.match(OPTION, pos), 'option');
    if (this.text[pos] === '=') {
      pos++;
    } else {
      const next = this.skipSpace(pos);
      if (next === pos || next >= this.text.length || this.text[next] === '-') {
        return pos;
      }
      pos = next;
    }
    if (this.text[pos] === '"' || this.text[pos] === "'") {
      return this.push(pos, this.quoted(pos), 'value');
    }
    let end = pos;
    while (end < this.text.length && !/\s/.test(this.text[end])) {
      end++;
    }
    return this.push(pos, end, 'value');
  }

  /** A field: `name`, optionally `: type`. */
  field(pos: number): number {
    const end = this.match(IDENT, pos);
    if (end === pos) {
      return pos + 1; // an unexpected character: skip it
    }
    pos = this.push(pos, end, 'field');
    const colon = this.skipSpace(pos);
    if (this.text[colon] === ':') {
      pos = this.type(this.skipSpace(colon + 1));
    }
    return pos;
  }
}

/**
 * True when the word at `pos` is a verb (`%dspex run q -> a`, `%dspex pools`): a bare word
 * followed by another bare word, or the first word of a line without an arrow.
 */
function isVerb(s: Scanner, pos: number): boolean {
  const end = s.match(IDENT, pos);
  if (end === pos) {
    return false;
  }
  const after = s.text[end] ?? '';
  if (!s.text.includes('->')) {
    return after === '' || /\s/.test(after);
  }
  const next = s.skipSpace(end);
  return next > end && /[A-Za-z_]/.test(s.text[next] ?? '');
}

/**
 * Tokens of a `%%dspex` / `%dspex` signature line; `[]` when the line is not one.
 *
 * Example: `tokenizeSignature('%dspex run q -> a --df df')` marks `run` as a verb,
 * `q` and `a` as fields, `->` as the arrow, `--df` as an option and `df` as its value.
 */
export function tokenizeSignature(line: string): IToken[] {
  const magic = MAGIC.exec(line);
  if (!magic) {
    return [];
  }
  const s = new Scanner(line);
  let pos = s.push(0, magic[0].length, 'magic');
  pos = s.skipSpace(pos);
  if (isVerb(s, pos)) {
    pos = s.push(pos, s.match(IDENT, pos), 'verb');
  }
  while (pos < line.length) {
    pos = s.skipSpace(pos);
    const ch = line[pos];
    if (pos >= line.length) {
      break;
    } else if (line.startsWith('->', pos)) {
      pos = s.push(pos, pos + 2, 'arrow');
    } else if (ch === '"' || ch === "'") {
      pos = s.push(pos, s.quoted(pos), 'desc');
    } else if (ch === '-' && /[A-Za-z-]/.test(line[pos + 1] ?? '')) {
      pos = s.option(pos);
    } else if (ch === ',') {
      pos++;
    } else {
      pos = s.field(pos);
    }
  }
  return s.tokens;
}

/**
 * Tokens of one body line of a `%%dspex` cell: the field name of `field: value` lines and every
 * `{name}` interpolation.
 *
 * Example: `tokenizeBodyLine('question: about {topic}')` gives a `field` token for `question`
 * and an `interp` token for `{topic}`.
 */
export function tokenizeBodyLine(line: string): IToken[] {
  const tokens: IToken[] = [];
  const field = BODY_FIELD.exec(line);
  if (field) {
    const from = field[1].length;
    tokens.push({ from, to: from + field[2].length, kind: 'field' });
  }
  for (const m of line.matchAll(INTERP)) {
    const from = m.index ?? 0;
    tokens.push({ from, to: from + m[0].length, kind: 'interp' });
  }
  return tokens.sort((a, b) => a.from - b.from);
}

/**
 * Tokens of a whole cell, with offsets relative to the start of the text.
 *
 * Only the first line may hold the magic; body lines are tokenized for `%%dspex` cells only
 * (the rest of a `%dspex` cell is Python).
 */
export function tokenizeCell(text: string): IToken[] {
  const kind = magicKind(text);
  if (kind === null) {
    return [];
  }
  const lines = text.split('\n');
  const tokens = tokenizeSignature(lines[0]);
  if (kind === 'line') {
    return tokens;
  }
  let offset = lines[0].length + 1;
  for (const line of lines.slice(1)) {
    for (const t of tokenizeBodyLine(line)) {
      tokens.push({ from: t.from + offset, to: t.to + offset, kind: t.kind });
    }
    offset += line.length + 1;
  }
  return tokens;
}
