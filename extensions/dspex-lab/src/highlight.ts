/**
 * CodeMirror 6 decorations for `%%dspex` / `%dspex` cells, registered in JupyterLab's
 * `IEditorExtensionRegistry` so every notebook cell editor gets them.
 *
 * The tokens come from the pure `tokenizer` module; this file only turns them into mark
 * decorations with the classes `cm-dspex-<kind>` (coloured in `style/base.css`), a
 * `cm-dspex-signature` line class on the magic line and `cm-dspex-body` on the body lines of a
 * `%%dspex` cell (whose Python highlighting the CSS turns off: the body is data, not code).
 */

import { RangeSetBuilder } from '@codemirror/state';
import {
  Decoration,
  DecorationSet,
  EditorView,
  ViewPlugin,
  ViewUpdate
} from '@codemirror/view';
import { EditorExtensionRegistry, IEditorExtensionFactory } from '@jupyterlab/codemirror';

import { TokenKind, magicKind, tokenizeBodyLine, tokenizeSignature } from './tokenizer';

const MARKS = new Map<TokenKind, Decoration>();
const SIGNATURE_LINE = Decoration.line({ class: 'cm-dspex-signature' });
const BODY_LINE = Decoration.line({ class: 'cm-dspex-body' });

/** The line cap keeps a huge pasted body cheap to decorate. */
const MAX_BODY_LINES = 2000;

function mark(kind: TokenKind): Decoration {
  let deco = MARKS.get(kind);
  if (!deco) {
    deco = Decoration.mark({ class: `cm-dspex-${kind}` });
    MARKS.set(kind, deco);
  }
  return deco;
}

/** The decorations of a whole document; empty unless its first line is the magic. */
export function dspexDecorations(view: EditorView): DecorationSet {
  const doc = view.state.doc;
  const first = doc.line(1);
  const kind = magicKind(first.text);
  const builder = new RangeSetBuilder<Decoration>();
  if (kind === null) {
    return builder.finish();
  }
  builder.add(first.from, first.from, SIGNATURE_LINE);
  for (const t of tokenizeSignature(first.text)) {
    builder.add(first.from + t.from, first.from + t.to, mark(t.kind));
  }
  if (kind === 'cell') {
    const last = Math.min(doc.lines, MAX_BODY_LINES);
    for (let n = 2; n <= last; n++) {
      const line = doc.line(n);
      builder.add(line.from, line.from, BODY_LINE);
      for (const t of tokenizeBodyLine(line.text)) {
        builder.add(line.from + t.from, line.from + t.to, mark(t.kind));
      }
    }
  }
  return builder.finish();
}

/** A view plugin that recomputes the decorations when the document changes. */
export const dspexHighlighter = ViewPlugin.fromClass(
  class {
    decorations: DecorationSet;

    constructor(view: EditorView) {
      this.decorations = dspexDecorations(view);
    }

    update(update: ViewUpdate): void {
      if (update.docChanged) {
        this.decorations = dspexDecorations(update.view);
      }
    }
  },
  { decorations: plugin => plugin.decorations }
);

/** The factory given to `IEditorExtensionRegistry.addExtension`. */
export const dspexHighlightFactory: IEditorExtensionFactory<undefined> = {
  name: 'dspex-lab:highlight',
  factory: () => EditorExtensionRegistry.createImmutableExtension(dspexHighlighter)
};
