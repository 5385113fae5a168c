/**
 * dspex-lab: JupyterLab 4 extension for dspex_lab.
 *
 * - `dspex-lab:highlight`: `%%dspex` / `%dspex` syntax highlighting in every code editor.
 * - `dspex-lab:panel`: the "DSPex" side panel (pools + telemetry over the `dspex_lab` comm)
 *   and the DSPex commands in the palette.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';

import { CommandIDs, addCommands } from './commands';
import { DSPexConnection } from './connection';
import { dspexHighlightFactory } from './highlight';
import { DSPexPanel } from './panel';

const highlightPlugin: JupyterFrontEndPlugin<void> = {
  id: 'dspex-lab:highlight',
  description: 'Syntax highlighting for %%dspex cells.',
  autoStart: true,
  requires: [IEditorExtensionRegistry],
  activate: (_app: JupyterFrontEnd, registry: IEditorExtensionRegistry) => {
    registry.addExtension(dspexHighlightFactory);
  }
};

const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'dspex-lab:panel',
  description: 'The DSPex side panel (pool status, telemetry) and the DSPex commands.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const connection = new DSPexConnection();
    const panel = new DSPexPanel(connection, () =>
      void app.commands.execute(CommandIDs.restartPools)
    );
    app.shell.add(panel, 'right', { rank: 900 });
    restorer?.add(panel, panel.id);
    const follow = () => connection.setSession(tracker.currentWidget?.sessionContext ?? null);
    tracker.currentChanged.connect(follow);
    follow();
    addCommands(app, tracker, connection, panel.id, palette);
  }
};

export default [highlightPlugin, panelPlugin];
