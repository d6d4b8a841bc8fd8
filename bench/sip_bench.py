"""
SIP benchmark: authenticated REGISTER/s and proxied calls/s of the appliance,
driven by SIPp on loopback, each beside a SIPp-only reference measured in the
same run (SIPp against SIPp: the ceiling the load generator itself sets).

    python bench/sip_bench.py [--duration 10] [--users 8]
        [--register-rates 250,500,1000,2000] [--call-rates 50,100,200,400]

For each rate the load runs for --duration seconds; a step passes when fewer
than 0.1 % of its transactions failed and at least 95 % of the offered rate
was achieved. The highest passing rate is reported, with the appliance's CPU
use (seconds of CPU per second of wall time). Only 127.0.0.1 is used; every
process started here is stopped by PID, and every step is bounded in time.
"""

import argparse
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCENARIOS = os.path.join(HERE, "scenarios")
LOOPBACK = "127.0.0.1"
PASSWORD = "bench-secret"


_handedOut = set()
_mediaBlocks = itertools.count()


def fourDigitPorts(count, start=7000):
    """
    Ports free for UDP and TCP on loopback, below 10000 (SIPp and sipsak
    mangle longer ones in places), never the same one twice in a run.
    SIPp's own default media ports start at 6000: stay clear of them.
    """
    ports = []
    for candidate in range(start, 9900):
        if len(ports) == count:
            break
        if candidate in _handedOut:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOOPBACK, candidate))
            with socket.socket() as tcp:
                tcp.bind((LOOPBACK, candidate))
        except OSError:
            continue
        ports.append(candidate)
        _handedOut.add(candidate)
    return ports


def waitForOptions(port, alive, logName, timeout=20):
    """
    Send OPTIONS over UDP to the appliance on C{port} until it answers 200;
    C{alive()} tells whether its process still runs.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        probe.settimeout(0.5)
        while time.monotonic() < deadline and alive():
            probe.sendto(
                ("OPTIONS sip:%s:%d SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%d\r\n"
                 "From: <sip:bench@client.test>;tag=1\r\nTo: <sip:%s:%d>\r\n"
                 "Call-ID: probe%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                 % (LOOPBACK, port, LOOPBACK, probe.getsockname()[1],
                    time.monotonic_ns(), LOOPBACK, port, time.monotonic_ns())).encode(),
                (LOOPBACK, port),
            )
            try:
                if probe.recv(4096).startswith(b"SIP/2.0 200"):
                    return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError("the appliance did not answer OPTIONS; see %s" % (logName,))


def cpuSeconds(pid):
    """
    User plus system CPU seconds used so far by process C{pid}.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process, timeout=10):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Appliance:
    """
    The appliance under test, as twistd runs it.
    """

    def __init__(self, directory, port):
        self.directory = directory
        self.port = port
        self.config = os.path.join(directory, "appliance.conf")
        with open(self.config, "w") as f:
            f.write(
                "[appliance]\ndata_dir = %s\nservices = sip\nlog_level = warn\n"
                "[sip]\ndomains = example.test\n"
                "listen = udp:%d:interface=127.0.0.1\n"
                "digest_algorithms = MD5 SHA-256\n"
                "auth_max_failures = 100000\n"
                % (os.path.join(directory, "var"), port)
            )
        self.process = None

    def ctl(self, *argv, stdin=None):
        subprocess.run(
            [sys.executable, "-c", "from appliance.cli import run; run()",
             "--config", self.config] + list(argv),
            input=stdin, text=True, check=True, capture_output=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )

    def start(self):
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.log = open(os.path.join(self.directory, "appliance.log"), "w")
        self.process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "twistd"),
             "--reactor=asyncio", "-n", "--pidfile=", "appliance", "--config", self.config],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.directory,
        )
        waitForOptions(self.port, lambda: True, self.log.name)

    def stop(self):
        if self.process is not None:
            stop(self.process)
        self.log.close()


class SIPp:
    """
    One SIPp process, bounded in time.
    """

    def __init__(self, directory, scenario, target, port, extra=()):
        self.port = port
        self.argv = [
            "sipp", "-sf", os.path.join(SCENARIOS, scenario), "-i", LOOPBACK, "-p", str(port),
            # SIPp binds RTP and RTCP (audio, video) from -mp up: a block each.
            "-mp", str(20000 + 8 * next(_mediaBlocks)),
            "-nostdin", "-trace_err", "-error_file", os.path.join(directory, "errors-%d.log" % port),
        ] + list(extra) + ([target] if target else [])
        self.directory = directory

    def start(self, timeout):
        self.output = open(os.path.join(self.directory, "sipp-%d.out" % id(self)), "w+")
        self.process = subprocess.Popen(
            self.argv, stdout=self.output, stderr=subprocess.STDOUT, cwd=self.directory
        )
        self.deadline = time.monotonic() + timeout
        return self

    def wait(self):
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
        stop(self.process)


def step(directory, make, rate, duration, cpuOf=None):
    """
    Offer C{rate} transactions per second for C{duration} seconds through
    the SIPp processes C{make(rate)} returns; return the achieved rate, the
    failure ratio and the appliance's CPU use.
    """
    processes = make(rate)
    before = cpuOf() if cpuOf else 0.0
    started = time.monotonic()
    for process in processes:
        process.start(duration * 3 + 30)
    results = [process.wait() for process in processes]
    elapsed = time.monotonic() - started
    cpu = ((cpuOf() - before) / elapsed) if cpuOf else 0.0
    successful = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    total = successful + failed
    return successful / elapsed, (failed / total if total else 1.0), cpu, successful, failed


def search(name, directory, make, rates, duration, cpuOf=None):
    """
    Step through C{rates}; return the best passing step.
    """
    best = None
    for rate in rates:
        achieved, failures, cpu, successful, failed = step(directory, make, rate, duration, cpuOf)
        passed = failures < 0.001 and achieved >= 0.95 * rate * (duration / (duration + 1))
        print("  %-34s offered %6d/s  achieved %8.1f/s  failed %5.2f%%  cpu %4.2f  %s" % (
            name, rate, achieved, failures * 100, cpu, "ok" if passed else "over"), flush=True)
        if not passed:
            break
        best = (rate, achieved, cpu)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--register-rates", default="250,500,1000,1500,2000,3000")
    parser.add_argument("--call-rates", default="50,100,200,300,400,600,800,1000")
    parser.add_argument("--only", choices=("register", "calls"), help="run one half only")
    options = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed (Debian package sip-tester)")
    directory = tempfile.mkdtemp(prefix="sip-bench-")
    ports = fourDigitPorts(4 + 2 * options.users)
    proxyPort, uasPort, referencePort, callerPort = ports[:4]
    userPorts = ports[4:]
    appliance = Appliance(directory, proxyPort)
    users = ["bench%d" % i for i in range(options.users)] + ["callee"]
    csvPath = os.path.join(directory, "users.csv")
    with open(csvPath, "w") as f:
        f.write("".join("%s@example.test,%s\n" % (user, PASSWORD) for user in users))
    appliance.ctl("user", "import", csvPath)
    for user in users:
        with open(os.path.join(directory, "%s.inf" % user), "w") as f:
            f.write("SEQUENTIAL\n%s;%s;example.test\n" % (user, PASSWORD))
    appliance.start()
    cpuOf = lambda: cpuSeconds(appliance.process.pid)
    results = {}
    try:
        def registrations(target):
            def make(rate):
                share = rate / options.users
                return [
                    SIPp(directory, "register.xml", target, userPorts[i], [
                        "-inf", os.path.join(directory, "%s.inf" % users[i]),
                        "-au", users[i], "-ap", PASSWORD,
                        "-r", "%g" % share, "-m", str(int(share * options.duration)),
                        "-l", "5000",
                    ])
                    for i in range(options.users)
                ]
            return make

        registerRates = [int(r) for r in options.register_rates.split(",")]
        callRates = [int(r) for r in options.call_rates.split(",")]
        if options.only != "calls":
            print("authenticated REGISTER (%d users, %d SIPp processes):"
                  % (options.users, options.users))
            reference = SIPp(directory, "registrar_uas.xml", None, referencePort).start(3600)
            try:
                results["register reference"] = search(
                    "SIPp -> SIPp registrar", directory,
                    registrations("%s:%d" % (LOOPBACK, referencePort)), registerRates,
                    options.duration)
            finally:
                reference.stop()
            results["register"] = search(
                "SIPp -> appliance registrar", directory,
                registrations("%s:%d" % (LOOPBACK, proxyPort)), registerRates, options.duration,
                cpuOf)
        if options.only != "register":
            print("calls (INVITE to BYE, caller from another domain):")
            setup = SIPp(directory, "register.xml", "%s:%d" % (LOOPBACK, proxyPort), uasPort, [
                "-inf", os.path.join(directory, "callee.inf"), "-au", "callee", "-ap", PASSWORD,
                "-m", "1"]).start(30)
            if setup.wait() != (1, 0):
                raise RuntimeError("the callee could not register")
            callee = SIPp(directory, "uas_call.xml", None, uasPort, []).start(7200)
            try:
                def calls(target):
                    def make(rate):
                        return [SIPp(directory, "uac_call.xml", target, callerPort, [
                            "-s", "callee", "-r", str(rate), "-m", str(rate * options.duration),
                            "-l", "5000", "-recv_timeout", "10000",
                        ])]
                    return make

                results["call reference"] = search(
                    "SIPp -> SIPp callee", directory,
                    calls("%s:%d" % (LOOPBACK, uasPort)), callRates, options.duration)
                results["call"] = search(
                    "SIPp -> appliance proxy -> SIPp", directory,
                    calls("%s:%d" % (LOOPBACK, proxyPort)), callRates, options.duration, cpuOf)
            finally:
                callee.stop()
    finally:
        appliance.stop()

    print()
    print("%-28s %12s %12s %8s" % ("", "appliance/s", "reference/s", "ratio"))
    for name, label in (("register", "authenticated REGISTER"), ("call", "proxied calls")):
        mine, reference = results.get(name), results.get(name + " reference")
        mineRate = mine[1] if mine else 0.0
        referenceRate = reference[1] if reference else 0.0
        print("%-28s %12.0f %12.0f %8.2f   (appliance CPU %.2f)" % (
            label, mineRate, referenceRate,
            mineRate / referenceRate if referenceRate else 0.0, mine[2] if mine else 0.0))
    print("work directory (logs): %s" % (directory,))


if __name__ == "__main__":
    main()
