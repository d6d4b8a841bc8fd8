"""
APPLIANCE-MIB (C{mibs/APPLIANCE-MIB.txt}) in Python: every object of the
SMI module with its OID, its type and where its value comes from.

The values are read from the services' L{IStatsSource} snapshots when a
request arrives: nothing is stored here and nothing is counted here. The
definitions are plain data, checked against the SMI text by the tests;
L{exportMib} turns them into pysnmp managed objects.
"""

from twisted.logger import Logger

from appliance import logs

_log = Logger(observer=logs.observer)

#: The enterprise subtree: 1.3.6.1.4.1.99999 is NOT an IANA-assigned
#: Private Enterprise Number but a placeholder for experiments.
ENTERPRISE = (1, 3, 6, 1, 4, 1, 99999)
MODULE = "APPLIANCE-MIB"
NOTIFICATIONS = ENTERPRISE + (0,)
OBJECTS = ENTERPRISE + (1,)

SYSTEM = OBJECTS + (1,)
SERVICE_ENTRY = OBJECTS + (2, 1)
SIP = OBJECTS + (3,)
SIP_METHOD_ENTRY = SIP + (20, 1)
SIP_CLASS_ENTRY = SIP + (21, 1)
RTSP = OBJECTS + (4,)
VOICEMAIL = OBJECTS + (5,)
DRM = OBJECTS + (6,)
PSAP = OBJECTS + (7,)
NOTIFY_OBJECTS = OBJECTS + (8,)
CONFERENCE = OBJECTS + (9,)

#: applServiceTable rows, at fixed indices 1, 2, ...
SERVICES = ("sip", "rtsp", "voicemail", "drm", "psap", "web", "snmp", "dbus", "conference")

#: applServiceStatus values.
RUNNING, STOPPED, FAILED, DISABLED = 1, 2, 3, 4
STATUS_NAMES = {RUNNING: "running", STOPPED: "stopped", FAILED: "failed", DISABLED: "disabled"}

#: applSipMethodTable rows, at fixed indices 1, 2, ...; one more row,
#: C{other}, sums every other method.
SIP_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
    "SUBSCRIBE", "NOTIFY", "MESSAGE", "INFO", "UPDATE", "REFER", "PUBLISH",
)
SIP_METHOD_ROWS = SIP_METHODS + ("other",)

#: Notification OIDs.
SERVICE_STARTED = NOTIFICATIONS + (1,)
SERVICE_STOPPED = NOTIFICATIONS + (2,)
SERVICE_FAILED = NOTIFICATIONS + (3,)
AUTH_FAILURE_BURST = NOTIFICATIONS + (4,)

# Value kinds, named after their SMI types.
COUNTER = "Counter32"
GAUGE = "Gauge32"
STRING = "DisplayString"
TICKS = "TimeTicks"
INTEGER = "INTEGER"

_MAX32 = 2**32 - 1


def encode(kind, value):
    """
    Fit a statistic into its SMI type: a Counter32 wraps at 2^32 (RFC 2578
    section 7.1.6), a Gauge32 latches at its bounds (section 7.1.7), a
    TimeTicks wraps.
    """
    if kind == STRING:
        return str(value).encode("utf-8")[:255]
    value = int(value)
    if kind in (COUNTER, TICKS):
        return value % (_MAX32 + 1)
    if kind == GAUGE:
        return min(max(value, 0), _MAX32)
    return value


class ApplianceState:
    """
    What the MIB reads: the services' statistics and running state.

    @param stats: C{{service name: IStatsSource}} (the appliance's registry;
        a service that is not configured has no entry and reads as 0).
    @param tree: the appliance's root L{MultiService}, whose named children
        are the services.
    @param configured: the names in C{[appliance] services}.
    @param version: the appliance's version string.
    @param clock: an L{IReactorTime} for the uptime.
    """

    def __init__(self, stats, tree, configured, version, clock):
        self._stats = stats
        self._tree = tree
        self._configured = tuple(configured)
        self.version = version
        self._clock = clock
        self._startedAt = None

    def markStarted(self):
        """
        Start counting the uptime now.
        """
        self._startedAt = self._clock.seconds()

    def uptime(self):
        """
        Seconds since L{markStarted} (0 before).
        """
        if self._startedAt is None:
            return 0.0
        return max(0.0, self._clock.seconds() - self._startedAt)

    def snapshot(self, service):
        """
        The current statistics of C{service}, or C{{}} when it has none.
        """
        source = self._stats.get(service)
        if source is None:
            return {}
        try:
            return source.snapshot()
        except Exception:
            _log.failure("statistics of {service} cannot be read", service=service)
            return {}

    def status(self, service):
        """
        The applServiceStatus of C{service}.
        """
        if service not in self._configured:
            return DISABLED
        try:
            child = self._tree.getServiceNamed(service)
        except KeyError:
            child = None
        if child is not None and child.running:
            return RUNNING
        return FAILED if self._tree.running else STOPPED

    def configured(self):
        return self._configured


# Readers: each takes an ApplianceState and returns a Python value.


def stat(service, key):
    """
    One statistic of one service (0 when absent).
    """
    return lambda state: state.snapshot(service).get(key, 0)


def statSum(service, prefix, exclude=()):
    """
    The sum of the statistics of C{service} named C{prefix + suffix}, for
    every suffix not in C{exclude}.
    """

    def read(state):
        return sum(
            value for key, value in state.snapshot(service).items()
            if key.startswith(prefix) and key[len(prefix):] not in exclude
        )

    return read


def constant(value):
    return lambda state: value


class ObjectDef:
    """
    One accessible object instance of the MIB.

    @ivar name: its SMI descriptor, such as C{applSipRegAccepted}.
    @ivar oid: the OID of the object (the column, for a table column).
    @ivar kind: its SMI type (L{COUNTER}, L{GAUGE}, ...).
    @ivar read: the reader of its value.
    @ivar index: C{()} for a scalar (instance C{.0}), else the row index.
    """

    def __init__(self, name, oid, kind, read, index=()):
        self.name = name
        self.oid = tuple(oid)
        self.kind = kind
        self.read = read
        self.index = tuple(index)

    @property
    def instance(self):
        return self.oid + (self.index or (0,))

    def value(self, state):
        return encode(self.kind, self.read(state))

    def __repr__(self):
        return "<ObjectDef %s%s>" % (self.name, self.index)


def _scalars(base, rows):
    return [ObjectDef(name, base + (number,), kind, read) for number, name, kind, read in rows]


SYSTEM_OBJECTS = _scalars(SYSTEM, [
    (1, "applVersion", STRING, lambda state: state.version),
    (2, "applUptime", TICKS, lambda state: int(state.uptime() * 100)),
])

SIP_SCALARS = _scalars(SIP, [
    (1, "applSipSummaryInRequests", COUNTER, statSum("sip", "requests.in.")),
    (2, "applSipSummaryOutRequests", COUNTER, statSum("sip", "requests.out.")),
    (3, "applSipSummaryInResponses", COUNTER, statSum("sip", "responses.in.")),
    (4, "applSipSummaryOutResponses", COUNTER, statSum("sip", "responses.out.")),
    (5, "applSipTransactionsActive", GAUGE, stat("sip", "transactions.active")),
    (6, "applSipTransactionTimeouts", COUNTER, stat("sip", "transactions.timeouts")),
    (7, "applSipRegAccepted", COUNTER, stat("sip", "registrar.accepted")),
    (8, "applSipRegRejected", COUNTER, stat("sip", "registrar.rejected")),
    (9, "applSipRegChallenged", COUNTER, stat("sip", "registrar.challenged")),
    (10, "applSipCurrentBindings", GAUGE, stat("sip", "registrar.bindings")),
    (11, "applSipAuthFailures", COUNTER, stat("sip", "auth.failures")),
    (12, "applSipAuthChallenges", COUNTER, stat("sip", "auth.challenges")),
    (13, "applSipParseErrors", COUNTER, stat("sip", "parse.errors")),
    (14, "applSipConnectionsActive", GAUGE, stat("sip", "connections.active")),
    (15, "applSipProxyBranches", COUNTER, stat("sip", "proxy.branches")),
])

RTSP_SCALARS = _scalars(RTSP, [
    (1, "applRtspSessionsActive", GAUGE, stat("rtsp", "sessions.active")),
    (2, "applRtspStreamsPlaying", GAUGE, stat("rtsp", "streams.playing")),
    (3, "applRtspStreamsRecording", GAUGE, stat("rtsp", "streams.recording")),
    (4, "applRtspSessionsCreated", COUNTER, stat("rtsp", "sessions.created")),
    (5, "applRtspSessionsTimedOut", COUNTER, stat("rtsp", "sessions.timedout")),
    (6, "applRtspConnectionsActive", GAUGE, stat("rtsp", "connections.active")),
    (7, "applRtspInRequests", COUNTER, statSum("rtsp", "requests.in.")),
    (8, "applRtspOutResponses", COUNTER, statSum("rtsp", "responses.out.")),
    (9, "applRtspAuthFailures", COUNTER, stat("rtsp", "auth.failures")),
    (10, "applRtspRtpPacketsSent", COUNTER, stat("rtsp", "rtp.packets.sent")),
    (11, "applRtspRtpPacketsReceived", COUNTER, stat("rtsp", "rtp.packets.received")),
])

VOICEMAIL_SCALARS = _scalars(VOICEMAIL, [
    (1, "applVmMailboxes", GAUGE, stat("voicemail", "mailboxes")),
    (2, "applVmMessages", GAUGE, stat("voicemail", "messages.stored")),
    (3, "applVmDeposits", COUNTER, stat("voicemail", "deposits")),
    (4, "applVmRetrievals", COUNTER, stat("voicemail", "retrievals")),
    (5, "applVmCallsActive", GAUGE, stat("voicemail", "calls.active")),
    (6, "applVmNotificationsSent", COUNTER, stat("voicemail", "notifications.sent")),
])

DRM_SCALARS = _scalars(DRM, [
    (1, "applDrmLicensesIssued", COUNTER, stat("drm", "licenses.issued")),
    (2, "applDrmLicensesRefused", COUNTER, stat("drm", "licenses.refused")),
    (3, "applDrmKeysStored", GAUGE, stat("drm", "keys.stored")),
    (4, "applDrmPackagesCreated", COUNTER, stat("drm", "packages.created")),
])

PSAP_SCALARS = _scalars(PSAP, [
    (1, "applPsapCallsActive", GAUGE, stat("psap", "calls.active")),
    (2, "applPsapCallsTotal", COUNTER, stat("psap", "calls.total")),
    (3, "applPsapCallsToBackup", COUNTER, stat("psap", "calls.backup")),
    (4, "applPsapCallsAbandoned", COUNTER, stat("psap", "calls.abandoned")),
    (5, "applPsapCallTakersAvailable", GAUGE, stat("psap", "calltakers.available")),
])

CONFERENCE_SCALARS = _scalars(CONFERENCE, [
    (1, "applConfCallsActive", GAUGE, stat("conference", "calls.active")),
    (2, "applConfEchoCalls", COUNTER, stat("conference", "calls.echo")),
    (3, "applConfRoomCalls", COUNTER, stat("conference", "calls.conference")),
    (4, "applConfRoomsActive", GAUGE, stat("conference", "conference.rooms")),
    (5, "applConfParticipants", GAUGE, stat("conference", "conference.participants")),
    (6, "applConfDtmfEvents", COUNTER, stat("conference", "dtmf.events")),
    (7, "applConfRtpPacketsReceived", COUNTER, stat("conference", "rtp.packets.received")),
    (8, "applConfRtpPacketsSent", COUNTER, stat("conference", "rtp.packets.sent")),
    (9, "applConfRtpPacketsLost", COUNTER, stat("conference", "rtp.packets.lost")),
])


def _serviceStatus(service):
    return lambda state: state.status(service)


SERVICE_COLUMNS = {
    # column name: (column number, kind)
    "applServiceName": (2, STRING),
    "applServiceStatus": (3, INTEGER),
}

SERVICE_OBJECTS = []
for _index, _service in enumerate(SERVICES, 1):
    SERVICE_OBJECTS.append(ObjectDef(
        "applServiceName", SERVICE_ENTRY + (2,), STRING, constant(_service), (_index,)))
    SERVICE_OBJECTS.append(ObjectDef(
        "applServiceStatus", SERVICE_ENTRY + (3,), INTEGER, _serviceStatus(_service), (_index,)))

SIP_METHOD_OBJECTS = []
for _index, _method in enumerate(SIP_METHOD_ROWS, 1):
    if _method == "other":
        _in = statSum("sip", "requests.in.", exclude=SIP_METHODS)
        _out = statSum("sip", "requests.out.", exclude=SIP_METHODS)
    else:
        _in = stat("sip", "requests.in." + _method)
        _out = stat("sip", "requests.out." + _method)
    SIP_METHOD_OBJECTS += [
        ObjectDef("applSipMethodName", SIP_METHOD_ENTRY + (2,), STRING, constant(_method), (_index,)),
        ObjectDef("applSipMethodInRequests", SIP_METHOD_ENTRY + (3,), COUNTER, _in, (_index,)),
        ObjectDef("applSipMethodOutRequests", SIP_METHOD_ENTRY + (4,), COUNTER, _out, (_index,)),
    ]

SIP_CLASS_OBJECTS = []
for _class in range(1, 7):
    SIP_CLASS_OBJECTS += [
        ObjectDef("applSipStatusClassName", SIP_CLASS_ENTRY + (2,), STRING,
                  constant("%dxx" % _class), (_class,)),
        ObjectDef("applSipStatusClassInResponses", SIP_CLASS_ENTRY + (3,), COUNTER,
                  stat("sip", "responses.in.%dxx" % _class), (_class,)),
        ObjectDef("applSipStatusClassOutResponses", SIP_CLASS_ENTRY + (4,), COUNTER,
                  stat("sip", "responses.out.%dxx" % _class), (_class,)),
    ]

#: Every readable instance, in OID order.
ALL_OBJECTS = sorted(
    SYSTEM_OBJECTS + SERVICE_OBJECTS + SIP_SCALARS + SIP_METHOD_OBJECTS + SIP_CLASS_OBJECTS
    + RTSP_SCALARS + VOICEMAIL_SCALARS + DRM_SCALARS + PSAP_SCALARS + CONFERENCE_SCALARS,
    key=lambda definition: definition.instance,
)

#: Table structure: (table name, entry name, entry OID, index column name,
#: index column number, {column name: (number, kind)}).
TABLES = (
    ("applServiceTable", "applServiceEntry", SERVICE_ENTRY, "applServiceIndex", 1,
     SERVICE_COLUMNS),
    ("applSipMethodTable", "applSipMethodEntry", SIP_METHOD_ENTRY, "applSipMethodIndex", 1,
     {"applSipMethodName": (2, STRING), "applSipMethodInRequests": (3, COUNTER),
      "applSipMethodOutRequests": (4, COUNTER)}),
    ("applSipStatusClassTable", "applSipStatusClassEntry", SIP_CLASS_ENTRY, "applSipStatusClass", 1,
     {"applSipStatusClassName": (2, STRING), "applSipStatusClassInResponses": (3, COUNTER),
      "applSipStatusClassOutResponses": (4, COUNTER)}),
)

#: Objects only carried in notifications (accessible-for-notify).
NOTIFY_AUTH_FAILURES = NOTIFY_OBJECTS + (1,)
NOTIFY_INTERVAL = NOTIFY_OBJECTS + (2,)


#: SNMPv2-MIB::snmpTrapOID.0 (RFC 3418).
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


def notificationVarBinds(notification, service, status, failures=None, interval=None):
    """
    The variable bindings of a notification after sysUpTime.0: its
    snmpTrapOID.0, then the OBJECTS of its NOTIFICATION-TYPE in order,
    each as C{(OID, pysnmp type name, value)}.
    """
    index = serviceIndex(service)
    varBinds = [
        (SNMP_TRAP_OID, "ObjectIdentifier", notification),
        (SERVICE_ENTRY + (2, index), "OctetString", service),
    ]
    if notification == AUTH_FAILURE_BURST:
        varBinds += [
            (NOTIFY_AUTH_FAILURES + (0,), "Gauge32", encode(GAUGE, failures)),
            (NOTIFY_INTERVAL + (0,), "Integer32", interval),
        ]
    else:
        varBinds.append((SERVICE_ENTRY + (3, index), "Integer32", status))
    return varBinds


def serviceIndex(service):
    """
    The applServiceTable index of C{service}.
    """
    return SERVICES.index(service) + 1


def _syntaxFor(kind, rfc1902):
    if kind == STRING:
        return rfc1902.OctetString("")
    if kind == COUNTER:
        return rfc1902.Counter32(0)
    if kind == GAUGE:
        return rfc1902.Gauge32(0)
    if kind == TICKS:
        return rfc1902.TimeTicks(0)
    return rfc1902.Integer32(0)


def exportMib(mibBuilder, state):
    """
    Define APPLIANCE-MIB's objects in C{mibBuilder} (a pysnmp
    C{MibBuilder}), each instance reading its value from C{state} (an
    L{ApplianceState}) on every request.
    """
    from pysnmp.proto import rfc1902

    (MibScalar, MibScalarInstance, MibTable, MibTableRow, MibTableColumn) = (
        mibBuilder.import_symbols(
            "SNMPv2-SMI", "MibScalar", "MibScalarInstance", "MibTable",
            "MibTableRow", "MibTableColumn",
        )
    )

    class StatisticInstance(MibScalarInstance):
        """
        An instance whose value is read from the statistics per request.
        """

        definition = None

        def getValue(self, name, **context):
            return self.getSyntax().clone(self.definition.value(state))

    symbols = {}
    for definition in ALL_OBJECTS:
        syntax = _syntaxFor(definition.kind, rfc1902)
        if not definition.index:
            symbols[definition.name] = MibScalar(definition.oid, syntax).setMaxAccess("read-only")
        instance = StatisticInstance(definition.oid, definition.index or (0,), syntax)
        instance.definition = definition
        symbols["%sInstance%s" % (definition.name, "".join(".%d" % i for i in definition.index))] = instance
    for tableName, entryName, entryOid, indexName, indexNumber, columns in TABLES:
        symbols[tableName] = MibTable(entryOid[:-1]).setMaxAccess("not-accessible")
        symbols[entryName] = MibTableRow(entryOid).setMaxAccess("not-accessible").setIndexNames(
            (0, MODULE, indexName)
        )
        symbols[indexName] = MibTableColumn(
            entryOid + (indexNumber,), rfc1902.Integer32()
        ).setMaxAccess("not-accessible")
        for columnName, (number, kind) in columns.items():
            symbols[columnName] = MibTableColumn(
                entryOid + (number,), _syntaxFor(kind, rfc1902)
            ).setMaxAccess("read-only")
    symbols["applNotifyAuthFailures"] = MibScalar(
        NOTIFY_AUTH_FAILURES, rfc1902.Gauge32()
    ).setMaxAccess("accessible-for-notify")
    symbols["applNotifyInterval"] = MibScalar(
        NOTIFY_INTERVAL, rfc1902.Integer32()
    ).setMaxAccess("accessible-for-notify")
    mibBuilder.export_symbols(MODULE, **symbols)
    return symbols
