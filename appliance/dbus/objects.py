"""
The objects the appliance exports on D-Bus, over txdbus.

Properties are read from the running services when a client asks, rather
than copied into txdbus's static property slots, so C{Uptime} or
C{BindingCount} are never stale; errors carry proper D-Bus error names
(the standard C{org.freedesktop.DBus.Error.*} ones where they fit, ours
under C{org.appliance.Appliance1.Error.}) instead of txdbus's
C{org.txdbus.PythonException.*}.

Only C{txdbus.objects}, C{txdbus.interface} and C{txdbus.marshal} are used
here: none of them touches the global reactor.
"""

import secrets

from twisted.logger import Logger
from txdbus import interface, marshal, objects

from appliance import logs
from appliance.dbus import (
    APPLIANCE_INTERFACE,
    APPLIANCE_PATH,
    FAILED,
    INVALID_CONFIG,
    NOT_SUPPORTED,
    REGISTRAR_INTERFACE,
    REGISTRAR_PATH,
)

_log = Logger(observer=logs.observer)

PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"


class DBusError(Exception):
    """
    A failure a D-Bus client receives as the error named C{dbusErrorName},
    with the exception's message as the error message.
    """

    dbusErrorName = FAILED


class NotSupported(DBusError):
    """
    The request cannot be carried out by this appliance.
    """

    dbusErrorName = NOT_SUPPORTED


class InvalidConfig(DBusError):
    """
    The configuration file has errors; nothing was changed.
    """

    dbusErrorName = INVALID_CONFIG


class InvalidArgs(DBusError):
    """
    An argument is malformed.
    """

    dbusErrorName = "org.freedesktop.DBus.Error.InvalidArgs"


class UnknownInterface(DBusError):
    """
    The object has no such interface.
    """

    dbusErrorName = "org.freedesktop.DBus.Error.UnknownInterface"


class UnknownProperty(DBusError):
    """
    The object has no such property.
    """

    dbusErrorName = "org.freedesktop.DBus.Error.UnknownProperty"


class PropertyReadOnly(DBusError):
    """
    Every property of the appliance is read-only.
    """

    dbusErrorName = "org.freedesktop.DBus.Error.PropertyReadOnly"


class _SignedDict(dict):
    dbusSignature = "a{sv}"


class _SignedList(list):
    dbusSignature = "av"


def variant(signature, value):
    """
    Wrap C{value} so that txdbus marshals it as a variant of C{signature}
    (txdbus guesses a variant's type from the Python value otherwise, and
    cannot guess it for an empty container).
    """
    if signature in marshal.variantClassMap:
        return marshal.variantClassMap[signature](value)
    if signature.startswith("a{"):
        wrapped = _SignedDict(value)
    elif signature.startswith("a"):
        wrapped = _SignedList(value)
    else:
        return value
    wrapped.dbusSignature = signature
    return wrapped


class PropertiesObject(objects.DBusObject):
    """
    A D-Bus object whose read-only properties are the results of its
    C{property_<Name>()} methods, read when a client asks
    (C{org.freedesktop.DBus.Properties}, D-Bus specification).
    """

    def _interface(self, name):
        for candidate in self.getInterfaces():
            if candidate.name == name:
                return candidate
        raise UnknownInterface("%s has no interface %s" % (self.getObjectPath(), name))

    def _property(self, interfaceName, name):
        if interfaceName:
            candidates = [self._interface(interfaceName)]
        else:
            candidates = list(self.getInterfaces())
        for candidate in candidates:
            if name in candidate.properties:
                return candidate.properties[name]
        raise UnknownProperty(
            "%s has no property %s%s"
            % (self.getObjectPath(), interfaceName + "." if interfaceName else "", name)
        )

    def readProperty(self, interfaceName, name):
        """
        The current value of a property, wrapped as a variant.

        @raise UnknownInterface: or L{UnknownProperty}.
        """
        prop = self._property(interfaceName, name)
        return variant(prop.sig, getattr(self, "property_" + name)())

    @objects.dbusMethod(PROPERTIES_INTERFACE, "Get")
    def _dbus_PropertyGet(self, interfaceName, propertyName):
        return self.readProperty(interfaceName, propertyName)

    @objects.dbusMethod(PROPERTIES_INTERFACE, "Set")
    def _dbus_PropertySet(self, interfaceName, propertyName, value):
        self._property(interfaceName, propertyName)
        raise PropertyReadOnly("%s is read-only" % (propertyName,))

    @objects.dbusMethod(PROPERTIES_INTERFACE, "GetAll")
    def _dbus_PropertyGetAll(self, interfaceName):
        if interfaceName:
            self._interface(interfaceName)
        values = {}
        for candidate in self.getInterfaces():
            if interfaceName in ("", candidate.name):
                for name, prop in sorted(candidate.properties.items()):
                    values[name] = variant(prop.sig, getattr(self, "property_" + name)())
        return values

    def getAllProperties(self, interfaceName):
        """
        The properties of one interface, for txdbus's
        C{org.freedesktop.DBus.ObjectManager} support (C{GetManagedObjects},
        C{InterfacesAdded}).
        """
        return self._dbus_PropertyGetAll(interfaceName)

    def propertiesChanged(self, interfaceName, *names):
        """
        Emit C{PropertiesChanged} with the current values of C{names}.
        """
        changed = {name: self.readProperty(interfaceName, name) for name in names}
        self.emitSignal(
            "PropertiesChanged", interfaceName, changed, [], interface=PROPERTIES_INTERFACE
        )


class ApplianceObject(PropertiesObject):
    """
    C{/org/appliance/Appliance1}: the appliance as a whole.

    @param version: the appliance's version.
    @param uptime: a callable returning the seconds since the appliance
        started.
    @param services: a callable returning C{(name, state)} pairs, in
        start-up order.
    @param reload: a callable re-reading the configuration and returning
        a list of lines saying what it did, or raising a L{DBusError}.
    @param statistics: C{{service name: IStatsSource}}.
    """

    dbusInterfaces = [
        interface.DBusInterface(
            APPLIANCE_INTERFACE,
            interface.Method("Reload", "", "as"),
            interface.Method("GetStatistics", "s", "a{sx}"),
            interface.Signal("ServiceStateChanged", "ss"),
            interface.Property("Version", "s", emitsOnChange=False),
            interface.Property("Services", "a{ss}"),
            interface.Property("Uptime", "t", emitsOnChange=False),
        )
    ]

    def __init__(self, version, uptime, services, reload, statistics=None):
        PropertiesObject.__init__(self, APPLIANCE_PATH)
        self._version = version
        self._uptime = uptime
        self._services = services
        self._reload = reload
        self._statistics = statistics or {}

    def property_Version(self):
        return self._version

    def property_Services(self):
        return dict(self._services())

    def property_Uptime(self):
        return max(0, int(self._uptime()))

    def dbus_Reload(self, dbusCaller=None):
        _log.info("D-Bus: Reload asked by {caller}", caller=dbusCaller)
        return list(self._reload())

    def dbus_GetStatistics(self, name):
        source = self._statistics.get(name)
        if source is None:
            raise InvalidArgs(
                "no statistics for %r (known: %s)" % (name, ", ".join(sorted(self._statistics)))
            )
        return {
            key: int(value) for key, value in sorted(source.snapshot().items())
            if isinstance(value, (int, float))
        }

    def serviceStateChanged(self, name, state):
        """
        Tell clients that service C{name} is now in C{state}: the
        C{ServiceStateChanged} signal, then C{PropertiesChanged} for
        C{Services}.
        """
        self.emitSignal("ServiceStateChanged", name, state, interface=APPLIANCE_INTERFACE)
        self.propertiesChanged(APPLIANCE_INTERFACE, "Services")


def normalizeAOR(text):
    """
    An address of record as the registrar keys it, C{user@domain} with the
    domain in lower case, from that form or a C{sip:} / C{sips:} URI.

    @raise InvalidArgs: if C{text} is not of that form.
    """
    value = text.strip()
    for scheme in ("sip:", "sips:"):
        if value.lower().startswith(scheme):
            value = value[len(scheme):]
            break
    user, sep, domain = value.rpartition("@")
    if not sep or not user or not domain or any(c in value for c in " \t;<>?:/\"'"):
        raise InvalidArgs("expected an address of record user@domain, not %r" % (text,))
    return "%s@%s" % (user, domain.lower())


def _source(source):
    if not source:
        return ""
    transport, host, port = source
    if ":" in host:
        host = "[%s]" % (host,)
    return "%s:%s:%s" % (transport, host, port)


class RegistrarObject(PropertiesObject):
    """
    C{/org/appliance/Appliance1/Registrar}: the SIP registrar's bindings
    (RFC 3261 section 10), read from and removed through the location
    service.

    @param location: the SIP service's L{ILocationService}; the object
        observes it (C{addObserver}) once L{observe} is called.
    """

    dbusInterfaces = [
        interface.DBusInterface(
            REGISTRAR_INTERFACE,
            interface.Method("ListBindings", "s", "a(sudsss)"),
            interface.Method("ListAddressesOfRecord", "", "as"),
            interface.Method("Unregister", "s", "u"),
            interface.Signal("BindingChanged", "s"),
            interface.Property("BindingCount", "u"),
        )
    ]

    def __init__(self, location):
        PropertiesObject.__init__(self, REGISTRAR_PATH)
        self._location = location

    def observe(self):
        """
        Start emitting C{BindingChanged} for every change of the bindings.
        """
        self._location.addObserver(self.bindingChanged)

    def unobserve(self):
        """
        Stop emitting C{BindingChanged}.
        """
        self._location.removeObserver(self.bindingChanged)

    def bindingChanged(self, aor):
        """
        The bindings of C{aor} changed: the C{BindingChanged} signal, then
        C{PropertiesChanged} for C{BindingCount}.
        """
        self.emitSignal("BindingChanged", aor, interface=REGISTRAR_INTERFACE)
        self.propertiesChanged(REGISTRAR_INTERFACE, "BindingCount")

    def property_BindingCount(self):
        return self._location.count()

    def dbus_ListBindings(self, aor):
        """
        C{(contact, seconds until expiry, q, +sip.instance, source
        "transport:host:port", User-Agent)} for each live binding, highest q
        first; empty strings where a value is unknown.
        """
        return [
            (
                binding.contact, remaining, float(binding.q), binding.instance or "",
                _source(binding.source), binding.userAgent or "",
            )
            for binding, remaining in self._location.bindingsFor(normalizeAOR(aor))
        ]

    def dbus_ListAddressesOfRecord(self):
        return list(self._location.aors())

    def dbus_Unregister(self, aor, dbusCaller=None):
        """
        Remove every binding of C{aor}, as C{Contact: *} would (RFC 3261
        section 10.2.2); return how many there were.
        """
        aor = normalizeAOR(aor)
        callId = "dbus-unregister-%s" % (secrets.token_hex(8),)

        def removed(bindings):
            _log.info(
                "D-Bus: Unregister {aor} by {caller}: {count} binding(s) removed",
                aor=aor, caller=dbusCaller, count=len(bindings),
            )
            return len(bindings)

        def failed(failure):
            _log.error(
                "D-Bus: Unregister {aor} failed: {error}", aor=aor,
                error=failure.getErrorMessage(),
            )
            raise DBusError(
                "cannot remove the bindings of %s: %s" % (aor, failure.getErrorMessage())
            )

        return self._location.removeAll(aor, callId, 0).addCallbacks(removed, failed)
