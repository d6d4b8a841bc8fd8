"""
Helpers for the RTSP integration tests (no tests here): an appliance that
runs the RTSP service on loopback with two users, a test signal made with
the appliance's own G.711 code, and a raw-socket RTSP client.
"""

import math
import os
import random
import shutil
import socket
import struct
import sys
import time

from twisted.trial.unittest import SkipTest

from appliance.media import audiofile, g711
from appliance.rtsp import message
from appliance.rtsp.auth import authorizationFor
from tests.integration.harness import (
    LOOPBACK,
    ApplianceProcess,
    childEnvironment,
    pickPorts,
    runProgram,
)

USERS = {"bob": "secret", "alice": "wonder"}
DOMAIN = "example.test"
PROGRAM_TIMEOUT = 30


def rtspConfig(appliance):
    """
    The INI text of an RTSP-only appliance on loopback.
    """
    return (
        "[appliance]\n"
        "data_dir = {dataDir}\n"
        "services = rtsp\n"
        "log_level = debug\n"
        "\n"
        "[sip]\n"
        "domains = {domain}\n"
        "\n"
        "[rtsp]\n"
        "listen = tcp:{port}:interface=127.0.0.1\n"
        "rtp_ports = {low}-{high}\n"
        "session_timeout = 20\n"
        "max_sessions_per_client = 50\n"
        "{extra}"
    ).format(dataDir=appliance.dataDir, domain=DOMAIN, port=appliance.rtspPort,
             low=appliance.rtpPorts[0], high=appliance.rtpPorts[1], extra=appliance.extra)


class RTSPAppliance(ApplianceProcess):
    """
    An appliance running the RTSP service only, with the users of
    L{USERS} in C{example.test}.

    @ivar rtspPort: the RTSP TCP port.
    """

    def __init__(self, extra="", **kwargs):
        self.rtspPort = pickPorts(1)[0]
        low = random.randrange(20000, 29000, 2)
        self.rtpPorts = (low, low + 399)
        self.extra = extra
        ApplianceProcess.__init__(self, configText=rtspConfig, ready=([], [self.rtspPort]), **kwargs)

    def start(self, *args, **kwargs):
        ApplianceProcess.start(self, *args, **kwargs)
        for user, password in USERS.items():
            status, output = runProgram(
                [sys.executable, "-c", "from appliance.cli import run; run()", "--config",
                 self.configPath, "user", "add", "%s@%s" % (user, DOMAIN), "--password", password],
                env=childEnvironment(),
            )
            if status != 0:
                raise AssertionError("appliancectl failed: %s" % (output,))
        return self

    @property
    def base(self):
        return "rtsp://%s:%d" % (LOOPBACK, self.rtspPort)

    def url(self, path, user="bob"):
        """
        The URL of C{path}, with the user's credentials in it.
        """
        if user is None:
            return self.base + path
        return "rtsp://%s:%s@%s:%d%s" % (user, USERS[user], LOOPBACK, self.rtspPort, path)

    def mediaFile(self, path):
        return os.path.join(self.dataDir, "media", *path.strip("/").split("/"))

    def store(self, path, data):
        """
        Put a mu-law message into the store directly.
        """
        filename = self.mediaFile(path)
        os.makedirs(os.path.dirname(filename), exist_ok=True)
        audiofile.writeFile(filename, data)

    def stored(self, path):
        """
        The mu-law data of a stored message, or C{None}.
        """
        try:
            return audiofile.readFile(self.mediaFile(path), "PCMU")[0]
        except OSError:
            return None


def testSignal(seconds=4):
    """
    A tone sequence in mu-law: one tone per second (400, 600, 800, 1000 Hz
    ...), each with a rising amplitude, so that every 20 ms packet differs
    and any misalignment shows.
    """
    samples = []
    for second in range(seconds):
        frequency = 400 + 200 * second
        for n in range(8000):
            amplitude = 2000 + n * 2
            samples.append(int(amplitude * math.sin(2 * math.pi * frequency * n / 8000)))
    return g711.encode(struct.pack("<%dh" % len(samples), *samples), "PCMU")


def requireProgram(name):
    path = shutil.which(name)
    if path is None:
        raise SkipTest("%s is not installed (see README.md for the packages)" % (name,))
    return path


class RTSPClient:
    """
    A blocking RTSP client on a raw socket; answers digest challenges with
    the credentials given.
    """

    def __init__(self, port, user="bob", timeout=5.0):
        self._socket = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self._parser = message.StreamParser(maxBody=10**7)
        self._items = []
        self.port = port
        self.user = user
        self.cseq = 0
        self.closed = False

    def send(self, data):
        self._socket.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self._socket.settimeout(remaining)
        try:
            chunk = self._socket.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self._items.extend(self._parser.feed(chunk))
        return True

    def nextResponse(self, timeout=5.0):
        """
        The next response (frames before it are kept), or C{None}.
        """
        deadline = time.monotonic() + timeout
        while True:
            for index, item in enumerate(self._items):
                if isinstance(item, message.Response):
                    del self._items[index]
                    return item
            if not self._fill(deadline):
                return None

    def frames(self, duration):
        """
        The interleaved frames received within C{duration} seconds.
        """
        deadline = time.monotonic() + duration
        while self._fill(deadline):
            pass
        frames = [i for i in self._items if isinstance(i, message.InterleavedFrame)]
        self._items = [i for i in self._items if not isinstance(i, message.InterleavedFrame)]
        return frames

    def request(self, method, uri, headers=(), body=b"", authenticate=True):
        """
        Send a request and return its response (answering a 401 once).
        """
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, uri), "CSeq: %d" % (self.cseq,)]
        lines += ["%s: %s" % header for header in headers]
        if body:
            lines.append("Content-Length: %d" % (len(body),))
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body)
        answer = self.nextResponse()
        if answer is None:
            raise AssertionError("no answer to %s %s" % (method, uri))
        if answer.code == 401 and authenticate and self.user is not None:
            header = authorizationFor(answer.headers.get("WWW-Authenticate"), method, uri,
                                      self.user, USERS[self.user])
            return self.request(method, uri, list(headers) + [("Authorization", header)], body,
                                authenticate=False)
        return answer

    def close(self):
        try:
            self._socket.close()
        except OSError:
            pass


class SharedRTSPAppliance:
    """
    One L{RTSPAppliance} shared by a module's tests, started on first use
    and stopped when the test process exits.
    """

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._appliance = None

    def get(self):
        if self._appliance is None:
            import atexit

            appliance = RTSPAppliance(**self._kwargs)
            atexit.register(appliance.stop)
            self._appliance = appliance.start()
        if self._appliance.process.poll() is not None:
            raise AssertionError("the shared appliance has exited\n" + self._appliance.describe())
        return self._appliance
