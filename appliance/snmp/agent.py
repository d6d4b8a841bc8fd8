"""
The SNMP agent: pysnmp 7 on the reactor's asyncio loop, serving
APPLIANCE-MIB read-only over SNMPv2c and SNMPv3 USM (authPriv, SHA / AES),
and sending notifications (v2c traps, v3 informs) when services start,
stop or fail and when authentication failures come in a burst.

The UDP socket is bound by L{SNMPAgent.privilegedStartService} (so port 161
works before privileges are dropped) and handed to pysnmp; the dispatcher
is never run by pysnmp itself: the reactor runs the loop.
"""

import socket

from twisted.application import service
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from appliance import logs
from appliance.sip.service import ListenError
from appliance.snmp import mib

_log = Logger(observer=logs.observer)

#: The MIB-2 system group (sysDescr, sysUpTime, ...), readable next to ours.
SYSTEM_GROUP = (1, 3, 6, 1, 2, 1, 1)

_READ_VIEW = "appliance-read"
_NOTIFY_VIEW = "appliance-notify"


def bindSocket(address):
    """
    Bind a non-blocking UDP socket to C{address} (a L{ListenAddress}).

    @raise ListenError: naming the address when it cannot be bound.
    """
    host = address.interface or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, address.port))
    except OSError as e:
        sock.close()
        raise ListenError("[snmp] listen: cannot listen on %s: %s" % (address, e.strerror or e))
    sock.setblocking(False)
    return sock


def _loopOf(reactor):
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        raise RuntimeError("the SNMP agent needs the asyncio reactor")
    return loop


class AuthFailureWatch:
    """
    Detects bursts of authentication failures: at least C{threshold} more
    failures than C{interval} seconds before, at most one report per
    C{interval} and service.

    @param read: returns C{{service: total failures so far}}.
    """

    def __init__(self, read, clock, threshold, interval):
        self._read = read
        self._clock = clock
        self.threshold = threshold
        self.interval = interval
        self._samples = {}
        self._quietUntil = {}

    def start(self):
        """
        Count from now on, from zero: the services' counters start with
        the appliance, as the watch does.
        """
        now = self._clock.seconds()
        self._samples = {name: [(now, 0)] for name in self._read()}
        self._quietUntil = {}

    def check(self):
        """
        Take a sample; return C{[(service, failures in the interval)]}
        for the services to report.
        """
        now = self._clock.seconds()
        bursts = []
        for name, total in self._read().items():
            samples = self._samples.setdefault(name, [(now, total)])
            samples.append((now, total))
            while len(samples) > 1 and samples[1][0] <= now - self.interval:
                samples.pop(0)
            failures = total - samples[0][1]
            if failures >= self.threshold and now >= self._quietUntil.get(name, 0):
                self._quietUntil[name] = now + self.interval
                bursts.append((name, failures))
        return bursts


class SNMPAgent(service.Service):
    """
    The SNMP agent as a Twisted service.

    @param config: the C{[snmp]} section (L{appliance.config.SNMPConfig}).
    @param reactor: the asyncio reactor.
    @param state: the L{mib.ApplianceState} the MIB reads.
    @ivar engine: the pysnmp C{SnmpEngine} once started.
    """

    name = "snmp"

    def __init__(self, config, reactor, state):
        self.config = config
        self._reactor = reactor
        self.state = state
        self.engine = None
        self._socket = None
        self._transport = None
        self._poll = None
        self._lastStatus = {}
        self._authWatch = AuthFailureWatch(
            self._authFailures, reactor, config.auth_burst_threshold, config.auth_burst_interval
        )

    # -- life cycle

    def privilegedStartService(self):
        """
        Bind the agent's port before privileges are dropped.

        @raise ListenError: when it cannot be bound.
        """
        service.Service.privilegedStartService(self)
        self._socket = bindSocket(self.config.listen)
        host, port = self._socket.getsockname()[:2]
        _log.info("SNMP agent listening on UDP {host}:{port}", host=host, port=port)

    def startService(self):
        service.Service.startService(self)
        if self._socket is None:
            self.privilegedStartService()
        self.state.markStarted()
        self.engine = self._buildEngine(self._socket)
        self._socket = None
        for name in self.state.configured():
            status = self.state.status(name)
            self._lastStatus[name] = status
            if status == mib.RUNNING:
                self.notify(mib.SERVICE_STARTED, name)
        self._authWatch.start()
        self._poll = LoopingCall(self.check)
        self._poll.clock = self._reactor
        self._poll.start(self.config.check_interval, now=False)

    def stopService(self):
        service.Service.stopService(self)
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        self._poll = None
        if self.engine is not None:
            for name in self.state.configured():
                self.notify(mib.SERVICE_STOPPED, name, status=mib.STOPPED)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.engine is not None:
            engine, self.engine = self.engine, None
            # Let the notifications leave before the socket closes.
            return deferLater(self._reactor, 0, self._closeEngine, engine)
        return None

    def _closeEngine(self, engine):
        try:
            engine.close_dispatcher()
        except Exception:
            _log.failure("closing the SNMP engine")

    # -- periodic checks

    def check(self):
        """
        Send the notifications that changes since the last check call for:
        service state changes and authentication failure bursts.
        """
        for name in self.state.configured():
            status = self.state.status(name)
            previous = self._lastStatus.get(name)
            self._lastStatus[name] = status
            if status == previous:
                continue
            if status == mib.RUNNING:
                self.notify(mib.SERVICE_STARTED, name)
            elif status == mib.FAILED:
                self.notify(mib.SERVICE_FAILED, name)
            else:
                self.notify(mib.SERVICE_STOPPED, name, status=status)
        for name, failures in self._authWatch.check():
            _log.warn(
                "{failures} authentication failures on {service} within {interval}s",
                failures=failures, service=name, interval=self.config.auth_burst_interval,
            )
            self.notify(mib.AUTH_FAILURE_BURST, name, failures=failures)

    def _authFailures(self):
        return {
            name: self.state.snapshot(name).get("auth.failures", 0)
            for name in ("sip", "rtsp") if name in self.state.configured()
        }

    # -- pysnmp

    def _buildEngine(self, sock):
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import cmdrsp, context, ntforg

        loop = _loopOf(self._reactor)
        snmpEngine = engine.SnmpEngine()
        snmpEngine.register_transport_dispatcher(AsyncioDispatcher(loop=loop))
        self._transport = udp.UdpAsyncioTransport(loop=loop).open_server_mode(sock=sock)
        config.add_transport(snmpEngine, udp.DOMAIN_NAME, self._transport)

        levels = []
        if self.config.community:
            config.add_v1_system(snmpEngine, "appliance-ro", self.config.community)
            # SNMPv1 (model 1) and v2c (model 2) requests.
            levels += [(1, "appliance-ro", "noAuthNoPriv"), (2, "appliance-ro", "noAuthNoPriv")]
        if self.config.v3_user:
            config.add_v3_user(
                snmpEngine, self.config.v3_user,
                config.USM_AUTH_HMAC96_SHA, self.config.v3_auth_key,
                config.USM_PRIV_CFB128_AES, self.config.v3_priv_key,
            )
            levels.append((3, self.config.v3_user, "authPriv"))
        config.add_context(snmpEngine, b"")
        for securityModel, securityName, securityLevel in levels:
            self._allow(snmpEngine, securityModel, securityName, securityLevel)
        for subtree in (SYSTEM_GROUP, mib.ENTERPRISE):
            config.add_vacm_view(snmpEngine, _READ_VIEW, "included", subtree, b"")
        config.add_vacm_view(snmpEngine, _NOTIFY_VIEW, "included", mib.ENTERPRISE, b"")

        snmpContext = context.SnmpContext(snmpEngine)
        mibBuilder = snmpContext.get_mib_instrum().get_mib_builder()
        mib.exportMib(mibBuilder, self.state)
        # SNMPv2-MIB system group: describe the appliance, not the library.
        sysDescr, sysObjectID = mibBuilder.import_symbols("__SNMPv2-MIB", "sysDescr", "sysObjectID")
        sysDescr.syntax = sysDescr.syntax.clone("appliance %s" % (self.state.version,))
        sysObjectID.syntax = sysObjectID.syntax.clone(mib.ENTERPRISE)
        cmdrsp.GetCommandResponder(snmpEngine, snmpContext)
        cmdrsp.NextCommandResponder(snmpEngine, snmpContext)
        cmdrsp.BulkCommandResponder(snmpEngine, snmpContext)

        self._notifier = ntforg.NotificationOriginator()
        self._targets(snmpEngine, config)
        return snmpEngine

    def _allow(self, snmpEngine, securityModel, securityName, securityLevel):
        from pysnmp.entity import config

        (SnmpSecurityLevel,) = snmpEngine.get_mib_builder().import_symbols(
            "SNMP-FRAMEWORK-MIB", "SnmpSecurityLevel"
        )
        group = "appliance-%d" % (securityModel,)
        config.add_vacm_group(snmpEngine, group, securityModel, securityName)
        config.add_vacm_access(
            snmpEngine, group, b"", securityModel, SnmpSecurityLevel(securityLevel),
            "exact", _READ_VIEW, "", _NOTIFY_VIEW,
        )

    def _targets(self, snmpEngine, config):
        from pysnmp.carrier.asyncio.dgram import udp

        if self.config.trap_targets:
            config.add_target_parameters(
                snmpEngine, "appliance-v2c", "appliance-ro", "noAuthNoPriv", 1
            )
            for number, (host, port) in enumerate(self.config.trap_targets):
                config.add_target_address(
                    snmpEngine, "trap-%d" % number, udp.DOMAIN_NAME, (host, port),
                    "appliance-v2c", tagList=b"appliance-notify",
                )
        if self.config.inform_targets and self.config.v3_user:
            config.add_target_parameters(
                snmpEngine, "appliance-v3", self.config.v3_user, "authPriv", 3
            )
            for number, (host, port) in enumerate(self.config.inform_targets):
                config.add_target_address(
                    snmpEngine, "inform-%d" % number, udp.DOMAIN_NAME, (host, port),
                    "appliance-v3", timeout=300, retryCount=3, tagList=b"appliance-inform",
                )
        if self.config.trap_targets:
            config.add_notification_target(
                snmpEngine, "appliance-traps", "appliance-filter", "appliance-notify", "trap"
            )
        if self.config.inform_targets and self.config.v3_user:
            config.add_notification_target(
                snmpEngine, "appliance-informs", "appliance-filter", "appliance-inform", "inform"
            )

    def notify(self, notification, service, status=None, failures=None):
        """
        Send C{notification} (an OID of L{mib}) about C{service} to every
        configured target: v2c traps to C{trap_targets}, v3 informs to
        C{inform_targets}.
        """
        if self.engine is None or not (self.config.trap_targets or self.config.inform_targets):
            return
        from pysnmp.proto import rfc1902

        if status is None:
            status = self.state.status(service)
        varBinds = [
            (oid, getattr(rfc1902, kind)(value))
            for oid, kind, value in mib.notificationVarBinds(
                notification, service, status, failures, self.config.auth_burst_interval
            )
        ]
        targets = []
        if self.config.trap_targets:
            targets.append("appliance-traps")
        if self.config.inform_targets and self.config.v3_user:
            targets.append("appliance-informs")
        for target in targets:
            try:
                self._notifier.send_varbinds(
                    self.engine, target, None, b"", varBinds, self._notified,
                )
            except Exception:
                _log.failure("cannot send the SNMP notification {oid}", oid=notification)
        _log.debug(
            "SNMP notification {oid} for {service}",
            oid=".".join(map(str, notification)), service=service,
        )

    def _notified(self, snmpEngine, handle, errorIndication, errorStatus, errorIndex,
                  varBinds, cbCtx):
        if errorIndication:
            _log.info("SNMP inform not acknowledged: {error}", error=errorIndication)
