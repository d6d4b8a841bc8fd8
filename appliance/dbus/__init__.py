"""
The appliance's D-Bus management interface (docs/dbus.md).

The bus name, object paths, interfaces and error names below are a
contract with operators' scripts: C{busctl}, C{gdbus} and C{appliancectl
status} use them.

Nothing in this package imports C{txdbus.client} at module level: it
installs the global reactor on import, which would break C{twistd
--reactor=asyncio}. L{appliance.dbus.service} imports it when the service
starts.
"""

#: The well-known name the appliance owns on its bus.
BUS_NAME = "org.appliance.Appliance1"

#: The appliance as a whole: Version, Services, Uptime, Reload.
APPLIANCE_PATH = "/org/appliance/Appliance1"
APPLIANCE_INTERFACE = "org.appliance.Appliance1"

#: The SIP registrar's bindings: ListBindings, Unregister.
REGISTRAR_PATH = "/org/appliance/Appliance1/Registrar"
REGISTRAR_INTERFACE = "org.appliance.Appliance1.Registrar"

#: The conference rooms: ListRooms, ListParticipants, Invite, Mute, Kick.
CONFERENCE_PATH = "/org/appliance/Appliance1/Conference"
CONFERENCE_INTERFACE = "org.appliance.Appliance1.Conference"

#: Errors of our own; the standard ones (InvalidArgs, UnknownProperty, ...)
#: keep their org.freedesktop.DBus.Error names.
ERROR_PREFIX = "org.appliance.Appliance1.Error."
NOT_SUPPORTED = ERROR_PREFIX + "NotSupported"
INVALID_CONFIG = ERROR_PREFIX + "InvalidConfig"
FAILED = ERROR_PREFIX + "Failed"
NO_SUCH_PARTICIPANT = ERROR_PREFIX + "NoSuchParticipant"

#: The state a service reports when it is up.
RUNNING = "running"

#: Where txdbus (and libdbus) look for the system bus when
#: DBUS_SYSTEM_BUS_ADDRESS is not set.
SYSTEM_BUS_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"


def busAddress(bus, environ=None):
    """
    The address behind a C{[dbus] bus} setting: C{system} and C{session}
    as libdbus resolves them (from C{DBUS_SYSTEM_BUS_ADDRESS} /
    C{DBUS_SESSION_BUS_ADDRESS}), anything else as given.

    @return: the address, or C{None} for a session bus without
        C{DBUS_SESSION_BUS_ADDRESS}.
    """
    import os

    environ = os.environ if environ is None else environ
    if bus == "system":
        return environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
    if bus == "session":
        return environ.get("DBUS_SESSION_BUS_ADDRESS")
    return bus


def describeBus(bus, environ=None):
    """
    A C{[dbus] bus} setting for messages: C{"the system bus
    (unix:path=...)"}, C{"the bus at unix:path=..."}.
    """
    if bus in ("system", "session"):
        address = busAddress(bus, environ)
        return "the %s bus (%s)" % (bus, address or "DBUS_SESSION_BUS_ADDRESS is not set")
    return "the bus at %s" % (bus,)
