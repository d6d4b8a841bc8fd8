"""
DRM benchmark: licenses/s of the license server over HTTPS keep-alive
(HTTP Digest authenticated, rights checked and a play spent, audit row
written, license signed), and packaging throughput (MB/s of audio) beside
raw AES-256-GCM in the same run.

    python bench/drm_bench.py [--clients 4] [--duration 10] [--megabytes 64] [--cpu 0]

The appliance (twistd, drm service only, 127.0.0.1) is pinned with taskset
to --cpu when taskset exists; the load clients run as separate processes
(one keep-alive connection each), pinned to the other CPUs. The server's CPU
use is read from /proc, so licenses per CPU-second of the server are
reported too. Every process started here is stopped by PID; every wait is
bounded.
"""

import argparse
import base64
import multiprocessing
import os
import shutil
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from appliance.drm.client import LicenseClient  # noqa: E402
from appliance.drm.package import encryptChunks, newHeader, newKey  # noqa: E402

PASSWORD = "bench-secret"
USER = "bench@example.test"


def packaging(megabytes):
    """
    MB/s of encryptChunks (one-second chunks, the package format) against
    raw AES-256-GCM over the same data in one call and in the same chunks.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = os.urandom(megabytes * 1024 * 1024)
    key = newKey()
    results = {}
    start = time.perf_counter()
    size = 0
    header = newHeader("https://127.0.0.1:8443/drm/license")
    source = (data[i:i + 65536] for i in range(0, len(data), 65536))
    for piece in encryptChunks(header, key, source):
        size += len(piece)
    results["package (8000-octet chunks, streamed in 64 KiB reads)"] = time.perf_counter() - start
    aead = AESGCM(key)
    nonce = os.urandom(12)
    start = time.perf_counter()
    aead.encrypt(nonce, data, None)
    results["raw AES-256-GCM, one call"] = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(data), 8000):
        aead.encrypt(nonce, data[i:i + 8000], b"")
    results["raw AES-256-GCM, 8000-octet calls"] = time.perf_counter() - start
    return {name: megabytes / seconds for name, seconds in results.items()}


def _cpuSeconds(pid):
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(port, caFile, keyId, deadline, cpu, queue):
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    client = LicenseClient("https://127.0.0.1:%d" % (port,), caFile, USER, PASSWORD, timeout=10)
    count = failures = 0
    try:
        while time.monotonic() < deadline:
            status, _ = client.request("POST", "/drm/license", {"key_id": keyId})
            if status == 200:
                count += 1
            else:
                failures += 1
    finally:
        client.close()
    queue.put((count, failures))


def licenses(clients, duration, serverCpu):
    from tests.integration.harness import ApplianceProcess, pickPorts
    from tests.integration.sipp import addUser

    sip, drm = pickPorts(2)

    def config(appliance):
        return ("[appliance]\ndata_dir = {data}\nservices = drm\nlog_level = info\n"
                "[sip]\ndomains = example.test\n"
                "[drm]\nlisten = ssl:{drm}:interface=127.0.0.1\nrate_limit = 0\n"
                ).format(data=appliance.dataDir, drm=drm)

    arguments = ["--reactor=asyncio", "-n", "--pidfile="] + (
        ["--profile=%s" % (os.environ["DRM_BENCH_PROFILE"],), "--profiler=cprofile", "--savestats"]
        if os.environ.get("DRM_BENCH_PROFILE") else []) + ["appliance", "--config", "{config}"]
    appliance = ApplianceProcess(configText=config, sipPort=sip, tlsPort=drm, ready=([], [drm]),
                                 arguments=arguments)
    if serverCpu is not None and shutil.which("taskset"):
        original = appliance.argv
        appliance.argv = lambda: ["taskset", "-c", str(serverCpu)] + original()
    appliance.start()
    try:
        addUser(appliance, USER, PASSWORD)
        with open(os.path.join(appliance.dataDir, "drm", "service.token")) as f:
            token = f.read().strip()
        keyId = str(uuid.uuid4())
        depositor = LicenseClient("https://127.0.0.1:%d" % (drm,), appliance.certificatePath, token=token)
        depositor.call("POST", "/drm/keys", {
            "key_id": keyId, "owner": "owner@example.test",
            "key": base64.urlsafe_b64encode(newKey()).decode().rstrip("="),
            "rights": {USER: {"plays": 10 ** 9}}}, auth="token")
        depositor.close()
        others = [c for c in range(os.cpu_count() or 1) if c != serverCpu] or [None]
        queue = multiprocessing.Queue()
        cpuBefore = _cpuSeconds(appliance.process.pid)
        started = time.monotonic()
        deadline = started + duration
        processes = [multiprocessing.Process(
            target=_worker, args=(drm, appliance.certificatePath, keyId, deadline,
                                  others[i % len(others)], queue)) for i in range(clients)]
        for process in processes:
            process.start()
        results = [queue.get(timeout=duration + 60) for _ in processes]
        for process in processes:
            process.join(10)
        elapsed = time.monotonic() - started
        cpu = _cpuSeconds(appliance.process.pid) - cpuBefore
    finally:
        appliance.stop()
        shutil.rmtree(appliance.directory, ignore_errors=True)
    issued = sum(count for count, _ in results)
    failed = sum(failures for _, failures in results)
    return issued, failed, elapsed, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU the appliance is pinned to (-1: none)")
    options = parser.parse_args(argv)
    print("packaging throughput, %d MB of audio:" % (options.megabytes,))
    for name, rate in packaging(options.megabytes).items():
        print("  %-55s %8.1f MB/s" % (name, rate))
    issued, failed, elapsed, cpu = licenses(
        options.clients, options.duration, None if options.cpu < 0 else options.cpu)
    print("licenses over HTTPS keep-alive, %d clients, %.1f s:" % (options.clients, elapsed))
    print("  issued %d (%d failed): %.0f licenses/s; server CPU %.1f s (%.0f %% of one core): "
          "%.0f licenses per server CPU-second" % (
              issued, failed, issued / elapsed, cpu, 100 * cpu / elapsed, issued / cpu if cpu else 0))


if __name__ == "__main__":
    main()
