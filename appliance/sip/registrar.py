"""
The registrar (RFC 3261 section 10.3), with Path (RFC 3327 section 5.3) and
outbound (RFC 5626 section 6).

The dispatcher hands every REGISTER for one of our domains to
L{Registrar.handleRegister}, which answers it through its server
transaction once the location service has stored the change. The steps
follow section 10.3:

  1. the Request-URI must name one of our domains (403 otherwise: this
     registrar forwards nothing);
  2. Require may only name C{path} and C{outbound} (420);
  3. the optional authentication hook challenges or refuses (its status
     and headers are passed through);
  4. the authenticated user must be the address of record (403);
  5. the To URI must be a user of the Request-URI's domain (404), and, with
     no authentication, known to C{userExists} when given (404);
  6. C{Contact: *} only alone and with C{Expires: 0} (400), Call-ID / CSeq
     ordering per binding (500 "Out of Order", see below);
  7. expiry per contact: the C{expires} parameter, else the Expires header,
     else the default; 0 removes; 1 to C{minExpires}-1 gets 423 with
     Min-Expires; above C{maxExpires} is shortened to it;
  8. 200 listing every current binding with C{expires} (and C{q}), a Date
     header (section 20.17), the Path values stored (RFC 3327) and
     C{Require: outbound} when a flow was registered (RFC 5626).

Decisions where the RFCs leave a choice:

  - Out of order (same Call-ID, CSeq not higher; section 10.3 step 6 only
    says the request "fails"): 500 "Out of Order", without Retry-After, as
    Kamailio and OpenSIPS do; the UA's next REGISTER with a higher CSeq
    succeeds.
  - Path without C{Supported: path}: 420 with C{Unsupported: path}, the
    policy RFC 3327 section 5.3 recommends, so the UA learns that a proxy
    added a Path it did not ask for.
  - A failed database write: 500 with Retry-After, nothing changed.
"""

import email.utils
import re

from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.logger import Logger

from appliance import logs
from appliance.sip.dispatcher import newTag
from appliance.sip.location import ContactChange, OutOfOrder, StorageError
from appliance.sip.message import URI, Address, ParseError, makeResponse
from appliance.sip.uri import formatParams, unquoteString

_log = Logger(observer=logs.observer)

#: Option tags the registrar supports (RFC 3261 section 20.37); the
#: dispatcher must not refuse a REGISTER that requires them.
SUPPORTED = ("path", "outbound")

#: Seconds a UA is asked to wait after a failed database write.
RETRY_AFTER = 5

#: RFC 3261 section 25.1 qvalue.
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")

#: RFC 3261 section 20.10: a malformed expires parameter counts as 3600.
_MALFORMED_EXPIRES = 3600

_ABSENT = object()


class _Answer(Exception):
    """
    The response to send: raised to stop processing at a refusal.
    """

    def __init__(self, code, reason=None, headers=()):
        Exception.__init__(self, code, reason)
        self.code = code
        self.reason = reason
        self.headers = list(headers)


def _optionTags(request, name):
    tags = []
    for value in request.headers.getAll(name):
        tags.extend(tag.strip().lower() for tag in value.split(",") if tag.strip())
    return tags


def _seconds(text):
    """
    A delta-seconds value (RFC 3261 section 25.1), or C{None} if malformed;
    huge values become 2**32 (they are shortened anyway).
    """
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > 10:
        return 2 ** 32
    return int(significant or "0")


def _formatQ(q):
    return ("%.3f" % (q,)).rstrip("0").rstrip(".")


def _formatContact(binding, now):
    """
    A Contact value for a 200: the contact, its stored parameters, q when
    not 1 and the seconds left (RFC 3261 section 10.3 step 8).
    """
    text = "<%s>%s" % (binding.contact, formatParams(binding.params))
    if binding.q != 1.0:
        text += ";q=" + _formatQ(binding.q)
    return text + ";expires=%d" % (binding.remaining(now),)


class Registrar:
    """
    Answers REGISTER requests (RFC 3261 section 10.3) from the bindings of
    an L{appliance.interfaces.ILocationService}.

    @param location: the L{ILocationService}.
    @param domains: the domains whose bindings this registrar keeps.
    @param clock: an L{IReactorTime}, for the Date header.
    @param minExpires: shorter registrations get 423 (Interval Too Brief).
    @param maxExpires: longer registrations are shortened to this.
    @param defaultExpires: the expiry when a REGISTER names none.
    @param authenticate: C{None} (no authentication), or
        C{authenticate(request, realm, source)} returning (a L{Deferred}
        firing with) an C{appliance.sip.auth.AuthResult}: C{status} C{None}
        when the request is authenticated as C{user}, otherwise the
        C{status} and C{headers} (C{(name, value)} pairs) to answer with;
        its C{reason} is logged, the UA gets the standard reason phrase.
    @param userExists: C{None}, or C{userExists(aor)} returning (a
        L{Deferred} firing with) whether C{aor} is a user; consulted only
        without C{authenticate}, since authenticating as the address of
        record proves the user exists.
    @param realm: the digest realm; by default the Request-URI's domain.
    @param stats: an L{appliance.stats.Statistics} or C{None}: counters
        C{registrar.accepted}, C{registrar.rejected},
        C{registrar.challenged} and C{registrar.removed}.
    """

    def __init__(self, location, domains, clock, *, minExpires, maxExpires,
                 defaultExpires, authenticate=None, userExists=None,
                 realm=None, stats=None):
        self._location = location
        self._domains = frozenset(domain.lower() for domain in domains)
        self._clock = clock
        self._minExpires = minExpires
        self._maxExpires = maxExpires
        self._defaultExpires = defaultExpires
        self._authenticate = authenticate
        self._userExists = userExists
        self._realm = realm
        self._stats = stats

    def handleRegister(self, request, serverTransaction, source, transportName):
        """
        Process C{request} and answer it through C{serverTransaction}.

        @param source: the C{(host, port)} the request came from.
        @param transportName: C{'UDP'}, C{'TCP'} or C{'TLS'} (any case).
        @return: a L{Deferred} firing with the response sent; it never
            fails (trouble is logged and answered with 500).
        """
        d = self._process(request, source, transportName.lower())
        d.addErrback(self._failed, request, source)
        d.addCallback(self._respond, request, serverTransaction, source)
        return d

    def _failed(self, failure, request, source):
        if failure.check(_Answer):
            return failure.value
        if failure.check(OutOfOrder):
            _log.info(
                "REGISTER from {peer} out of order: {error}",
                peer=source, error=failure.getErrorMessage(),
            )
            return _Answer(500, "Out of Order")
        if failure.check(StorageError):
            _log.error(
                "REGISTER {callId} from {peer} not stored: {error}",
                callId=request.callId, peer=source, error=failure.getErrorMessage(),
            )
        else:
            _log.failure(
                "REGISTER {callId} from {peer} failed", failure,
                callId=request.callId, peer=source,
            )
        return _Answer(500, None, [("Retry-After", RETRY_AFTER)])

    def _respond(self, answer, request, serverTransaction, source):
        response = makeResponse(request, answer.code, answer.reason, toTag=newTag())
        for name, value in answer.headers:
            response.headers.add(name, value)
        if self._stats is not None:
            self._stats.increment("responses.out.%dxx" % (answer.code // 100,))
            if answer.code < 300:
                self._stats.increment("registrar.accepted")
            elif answer.code in (401, 407):
                self._stats.increment("registrar.challenged")
            else:
                self._stats.increment("registrar.rejected")
        if answer.code in (401, 407):
            # The first half of every registration: not news.
            _log.debug(
                "REGISTER {to} from {peer}: challenged",
                to=request.headers.get("To"), peer=source,
            )
        elif answer.code >= 300:
            _log.info(
                "REGISTER {to} from {peer}: {status} {reason}",
                to=request.headers.get("To"), peer=source,
                status=answer.code, reason=response.reason,
            )
        serverTransaction.respond(response)
        return response

    def _count(self, name, amount=1):
        if self._stats is not None and amount:
            self._stats.increment(name, amount)

    @inlineCallbacks
    def _process(self, request, source, transport):
        """
        RFC 3261 section 10.3 steps 1 to 8; return the L{_Answer} to send,
        or fail with one.
        """
        uri = request.uri
        if not isinstance(uri, URI) or uri.scheme not in ("sip", "sips") \
                or uri.host not in self._domains:
            raise _Answer(403, "Not a domain of this registrar")
        unsupported = [tag for tag in _optionTags(request, "Require") if tag not in SUPPORTED]
        if unsupported:
            raise _Answer(420, None, [("Unsupported", ", ".join(unsupported))])
        if self._authenticate is not None:
            result = yield maybeDeferred(
                self._authenticate, request, self._realm or uri.host, source
            )
            if result.status is not None:
                # The hook's reason is for the log; the UA gets the
                # standard phrase, which tells an attacker nothing.
                _log.debug(
                    "REGISTER from {peer}: {status} ({reason})",
                    peer=source, status=result.status, reason=result.reason,
                )
                raise _Answer(result.status, None, result.headers)
        aor = self._addressOfRecord(request, uri.host)
        if self._authenticate is not None:
            self._authorize(result.user, aor)
        elif self._userExists is not None:
            exists = yield maybeDeferred(self._userExists, aor)
            if not exists:
                raise _Answer(404, "Not a user of this domain")
        try:
            callId = request.callId
            cseq = request.cseq()[0]
            contacts = request.contacts()
        except ParseError as e:
            raise _Answer(400, e.reason)
        if callId is None:
            raise _Answer(400, "Missing Call-ID header")
        headers = [("Supported", ", ".join(SUPPORTED))]
        if not contacts:
            bindings = self._location.lookup(aor)
        elif contacts[0].isWildcard:
            self._checkWildcard(request)
            removed = yield self._location.removeAll(aor, callId, cseq)
            self._count("registrar.removed", len(removed))
            bindings = []
        else:
            changes, headers = self._changes(request, contacts, source, transport, headers)
            bindings = yield self._location.update(aor, callId, cseq, changes)
            self._count(
                "registrar.removed", sum(1 for change in changes if not change.expires)
            )
        now = self._clock.seconds()
        for binding in bindings:
            headers.append(("Contact", _formatContact(binding, now)))
        headers.append(("Date", email.utils.formatdate(now, usegmt=True)))
        _log.debug(
            "REGISTER {aor} from {peer}: {count} bindings",
            aor=aor, peer=source, count=len(bindings),
        )
        return _Answer(200, None, headers)

    def _addressOfRecord(self, request, domain):
        """
        RFC 3261 section 10.3 step 5: the To URI, which must be a user of
        the Request-URI's domain, in canonical form C{user@domain}.
        """
        try:
            to = request.toAddress().uri
        except ParseError as e:
            raise _Answer(400, e.reason)
        if not isinstance(to, URI) or to.scheme not in ("sip", "sips") \
                or not to.user or to.host != domain:
            raise _Answer(404, "Address of record not in this domain")
        return "%s@%s" % (to.user, to.host)

    def _authorize(self, user, aor):
        """
        RFC 3261 section 10.3 step 4: the authenticated user may only
        change its own bindings. C{user} may be C{name@domain} or C{name}
        (of the address of record's domain).
        """
        if user is None:
            raise _Answer(403, "Not authorized for this address of record")
        if "@" not in user:
            user = "%s@%s" % (user, aor.rpartition("@")[2])
        name, _, domain = user.rpartition("@")
        if "%s@%s" % (name, domain.lower()) != aor:
            raise _Answer(403, "Not authorized for this address of record")

    def _checkWildcard(self, request):
        """
        RFC 3261 section 10.3 step 6: C{Contact: *} with any Expires other
        than 0, or without one, is invalid.
        """
        expires = request.headers.get("Expires")
        if expires is None or _seconds(expires) != 0:
            raise _Answer(400, "Contact * requires Expires: 0")

    def _expires(self, address, headerExpires):
        """
        RFC 3261 section 10.3 step 7: the expiry asked for, and the expiry
        granted (0 removes, too short refuses, too long is shortened).
        """
        value = address.param("expires", _ABSENT)
        if value is _ABSENT:
            seconds = self._defaultExpires if headerExpires is None else headerExpires
        else:
            seconds = _seconds(value or "")
            if seconds is None:
                seconds = _MALFORMED_EXPIRES
        if seconds == 0:
            return 0
        if seconds < self._minExpires:
            raise _Answer(423, None, [("Min-Expires", self._minExpires)])
        return min(seconds, self._maxExpires)

    def _changes(self, request, contacts, source, transport, headers):
        """
        The L{ContactChange}s of a REGISTER, and the headers of its 200.

        @raise _Answer: for a request to refuse as a whole.
        """
        headerExpires = None
        if "Expires" in request.headers:
            headerExpires = _seconds(request.headers.get("Expires"))
            if headerExpires is None:
                raise _Answer(400, "Bad Expires header")
        supported = _optionTags(request, "Supported")
        paths = request.headers.getAll("Path")
        try:
            firstPath = [Address.parse(path) for path in paths][:1]
        except ParseError as e:
            raise _Answer(400, "Bad Path header: " + e.reason)
        if paths and "path" not in supported:
            # RFC 3327 section 5.3: the recommended policy.
            raise _Answer(420, "Path Not Supported by UA", [("Unsupported", "path")])
        # RFC 5626 section 6: outbound applies when this registrar is the
        # first hop, or when the first Path carries "ob".
        firstHop = len(request.headers.getAll("Via")) == 1
        outbound = firstHop or bool(
            firstPath and isinstance(firstPath[0].uri, URI) and firstPath[0].uri.hasParam("ob")
        )
        userAgent = request.headers.get("User-Agent")
        changes = []
        for address in contacts:
            expires = self._expires(address, headerExpires)
            q = address.param("q", _ABSENT)
            if q is _ABSENT:
                q = 1.0
            elif q is None or not _QVALUE.fullmatch(q):
                raise _Answer(400, "Bad q parameter in Contact")
            else:
                q = float(q)
            instance = self._instance(address)
            regId = self._regId(address)
            if regId is not None and not outbound:
                if "outbound" in supported:
                    raise _Answer(439)
                regId = None
            elif instance is None:
                # RFC 5626 section 6: a reg-id without an instance is ignored.
                regId = None
            params = tuple(
                (name, value) for name, value in address.params
                if name not in ("expires", "q") and (regId is not None or name != "reg-id")
            )
            changes.append(ContactChange(
                contact=str(address.uri), expires=expires, q=q,
                path=tuple(paths), instance=instance, regId=regId,
                source=(transport, source[0], source[1]), userAgent=userAgent,
                params=params,
            ))
        registering = [change for change in changes if change.expires]
        if len(registering) > 1 and any(c.regId is not None for c in registering):
            raise _Answer(400, "reg-id with more than one contact")
        headers = list(headers)
        if paths:
            headers.extend(("Path", path) for path in paths)
        if "outbound" in supported and any(c.regId is not None for c in changes):
            headers.append(("Require", "outbound"))
        return changes, headers

    def _instance(self, address):
        """
        The C{+sip.instance} URN (RFC 5626 section 4.1) without its quotes
        and angle brackets, or C{None}.
        """
        value = address.param("+sip.instance", _ABSENT)
        if value is _ABSENT:
            return None
        if value is None:
            raise _Answer(400, "Bad +sip.instance parameter in Contact")
        if value[:1] == '"':
            value = unquoteString(value)
        if value[:1] == "<" and value[-1:] == ">":
            value = value[1:-1]
        if not value:
            raise _Answer(400, "Bad +sip.instance parameter in Contact")
        return value

    def _regId(self, address):
        """
        The C{reg-id} (RFC 5626 section 10: 1 to 2**31-1), or C{None}.
        """
        value = address.param("reg-id", _ABSENT)
        if value is _ABSENT:
            return None
        regId = _seconds(value or "")
        if regId is None or not 1 <= regId <= 2 ** 31 - 1:
            raise _Answer(400, "Bad reg-id parameter in Contact")
        return regId
