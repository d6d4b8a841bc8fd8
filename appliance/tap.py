"""
twistd plugin support: C{twistd --reactor=asyncio -n appliance}.

L{Options} reads and checks the configuration (every error at once) and the
reactor; L{makeService} only wires the services together.
"""

import os
import sys

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from appliance import __version__, logs
from appliance.config import ConfigError, load

_log = Logger(observer=logs.observer)


class Options(usage.Options):
    """
    Command line of the appliance plugin.
    """

    synopsis = "[--config FILE] [--data-dir DIR]"
    longdesc = (
        "Runs the appliance's services on one reactor. Without --config, "
        "the embedded defaults apply: state under ./var, SIP on udp/tcp 5060 "
        "and tls 5061. Run with --reactor=asyncio."
    )
    optParameters = [
        ["config", "c", None, "The configuration file (INI)."],
        ["data-dir", "d", None, "Overrides [appliance] data_dir."],
    ]

    def opt_version(self):
        """
        Print the appliance's version and exit.
        """
        print("appliance %s" % (__version__,))
        sys.exit(0)

    def postOptions(self):
        checkReactor()
        overrides = {}
        if self["data-dir"] is not None:
            overrides[("appliance", "data_dir")] = self["data-dir"]
        try:
            self.config = load(self["config"], overrides)
        except ConfigError as e:
            raise usage.UsageError(
                "configuration errors:\n  " + "\n  ".join(e.errors)
            )


def checkReactor(reactor=None):
    """
    The SNMP agent needs the asyncio reactor, and so the whole appliance
    runs on it: refuse any other with an explanation of the fix.
    """
    if reactor is None:
        from twisted.internet import reactor
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if not isinstance(reactor, AsyncioSelectorReactor):
        raise usage.UsageError(
            "the appliance needs the asyncio reactor, but %s is installed; "
            "run it as: twistd --reactor=asyncio -n appliance"
            % (type(reactor).__name__,)
        )


class StartupError(SystemExit):
    """
    The appliance cannot start: the message says why, without a traceback.
    """

    def __init__(self, message):
        super().__init__("appliance: " + message)


class ApplianceService(service.MultiService):
    """
    The root of the service tree: prepares the data directory, the database
    and the TLS identity before any child binds a port.
    """

    def __init__(self, config, reactor):
        service.MultiService.__init__(self)
        self.config = config
        self._reactor = reactor
        from appliance.stats import Statistics
        from appliance.storage.database import Database
        from appliance.storage.users import UserDirectory

        self.database = Database(reactor, config.dataPath("appliance.sqlite"))
        self.users = UserDirectory(self.database, realmFor=self._realmFor)
        self.stats = {}
        if "sip" in config.appliance.services:
            from appliance.sip.service import SIPService

            self.stats["sip"] = Statistics("sip")
            SIPService(
                config.sip, reactor, self.stats["sip"], self.tlsOptions,
                database=self.database, users=self.users,
            ).setServiceParent(self)
        if "rtsp" in config.appliance.services:
            from appliance.rtsp.service import RTSPService

            self.stats["rtsp"] = Statistics("rtsp")
            RTSPService(
                config.rtsp, reactor, self.stats["rtsp"], config.dataPath("media"),
                self.users, config.sip.domains, self._realmFor,
            ).setServiceParent(self)
        if "conference" in config.appliance.services:
            self._addConference(config, reactor)
        if "drm" in config.appliance.services:
            from appliance.drm.service import DRMService

            self.stats["drm"] = Statistics("drm")
            DRMService(
                config.drm, reactor, self.stats["drm"], self.database, self.users,
                self.tlsOptions, config.dataPath,
                [self._realmFor(domain) for domain in config.sip.domains],
                digestAlgorithms=config.sip.digest_algorithms,
            ).setServiceParent(self)
        if "dbus" in config.appliance.services:
            # After the services it reports on: it starts once they run.
            from appliance.dbus.service import DBusService

            self.stats["dbus"] = Statistics("dbus")
            sip = self.namedServices.get("sip")
            DBusService(
                config, reactor, services=lambda: list(self),
                location=sip.location if sip is not None else None,
                statistics=self.stats, stats=self.stats["dbus"],
                conference=self.namedServices.get("conference"),
            ).setServiceParent(self)
        if "snmp" in config.appliance.services:
            # After the others: it reports their start and their stop.
            from appliance.snmp.agent import SNMPAgent
            from appliance.snmp.mib import ApplianceState

            SNMPAgent(
                config.snmp, reactor,
                ApplianceState(self.stats, self, config.appliance.services, __version__, reactor),
            ).setServiceParent(self)

    def _addConference(self, config, reactor):
        from appliance.conference.service import ConferenceService
        from appliance.sip.routing import ServiceRoute
        from appliance.stats import Statistics

        self.stats["conference"] = Statistics("conference")
        conference = ConferenceService(
            config.conference, config.sip, reactor, self.stats["conference"], config.dataPath("media"),
            domain=config.sip.domains[0],
        )
        conference.setServiceParent(self)
        sip = self.namedServices.get("sip")
        if sip is None:
            return
        kind = next(a.kind for a in config.conference.listen if a.kind in ("udp", "tcp"))

        def locate():
            host, port = conference.addressOf(kind)
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return kind, host, port

        for pattern in (config.conference.echo, config.conference.prefix and config.conference.prefix + "*"):
            if pattern:
                sip.router.serviceRoutes.append(ServiceRoute(pattern, locate))
        # The conference user agent is one of ours: the proxy does not
        # challenge the calls it places (Kamailio's allow_trusted), and
        # they go out through the proxy.
        sip.dispatcher.trusted.append(lambda: locate()[1:])
        if not config.conference.proxy:
            def proxy():
                try:
                    host, port = sip.addressOf(kind)
                except KeyError:
                    return None
                if host in ("0.0.0.0", "::", ""):
                    host = "127.0.0.1"
                return "sip:%s:%d;lr%s" % (host, port, "" if kind == "udp" else ";transport=" + kind)

            conference.proxy = proxy

    def _realmFor(self, domain):
        return self.config.sip.realm or domain

    def tlsPaths(self):
        appliance = self.config.appliance
        if appliance.tls_cert:
            return appliance.tls_cert, appliance.tls_key
        return self.config.dataPath("tls", "cert.pem"), self.config.dataPath("tls", "key.pem")

    def tlsOptions(self):
        from appliance.tls import serverContext

        return serverContext(*self.tlsPaths())

    def privilegedStartService(self):
        from appliance.sip.service import ListenError
        from appliance.storage.database import SchemaError
        from appliance.drm.keystore import KeyStoreError
        from appliance.tls import TLSError, ensureCertificate

        logs.setLevel(self.config.appliance.log_level)
        try:
            os.makedirs(self.config.dataPath(), mode=0o750, exist_ok=True)
            if not self.config.appliance.tls_cert:
                ensureCertificate(*self.tlsPaths(), names=self.config.sip.domains)
            self.database.open()
            service.MultiService.privilegedStartService(self)
        except ListenError as e:
            self.database.close()
            raise StartupError("%s %s" % (self.config.path, e))
        except (TLSError, SchemaError, KeyStoreError) as e:
            self.database.close()
            raise StartupError(str(e))
        except OSError as e:
            self.database.close()
            raise StartupError("cannot prepare %s: %s" % (self.config.dataPath(), e))
        _log.info(
            "appliance {version} starting: services {services}, data in {dataDir}",
            version=__version__, services=" ".join(self.config.appliance.services),
            dataDir=self.config.dataPath(),
        )

    def stopService(self):
        d = service.MultiService.stopService(self)
        d.addBoth(lambda result: (self.database.close(), result)[1])
        return d


def makeService(options, reactor=None):
    """
    Build the appliance's service tree from checked L{Options}.
    """
    if reactor is None:
        from twisted.internet import reactor
    return ApplianceService(options.config, reactor)
