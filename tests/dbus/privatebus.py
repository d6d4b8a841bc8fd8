"""
A private C{dbus-daemon} for tests, and a bounded C{dbus-monitor} on it.

The socket lives under a short C{mkdtemp()} path in /tmp (AF_UNIX paths
are limited to 108 bytes); the daemon is started with C{--nofork}, stopped
by its PID, and dies with the test process.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest

from tests.integration.harness import _dieWithParent

START_TIMEOUT = 5.0


def requirePrograms(*names):
    """
    Skip the test unless every program is on PATH (Debian packages dbus,
    dbus-bin, libglib2.0-bin, systemd).
    """
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise SkipTest("not installed: %s" % (", ".join(missing),))


class PrivateBus:
    """
    One C{dbus-daemon} on C{unix:path=DIR/bus}.

    @param configFile: a bus configuration file (default: the session
        bus's, C{--session}).
    @ivar directory: the short private directory holding the socket.
    @ivar address: the bus address once started.
    """

    def __init__(self, configFile=None, directory=None):
        self.directory = directory or tempfile.mkdtemp(prefix="ab", dir="/tmp")
        self.socketPath = os.path.join(self.directory, "bus")
        self.address = "unix:path=" + self.socketPath
        self._configFile = configFile
        self.process = None

    def start(self, timeout=START_TIMEOUT):
        requirePrograms("dbus-daemon")
        config = ["--config-file=" + self._configFile] if self._configFile else ["--session"]
        self._log = open(os.path.join(self.directory, "dbus-daemon.log"), "wb")
        self.process = subprocess.Popen(
            ["dbus-daemon"] + config + [
                "--nofork", "--address=" + self.address, "--print-address=1",
            ],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_dieWithParent,
        )
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socketPath):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.logText()
                self.stop()
                raise AssertionError(
                    "dbus-daemon did not start (status %s):\n%s" % (self.process.returncode, log)
                )
            time.sleep(0.02)
        return self

    def logText(self):
        with open(os.path.join(self.directory, "dbus-daemon.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """
        Stop the daemon (SIGTERM by PID, then SIGKILL) and remove its
        directory.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None:
            self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class SharedBus:
    """
    One private bus for the tests of a module, stopped when the test
    process exits.
    """

    def __init__(self):
        self._bus = None

    def get(self):
        if self._bus is None:
            import atexit

            bus = PrivateBus()
            atexit.register(bus.stop)
            self._bus = bus.start()
        return self._bus


class SignalMonitor:
    """
    C{dbus-monitor} on a bus, for at most C{timeout} seconds, its output in
    a file.

    @param matches: match rules, e.g. C{"type='signal',interface='...'"}.
    """

    def __init__(self, address, matches, directory, timeout=20.0):
        requirePrograms("dbus-monitor")
        fd, self.path = tempfile.mkstemp(prefix="monitor-", suffix=".txt", dir=directory)
        self._output = os.fdopen(fd, "wb")
        self.process = subprocess.Popen(
            ["timeout", str(timeout), "dbus-monitor", "--address", address] + list(matches),
            stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT,
            preexec_fn=_dieWithParent,
        )
        # dbus-monitor becomes a monitor, and so loses its unique name,
        # only once its match rules are in place.
        self.waitFor("member=NameLost", 5.0)

    def text(self):
        with open(self.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def waitFor(self, predicate, timeout=5.0):
        """
        Wait until C{predicate(text)} (or, for a string, until it occurs in
        the output) is true; return the output.

        @raise AssertionError: with the output, after C{timeout} seconds.
        """
        if isinstance(predicate, str):
            needle = predicate
            predicate = lambda text: needle in text  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if predicate(text):
                return text
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("dbus-monitor did not see it; its output:\n" + text)
            time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._output.close()
