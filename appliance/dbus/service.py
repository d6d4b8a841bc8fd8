"""
The D-Bus service: offers the appliance's management objects under the
well-known name C{org.appliance.Appliance1} on the configured bus.

A missing bus does not stop the appliance: the service logs a warning,
keeps the other services running and tries again every
L{DBusService.reconnectInterval} seconds (a system bus started after the
appliance, or restarted, is picked up). C{appliancectl status} then reports
that the appliance cannot be reached over D-Bus.
"""

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance import __version__, logs
from appliance.dbus import BUS_NAME, RUNNING, describeBus
from appliance.dbus.objects import ApplianceObject, RegistrarObject
from appliance.dbus.reload import ConfigReloader

_log = Logger(observer=logs.observer)


def connectBus(reactor, bus):
    """
    Connect to C{bus} (C{system}, C{session} or an address) with txdbus;
    return a L{Deferred} firing with the connection.
    """
    # txdbus.client imports the global reactor: import it only here, once
    # twistd has installed the reactor it was asked for.
    from txdbus import client

    client.DBusClientFactory.noisy = False
    return client.connect(reactor, bus)


def serviceState(child):
    """
    The state of a service of the appliance: its C{state} attribute when it
    has one (a string such as C{"running"}, C{"starting"}, C{"failed"}),
    else C{"running"} or C{"stopped"}.
    """
    state = getattr(child, "state", None)
    if isinstance(state, str):
        return state
    return RUNNING if child.running else "stopped"


class DBusService(service.Service):
    """
    The appliance's D-Bus interface as a Twisted service.

    @param config: the whole L{appliance.config.Config} (C{[dbus] bus}, and
        the file C{Reload} re-reads).
    @param reactor: the reactor (time and connections).
    @param services: a callable returning the appliance's services (this
        one included), whose names and states C{Services} shows.
    @param location: the SIP service's L{ILocationService}, or C{None}
        when SIP is not enabled (then there is no Registrar object).
    @param conference: the conference service, or C{None} (then there is
        no Conference object).
    @param statistics: C{{service name: IStatsSource}} for
        C{GetStatistics}.
    @param stats: this service's own L{appliance.stats.Statistics}.
    @param connect: C{connect(reactor, bus)} returning a L{Deferred}
        connection (default: txdbus).
    @ivar lastError: why the last attempt to get onto the bus failed.
    """

    name = "dbus"
    reconnectInterval = 30.0
    pollInterval = 1.0
    stopTimeout = 5.0

    def __init__(self, config, reactor, services, location=None, statistics=None,
                 stats=None, connect=connectBus, version=__version__, conference=None):
        self._bus = config.dbus.bus
        self._reactor = reactor
        self._services = services
        self._connect = connect
        self.startTime = None
        self.connection = None
        self.lastError = None
        self._connecting = None
        self._retry = None
        self._poll = None
        self._states = {}
        self._failures = 0
        self.applianceObject = ApplianceObject(
            version, self.uptime, self.serviceStates,
            ConfigReloader(config), statistics,
        )
        self.registrarObject = None
        if location is not None:
            self.registrarObject = RegistrarObject(location)
        self.conferenceObject = None
        if conference is not None:
            from appliance.dbus.conference import ConferenceObject

            self.conferenceObject = ConferenceObject(conference)
        if stats is not None:
            stats.gauge("connected", lambda: int(self.connection is not None))

    @property
    def state(self):
        """
        C{running} once the name is ours; C{connecting}, C{disconnected}
        (no bus, retrying) or C{stopped} otherwise.
        """
        if not self.running:
            return "stopped"
        if self.connection is not None:
            return RUNNING
        return "connecting" if self._connecting is not None else "disconnected"

    def uptime(self):
        """
        Seconds since the appliance started (since this service started,
        the last of them, a moment later).
        """
        if self.startTime is None:
            return 0
        return self._reactor.seconds() - self.startTime

    def serviceStates(self):
        """
        C{(name, state)} of every named service of the appliance.
        """
        return [(child.name, serviceState(child)) for child in self._services() if child.name]

    def startService(self):
        service.Service.startService(self)
        if self.startTime is None:
            self.startTime = self._reactor.seconds()
        self._attempt()

    def _attempt(self):
        self._retry = None
        d = self._connecting = self._getOnTheBus()
        d.addCallbacks(self._online, self._offline)
        d.addBoth(self._settled)

    @inlineCallbacks
    def _getOnTheBus(self):
        connection = yield maybeDeferred(self._connect, self._reactor, self._bus)
        try:
            connection.exportObject(self.applianceObject)
            if self.registrarObject is not None:
                connection.exportObject(self.registrarObject)
            if self.conferenceObject is not None:
                connection.exportObject(self.conferenceObject)
            yield connection.requestBusName(BUS_NAME)
        except BaseException:
            failure = Failure()
            yield self._disconnect(connection)
            failure.raiseException()
        return connection

    def _online(self, connection):
        if not self.running:
            return self._disconnect(connection)
        self.connection = connection
        self.lastError = None
        self._failures = 0
        connection.notifyOnDisconnect(self._lost)
        if self.registrarObject is not None:
            self.registrarObject.observe()
        self._states = dict(self.serviceStates())
        self._poll = LoopingCall(self._checkStates)
        self._poll.clock = self._reactor
        self._poll.start(self.pollInterval, now=False)
        _log.info(
            "D-Bus: {name} on {bus}", name=BUS_NAME, bus=describeBus(self._bus)
        )
        self.applianceObject.serviceStateChanged(self.name, RUNNING)

    def _offline(self, failure):
        self.lastError = failure.getErrorMessage()
        self._failures += 1
        if not self.running:
            return
        log = _log.warn if self._failures == 1 else _log.debug
        log(
            "D-Bus: cannot offer {name} on {bus}: {error}; the other services keep "
            "running without the D-Bus interface, trying again every {interval:g} s",
            name=BUS_NAME, bus=describeBus(self._bus), error=self.lastError,
            interval=self.reconnectInterval,
        )
        self._scheduleRetry()

    def _settled(self, ignored):
        self._connecting = None

    def _scheduleRetry(self):
        if self.running and self._retry is None:
            self._retry = self._reactor.callLater(self.reconnectInterval, self._attempt)

    def _lost(self, connection, reason):
        if connection is not self.connection:
            return
        self._offlineCleanup()
        if self.running:
            self.lastError = "connection to the bus lost"
            self._failures = 1
            _log.warn(
                "D-Bus: lost {bus}; trying again every {interval:g} s",
                bus=describeBus(self._bus), interval=self.reconnectInterval,
            )
            self._scheduleRetry()

    def _offlineCleanup(self):
        self.connection = None
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        self._poll = None
        if self.registrarObject is not None:
            try:
                self.registrarObject.unobserve()
            except ValueError:
                pass

    def _checkStates(self):
        """
        Emit C{ServiceStateChanged} for every service whose state differs
        from the last look.
        """
        states = self.serviceStates()
        for name, state in states:
            if self._states.get(name) != state:
                _log.info("service {name} is {state}", name=name, state=state)
                self.applianceObject.serviceStateChanged(name, state)
        self._states = dict(states)

    def _disconnect(self, connection):
        """
        Close C{connection}; the L{Deferred} fires once it is closed.
        """
        closed = Deferred()

        def lost(connection, reason):
            if not closed.called:
                closed.callback(None)

        connection.notifyOnDisconnect(lost)
        connection.disconnect()
        return closed

    def stopService(self):
        service.Service.stopService(self)
        if self._retry is not None:
            if self._retry.active():
                self._retry.cancel()
            self._retry = None
        waits = []
        connection = self.connection
        if connection is not None:
            self.applianceObject.serviceStateChanged(self.name, "stopped")
            self._offlineCleanup()
            waits.append(self._disconnect(connection))
        if self._connecting is not None:
            settled = Deferred()
            self._connecting.addBoth(lambda result: settled.callback(None))
            waits.append(settled)
        if not waits:
            return None
        d = gatherResults(waits)
        d.addTimeout(self.stopTimeout, self._reactor)
        d.addErrback(lambda failure: None)
        return d
