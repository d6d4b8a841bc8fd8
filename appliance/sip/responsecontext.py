"""
The response context of a proxied request (RFC 3261 sections 16.2, 16.6
to 16.10): its branches, their timers, the responses collected and the
choice of the one sent back.

L{appliance.sip.proxy.Proxy} creates one per request it forwards and does
the sending; the context decides.
"""

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from appliance import logs
from appliance.sip.clienttransaction import makeCancel
from appliance.sip.message import ParseError, makeResponse

_log = Logger(observer=logs.observer)

#: Timer C (RFC 3261 section 16.6 step 11): more than three minutes.
TIMER_C = 181.0


def bestResponse(responses):
    """
    Choose the response to send back from the final responses of all
    branches (RFC 3261 section 16.7 step 6): a 6xx if any, otherwise the
    lowest class, preferring within 4xx the ones that tell the caller what to
    do (401, 407, 415, 420, 484). L{Proxy.forwardFinal} turns a chosen 503
    into 500 (section 16.7 step 6).
    """
    if not responses:
        return None
    for response in responses:
        if 600 <= response.code < 700:
            return response
    lowest = min(response.code // 100 for response in responses)
    candidates = [r for r in responses if r.code // 100 == lowest]
    if lowest == 4:
        for preferred in (401, 407, 415, 420, 484):
            for response in candidates:
                if response.code == preferred:
                    return response
        for response in candidates:
            if response.code != 408:
                return response
    return candidates[0]


class Branch:
    """
    One client transaction of a response context.
    """

    def __init__(self, context, target, request, branchId):
        self.context = context
        self.target = target
        self.request = request
        self.branchId = branchId
        self.transaction = None
        self.provisional = False
        self.final = None
        self.cancelWanted = False
        self.timerC = None

    @property
    def done(self):
        return self.final is not None


class ResponseContext:
    """
    The state of one proxied request (RFC 3261 section 16.2): its branches,
    the responses received, and whether a final response went back.

    @ivar noAnswer: whether the ring timeout ended the ringing.
    @ivar cancelled: whether the caller cancelled.
    """

    def __init__(self, proxy, request, serverTransaction, groups, onFailure=None):
        self.proxy = proxy
        self.request = request
        self.serverTransaction = serverTransaction
        self._groups = list(groups)
        self._onFailure = onFailure
        self.branches = []
        self.finals = []
        self.answered = False
        self.cancelled = False
        self.noAnswer = False
        self._ringTimer = None
        self._forking = False

    @property
    def isInvite(self):
        return self.request.method == "INVITE"

    def start(self):
        if self.isInvite:
            self._ringTimer = self.proxy.clock.callLater(
                self.proxy.ringTimeout, self._ringTimeout
            )
        self._nextGroup()

    def _nextGroup(self):
        while self._groups and not self.answered:
            group = self._groups.pop(0)
            # A branch that fails at once must not finish the context while
            # the rest of its group is being forked.
            self._forking = True
            try:
                started = [self._fork(target) for target in group]
            finally:
                self._forking = False
            if any(started):
                self._checkDone()
                return
        self._finish()

    def _fork(self, target):
        try:
            request = self.proxy.prepareBranch(self.request, target)
            branchId = self.proxy.newBranchId(self.request, len(self.branches))
        except ParseError as e:
            _log.info("cannot forward to {target}: {reason}", target=target.uri, reason=e.reason)
            return False
        branch = Branch(self, target, request, branchId)
        self.branches.append(branch)
        self.proxy.stats.increment("proxy.branches")
        d = maybeDeferred(self.proxy.sendBranch, branch)
        d.addErrback(self._sendFailed, branch)
        return True

    def _sendFailed(self, failure, branch):
        _log.info(
            "branch to {target} failed: {error}",
            target=branch.target.uri, error=failure.getErrorMessage(),
        )
        self.branchFinished(branch, makeResponse(self.request, 503))

    def branchStarted(self, branch):
        if self.isInvite:
            branch.timerC = self.proxy.clock.callLater(TIMER_C, self._timerC, branch)

    def _timerC(self, branch):
        branch.timerC = None
        if branch.provisional and not branch.cancelWanted:
            self.cancelBranch(branch)
            return
        # No final response: never rang, or its CANCEL went unanswered for
        # 64*T1 (RFC 3261 section 16.8): give the branch up.
        if branch.transaction is not None:
            branch.transaction.terminate()
        cancelled = branch.cancelWanted and (self.cancelled or self.noAnswer)
        self.branchFinished(branch, makeResponse(self.request, 487 if cancelled else 408))

    def _ringTimeout(self):
        self._ringTimer = None
        if self.answered:
            return
        _log.info("no answer for {callId} within the ring timeout", callId=self.request.callId)
        self.noAnswer = True
        self._groups = []
        self._cancelBranches()

    def responseReceived(self, branch, response):
        """
        A response on C{branch} (RFC 3261 section 16.7).
        """
        code = response.code
        if code < 200:
            if code > 100 and not branch.done:
                branch.provisional = True
                if branch.timerC is not None:
                    branch.timerC.reset(TIMER_C)
                if branch.cancelWanted:
                    self._sendCancel(branch)
                if not self.answered:
                    self.proxy.forwardResponse(self.serverTransaction, response)
            return
        if code < 300:
            if not branch.done:
                self._branchDone(branch, response)
            if self.isInvite:
                # Every 2xx goes upstream, other forks' too (section 16.7
                # step 5): the caller acknowledges and ends each dialog.
                self.proxy.forwardResponse(self.serverTransaction, response)
            elif not self.answered:
                self.proxy.forwardResponse(self.serverTransaction, response)
            if not self.answered:
                self.answered = True
                self._groups = []
                self._stopRinging()
                self._cancelBranches()
            self._checkDone()
            return
        self.branchFinished(branch, response)

    def branchFinished(self, branch, response):
        if branch.done:
            return
        self._branchDone(branch, response)
        self.finals.append(response)
        if 600 <= response.code < 700 and not self.answered:
            self._groups = []
            self._cancelBranches()
        self._checkDone()

    def _branchDone(self, branch, response):
        branch.final = response
        if branch.timerC is not None:
            branch.timerC.cancel()
            branch.timerC = None

    def _checkDone(self):
        if not self._forking and all(branch.done for branch in self.branches):
            self._nextGroup()

    def _finish(self):
        self._stopRinging()
        if self.answered:
            self.proxy.contextDone(self)
            return
        best = bestResponse(self.finals) or makeResponse(self.request, 480)
        if self.noAnswer and not self.cancelled and best.code == 487:
            # We cancelled the ringing phones, not the caller: 480.
            best = makeResponse(self.request, 480, "No Answer")
        if self._onFailure is not None and not self.cancelled:
            onFailure, self._onFailure = self._onFailure, None
            retarget = onFailure(self, best)
            if retarget:
                self.noAnswer = False
                self._groups = [list(retarget)]
                if self.isInvite:
                    self._ringTimer = self.proxy.clock.callLater(
                        self.proxy.ringTimeout, self._ringTimeout
                    )
                self._nextGroup()
                return
        self.answered = True
        self.proxy.forwardFinal(self.serverTransaction, best, self.finals)
        self.proxy.contextDone(self)

    def _stopRinging(self):
        if self._ringTimer is not None:
            self._ringTimer.cancel()
            self._ringTimer = None

    def cancel(self):
        """
        The caller cancelled (RFC 3261 section 16.10): no more targets, and
        every unfinished branch is cancelled; the 487s they send back make
        the final response.
        """
        self.cancelled = True
        self._groups = []
        self._stopRinging()
        self._cancelBranches()

    def _cancelBranches(self):
        for branch in list(self.branches):
            self.cancelBranch(branch)

    def cancelBranch(self, branch):
        """
        Cancel one branch: a CANCEL once it has had a provisional response
        (RFC 3261 section 9.1), at once if it never went out.
        """
        if branch.done or branch.cancelWanted or not self.isInvite:
            return
        branch.cancelWanted = True
        if branch.provisional:
            self._sendCancel(branch)
        elif branch.transaction is None:
            self.branchFinished(branch, makeResponse(self.request, 487))

    def _sendCancel(self, branch):
        if branch.transaction is not None:
            self.proxy.sendCancel(branch, makeCancel(branch.request))
            # The 487 should follow; if nothing does within 64*T1 the
            # branch is given up (timer C, shortened).
            if branch.timerC is not None:
                branch.timerC.cancel()
            branch.timerC = self.proxy.clock.callLater(
                self.proxy.transactions.timers.timerB, self._timerC, branch
            )

    def stop(self):
        self._stopRinging()
        for branch in self.branches:
            if branch.timerC is not None:
                branch.timerC.cancel()
                branch.timerC = None
