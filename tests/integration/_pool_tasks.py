"""Task functions for the pool tests: importable by reference, stdlib only (fast in workers)."""

import os
import signal
import time


def echo(x=None):
    return x


def pid_after(x, seconds=0.0):
    time.sleep(seconds)
    return x, os.getpid()


def sleep_then(x, seconds):
    time.sleep(seconds)
    return x


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def exit_with(code):
    os._exit(code)


def raise_value_error(text):
    def inner():
        raise ValueError(text)

    inner()


class Counter:
    def __init__(self, start=0):
        self.n = start

    def increment(self, by=1):
        self.n += by
        return self.n


def slow_pid(x):
    return pid_after(x, 0.03)


def sleep_short(x):
    return sleep_then(x, 0.2)


def ignore_sigint_and_sleep(seconds):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(seconds)


def len_after(frame, seconds):
    time.sleep(seconds)
    return len(frame)
