"""
Conference rooms: every call to C{<prefix><room>@<domain>} joins the room
of that name, created on the first call and closed with the last.

Each participant hears everybody else (L{appliance.media.mixer}); a key
press of the mute digit (RFC 4733) toggles whether the others hear them.
A room can record its whole mix into the media store, where any RTSP player
can play it (C{rtsp://host/conference/<room>/<id>.au}).
"""

import random
import time

from twisted.logger import Logger

from appliance import logs
from appliance.media.dtmf import DTMFError, parseDTMFBody
from appliance.media.mixer import ConferenceMixer
from appliance.media.rtp import SAMPLES_PER_PACKET

_log = Logger(observer=logs.observer)


class Room:
    """
    One conference room.

    @param name: the room name (the part of the user after the prefix).
    @param recorder: a writer with C{write(bytes)} and C{close()} taking
        mu-law, or C{None}.
    """

    def __init__(self, name, reactor, stats, muteDigit="*", recorder=None, onEmpty=None):
        self.name = name
        self._stats = stats
        self._muteDigit = muteDigit
        self.mixer = ConferenceMixer(reactor)
        self._members = {}
        self._recorder = recorder
        self._onEmpty = onEmpty
        if recorder is not None:
            self.mixer.record(recorder.write)

    def __len__(self):
        return len(self._members)

    def hasCall(self, call):
        """
        Whether C{call} is a participant.
        """
        return any(member[0] is call for member in self._members.values())

    def join(self, call, leg):
        """
        Add an answered call; it leaves the room when it ends.
        """
        key = call.callId, call.dialog.localTag
        state = {"timestamp": random.getrandbits(32), "first": True}

        def send(frame):
            leg.send(frame, state["timestamp"], state["first"])
            state["timestamp"] += SAMPLES_PER_PACKET
            state["first"] = False

        participant = self.mixer.addParticipant(key, leg.encoding, send)
        self._members[key] = (call, leg, participant)
        leg.onAudio = lambda packet: participant.receive(packet.payload)
        leg.onDigit = lambda digit: self._digit(participant, digit)
        call.onInfo = lambda request: self._info(participant, request)

        def reinvite(offer):
            answer = leg.accept(offer)
            participant.encoding = leg.encoding
            return answer

        call.onReinvite = reinvite
        call.onEnded = lambda reason: self.leave(key)
        self._stats.increment("conference.joins")
        _log.info("{callId} joined room {room} ({count} in the room)",
                  callId=call.callId, room=self.name, count=len(self._members))

    def _digit(self, participant, digit):
        self._stats.increment("dtmf.events")
        if digit == self._muteDigit:
            participant.muted = not participant.muted
            _log.info("room {room}: a participant is {state}", room=self.name,
                      state="muted" if participant.muted else "unmuted")

    def _info(self, participant, request):
        """
        A key press sent in an INFO (C{application/dtmf-relay} or
        C{application/dtmf}) instead of RTP.
        """
        try:
            digit = parseDTMFBody(request.headers.get("Content-Type") or "", request.body)
        except DTMFError:
            return 415
        self._digit(participant, digit)
        return 200

    def leave(self, key):
        member = self._members.pop(key, None)
        if member is None:
            return
        call, leg, participant = member
        self.mixer.removeParticipant(key)
        leg.close()
        _log.info("{callId} left room {room}", callId=call.callId, room=self.name)
        if not self._members:
            self.close()
            if self._onEmpty is not None:
                self._onEmpty(self)

    def closeIfEmpty(self):
        """
        Close a room nobody is in (an invitation into a new room failed).
        """
        if not self._members:
            self.close()
            if self._onEmpty is not None:
                self._onEmpty(self)

    def participants(self):
        """
        C{(call, muted)} for every participant, in joining order.
        """
        return [(call, participant.muted) for call, leg, participant in self._members.values()]

    def find(self, callId):
        """
        The participant whose call has C{callId}: C{(call, participant)}, or C{None}.
        """
        for call, leg, participant in self._members.values():
            if call.callId == callId:
                return call, participant
        return None

    def close(self):
        """
        End the mixing (and the recording); the calls are not touched.
        """
        self.mixer.close()
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None


def recordingId(now=time.time):
    """
    A sortable id for a room recording: the UTC time and a random suffix.
    """
    return "%s-%04x" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now())), random.getrandbits(16))
