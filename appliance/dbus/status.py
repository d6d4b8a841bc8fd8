"""
C{appliancectl status}: each service's state, read over D-Bus from the
running appliance.

Exit status: 0 when every configured service is running, 1 when one is
not (or is missing), 3 when the appliance cannot be reached (no bus, or
nobody owns C{org.appliance.Appliance1} on it), as LSB init scripts' status
actions do.
"""

from appliance.dbus import APPLIANCE_INTERFACE, APPLIANCE_PATH, BUS_NAME, RUNNING, describeBus
from appliance.dbus.blocking import BlockingConnection, BusUnreachable, RemoteError

ALL_RUNNING = 0
SERVICE_DOWN = 1
UNREACHABLE = 3

_NO_OWNER = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
)


def readStatus(bus, timeout=5.0):
    """
    The appliance's C{org.appliance.Appliance1} properties.

    @return: a C{dict} with C{Version}, C{Services}, C{Uptime}.
    @raise BusUnreachable: or L{RemoteError}.
    """
    connection = BlockingConnection(bus, timeout)
    try:
        return connection.call(
            BUS_NAME, APPLIANCE_PATH, "org.freedesktop.DBus.Properties", "GetAll",
            "s", [APPLIANCE_INTERFACE],
        )[0]
    finally:
        connection.close()


def formatDuration(seconds):
    """
    C{3d 04:05:06} or C{04:05:06}.
    """
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    text = "%02d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)
    return "%dd %s" % (days, text) if days else text


def report(properties, expected, stdout, stderr):
    """
    Print the states and decide the exit status.

    @param properties: what L{readStatus} returned.
    @param expected: the service names the configuration enables; one the
        appliance does not list counts as down.
    """
    services = dict(properties.get("Services", {}))
    stdout.write(
        "appliance %s, up %s\n"
        % (properties.get("Version", "?"), formatDuration(properties.get("Uptime", 0)))
    )
    rows = list(services.items())
    rows += [(name, "not running") for name in expected if name not in services]
    width = max([len(name) for name, state in rows] + [7])
    for name, state in rows:
        stdout.write("%-*s  %s\n" % (width, name, state))
    down = ["%s (%s)" % (name, state) for name, state in rows if state != RUNNING]
    if down:
        stderr.write("appliancectl: not running: %s\n" % (", ".join(down),))
        return SERVICE_DOWN
    return ALL_RUNNING


def status(config, stdout, stderr, bus=None, timeout=5.0):
    """
    Run C{appliancectl status}; return its exit status.

    @param bus: overrides C{[dbus] bus}.
    """
    bus = bus or config.dbus.bus
    where = describeBus(bus)
    try:
        properties = readStatus(bus, timeout)
    except BusUnreachable as e:
        stderr.write(
            "appliancectl: cannot reach the appliance: no connection to %s: %s\n" % (where, e)
        )
        return UNREACHABLE
    except RemoteError as e:
        if e.name in _NO_OWNER:
            stderr.write(
                "appliancectl: cannot reach the appliance: %s is not on %s "
                "(is the appliance running, with [dbus] bus = %s?)\n" % (BUS_NAME, where, bus)
            )
        elif e.name == "org.freedesktop.DBus.Error.AccessDenied":
            stderr.write(
                "appliancectl: cannot reach the appliance: the bus policy does not let "
                "this user read its status: %s\n" % (e.message,)
            )
        else:
            stderr.write("appliancectl: cannot reach the appliance: %s\n" % (e,))
        return UNREACHABLE
    return report(properties, config.appliance.services, stdout, stderr)
