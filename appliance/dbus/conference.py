"""
C{/org/appliance/Appliance1/Conference}: the conference rooms on D-Bus, for
operators (what Asterisk's C{confbridge list / kick / mute} commands do) and
for scripts that bring people together by third-party call control.
"""

from twisted.logger import Logger
from txdbus import interface

from appliance import logs
from appliance.dbus import CONFERENCE_INTERFACE, CONFERENCE_PATH, NO_SUCH_PARTICIPANT
from appliance.dbus.objects import DBusError, InvalidArgs, PropertiesObject

_log = Logger(observer=logs.observer)


class NoSuchParticipant(DBusError):
    """
    No room of that name, or no participant with that Call-ID in it.
    """

    dbusErrorName = NO_SUCH_PARTICIPANT


class ConferenceObject(PropertiesObject):
    """
    The rooms of the L{appliance.conference.service.ConferenceService}.
    """

    dbusInterfaces = [
        interface.DBusInterface(
            CONFERENCE_INTERFACE,
            interface.Method("ListRooms", "", "a(su)"),
            interface.Method("ListParticipants", "s", "a(ssb)"),
            interface.Method("Invite", "ss", "s"),
            interface.Method("Connect", "ss", "s"),
            interface.Method("Mute", "ssb", ""),
            interface.Method("Kick", "ss", ""),
            interface.Property("RoomCount", "u"),
            interface.Property("ParticipantCount", "u"),
        )
    ]

    def __init__(self, conference):
        PropertiesObject.__init__(self, CONFERENCE_PATH)
        self._conference = conference

    def property_RoomCount(self):
        return len(self._conference.rooms)

    def property_ParticipantCount(self):
        return sum(len(room) for room in self._conference.rooms.values())

    def dbus_ListRooms(self):
        """
        C{(room, participants)} for every open room, by name.
        """
        return sorted((name, len(room)) for name, room in self._conference.rooms.items())

    def dbus_ListParticipants(self, name):
        """
        C{(Call-ID, the participant's address, muted)} in joining order.
        """
        room = self._room(name)
        return [(call.callId, call.dialog.remoteURI, muted) for call, muted in room.participants()]

    def dbus_Invite(self, name, uri, dbusCaller=None):
        """
        Call C{uri} into room C{name} (opened if need be); return the
        Call-ID of the invitation at once, before it is answered.
        """
        from appliance.media.endpoint import NoPortsAvailable

        target = _sipURI(uri)
        try:
            call = self._conference.invite(name, target)
        except ValueError as e:
            raise InvalidArgs(str(e))
        except NoPortsAvailable as e:
            raise DBusError(str(e))
        call.result.addErrback(lambda failure: None)
        _log.info("D-Bus: {caller} invites {uri} into room {room}", caller=dbusCaller, uri=uri, room=name)
        return call.callId

    def dbus_Connect(self, a, b, dbusCaller=None):
        """
        Click to dial: call C{a}, then C{b}, and connect them (RFC 3725 flow
        I); return the Call-ID of the call to C{a} at once.
        """
        first, second = _sipURI(a), _sipURI(b)
        callA, result = self._conference.connect(first, second)
        result.addErrback(lambda failure: None)
        _log.info("D-Bus: {caller} connects {a} and {b}", caller=dbusCaller, a=a, b=b)
        return callA.callId

    def dbus_Mute(self, name, callId, muted, dbusCaller=None):
        call, participant = self._participant(name, callId)
        participant.muted = bool(muted)
        _log.info("D-Bus: {caller} {action} {callId} in room {room}", caller=dbusCaller,
                  action="mutes" if muted else "unmutes", callId=callId, room=name)

    def dbus_Kick(self, name, callId, dbusCaller=None):
        call, participant = self._participant(name, callId)
        _log.info("D-Bus: {caller} hangs up {callId} in room {room}", caller=dbusCaller, callId=callId,
                  room=name)
        call.hangup()

    def _room(self, name):
        room = self._conference.rooms.get(name)
        if room is None:
            raise NoSuchParticipant("no room %r" % (name,))
        return room

    def _participant(self, name, callId):
        found = self._room(name).find(callId)
        if found is None:
            raise NoSuchParticipant("no participant %r in room %r" % (callId, name))
        return found


def _sipURI(text):
    from appliance.sip.message import URI, ParseError

    try:
        uri = URI.parse(text.strip())
    except ParseError as e:
        raise InvalidArgs("%r is not a SIP URI: %s" % (text, e.reason))
    if not isinstance(uri, URI) or uri.scheme not in ("sip", "sips"):
        raise InvalidArgs("%r is not a sip or sips URI" % (text,))
    return uri
