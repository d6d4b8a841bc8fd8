"""
Third-party call control (RFC 3725): the appliance connects two parties it
calls itself, as click-to-dial does and as the PSAP brings in a call taker.

L{connect} follows flow I (RFC 3725 section 4.1, the recommended one): an
INVITE without a session description to A, whose 200 carries A's offer;
an INVITE with that offer to B, whose 200 carries the answer; B's ACK, then
A's ACK with B's answer.  Media flows between A and B directly.  When
either hangs up, the other gets a BYE (section 4.4).  If B does not answer,
A's call is acknowledged with an answer refusing every stream, then hung
up.
"""

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from appliance import logs
from appliance.sip import sdp

_log = Logger(observer=logs.observer)


def refusal(offer):
    """
    An answer refusing every stream of C{offer} (RFC 3264 section 6: port
    0), for the ACK of a call that will be hung up at once.
    """
    try:
        parsed = sdp.parseSDP(offer)
    except sdp.SDPError:
        return b""
    return sdp.answer(parsed, "0.0.0.0", 0, supportedCodecs=()).toBytes()


def connect(agent, a, b, fromA=None, fromB=None, route=None, credentials=None):
    """
    Call C{a}, then C{b}, and connect them (RFC 3725 flow I).

    @param fromA: the From of the call to C{a} (default C{b}: A sees whom
        it is being connected to); C{fromB} likewise.
    @return: C{(callA, result)}: the call to C{a} at once, and a
        L{Deferred} firing with C{(callA, callB)} once both are connected,
        or failing with the L{appliance.sip.uac.CallFailed} of the call
        that failed.
    """
    callA = agent.invite(a, str(fromA or b), b"", credentials, route)
    result = Deferred()

    def answeredA(callA):
        offer = callA.remoteBody
        if not offer:
            from appliance.sip.uac import CallFailed

            callA.acknowledge(b"")
            callA.hangup()
            result.errback(CallFailed(488, "no offer from %s" % (a,)))
            return
        callB = agent.invite(b, str(fromB or a), offer, credentials, route)

        def answeredB(callB):
            callA.acknowledge(callB.remoteBody or b"")
            _link(callA, callB)
            _log.info("connected {a} and {b}", a=str(a), b=str(b))
            result.callback((callA, callB))

        def failedB(failure):
            callA.acknowledge(refusal(offer))
            callA.hangup()
            result.errback(failure)

        callB.result.addCallbacks(answeredB, failedB)

    callA.result.addCallbacks(answeredA, result.errback)
    return callA, result


def _link(callA, callB):
    """
    When one call ends, hang up the other (RFC 3725 section 4.4).
    """
    for one, other in ((callA, callB), (callB, callA)):
        previous = one.onEnded

        def ended(reason, other=other, previous=previous):
            if previous is not None:
                previous(reason)
            other.hangup()

        one.onEnded = ended
