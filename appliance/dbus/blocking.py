"""
A small blocking D-Bus client for C{appliancectl}: one connection, method
calls and their replies, nothing else.

appliancectl is a synchronous program and must not run a reactor (nor
import C{txdbus.client}, which installs one), so this speaks the D-Bus wire
protocol itself over a plain socket (D-Bus specification, "Authentication
Protocol" and "Message Protocol"), with txdbus's marshalling
(C{txdbus.message}) for the messages.
"""

import binascii
import os
import socket
import struct

from txdbus import message

from appliance.dbus import busAddress

_HEADER = 16
_MAX_MESSAGE = 2 ** 27
_METHOD_RETURN, _ERROR = 2, 3


class BusUnreachable(Exception):
    """
    No connection to the bus: it is not there, refused us, or did not
    answer in time.
    """


class RemoteError(Exception):
    """
    A method call was answered with a D-Bus error.

    @ivar name: the error name, e.g. C{org.freedesktop.DBus.Error.ServiceUnknown}.
    @ivar message: the error message.
    """

    def __init__(self, name, message):
        Exception.__init__(self, "%s: %s" % (name, message) if message else name)
        self.name = name
        self.message = message


def _socketFor(address, timeout):
    """
    A connected socket for the first usable entry of a D-Bus address
    (C{unix:path=...} or C{unix:abstract=...}; several are separated by
    C{;}).
    """
    problems = []
    for entry in address.split(";"):
        kind, _, rest = entry.partition(":")
        options = dict(
            pair.partition("=")[::2] for pair in rest.split(",") if "=" in pair
        )
        if kind != "unix" or not ("path" in options or "abstract" in options):
            problems.append("%s: appliancectl speaks only unix:path= and unix:abstract=" % (entry,))
            continue
        path = options.get("path") or "\0" + options["abstract"]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            problems.append("%s: %s" % (entry, e.strerror or e))
            continue
        return sock
    raise BusUnreachable("; ".join(problems) or "no address")


class BlockingConnection:
    """
    A connection to a message bus, authenticated as this process's user
    (C{EXTERNAL}) and registered with C{Hello}.

    @param bus: C{system}, C{session} or an address.
    @param timeout: seconds to wait for any one answer.
    @raise BusUnreachable: if there is no usable bus.
    """

    def __init__(self, bus, timeout=5.0):
        address = busAddress(bus)
        if address is None:
            raise BusUnreachable("DBUS_SESSION_BUS_ADDRESS is not set")
        self._socket = _socketFor(address, timeout)
        self._buffer = b""
        try:
            self._authenticate()
            self.uniqueName = self.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"
            )[0]
        except (OSError, RemoteError) as e:
            self.close()
            raise BusUnreachable("the bus did not let us in: %s" % (e,))
        except BusUnreachable:
            self.close()
            raise

    def _fill(self):
        try:
            chunk = self._socket.recv(65536)
        except socket.timeout:
            raise BusUnreachable("no answer from the bus in time")
        except OSError as e:
            raise BusUnreachable("connection to the bus failed: %s" % (e,))
        if not chunk:
            raise BusUnreachable("the bus closed the connection")
        self._buffer += chunk

    def _receive(self, count):
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _line(self):
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > 4096:
                raise BusUnreachable("the bus sent an overlong authentication line")
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _authenticate(self):
        uid = binascii.hexlify(str(os.getuid()).encode("ascii"))
        self._socket.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        reply = self._line()
        if not reply.startswith(b"OK "):
            raise BusUnreachable(
                "the bus refused authentication: %s" % (reply.decode("ascii", "replace"),)
            )
        self._socket.sendall(b"BEGIN\r\n")

    def _message(self):
        head = self._receive(_HEADER)
        endian = "<" if head[:1] == b"l" else ">"
        bodyLength = struct.unpack(endian + "I", head[4:8])[0]
        fieldsLength = struct.unpack(endian + "I", head[12:16])[0]
        headerLength = _HEADER + fieldsLength
        total = headerLength + (-headerLength % 8) + bodyLength
        if total > _MAX_MESSAGE:
            raise BusUnreachable("the bus sent an oversized message")
        return message.parseMessage(head + self._receive(total - _HEADER), [])

    def call(self, destination, path, interface, member, signature=None, body=None):
        """
        Call a method and wait for its reply.

        @return: the reply's body, a list.
        @raise RemoteError: when the answer is a D-Bus error.
        @raise BusUnreachable: when there is no answer.
        """
        request = message.MethodCallMessage(
            path, member, interface=interface, destination=destination,
            signature=signature, body=body,
        )
        try:
            self._socket.sendall(request.rawMessage)
        except OSError as e:
            raise BusUnreachable("cannot write to the bus: %s" % (e,))
        while True:
            reply = self._message()
            if getattr(reply, "reply_serial", None) != request.serial:
                continue  # a signal such as NameAcquired, or a stale reply
            if reply._messageType == _ERROR:
                text = reply.body[0] if reply.body else ""
                raise RemoteError(reply.error_name, text)
            return list(reply.body or [])

    def close(self):
        try:
            self._socket.close()
        except OSError:
            pass
