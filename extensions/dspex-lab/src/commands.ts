/**
 * The DSPex commands (command palette category "DSPex").
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { DSPexConnection } from './connection';

export const CommandIDs = {
  insertCell: 'dspex:insert-cell',
  openTelemetry: 'dspex:open-telemetry',
  restartPools: 'dspex:restart-pools',
  showPanel: 'dspex:show-panel'
} as const;

/** The cell inserted by "Insert %%dspex cell" (a body is needed: IPython rejects empty ones). */
export const CELL_TEMPLATE = '%%dspex question -> answer\nquestion: What is DSPy?';

/** Run when the panel is not connected: pools re-create lazily on next use. */
const RESTART_CODE = 'import dspex_lab.workers as _dspex_w; _dspex_w.shutdown_all(); del _dspex_w';

/** Insert a code cell below the active one, set its source, optionally run it. */
async function insertCell(panel: NotebookPanel, source: string, run: boolean): Promise<void> {
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  const cell = notebook.activeCell;
  if (!cell) {
    return;
  }
  cell.model.sharedModel.setSource(source);
  if (run) {
    await NotebookActions.run(notebook, panel.sessionContext);
  } else {
    notebook.mode = 'edit';
  }
}

/** Shut the pools down in the kernel: over the comm if open, else by executing code. */
async function restartPools(
  tracker: INotebookTracker,
  connection: DSPexConnection
): Promise<void> {
  if (connection.send({ type: 'restart_pools' })) {
    return; // the kernel answers with an ack shown in the panel
  }
  const kernel = tracker.currentWidget?.sessionContext.session?.kernel;
  if (!kernel) {
    Notification.warning('Open a notebook with a running kernel to restart DSPex pools.');
    return;
  }
  const future = kernel.requestExecute({ code: RESTART_CODE, silent: true, store_history: false });
  const reply = await future.done;
  if (reply.content.status === 'ok') {
    Notification.success('DSPex worker pools shut down; they restart on next use.', {
      autoClose: 4000
    });
  } else {
    const content = reply.content as { ename?: string; evalue?: string };
    Notification.error(
      `Could not restart DSPex pools (${content.ename}: ${content.evalue}). ` +
        'Is dspex_lab installed in this kernel?'
    );
  }
}

/** Register the four commands and add them to the palette. */
export function addCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  connection: DSPexConnection,
  panelId: string,
  palette: ICommandPalette | null
): void {
  const hasNotebook = () => tracker.currentWidget !== null;
  app.commands.addCommand(CommandIDs.insertCell, {
    label: 'Insert %%dspex cell',
    caption: 'Insert a code cell below with a %%dspex signature template',
    isEnabled: hasNotebook,
    execute: () => tracker.currentWidget && insertCell(tracker.currentWidget, CELL_TEMPLATE, false)
  });
  app.commands.addCommand(CommandIDs.openTelemetry, {
    label: 'Open telemetry dashboard',
    caption: 'Insert and run a %dspex_telemetry cell below the active cell',
    isEnabled: hasNotebook,
    execute: () =>
      tracker.currentWidget && insertCell(tracker.currentWidget, '%dspex_telemetry', true)
  });
  app.commands.addCommand(CommandIDs.restartPools, {
    label: 'Restart worker pools',
    caption: 'Shut down the DSPex worker pools of the current kernel (they restart lazily)',
    isEnabled: hasNotebook,
    execute: () => restartPools(tracker, connection)
  });
  app.commands.addCommand(CommandIDs.showPanel, {
    label: 'Show DSPex panel',
    caption: 'Show live pool status and telemetry of the current kernel',
    execute: () => app.shell.activateById(panelId)
  });
  for (const command of Object.values(CommandIDs)) {
    palette?.addItem({ command, category: 'DSPex' });
  }
}
