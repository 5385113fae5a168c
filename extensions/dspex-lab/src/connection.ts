/**
 * The comm between the DSPex panel and the current notebook's kernel.
 *
 * While `active` (the panel is visible) the connection opens a comm to the target `dspex_lab`
 * on the current kernel. The kernel side (`dspex_lab.labext.register_comm_target`) answers with
 * a snapshot at once; a kernel without the target closes the comm straight away, which is how
 * the panel knows to ask for `%load_ext dspex_lab`. After the user runs a cell, an
 * `unregistered` connection tries once more, so loading the extension lights the panel up.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as KM } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { ConnectionState, ISnapshot, KernelMessage, parseMessage } from './model';

/** The comm target registered by `dspex_lab.labext.register_comm_target`. */
export const COMM_TARGET = 'dspex_lab';

export class DSPexConnection {
  private _session: ISessionContext | null = null;
  private _comm: Kernel.IComm | null = null;
  private _active = false;
  private _state: ConnectionState = 'no-kernel';
  private _ranCode = false;
  private _snapshot: ISnapshot | null = null;
  private _stateChanged = new Signal<this, ConnectionState>(this);
  private _received = new Signal<this, KernelMessage>(this);
  private _sessionChanged = new Signal<this, ISessionContext | null>(this);

  /** Emitted with the new state whenever it changes. */
  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }

  /** Emitted for every snapshot or ack from the kernel. */
  get received(): ISignal<this, KernelMessage> {
    return this._received;
  }

  /** Emitted when the panel follows another notebook (or none). */
  get sessionChanged(): ISignal<this, ISessionContext | null> {
    return this._sessionChanged;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get session(): ISessionContext | null {
    return this._session;
  }

  /** The last snapshot received on the current comm, if any. */
  get snapshot(): ISnapshot | null {
    return this._snapshot;
  }

  /** Whether the connection should hold a comm open (the panel is visible). */
  get active(): boolean {
    return this._active;
  }

  set active(value: boolean) {
    this._active = value;
    if (value) {
      this.connect();
    } else {
      this.disconnect();
    }
  }

  /** Follow another notebook's session (or none). */
  setSession(session: ISessionContext | null): void {
    if (session === this._session) {
      return;
    }
    this.disconnect();
    if (this._session) {
      this._session.kernelChanged.disconnect(this._onKernelChanged, this);
      this._session.statusChanged.disconnect(this._onStatus, this);
      this._session.iopubMessage.disconnect(this._onIopub, this);
    }
    this._session = session;
    if (session) {
      session.kernelChanged.connect(this._onKernelChanged, this);
      session.statusChanged.connect(this._onStatus, this);
      session.iopubMessage.connect(this._onIopub, this);
    }
    this._sessionChanged.emit(session);
    if (this._active) {
      this.connect();
    }
  }

  /** Open the comm if there is a kernel and none is open yet. */
  connect(): void {
    const kernel = this._session?.session?.kernel ?? null;
    if (!kernel) {
      this._setState('no-kernel');
      return;
    }
    if (this._comm || !kernel.handleComms) {
      return;
    }
    let heard = false;
    const comm = kernel.createComm(COMM_TARGET);
    this._comm = comm;
    this._snapshot = null;
    comm.onMsg = (msg: KM.ICommMsgMsg) => {
      const parsed = parseMessage(msg.content.data);
      heard = true;
      this._setState('connected');
      if (parsed?.type === 'snapshot') {
        this._snapshot = parsed;
      }
      if (parsed) {
        this._received.emit(parsed);
      }
    };
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
        this._setState(heard ? 'disconnected' : 'unregistered');
      }
    };
    this._setState('connecting');
    comm.open({ client: 'dspex-lab' }).done.catch(() => {
      if (this._comm === comm) {
        this._comm = null;
        this._setState('disconnected');
      }
    });
  }

  /** Close the comm (the kernel stops its sender thread). */
  disconnect(): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // the kernel is gone: nothing to close
      }
    }
    if (this._state === 'connected' || this._state === 'connecting') {
      this._setState('disconnected');
    }
  }

  /** Send a message over the open comm; false when not connected. */
  send(data: JSONObject & { type: string }): boolean {
    if (!this._comm || this._state !== 'connected') {
      return false;
    }
    this._comm.send(data);
    return true;
  }

  dispose(): void {
    this.setSession(null);
    Signal.clearData(this);
  }

  private _setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _onKernelChanged(): void {
    this._comm = null; // the old kernel's comms died with it
    this._setState('connecting');
    if (this._active) {
      this.connect();
    }
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._comm = null;
      this._setState(status === 'dead' ? 'no-kernel' : 'connecting');
      return;
    }
    if (status !== 'idle' || !this._active || this._comm) {
      return;
    }
    // Retry after the kernel (re)started, and after user code ran (maybe `%load_ext`).
    const retry = this._state !== 'unregistered' || this._ranCode;
    this._ranCode = false;
    if (retry) {
      this.connect();
    }
  }

  private _onIopub(_: ISessionContext, msg: KM.IMessage): void {
    if (msg.header.msg_type === 'execute_input') {
      this._ranCode = true;
    }
  }
}
