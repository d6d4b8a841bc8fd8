#!/usr/bin/env python3
"""
Echo test and conference bridge benchmark: concurrent echo calls and
conference participants on one core, driven by SIPp on loopback, with
SIPp's own RTP echo (-rtp_echo, in C) as the reference in the same run.

    python bench/conference_bench.py [--only echo|conference]
        [--echo-calls 50,100,200,300] [--participants 20,50,100] [--rooms 10]
        [--duration 20] [--rate 50] [--no-reference]
        [--gc-log] [--loop-log] [--gc-freeze] [--profile PATH]

It starts its own appliance (twistd, services sip and conference on
127.0.0.1, log_level warn) pinned with taskset to CPU 0. Each step places N
calls with SIPp (bench/scenarios/media_call.xml, N calls at --rate per
second, each playing --duration seconds of a G.711 tone from a pcap with
play_pcap_audio, then BYE) through the proxy to echo@example.test, or, for
the conference, P participants spread over R rooms (one SIPp process per
room calling conf-roomK@example.test). Every call's offer names a port of a
receiver process of the benchmark (kept off CPU 0), one socket per call,
which counts the RTP that comes back per SSRC with the kernel's arrival time
(SO_TIMESTAMPNS, so the receiver's own stalls do not show as gaps), and
reports its worst stall (a 10 ms heartbeat) all the same.

Reported per step: calls set up, packets received against those expected,
loss (echo: the pcap's packets per call minus those received; conference:
holes in the appliance's sequence numbers of each participant's mix), the
largest gap between two packets of one stream, how many streams had a gap
over 60 ms, datagrams the kernel dropped at the receiver's sockets and in
all (RcvbufErrors), the server's CPU during the steady state (every call up,
none ended; /proc/PID/stat), the server's longest wait for its CPU
(/proc/PID/task/*/schedstat) and the CPU's steal time, and the appliance's
warnings. The reference is the same SIPp callers against a SIPp callee with
-rtp_echo, also on CPU 0.

Diagnostics (docs/benchmarks.md): --gc-log and --loop-log run the appliance
through a small wrapper around twistd that writes its garbage collections
over 5 ms and its reactor running over 30 ms late into its log, so a gap can
be matched with its cause; --gc-freeze tries gc.freeze() once the services
are built; --profile runs it under cProfile (twistd --profile).

Only 127.0.0.1 is used; every step is bounded in time (ramp + duration +
a few seconds) and every process started here is stopped by PID.
"""

import argparse
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from sip_bench import LOOPBACK, cpuSeconds, fourDigitPorts, stop, waitForOptions  # noqa: E402

SCENARIOS = os.path.join(HERE, "scenarios")
PACKETS_PER_SECOND = 50
GAP_LIMIT = 0.060
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
#: Appliance RTP ports, and where the media port blocks of SIPp and the
#: receiver start: all below the ephemeral range (32768 up).
APPLIANCE_RTP = (20000, 21999)
MEDIA_BLOCKS = 22000


# ---------------------------------------------------------------------------
# The receiver: one process off the server's CPU, one socket per call.


def _udpDrops(ports):
    """
    Datagrams the kernel dropped at the UDP sockets bound to C{ports} on
    this host (the last column of /proc/net/udp).
    """
    wanted, drops = set(ports), 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) in wanted:
                drops += int(fields[-1])
    return drops


def _receive(ports, connection, avoidCpu):
    """
    Bind RTP port C{p} and RTCP port C{p + 1} for each of C{ports}, say
    C{"ready"} on C{connection}, count what arrives until told C{"stop"},
    then send back the summary of every stream.
    """
    if avoidCpu is not None:
        others = set(os.sched_getaffinity(0)) - {avoidCpu}
        if others:
            os.sched_setaffinity(0, others)
    selector = selectors.DefaultSelector()
    sockets = []
    for port in ports:
        for number, kind in ((port, "rtp"), (port + 1, "rtcp")):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((LOOPBACK, number))
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ, (port, kind))
            sockets.append(s)
    selector.register(connection, selectors.EVENT_READ, None)
    connection.send("ready")
    # (port, ssrc) -> [last kernel time, largest gap, when, first time,
    #                  last extended sequence, set of extended sequences]
    streams = {}
    rtcp = 0
    stall = {"max": 0.0, "at": 0.0}
    last = time.monotonic()
    space = socket.CMSG_SPACE(16)
    unpackHeader = struct.Struct("!H4xI").unpack_from
    unpackTime = struct.Struct("@qq").unpack
    running = True
    while running:
        for key, _ in selector.select(0.01):
            if key.data is None:
                running = connection.recv() != "stop"
                continue
            port, kind = key.data
            sock = key.fileobj
            while True:
                try:
                    data, ancillary, _, _ = sock.recvmsg(2048, space)
                except BlockingIOError:
                    break
                if kind == "rtcp":
                    rtcp += 1
                    continue
                if len(data) < 12:
                    continue
                when = time.time()
                for level, type_, value in ancillary:
                    if level == socket.SOL_SOCKET and type_ == SO_TIMESTAMPNS:
                        seconds, nanoseconds = unpackTime(value[:16])
                        when = seconds + nanoseconds * 1e-9
                sequence, ssrc = unpackHeader(data, 2)
                stream = streams.get((port, ssrc))
                if stream is None:
                    streams[(port, ssrc)] = [when, 0.0, when, when, sequence, {sequence}]
                    continue
                gap = when - stream[0]
                if gap > stream[1]:
                    stream[1], stream[2] = gap, when
                stream[0] = when
                delta = (sequence - stream[4]) & 0xFFFF
                extended = stream[4] + delta if delta < 0x8000 else stream[4] - (0x10000 - delta)
                if extended > stream[4]:
                    stream[4] = extended
                stream[5].add(extended)
        now = time.monotonic()
        late = now - last - 0.01
        if late > stall["max"]:
            stall["max"], stall["at"] = late, time.time()
        last = now
    drops = _udpDrops(ports)
    for s in sockets:
        s.close()
    summary = []
    for (port, ssrc), (lastTime, gap, gapAt, first, _, sequences) in streams.items():
        summary.append({
            "port": port, "ssrc": ssrc, "received": len(sequences),
            "span": max(sequences) - min(sequences) + 1, "gap": gap, "gapAt": gapAt,
            "first": first, "last": lastTime,
        })
    connection.send({"streams": summary, "stall": stall, "rtcp": rtcp, "drops": drops})


class Receiver:
    """
    The receiver process, bounded in time.
    """

    def __init__(self, ports, avoidCpu=0):
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self.process = context.Process(target=_receive, args=(ports, child, avoidCpu), daemon=True)
        self.process.start()
        if not self._connection.poll(20) or self._connection.recv() != "ready":
            self.stop()
            raise RuntimeError("the receiver did not start")

    def results(self):
        self._connection.send("stop")
        if not self._connection.poll(30):
            self.stop()
            raise RuntimeError("the receiver did not answer")
        results = self._connection.recv()
        self.process.join(10)
        return results

    def stop(self):
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


# ---------------------------------------------------------------------------
# The appliance and SIPp.


#: Runs twistd, with C{--gc-log} writing every garbage collection over 5 ms
#: to stderr (the appliance's log) with its generation and wall-clock time,
#: with C{--loop-log} a 10 ms heartbeat in the reactor writing when it ran
#: over 30 ms late, with C{--gc-freeze} moving every object that exists once the services are
#: built into the permanent generation (gc.freeze) so that collections no
#: longer scan them: a trial of a fix, from outside the appliance.
_TWISTD_WRAPPER = """
import gc, sys, time
if "--gc-log" in sys.argv:
    sys.argv.remove("--gc-log")
    started = []
    def timeCollection(phase, info):
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            took = time.perf_counter() - started[0]
            if took > 0.005:
                sys.stderr.write("GC generation %d took %.1f ms at %.3f\\n"
                                 % (info["generation"], 1000 * took, time.time()))
                sys.stderr.flush()
    gc.callbacks.append(timeCollection)
if "--gc-freeze" in sys.argv:
    sys.argv.remove("--gc-freeze")
    from twisted.application import app
    startApplication = app.startApplication
    def startAndFreeze(application, save):
        startApplication(application, save)
        gc.collect()
        gc.freeze()
    app.startApplication = startAndFreeze
if "--loop-log" in sys.argv:
    sys.argv.remove("--loop-log")
    from twisted.application import app
    startApplicationBefore = app.startApplication
    def startAndWatch(application, save):
        startApplicationBefore(application, save)
        from twisted.internet import reactor
        last = []
        def beat():
            now = time.monotonic()
            if last and now - last[0] > 0.040:
                sys.stderr.write("Reactor late %.1f ms at %.3f\\n"
                                 % (1000 * (now - last[0] - 0.010), time.time()))
                sys.stderr.flush()
            last[:] = [now]
            reactor.callLater(0.010, beat)
        reactor.callWhenRunning(beat)
    app.startApplication = startAndWatch
sys.argv[0] = "twistd"
from twisted.scripts.twistd import run
run()
"""


def _pinned(argv, cpu):
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + argv
    return argv


class Appliance:
    """
    The appliance under test (SIP proxy and conference user agent), as
    twistd runs it, pinned to one CPU.
    """

    def __init__(self, directory, sipPort, conferencePort, maxParticipants, cpu, profile=None,
                 gcLog=False, gcFreeze=False, loopLog=False):
        self.directory = directory
        self.sipPort = sipPort
        self.cpu = cpu
        self.profile = profile
        self.gcOptions = ((["--gc-log"] if gcLog else []) + (["--gc-freeze"] if gcFreeze else [])
                          + (["--loop-log"] if loopLog else []))
        self.config = os.path.join(directory, "appliance.conf")
        self.logPath = os.path.join(directory, "appliance.log")
        with open(self.config, "w") as f:
            f.write(
                "[appliance]\ndata_dir = %s\nservices = sip conference\nlog_level = warn\n\n"
                "[sip]\ndomains = example.test\nlisten = udp:%d:interface=127.0.0.1\n\n"
                "[conference]\nlisten = udp:%d:interface=127.0.0.1\nrtp_ports = %d-%d\n"
                "media_address = 127.0.0.1\nmax_participants = %d\n"
                % (os.path.join(directory, "var"), sipPort, conferencePort,
                   APPLIANCE_RTP[0], APPLIANCE_RTP[1], maxParticipants)
            )
        self.process = None

    def start(self):
        if self.gcOptions:
            argv = [sys.executable, "-c", _TWISTD_WRAPPER] + self.gcOptions
        else:
            argv = [sys.executable, os.path.join(os.path.dirname(sys.executable), "twistd")]
        argv += ["--reactor=asyncio", "-n", "--pidfile="]
        if self.profile:
            argv += ["--profile=%s" % (self.profile,), "--profiler=cprofile", "--savestats"]
        argv += ["appliance", "--config", self.config]
        self.log = open(self.logPath, "w")
        self.process = subprocess.Popen(
            _pinned(argv, self.cpu), stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=ROOT), cwd=self.directory,
        )
        waitForOptions(self.sipPort, lambda: self.process.poll() is None, self.logPath)

    #: What twistd and Twisted's UDP ports log whatever the log level.
    _chatter = re.compile(r"starting on \d+|Starting protocol|Stopping protocol|"
                          r"\(UDP Port \d+ Closed\)|UnixAppLogger|Received SIGTERM|GC generation \d took|"
                          r"Reactor late [\d.]+ ms at")

    def warnings(self):
        """
        The lines of the appliance's log so far (log_level warn: warnings
        and errors), without Twisted's chatter about UDP ports.
        """
        with open(self.logPath, errors="replace") as f:
            return [line.rstrip("\n") for line in f if not self._chatter.search(line)]

    def collections(self):
        """
        C{(wall-clock time, generation, milliseconds)} of each garbage
        collection over 5 ms so far (with C{gcLog}).
        """
        found = []
        with open(self.logPath, errors="replace") as f:
            for line in f:
                match = re.search(r"GC generation (\d) took ([\d.]+) ms at ([\d.]+)", line)
                if match:
                    found.append((float(match.group(3)), int(match.group(1)), float(match.group(2))))
        return found

    def lateness(self):
        """
        C{(wall-clock time, milliseconds)} of each time the reactor ran over
        30 ms late so far (with C{loopLog}).
        """
        found = []
        with open(self.logPath, errors="replace") as f:
            for line in f:
                match = re.search(r"Reactor late ([\d.]+) ms at ([\d.]+)", line)
                if match:
                    found.append((float(match.group(2)), float(match.group(1))))
        return found

    def stop(self):
        if self.process is not None:
            stop(self.process, timeout=30)
            self.process = None
            self.log.close()


_mediaBlock = [MEDIA_BLOCKS]


def mediaBlock(calls, reset=False):
    """
    A -mp base for a SIPp process of C{calls} calls: SIPp binds the base and
    base + 2, the calls' receiver ports are base + 4 + 4 * i (and + 1).
    With C{reset}, blocks start again after the first one (the reference
    callee's, which stays for the whole run): each step's are free again.
    """
    if reset:
        _mediaBlock[0] = MEDIA_BLOCKS + 8
    base = _mediaBlock[0]
    _mediaBlock[0] += 4 * (calls + 2)
    if _mediaBlock[0] >= 32768:
        raise RuntimeError("out of media ports below 32768")
    return base


class SIPp:
    """
    One SIPp process, bounded in time.
    """

    def __init__(self, directory, name, argv, cpu):
        self.directory = directory
        self.name = name
        self.argv = _pinned(["sipp"] + argv + [
            "-nostdin", "-trace_err", "-error_file", os.path.join(directory, "%s-errors.log" % name)],
            cpu)

    def start(self, timeout):
        self.output = open(os.path.join(self.directory, "%s.out" % self.name), "w+")
        self.process = subprocess.Popen(
            self.argv, stdout=self.output, stderr=subprocess.STDOUT, cwd=self.directory)
        self.deadline = time.monotonic() + timeout
        return self

    def wait(self):
        """
        Wait (until the deadline at most); return C{(successful, failed)}
        calls from SIPp's final screens.
        """
        try:
            self.process.wait(max(1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(self.process)
        self.output.seek(0)
        text = self.output.read()
        self.output.close()
        successful = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
        failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
        return int(successful[-1]) if successful else 0, int(failed[-1]) if failed else 0

    def stop(self):
        if getattr(self, "process", None) is not None:
            stop(self.process)


def writeAudio(directory, seconds, frequency):
    """
    C{audio.pcap} in C{directory}: C{seconds} of a tone as PCMU RTP, one
    packet each 20 ms.
    """
    from tests.integration.rtpmedia import rtpPacket, toneFrames, writePcap

    os.makedirs(directory, exist_ok=True)
    frames = toneFrames(frequency, seconds)
    writePcap(os.path.join(directory, "audio.pcap"),
              [rtpPacket(0, n, 160 * n, 0x5EED0000 + frequency, frame, marker=(n == 0))
               for n, frame in enumerate(frames)])
    return len(frames)


class Sampler(threading.Thread):
    """
    Every 10 ms during a step: the time each of the server's threads spent
    runnable but waiting for a CPU (the run delay of /proc/PID/task/*/
    schedstat: other processes on its CPU) and the steal time of its CPU
    (the hypervisor running something else), so that a gap can be blamed.
    The thread that waited most is reported. A thread's run delay grows when
    it is finally run, by all it waited: its largest growth within 100 ms
    is about its longest single wait.
    """

    def __init__(self, pid, cpu):
        threading.Thread.__init__(self, daemon=True)
        self.pid, self.cpu = pid, cpu
        self.samples = []
        self.done = threading.Event()

    def _runDelay(self):
        delays = {}
        directory = "/proc/%d/task" % (self.pid,)
        for task in os.listdir(directory):
            try:
                with open(os.path.join(directory, task, "schedstat")) as f:
                    delays[task] = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                pass
        return delays

    def _steal(self):
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu%d " % (self.cpu,)):
                    return int(line.split()[8]) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def run(self):
        while not self.done.wait(0.01):
            try:
                self.samples.append((time.time(), self._runDelay(), self._steal()))
            except OSError:
                return

    def worst(self, index, start, end, window=0.1):
        """
        Over C{[start, end]}: the seconds per second of run delay
        (C{index} 1, of the thread that waited most) or steal (2), the most
        of it within any C{window} (of any one thread), and when that window
        ended.
        """
        samples = [s for s in self.samples if start <= s[0] <= end]
        if len(samples) < 2:
            return 0.0, 0.0, 0.0
        if index == 1:
            tasks = set(samples[0][1]) & set(samples[-1][1])
            results = [self._worst([(s[0], s[1].get(task, 0.0)) for s in samples if task in s[1]], window)
                       for task in tasks]
            if not results:
                return 0.0, 0.0, 0.0
            longest = max(results, key=lambda r: r[1])
            return max(r[0] for r in results), longest[1], longest[2]
        return self._worst([(s[0], s[2]) for s in samples], window)

    @staticmethod
    def _worst(samples, window):
        if len(samples) < 2:
            return 0.0, 0.0, 0.0
        index = 1
        rate = (samples[-1][index] - samples[0][index]) / (samples[-1][0] - samples[0][0])
        most, at, first = 0.0, 0.0, 0
        for last in range(len(samples)):
            while samples[last][0] - samples[first][0] > window:
                first += 1
            amount = samples[last][index] - samples[first][index]
            if amount > most:
                most, at = amount, samples[last][0]
        return rate, most, at

    def stop(self):
        self.done.set()
        self.join(5)


def rcvbufErrors():
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


# ---------------------------------------------------------------------------
# One step.


def runStep(label, directory, groups, target, options, serverPid, expected, mode, appliance=None):
    """
    Place the calls of C{groups} (C{(service, calls)} pairs, one SIPp
    process each) to C{target}; return the step's figures.

    @param expected: packets of the pcap (each call's echo should bring
        them all back).
    @param mode: C{"echo"} (loss against the pcap) or C{"mix"} (loss from
        holes in the sequence numbers).
    """
    sippCpus = sorted(set(os.sched_getaffinity(0)) - {options.server_cpu}) or [None]
    plans = []
    for index, (service, calls) in enumerate(groups):
        plans.append((service, calls, mediaBlock(calls, reset=(index == 0)), fourDigitPorts(1)[0]))
    ports = [base + 4 + 4 * i for _, calls, base, _ in plans for i in range(calls)]
    total = len(ports)
    rate = options.rate / len(groups)
    ramp = total / options.rate
    receiver = Receiver(ports, options.server_cpu)
    sampler = Sampler(serverPid, options.server_cpu)
    processes = []
    try:
        pcapDirectories = {}
        for index, (service, calls, base, sipPort) in enumerate(plans):
            argv = [
                "-sf", os.path.join(SCENARIOS, "media_call.xml"), "-i", LOOPBACK, "-p", str(sipPort),
                "-mp", str(base), "-s", service, "-m", str(calls), "-l", str(calls),
                "-r", "%d" % max(1, round(rate * 100)), "-rp", "100000",
                "-d", str(int(options.duration * 1000 + 500)), "-recv_timeout", "10000", target,
            ]
            cwd = pcapDirectories.get(index % len(options.tones))
            if cwd is None:
                cwd = pcapDirectories[index % len(options.tones)] = os.path.join(
                    directory, "audio-%d" % (index % len(options.tones)))
            processes.append(SIPp(cwd, "%s-%s-%d" % (re.sub(r"\W+", "-", label), service, sipPort), argv,
                                  sippCpus[index % len(sippCpus)]))
        dropsBefore = rcvbufErrors()
        sampler.start()
        started = time.time()
        for process in processes:
            process.start(ramp + options.duration + 30)
        # Steady state: every call set up (the ramp, one second of slack)
        # until the first one stops playing.
        steadyStart, steadyEnd = started + ramp + 1.0, started + options.duration - 0.5
        cpu = None
        if steadyEnd - steadyStart >= 2:
            time.sleep(max(0.0, steadyStart - time.time()))
            before, wallBefore = cpuSeconds(serverPid), time.time()
            time.sleep(max(0.0, steadyEnd - time.time()))
            cpu = (cpuSeconds(serverPid) - before) / (time.time() - wallBefore)
        results = [process.wait() for process in processes]
        time.sleep(0.5)
        received = receiver.results()
        drops = rcvbufErrors() - dropsBefore
        ended = time.time()
    finally:
        sampler.stop()
        for process in processes:
            process.stop()
        receiver.stop()
    streams = received["streams"]
    byPort = {}
    for stream in streams:
        byPort.setdefault(stream["port"], []).append(stream)
    got = sum(s["received"] for s in streams)
    if mode == "echo":
        wanted = expected * total
    else:
        wanted = sum(s["span"] for s in streams)
    gaps = sorted(s["gap"] for s in streams) or [0.0]
    worst = max(streams, key=lambda s: s["gap"], default=None)
    figures = {
        "label": label, "calls": total, "ok": sum(r[0] for r in results),
        "failed": sum(r[1] for r in results),
        "wanted": wanted, "received": got,
        "loss": (1 - got / wanted) if wanted else 1.0,
        "silent": total - len(byPort),
        "gap": gaps[-1], "gapAt": (worst["gapAt"] - started) if worst else 0.0,
        "gap99": gaps[int(0.99 * (len(gaps) - 1))], "gapMedian": gaps[len(gaps) // 2],
        "over": sum(1 for g in gaps if g > GAP_LIMIT), "streams": len(streams),
        "stall": received["stall"]["max"], "stallAt": received["stall"]["at"] - started,
        "receiverDrops": received["drops"], "allDrops": drops, "rtcp": received["rtcp"],
        "cpu": cpu, "ramp": ramp,
        "runDelay": sampler.worst(1, started, ended), "steal": sampler.worst(2, started, ended),
        "collections": [(at - started, generation, took)
                        for at, generation, took in (appliance.collections() if appliance else [])
                        if started <= at <= ended],
        "late": [(at - started, took) for at, took in (appliance.lateness() if appliance else [])
                 if started <= at <= ended],
    }
    print("  %-22s calls %4d/%-4d failed %d  without RTP %d  received %7d of %7d  loss %.3f%%  "
          "gap worst %5.1f ms (at %4.1f s) p99 %5.1f  >60ms %3d  stall %5.1f ms (at %4.1f s)  "
          "drops rx %d all %d  RTCP in %d  cpu %s" % (
              label, figures["ok"], total, figures["failed"], figures["silent"], got, wanted,
              100 * figures["loss"], 1000 * figures["gap"], figures["gapAt"], 1000 * figures["gap99"],
              figures["over"], 1000 * figures["stall"], figures["stallAt"], figures["receiverDrops"],
              drops, received["rtcp"], "%.0f%%" % (100 * cpu,) if cpu is not None else "n/a"), flush=True)
    print("    server waiting for CPU %d: %.1f ms/s, longest wait %.0f ms (at %.1f s); "
          "steal %.1f ms/s, at most %.0f ms in 100 ms (at %.1f s)" % (
              options.server_cpu, 1000 * figures["runDelay"][0], 1000 * figures["runDelay"][1],
              figures["runDelay"][2] - started if figures["runDelay"][2] else 0.0,
              1000 * figures["steal"][0], 1000 * figures["steal"][1],
              figures["steal"][2] - started if figures["steal"][2] else 0.0))
    if figures["collections"]:
        longest = max(figures["collections"], key=lambda c: c[2])
        print("    appliance GC pauses over 5 ms: %d, longest %.1f ms (generation %d, at %.1f s)" % (
            len(figures["collections"]), longest[2], longest[1], longest[0]))
    if figures["late"]:
        longest = max(figures["late"], key=lambda c: c[1])
        print("    appliance reactor over 30 ms late: %d times, longest %.1f ms (at %.1f s)" % (
            len(figures["late"]), longest[1], longest[0]))
    if os.environ.get("CONFERENCE_BENCH_DEBUG"):
        print("    worst gaps (ms @ s):", sorted(
            ((round(1000 * s["gap"]), round(s["gapAt"] - started, 2)) for s in streams), reverse=True)[:12])
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo-calls", default="50,100,200,300")
    parser.add_argument("--participants", default="20,50,100")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of audio each call plays (the call lasts 0.5 s longer)")
    parser.add_argument("--rate", type=float, default=50.0, help="calls set up per second")
    parser.add_argument("--only", choices=("echo", "conference"), help="run one half only")
    parser.add_argument("--no-reference", action="store_true", help="skip the SIPp -rtp_echo reference")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--profile", metavar="PATH",
                        help="run the appliance under cProfile, saving the stats to PATH")
    parser.add_argument("--gc-log", action="store_true",
                        help="log the appliance's garbage collections over 5 ms, with their time")
    parser.add_argument("--loop-log", action="store_true",
                        help="log when the appliance's reactor runs over 30 ms late (10 ms heartbeat)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() the appliance once started (a trial fix for GC pauses)")
    options = parser.parse_args(argv)
    options.tones = (440, 620, 770, 1000, 1240)
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed (Debian package sip-tester)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two CPUs: the server on one, SIPp and the receiver on the other")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("terminated"))
    others = set(os.sched_getaffinity(0)) - {options.server_cpu}
    if others:
        os.sched_setaffinity(0, others)
    directory = tempfile.mkdtemp(prefix="conference-bench-")
    expected = None
    for index, tone in enumerate(options.tones):
        expected = writeAudio(os.path.join(directory, "audio-%d" % index), options.duration, tone)
    echoSteps = [int(n) for n in options.echo_calls.split(",") if n] if options.only != "conference" else []
    conferenceSteps = ([int(n) for n in options.participants.split(",") if n]
                       if options.only != "echo" else [])
    perRoom = max([-(-p // options.rooms) for p in conferenceSteps] or [1])
    sipPort, conferencePort, referencePort = fourDigitPorts(3)
    appliance = Appliance(directory, sipPort, conferencePort, max(50, perRoom), options.server_cpu,
                          options.profile, options.gc_log, options.gc_freeze, options.loop_log)
    reference = None
    rows = []
    uptime = open("/proc/loadavg").read().split()[:3]
    print("work directory (logs): %s" % (directory,))
    print("load average before: %s; %d s of audio per call (%d packets), %g calls/s"
          % (" ".join(uptime), options.duration, expected, options.rate), flush=True)
    try:
        appliance.start()
        if not options.no_reference:
            reference = SIPp(directory, "reference-uas", [
                "-sf", os.path.join(SCENARIOS, "rtp_echo_uas.xml"), "-i", LOOPBACK,
                "-p", str(referencePort), "-mp", str(mediaBlock(0)), "-rtp_echo",
            ], options.server_cpu).start(3600)
            time.sleep(0.5)
        applianceTarget = "%s:%d" % (LOOPBACK, sipPort)
        referenceTarget = "%s:%d" % (LOOPBACK, referencePort)
        warned = 0
        steps = [("echo", n, [("echo", n)]) for n in echoSteps]
        for p in conferenceSteps:
            rooms = min(options.rooms, p)
            groups = [("conf-room%d" % k, p // rooms + (1 if k < p % rooms else 0)) for k in range(rooms)]
            steps.append(("conference", p, groups))
        for kind, n, groups in steps:
            name = ("%d echo calls" % n if kind == "echo"
                    else "%d participants in %d rooms" % (n, len(groups)))
            print("%s:" % (name,), flush=True)
            row = {"kind": kind, "n": n, "rooms": len(groups),
                   "load": open("/proc/loadavg").read().split()[0]}
            if reference is not None:
                row["reference"] = runStep("SIPp -rtp_echo", directory, groups, referenceTarget,
                                           options, reference.process.pid, expected, "echo")
                time.sleep(1)
            row["appliance"] = runStep("appliance " + kind, directory, groups, applianceTarget,
                                       options, appliance.process.pid, expected,
                                       "echo" if kind == "echo" else "mix", appliance)
            lines = appliance.warnings()
            for line in lines[warned:][:5]:
                print("    appliance log: %s" % (line,))
            if len(lines) - warned > 5:
                print("    appliance log: ... %d lines in all" % (len(lines) - warned,))
            row["warnings"] = len(lines) - warned
            warned = len(lines)
            rows.append(row)
            time.sleep(2)
    finally:
        if reference is not None:
            reference.stop()
        appliance.stop()

    print()
    print("| step | calls set up | loss (appliance / SIPp) | worst gap ms (appliance / SIPp) "
          "| streams > 60 ms (appliance / SIPp) | server CPU (appliance / SIPp) | CPU ratio "
          "| appliance: longest wait for CPU, GC pause (ms) | receiver stall ms | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mine, theirs = row["appliance"], row.get("reference")

        def pct(f):
            return "%.0f %%" % (100 * f["cpu"],) if f and f["cpu"] is not None else "n/a"

        ratio = ("%.1f" % (mine["cpu"] / theirs["cpu"])
                 if theirs and mine["cpu"] is not None and theirs["cpu"] else "n/a")
        name = ("%d echo calls" % row["n"] if row["kind"] == "echo"
                else "%d participants, %d rooms" % (row["n"], row["rooms"]))
        pause = max((c[2] for c in mine["collections"]), default=None)
        print("| %s | %d / %d | %.3f %% / %s | %.1f / %s | %d / %s | %s / %s | %s | %.0f, %s | %.0f / %s | %s |" % (
            name, mine["ok"], mine["calls"],
            100 * mine["loss"], "%.3f %%" % (100 * theirs["loss"],) if theirs else "n/a",
            1000 * mine["gap"], "%.1f" % (1000 * theirs["gap"],) if theirs else "n/a",
            mine["over"], theirs["over"] if theirs else "n/a", pct(mine), pct(theirs), ratio,
            1000 * mine["runDelay"][1],
            ("%.0f" % pause if pause is not None else "-") if options.gc_log else "n/a",
            1000 * mine["stall"], "%.0f" % (1000 * theirs["stall"],) if theirs else "n/a",
            row["load"]))
    if options.profile and os.path.exists(options.profile):
        import pstats
        print()
        pstats.Stats(options.profile).sort_stats("tottime").print_stats(25)
    print("work directory (logs): %s" % (directory,))
    failed = any(r["appliance"]["failed"] or r["appliance"]["ok"] < r["appliance"]["calls"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
