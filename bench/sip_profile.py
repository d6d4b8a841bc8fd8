"""
CPU cost of one proxied call inside the appliance, without sockets or a
reactor: the INVITE / 180 / 200 / ACK / BYE / 200 of a call from another
domain to a registered phone, as bytes through the real UDP transport,
controller, transaction layer, dispatcher, router and proxy (a heap-based
clock stands in for the reactor's timers).

    python bench/sip_profile.py [CALLS] [--profile]

Prints the CPU time per call; with --profile, the cProfile table of the
hottest functions as well. docs/benchmarks.md explains how to read it
beside bench/sip_bench.py.
"""
import cProfile
import heapq
import itertools
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from twisted.internet.defer import succeed
from twisted.internet.address import IPv4Address
from appliance.stats import Statistics
from appliance.storage.database import SynchronousDatabase
from appliance.storage.users import UserDirectory
from appliance.sip.location import LocationService, ContactChange
from appliance.sip.routing import CallRules, Router
from appliance.sip.dispatcher import Dispatcher
from appliance.sip.transaction import TransactionLayer
from appliance.sip.proxy import Proxy, hostTargets, transportOf
from appliance.sip.service import SIPController
from appliance.sip.transport import UDPTransport
from appliance.sip.message import parseMessage, makeResponse, URI

class Sock:
    def __init__(self): self.out=[]
    def write(self, data, addr): self.out.append((data, addr))
    def getHost(self): return IPv4Address("UDP","127.0.0.1",5060)

class HeapClock:
    """
    callLater on a heap, as the real reactor keeps its timers (task.Clock
    sorts a list on every call, which would dominate the profile).
    """

    def __init__(self):
        self.now = 1e9
        self.heap = []
        self.counter = itertools.count()

    def seconds(self):
        return self.now

    def callLater(self, delay, function, *args, **kwargs):
        call = Call(self, function, args, kwargs)
        self.schedule(call, self.now + delay)
        return call

    def schedule(self, call, when):
        call.time = when
        call.generation += 1
        heapq.heappush(self.heap, (when, next(self.counter), call.generation, call))

    def advance(self, seconds):
        self.now += seconds
        while self.heap and self.heap[0][0] <= self.now:
            when, _, generation, call = heapq.heappop(self.heap)
            if call.active() and generation == call.generation:
                call.called = True
                call.function(*call.args, **call.kwargs)


class Call:
    def __init__(self, clock, function, args, kwargs):
        self.clock, self.function, self.args, self.kwargs = clock, function, args, kwargs
        self.cancelled = self.called = False
        self.generation = 0
        self.time = 0

    def active(self):
        return not (self.cancelled or self.called)

    def cancel(self):
        self.cancelled = True

    def reset(self, seconds):
        self.clock.schedule(self, self.clock.now + seconds)

    def getTime(self):
        return self.time


clock = HeapClock()
db = SynchronousDatabase(tempfile.mktemp()); db.open()
users = UserDirectory(db); users.addUser("bob@example.test","x")
stats = Statistics("sip")
loc = LocationService(db, clock); loc.load()
loc.update("bob@example.test","c",1,[ContactChange(contact="sip:bob@127.0.0.1:7000", expires=3600, q=1.0, source=("udp","127.0.0.1",7000), path=())])
def isOurs(uri):
    return isinstance(uri, URI) and ((uri.user is None and uri.host=="example.test") or (uri.host=="127.0.0.1" and uri.port in (None,5060)))
disp = Dispatcher(["example.test"], isOurs, stats, router=Router(loc, CallRules(db)))
tl = TransactionLayer(clock, disp)
ctl = SIPController(tl, stats); ctl.ready=True
udp = UDPTransport(ctl); udp.transport = Sock(); udp.startProtocol()
proxy = Proxy(tl, {"UDP": udp}, clock, stats, isOurs, lambda uri: succeed(hostTargets(uri, transportOf(uri))))
disp.proxy = proxy
CALLER=("127.0.0.1", 6000); CALLEE=("127.0.0.1", 7000)
INV = ("INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;rport;branch=z9hG4bK-%d-1\r\n"
 "From: <sip:carol@client.test>;tag=c%d\r\nTo: <sip:bob@example.test>\r\nCall-ID: %d@client\r\nCSeq: 1 INVITE\r\n"
 "Contact: <sip:carol@127.0.0.1:6000>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
def call(i):
    sock = udp.transport
    sock.out.clear()
    udp.datagramReceived((INV % (i,i,i)).encode(), CALLER)
    fwd = [parseMessage(d) for d, a in sock.out if a == CALLEE][0]
    sock.out.clear()
    r180 = makeResponse(fwd, 180, toTag="u%d" % i); r180.headers.add("Contact","<sip:bob@127.0.0.1:7000>")
    for h in fwd.headers.getAll("Record-Route"): r180.headers.add("Record-Route", h)
    udp.datagramReceived(r180.toBytes(), CALLEE)
    r200 = makeResponse(fwd, 200, toTag="u%d" % i); r200.headers.add("Contact","<sip:bob@127.0.0.1:7000>")
    for h in fwd.headers.getAll("Record-Route"): r200.headers.add("Record-Route", h)
    udp.datagramReceived(r200.toBytes(), CALLEE)
    ok = [parseMessage(d) for d, a in sock.out if a == CALLER and d.startswith(b"SIP/2.0 200")][0]
    rr = ok.headers.getAll("Record-Route")
    route = "".join("Route: %s\r\n" % r for r in rr)
    for method, cseq in (("ACK",1),("BYE",2)):
        req = ("%s sip:bob@127.0.0.1:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;rport;branch=z9hG4bK-%d-%s\r\n%s"
               "From: <sip:carol@client.test>;tag=c%d\r\nTo: <sip:bob@example.test>;tag=u%d\r\nCall-ID: %d@client\r\nCSeq: %d %s\r\n"
               "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (method, i, method, route, i, i, i, cseq, method)
        sock.out.clear()
        udp.datagramReceived(req.encode(), CALLER)
    bye = [parseMessage(d) for d, a in sock.out if a == CALLEE and d.startswith(b"BYE")][0]
    udp.datagramReceived(makeResponse(bye, 200).toBytes(), CALLEE)
    if i % 100 == 0: clock.advance(40)
args = [a for a in sys.argv[1:] if a != "--profile"]
N = int(args[0]) if args else 2000
PROFILE = "--profile" in sys.argv
for i in range(50): call(i)
t=time.process_time()
if PROFILE:
    profile = cProfile.Profile()
    profile.runcall(lambda: [call(i) for i in range(50, 50 + N)])
    pstats.Stats(profile).sort_stats("tottime").print_stats(30)
else:
    for i in range(50, 50+N): call(i)
dt=time.process_time()-t
print("calls: %d, CPU per call: %.0f us (including this script parsing four messages of each call)" % (N, dt / N * 1e6))
