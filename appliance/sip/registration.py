"""
A registration kept fresh (RFC 3261 section 10.2): the client a user agent
of the appliance uses to bind its contact to an address of record at a
registrar (the voicemail service registers a contact for every mailbox).

L{Registration} sends REGISTER with the contact and the wanted expiry,
answers the digest challenge, reads the expiry the registrar granted,
refreshes before it runs out, follows 423 (Min-Expires), retries after
failures with a growing delay, and unregisters (Expires: 0) when stopped.
"""

from twisted.internet.defer import succeed
from twisted.logger import Logger

from appliance import logs
from appliance.sip.dialog import newCallId
from appliance.sip.dispatcher import newTag
from appliance.sip.message import URI, Address, ParseError
from appliance.sip.uac import newRequest

_log = Logger(observer=logs.observer)

#: Seconds before the retries after a failure: doubling from the first to the last.
RETRY_FIRST, RETRY_LAST = 5, 300


def grantedExpiry(response, contact, default):
    """
    The expiry the registrar granted our C{contact} (RFC 3261 section
    10.2.4): its Contact's C{expires} parameter, else the Expires header,
    else C{default}.
    """
    ours = Address.parse(contact).uri
    try:
        contacts = response.contacts()
    except ParseError:
        contacts = []
    for address in contacts:
        if isinstance(address.uri, URI) and address.uri.host == ours.host \
                and address.uri.port == ours.port and address.uri.user == ours.user:
            value = address.param("expires")
            if value is not None and value.isdigit():
                return int(value)
    value = response.headers.get("Expires")
    if value is not None and value.strip().isdigit():
        return int(value.strip())
    return default


class Registration:
    """
    One binding of C{contact} to C{aor}, refreshed until L{stop}.

    @param agent: the L{appliance.sip.useragent.UserAgent} sending it.
    @param aor: the address of record, C{sip:user@domain}.
    @param contact: our Contact value, C{<sip:...>}.
    @param credentials: C{(username, password)} for the challenge.
    @param registrar: the Request-URI (default: the AOR's domain).
    @param route: an outbound proxy URI, or C{None}.
    @ivar registered: whether the binding is in place now.
    @ivar expires: the expiry granted last.
    """

    def __init__(self, agent, aor, contact, credentials=None, expires=3600, registrar=None, route=None,
                 onChange=None):
        self._agent = agent
        self._clock = agent.clock
        self.aor = aor
        self.contact = contact
        self._credentials = credentials
        self._wanted = expires
        uri = URI.parse(aor)
        self._registrar = registrar or "sip:%s" % (uri.host,)
        self._route = route
        self._onChange = onChange
        self._callId = newCallId(uri.host)
        self._tag = newTag()
        self._cseq = 0
        self._timer = None
        self._retry = RETRY_FIRST
        self._running = False
        self.registered = False
        self.expires = None
        self.lastStatus = None

    def start(self):
        """
        Register now and keep the binding fresh.
        """
        self._running = True
        self._send(self._wanted)

    def _request(self, expires):
        self._cseq += 1
        return newRequest(
            "REGISTER", self._registrar, self.aor, self.aor, self.contact, self._route,
            callId=self._callId, cseq=self._cseq, fromTag=self._tag,
            headers=(("Expires", str(expires)),),
        )

    def _send(self, expires):
        self._cancelTimer()
        request = self._request(expires)
        d = self._agent.send(request, credentials=self._credentials)
        d.addCallback(self._answered, request, expires)
        return d

    def _answered(self, response, request, expires):
        try:
            # A challenged REGISTER went again with the next CSeq.
            number, _ = response.cseq()
        except ParseError:
            number = 0  # a local 408 / 503
        self._cseq = max(self._cseq, number)
        self.lastStatus = response.code
        if expires == 0:
            self._setRegistered(False)
            return response
        if not self._running:
            return response
        if 200 <= response.code < 300:
            self.expires = grantedExpiry(response, self.contact, expires)
            self._retry = RETRY_FIRST
            self._setRegistered(self.expires > 0)
            self._schedule(self._refreshDelay(self.expires))
        elif response.code == 423 and response.headers.get("Min-Expires", "").strip().isdigit():
            # RFC 3261 section 10.2.8: ask again for at least Min-Expires.
            self._wanted = int(response.headers.get("Min-Expires").strip())
            self._send(self._wanted)
        else:
            _log.info("REGISTER {aor}: {code} {reason}; again in {delay} s", aor=self.aor,
                      code=response.code, reason=response.reason, delay=self._retry)
            self._setRegistered(False)
            self._schedule(self._retry)
            self._retry = min(2 * self._retry, RETRY_LAST)
        return response

    @staticmethod
    def _refreshDelay(expires):
        """
        Refresh well before the end: halfway for short bindings, 30 s
        before for long ones.
        """
        return max(1, min(expires / 2, expires - 30))

    def _schedule(self, delay):
        self._cancelTimer()
        self._timer = self._clock.callLater(delay, self._refresh)

    def _refresh(self):
        self._timer = None
        if self._running:
            self._send(self._wanted)

    def _cancelTimer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _setRegistered(self, registered):
        changed = registered != self.registered
        self.registered = registered
        if changed and self._onChange is not None:
            self._onChange(self)

    def stop(self, unregister=True):
        """
        Stop refreshing and, unless told not to, remove the binding
        (Expires: 0); the L{Deferred} fires with the registrar's answer.
        """
        self._running = False
        self._cancelTimer()
        if not self.registered or not unregister:
            return succeed(None)
        return self._send(0)
