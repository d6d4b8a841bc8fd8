"""
The seams between the appliance's layers and services.

Every implementation is checked against its interface with
L{zope.interface.verify.verifyObject} in the tests, so that a fake cannot
drift from the real thing.
"""

from zope.interface import Attribute, Interface


class ISIPTransport(Interface):
    """
    One SIP transport (RFC 3261 section 18): a UDP socket, or the set of
    TCP / TLS connections of one listening port.
    """

    name = Attribute("C{'UDP'}, C{'TCP'} or C{'TLS'}.")
    reliable = Attribute(
        "True for TCP and TLS: requests are not retransmitted and timers "
        "K, I and J are zero (RFC 3261 section 17)."
    )
    secure = Attribute("True for TLS.")

    def sendRequest(request, destination):
        """
        Send a request to C{destination}, a C{(host, port)} tuple, filling
        in the sent-by of the top Via.
        """

    def sendResponse(response, source):
        """
        Send a response to the request that arrived from C{source}, a
        C{(host, port)} tuple, following RFC 3261 section 18.2.2: over the
        same connection when it is still open, otherwise to the Via's
        received / rport or sent-by.
        """


class ITransactionUser(Interface):
    """
    The layer above the transactions (RFC 3261 section 17): a proxy core,
    a registrar or a user agent core.
    """

    def requestReceived(request, serverTransaction):
        """
        A new request arrived. C{serverTransaction} is C{None} only for an
        ACK that matched no transaction (the ACK for a 2xx).
        """

    def responseReceived(response, clientTransaction):
        """
        A response arrived for C{clientTransaction}, or for none
        (C{clientTransaction} is C{None}): a stray response.
        """

    def transactionTimedOut(transaction):
        """
        Timer B or F fired for a client transaction (act as if a 408 had
        arrived) or timer H for a server INVITE transaction (no ACK came).
        """

    def transportFailed(transaction):
        """
        The transport could not send a message of C{transaction}
        (RFC 3261 section 17.1.4).
        """


class IStatsSource(Interface):
    """
    A service's statistics: counters that only grow and gauges that go up
    and down. SNMP and D-Bus read them; only the owning service writes them.
    """

    name = Attribute("The service name, such as C{'sip'}.")

    def snapshot():
        """
        Return the current values as a C{dict} mapping dotted names (such
        as C{'requests.in.INVITE'}) to C{int}.
        """


class IUserDirectory(Interface):
    """
    The one user store behind SIP digest, RTSP digest, web login and
    license requests. Passwords are never stored: only digest HA1 hashes.
    """

    def addUser(user, password, displayName=None, email=None):
        """
        Add C{user} (C{'name@domain'}); return a L{Deferred} that fires
        when it is stored, or fails with L{KeyError} when it exists.
        """

    def removeUser(user):
        """
        Remove C{user}; the L{Deferred} fails with L{KeyError} when there
        is no such user.
        """

    def setPassword(user, password):
        """
        Replace the digest hashes of C{user}.
        """

    def getUser(user):
        """
        Return a L{Deferred} firing with the user's record (or C{None}).
        """

    def listUsers(domain=None):
        """
        Return a L{Deferred} firing with a list of user records, in name order.
        """

    def digestHash(user, realm, algorithm):
        """
        Return a L{Deferred} firing with the stored HA1 (hex) of C{user} for
        C{realm} and C{algorithm} (C{'MD5'} or C{'SHA-256'}), or C{None}.
        """


class IMediaStore(Interface):
    """
    The media store: recorded messages and greetings as audio files under
    C{<data_dir>/media/<user>/<folder>/<id>.au}. The RTSP server is its
    only network face.
    """

    def resolve(path):
        """
        Check a request path (C{'/bob/inbox/6532.au'}, percent-encoded as
        it came in a URL) and return its L{appliance.rtsp.store.MediaPath}.
        Raises L{appliance.rtsp.store.InvalidPath} for anything that is not
        C{user/folder/id.au|wav} confined to the store.
        """

    def exists(media):
        """
        Whether the file of C{media} (a resolved path) exists.
        """

    def openForPlay(media):
        """
        Return an L{appliance.media.audiofile.AudioReader} of C{media}, or
        raise L{appliance.rtsp.store.MediaNotFound}.
        """

    def openForRecord(media, encoding):
        """
        Create (or replace) the file of C{media} and return an
        L{appliance.media.audiofile.AudioWriter} taking C{encoding} data.
        """

    def list(owner, folder):
        """
        Return the sorted file names in one folder of C{owner}.
        """

    def delete(media):
        """
        Remove the file of C{media}; return whether there was one.
        """


class ILocationService(Interface):
    """
    The location service (RFC 3261 section 10): bindings from an address of
    record (C{'user@domain'}) to contacts, with q, expiry, Path (RFC 3327)
    and instance / reg-id (RFC 5626), persisted. Reads are from memory and
    synchronous; writes return a L{Deferred} and reach memory only once
    they are on disk.
    """

    def load():
        """
        Read the stored bindings into memory, dropping the expired ones;
        return a L{Deferred} firing with the number loaded.
        """

    def start():
        """
        Start purging expired bindings periodically.
        """

    def stop():
        """
        Stop the periodic purge.
        """

    def lookup(aor):
        """
        Return the unexpired bindings of C{aor}, highest q first, then most
        recently updated first.
        """

    def bindingsFor(aor):
        """
        Return C{(binding, remaining seconds)} pairs, in L{lookup} order.
        """

    def update(aor, callId, cseq, changes):
        """
        Apply the contacts of one REGISTER (RFC 3261 section 10.3 steps 6
        and 7) atomically; return a L{Deferred} firing with the bindings of
        C{aor} afterwards, or failing with C{OutOfOrder} (nothing changed).
        """

    def removeAll(aor, callId, cseq):
        """
        Remove every binding of C{aor} (C{Contact: *}, RFC 3261 section
        10.2.2); return a L{Deferred} firing with the bindings removed.
        """

    def purgeExpired():
        """
        Remove expired bindings from disk and memory; return a L{Deferred}
        firing with the number removed from memory.
        """

    def count():
        """
        Return the number of bindings held (including any that expired
        since the last purge).
        """

    def addObserver(observer):
        """
        Call C{observer(aor)} after every change to the bindings of an
        address of record (registration, removal, expiry).
        """

    def removeObserver(observer):
        """
        Stop calling C{observer}.
        """

    def aors():
        """
        Return the addresses of record with at least one unexpired binding.
        """
