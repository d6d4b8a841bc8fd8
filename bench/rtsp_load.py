#!/usr/bin/env python3
"""
Load test of the appliance's RTSP media server: N concurrent PLAY sessions
over UDP or TCP (interleaved), measuring what the players would see.

    python bench/rtsp_load.py --sessions 800 --transport udp --duration 20

By default it starts its own appliance (twistd, RTSP only, no
authentication, on 127.0.0.1) pinned to one CPU with taskset, stores a test
message, and runs the load clients in worker processes on the other CPUs.
With --url it loads an already running server instead (then CPU is only
reported when --server-pid is given).

Reported: packet loss (packets expected from the message length minus
packets received), RFC 3550 interarrival jitter (mean and worst of the
sessions), the largest gap between two packets of one session, session
set-up failures, and the server's CPU use during the steady state.
Uses the standard library and Twisted only. RTSP_LOAD_DEBUG=1 in the
environment also lists the worst gaps with the session time they occurred at.
"""

import argparse
import math
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# ---------------------------------------------------------------------------
# One worker process: a Twisted reactor with its share of sessions.


def _worker(args):
    url, transport, count, startAt, ramp, index, timeout, avoidCpu = args
    if avoidCpu is not None and hasattr(os, "sched_setaffinity"):
        others = set(os.sched_getaffinity(0)) - {avoidCpu}
        if others:
            os.sched_setaffinity(0, others)
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol, Protocol
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from urllib.parse import urlsplit

    from appliance.rtsp import message

    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 554
    results = []
    pending = [count]

    class Stats:
        def __init__(self):
            self.seqs = set()
            self.arrivals = 0
            self.lastArrival = None
            self.maxGap = 0.0
            self.maxGapAt = 0.0
            self.jitter = 0.0
            self.lastTransit = None
            self.firstTime = None
            self.bye = False
            self.error = None

        def rtp(self, data):
            now = time.monotonic()
            if len(data) < 12:
                return
            seq, timestamp = struct.unpack("!HI", data[2:8])
            self.seqs.add(seq)
            if self.firstTime is None:
                self.firstTime = now
            if self.lastArrival is not None:
                gap = now - self.lastArrival
                if gap > self.maxGap:
                    self.maxGap = gap
                    self.maxGapAt = now - self.firstTime
            self.lastArrival = now
            transit = now * 8000 - timestamp
            if self.lastTransit is not None:
                self.jitter += (abs(transit - self.lastTransit) - self.jitter) / 16
            self.lastTransit = transit

        def rtcp(self, data):
            offset = 0
            while offset + 4 <= len(data):
                if data[offset + 1] == 203:
                    self.bye = True
                offset += 4 * (struct.unpack("!H", data[offset + 2 : offset + 4])[0] + 1)

    class Sink(DatagramProtocol):
        def __init__(self, handler):
            self.handler = handler

        def datagramReceived(self, data, address):
            self.handler(data)

    class Client(Protocol):
        def __init__(self):
            self.stats = Stats()
            self.parser = message.StreamParser(maxBody=10**6)
            self.cseq = 0
            self.session = None
            self.ports = []
            self.done = False

        def connectionMade(self):
            self.step = "SETUP"
            if transport == "udp":
                self.ports = [reactor.listenUDP(0, Sink(self.stats.rtp), interface="127.0.0.1"),
                              reactor.listenUDP(0, Sink(self.stats.rtcp), interface="127.0.0.1")]
                for p in self.ports:
                    p.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                spec = "RTP/AVP;unicast;client_port=%d-%d" % tuple(p.getHost().port for p in self.ports)
            else:
                spec = "RTP/AVP/TCP;unicast;interleaved=0-1"
            self.send("SETUP", url + "/trackID=0", [("Transport", spec)])
            self.timer = reactor.callLater(timeout, self.finish, "timeout")

        def send(self, method, uri, headers=()):
            self.cseq += 1
            lines = ["%s %s RTSP/1.0" % (method, uri), "CSeq: %d" % self.cseq]
            lines += ["%s: %s" % h for h in headers]
            self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

        def dataReceived(self, data):
            try:
                items = self.parser.feed(data)
            except message.ParseError as e:
                self.finish("parse error %s" % e.reason)
                return
            for item in items:
                if isinstance(item, message.InterleavedFrame):
                    if item.channel == 0:
                        self.stats.rtp(item.data)
                    else:
                        self.stats.rtcp(item.data)
                        if self.stats.bye:
                            self.finish(None)
                elif isinstance(item, message.Response):
                    self.response(item)

        def response(self, answer):
            if answer.code != 200:
                self.finish("%s answered %d" % (self.step, answer.code))
                return
            if self.step == "SETUP":
                self.session = answer.headers.get("Session").split(";")[0]
                self.step = "PLAY"
                self.send("PLAY", url + "/", [("Session", self.session), ("Range", "npt=0-")])
            elif self.step == "PLAY":
                self.step = "PLAYING"
                if transport == "udp":
                    self.poll = reactor.callLater(0.1, self.checkBye)

        def checkBye(self):
            if self.stats.bye:
                self.finish(None)
            elif not self.done:
                self.poll = reactor.callLater(0.1, self.checkBye)

        def finish(self, error):
            if self.done:
                return
            self.done = True
            self.stats.error = error
            timer = getattr(self, "timer", None)
            if timer is not None and timer.active():
                timer.cancel()
            if self.session:
                self.send("TEARDOWN", url + "/", [("Session", self.session)])
            for p in self.ports:
                p.stopListening()
            if self.transport is not None:
                self.transport.loseConnection()
            s = self.stats
            results.append({
                "received": len(s.seqs), "maxGap": s.maxGap, "maxGapAt": s.maxGapAt, "jitter": s.jitter / 8.0,
                "bye": s.bye, "error": error,
            })
            pending[0] -= 1
            if pending[0] == 0 and reactor.running:
                reactor.callLater(0.2, reactor.stop)

        def connectionLost(self, reason):
            if not self.done:
                self.finish("connection lost")

    def start(n):
        client = Client()
        client.step = "CONNECT"
        clients.append(client)
        d = connectProtocol(TCP4ClientEndpoint(reactor, host, port, timeout=10), client)

        def failed(f):
            client.done = True
            results.append({"received": 0, "maxGap": 0, "jitter": 0, "bye": False,
                            "error": "connect: %s" % f.getErrorMessage()})
            pending[0] -= 1
            if pending[0] == 0 and reactor.running:
                reactor.stop()

        d.addErrback(failed)

    # The client's own stalls: a 10 ms heartbeat records how late it runs,
    # so gaps caused by the load client itself can be told apart.
    stall = {"max": 0.0, "at": None, "last": None}

    def heartbeat():
        now = time.monotonic()
        if stall["last"] is not None and now - stall["last"] - 0.01 > stall["max"]:
            stall["max"], stall["at"] = now - stall["last"] - 0.01, time.time()
        stall["last"] = now
        if pending[0]:
            reactor.callLater(0.01, heartbeat)

    delay = max(0.0, startAt - time.time())
    reactor.callLater(delay, heartbeat)
    clients = []

    def deadline():
        # A hard stop, whatever state the sessions are in.
        for client in clients:
            if not client.done:
                client.finish("still %s at the deadline" % (client.step,))
        if reactor.running:
            reactor.stop()

    reactor.callLater(delay + ramp + timeout + 5, deadline)
    for n in range(count):
        reactor.callLater(delay + ramp * n / max(1, count), start, n)
    reactor.run()
    for result in results:
        result["clientStall"] = stall["max"]
    return results


# ---------------------------------------------------------------------------
# The server under test.


def _cpuSeconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _startAppliance(directory, port, rtpLow, rtpHigh, cpu):
    config = os.path.join(directory, "appliance.conf")
    with open(config, "w") as f:
        f.write(
            "[appliance]\ndata_dir = %s\nservices = rtsp\nlog_level = warn\n\n"
            "[rtsp]\nlisten = tcp:%d:interface=127.0.0.1\nrtp_ports = %d-%d\nauth = none\n"
            "max_sessions_per_client = 100000\n"
            % (os.path.join(directory, "var"), port, rtpLow, rtpHigh)
        )
    argv = [sys.executable, os.path.join(os.path.dirname(sys.executable), "twistd"),
            "--reactor=asyncio", "-n", "--pidfile=", "appliance", "--config", config]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu)] + argv
    env = dict(os.environ, PYTHONPATH=ROOT)
    log = open(os.path.join(directory, "appliance.log"), "wb")
    process = subprocess.Popen(argv, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the appliance did not start; see %s" % (os.path.join(directory, "appliance.log"),))


def _writeMessage(directory, seconds):
    from appliance.media import audiofile, g711

    samples = [int(4000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000)]
    second = g711.encode(struct.pack("<8000h", *samples), "PCMU")
    path = os.path.join(directory, "var", "media", "bench", "inbox", "load.au")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    audiofile.writeFile(path, second * seconds)
    return "/bench/inbox/load.au"


def _terminated(signum, frame):
    raise SystemExit("terminated")


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--duration", type=int, default=20, help="message length in seconds")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which sessions start")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU to pin the appliance to")
    parser.add_argument("--url", help="load this server's message instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for CPU")
    options = parser.parse_args(argv)

    process = None
    directory = tempfile.mkdtemp(prefix="rtsp-load-")
    print("server directory (config, log):", directory)
    if options.url:
        url, pid = options.url.rstrip("/"), options.server_pid
    else:
        from tests.integration.harness import pickPorts

        port = pickPorts(1)[0]
        path = _writeMessage(directory, options.duration)
        rtpLow = 20000  # below the ephemeral ports the load clients bind
        process = _startAppliance(directory, port, rtpLow, rtpLow + 2 * options.sessions + 99,
                                  options.server_cpu)
        url, pid = "rtsp://127.0.0.1:%d%s" % (port, path), process.pid
    try:
        workers = max(1, min(options.workers, options.sessions))
        startAt = time.time() + 1.0
        shares = [options.sessions // workers + (1 if i < options.sessions % workers else 0)
                  for i in range(workers)]
        timeout = options.duration + options.ramp + 30
        avoid = None if options.url else options.server_cpu
        jobs = [(url, options.transport, n, startAt, options.ramp, i, timeout, avoid)
                for i, n in enumerate(shares) if n]
        context = multiprocessing.get_context("fork")
        with context.Pool(len(jobs)) as pool:
            pending = pool.map_async(_worker, jobs)
            # Steady state: from the end of the ramp to the first session's end.
            steadyStart = startAt + options.ramp + 1.0
            steadyEnd = startAt + options.duration - 1.0
            cpu = None
            if pid and steadyEnd > steadyStart + 2:
                time.sleep(max(0, steadyStart - time.time()))
                before, wallBefore = _cpuSeconds(pid), time.time()
                time.sleep(max(0, steadyEnd - time.time()))
                cpu = (_cpuSeconds(pid) - before) / (time.time() - wallBefore)
            results = [r for chunk in pending.get(timeout + 60) for r in chunk]
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    expected = options.duration * 50
    ok = [r for r in results if r["error"] is None]
    lost = sum(max(0, expected - r["received"]) for r in ok)
    print("RTSP load: %d %s sessions, %d s message (%d packets each), %d worker(s)"
          % (options.sessions, options.transport.upper(), options.duration, expected, len(jobs)))
    print("  sessions completed:   %d (errors: %d)" % (len(ok), len(results) - len(ok)))
    errors = sorted({r["error"] for r in results if r["error"]})
    if errors:
        print("  error kinds:          %s" % ("; ".join(errors[:5]),))
    if ok:
        print("  packets lost:         %d of %d (%.4f%%)" % (lost, expected * len(ok), 100.0 * lost / (expected * len(ok))))
        print("  sessions with loss:   %d" % sum(1 for r in ok if r["received"] < expected))
        print("  jitter (ms):          mean %.2f, worst %.2f" % (
            sum(r["jitter"] for r in ok) / len(ok), max(r["jitter"] for r in ok)))
        gaps = sorted(r["maxGap"] * 1000 for r in ok)
        print("  largest gap (ms):     worst %.1f, 99th pct %.1f, median %.1f" % (
            gaps[-1], gaps[int(0.99 * (len(gaps) - 1))], gaps[len(gaps) // 2]))
        if os.environ.get("RTSP_LOAD_DEBUG"):
            print("  gaps (ms @ s):", sorted(((round(r["maxGap"] * 1000), round(r["maxGapAt"], 2)) for r in ok), reverse=True)[:15])
        print("  client's own worst stall (ms): %.1f" % (1000 * max(r.get("clientStall", 0) for r in results),))
        print("  ended by RTCP BYE:    %d" % sum(1 for r in ok if r["bye"]))
    if cpu is not None:
        print("  server CPU (steady):  %.0f%% of one core" % (100 * cpu,))
    return 0 if ok and len(ok) == len(results) and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
