"""
SIP dialogs (RFC 3261 section 12): the state two user agents share for the
length of a call, and the requests sent inside it.

Pure code on top of L{appliance.sip.message}: a L{Dialog} is made from the
request that created it and the response that established it, builds the
requests its owner sends (RFC 3261 section 12.2.1.1), and checks the ones
it receives (section 12.2.2).  Sending, timers and transactions belong to
L{appliance.sip.useragent}.
"""

import attrs

from appliance.randomness import tokenHex
from appliance.sip.message import URI, Address, Headers, ParseError, Request
from appliance.sip.transaction import newBranch

EARLY, CONFIRMED, TERMINATED = "early", "confirmed", "terminated"

#: Methods that refresh the remote target (RFC 3261 section 12.2, RFC 3311).
TARGET_REFRESH = frozenset(("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"))


class DialogError(ParseError):
    """
    A request or response that cannot create or continue a dialog; its
    C{status} is what a UAS answers (400, 481 or 500).
    """


def newCallId(host):
    """
    A globally unique Call-ID (RFC 3261 section 8.1.1.4).
    """
    return "%s@%s" % (tokenHex(12), host)


def _contactOf(message):
    contacts = message.contacts()
    if len(contacts) != 1 or contacts[0].isWildcard or not isinstance(contacts[0].uri, URI):
        raise DialogError("a dialog needs exactly one SIP Contact", 400)
    return contacts[0].uri


@attrs.define
class Dialog:
    """
    The dialog state of RFC 3261 section 12: identifiers, sequence numbers,
    the local and remote URIs, the remote target and the route set.

    C{localURI} and C{remoteURI} keep the From / To header values as they
    were (display name and parameters, without the tag); C{routeSet} holds
    Route header values, first hop first.
    """

    callId: str
    localTag: str
    remoteTag: str | None
    localURI: str
    remoteURI: str
    localSeq: int
    remoteSeq: int | None
    remoteTarget: URI
    routeSet: list
    localContact: str
    secure: bool = False
    state: str = EARLY
    isCaller: bool = False

    @property
    def id(self):
        """
        C{(Call-ID, local tag, remote tag)}, the dialog ID (RFC 3261 section 12).
        """
        return (self.callId, self.localTag, self.remoteTag)

    @classmethod
    def forServer(cls, request, localTag, localContact):
        """
        The dialog a UAS creates when it answers C{request} with a 101-299
        carrying C{localTag} (RFC 3261 section 12.1.1).

        @raise DialogError: no usable Contact, From tag or CSeq.
        """
        remoteSeq, _ = request.cseq()
        fromAddress = request.fromAddress()
        return cls(
            callId=request.callId,
            localTag=localTag,
            remoteTag=fromAddress.tag,
            localURI=_withoutTag(request.headers.get("To")),
            remoteURI=_withoutTag(request.headers.get("From")),
            localSeq=0,
            remoteSeq=remoteSeq,
            remoteTarget=_contactOf(request),
            routeSet=list(request.headers.getAll("Record-Route")),
            localContact=localContact,
            secure=isinstance(request.uri, URI) and request.uri.scheme == "sips",
            isCaller=False,
        )

    @classmethod
    def forClient(cls, request, response):
        """
        The dialog a UAC creates from a 101-299 response with a To tag to
        its C{request} (RFC 3261 section 12.1.2): the route set is the
        Record-Route of the response, reversed.

        @raise DialogError: no To tag or no usable Contact.
        """
        remoteTag = response.toAddress().tag
        if remoteTag is None:
            raise DialogError("response without a To tag", 400)
        localSeq, _ = request.cseq()
        return cls(
            callId=request.callId,
            localTag=request.fromAddress().tag,
            remoteTag=remoteTag,
            localURI=_withoutTag(request.headers.get("From")),
            remoteURI=_withoutTag(request.headers.get("To")),
            localSeq=localSeq,
            remoteSeq=None,
            remoteTarget=_contactOf(response),
            routeSet=list(reversed(response.headers.getAll("Record-Route"))),
            localContact=request.headers.get("Contact"),
            secure=isinstance(request.uri, URI) and request.uri.scheme == "sips",
            state=CONFIRMED if 200 <= response.code < 300 else EARLY,
            isCaller=True,
        )

    def confirm(self, response=None):
        """
        Move an early dialog to confirmed; for a UAC, with the 2xx whose
        Record-Route and Contact replace those of the provisional response
        (RFC 3261 section 12.1.2).
        """
        if response is not None and self.isCaller:
            self.routeSet = list(reversed(response.headers.getAll("Record-Route")))
            self.remoteTarget = _contactOf(response)
        self.state = CONFIRMED

    def terminate(self):
        self.state = TERMINATED

    def matches(self, message, incoming=True):
        """
        Whether an in-dialog C{message} belongs to this dialog (RFC 3261
        section 12.2.2): same Call-ID, and tags that correspond.
        """
        try:
            fromTag = message.fromAddress().tag
            toTag = message.toAddress().tag
        except ParseError:
            return False
        if message.callId != self.callId:
            return False
        if incoming:
            return toTag == self.localTag and fromTag == self.remoteTag
        return fromTag == self.localTag and toTag == self.remoteTag

    def receiveRequest(self, request):
        """
        Check and account for a request received in the dialog (RFC 3261
        section 12.2.2): a CSeq lower than the last one is refused with 500;
        a target refresh request updates the remote target.

        @raise DialogError: with the status to answer.
        """
        number, method = request.cseq()
        if method != "ACK" and method != "CANCEL":
            if self.remoteSeq is not None and number < self.remoteSeq:
                raise DialogError("CSeq out of order", 500)
            self.remoteSeq = number
        if method in TARGET_REFRESH and request.headers.get("Contact") is not None:
            self.remoteTarget = _contactOf(request)

    def refreshTarget(self, response):
        """
        A 2xx to a target refresh request we sent updates the remote target
        (RFC 3261 section 12.2.1.2).
        """
        if response.headers.get("Contact") is not None:
            self.remoteTarget = _contactOf(response)

    def createRequest(self, method, body=b"", contentType=None, headers=(), cseq=None):
        """
        Build a request inside the dialog (RFC 3261 section 12.2.1.1), with a
        placeholder Via (the transport fills in the sent-by) carrying a new
        branch.  The CSeq grows by one, except for ACK and CANCEL, which give
        the number they belong to in C{cseq}.

        The Request-URI and Route follow the route set: to the remote
        target with the route set as Route when the first hop is a loose
        router; to the first hop with the remote target appended when it is
        a strict router.
        """
        if cseq is None:
            self.localSeq += 1
            cseq = self.localSeq
        uri, routes = self.requestTarget()
        request = Request(method, uri, Headers())
        add = request.headers.add
        add("Via", "SIP/2.0/UDP 0.0.0.0;branch=%s" % (newBranch(),))
        add("Max-Forwards", "70")
        for route in routes:
            add("Route", route)
        add("From", "%s;tag=%s" % (self.localURI, self.localTag))
        to = self.remoteURI
        if self.remoteTag is not None:
            to = "%s;tag=%s" % (to, self.remoteTag)
        add("To", to)
        add("Call-ID", self.callId)
        add("CSeq", "%d %s" % (cseq, method))
        if method not in ("ACK", "CANCEL", "BYE"):
            add("Contact", self.localContact)
        for name, value in headers:
            add(name, value)
        if body:
            add("Content-Type", contentType or "application/sdp")
        request.body = body
        return request

    def requestTarget(self):
        """
        C{(Request-URI, Route values)} for the next request (RFC 3261
        section 12.2.1.1).
        """
        if not self.routeSet:
            return self.remoteTarget, []
        first = Address.parse(self.routeSet[0]).uri
        if isinstance(first, URI) and first.hasParam("lr"):
            return self.remoteTarget, list(self.routeSet)
        return first, list(self.routeSet[1:]) + ["<%s>" % (self.remoteTarget,)]

    def nextHop(self):
        """
        The URI to resolve for sending (RFC 3261 section 8.1.2): the first
        Route, or the remote target.
        """
        if self.routeSet:
            return Address.parse(self.routeSet[0]).uri
        return self.remoteTarget


def _withoutTag(value):
    """
    A From / To value without its tag parameter (the dialog adds its own).
    """
    address = Address.parse(value)
    if address.tag is None:
        return value
    params = [(name, v) for name, v in address.params if name != "tag"]
    return str(attrs.evolve(address, params=params))
