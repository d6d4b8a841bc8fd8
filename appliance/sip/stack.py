"""
Binding SIP transports: the one place that turns a configured listen address
(C{udp:}, C{tcp:}, C{tls:}) into a listening port and its
L{appliance.interfaces.ISIPTransport}, for the SIP server and for the
appliance's own user agents alike.
"""

import attrs
from twisted.internet import error as netError
from twisted.internet import ssl

from appliance.sip.transport import StreamTransport, UDPTransport


class ListenError(Exception):
    """
    A configured address could not be bound; the message names it.
    """


@attrs.frozen
class TransportSettings:
    """
    What every transport of a stack shares: the largest message, the idle
    timeout and connection cap of stream transports.
    """

    maxMessageSize: int = 65535
    tcpIdleTimeout: float = 300.0
    maxConnections: int = 2048


def clientTLS(hostname):
    """
    TLS client options checking the peer's certificate against C{hostname}.
    """
    return ssl.optionsForClientTLS(hostname)


def listenSIP(reactor, address, controller, settings, tlsOptions=None, section="sip"):
    """
    Bind one listen address for C{controller} (which receives what the
    transport frames).

    @return: C{(port, transport)}.
    @raise ListenError: naming the section and address that failed.
    """
    interface = address.interface
    try:
        if address.kind == "udp":
            transport = UDPTransport(controller, settings.maxMessageSize)
            port = reactor.listenUDP(
                address.port, transport, interface=interface,
                # One byte more than allowed, so that an oversized datagram
                # is seen as such (413), not cut short.
                maxPacketSize=settings.maxMessageSize + 1,
            )
        else:
            transport = StreamTransport(
                controller, reactor, name=address.kind.upper(),
                maxSize=settings.maxMessageSize,
                idleTimeout=settings.tcpIdleTimeout,
                maxConnections=settings.maxConnections,
                clientTLS=clientTLS,
            )
            if address.kind == "tls":
                if tlsOptions is None:
                    raise ListenError("[%s] listen: %s needs a TLS certificate" % (section, address))
                port = reactor.listenSSL(address.port, transport, tlsOptions(), interface=interface)
            else:
                port = reactor.listenTCP(address.port, transport, interface=interface)
            transport.listening(port)
    except netError.CannotListenError as e:
        reason = e.socketError.strerror if hasattr(e.socketError, "strerror") else e.socketError
        raise ListenError("[%s] listen: cannot listen on %s: %s" % (section, address, reason))
    return port, transport
