"""
C{Reload}: re-read the configuration file, apply what can change while the
appliance runs, and say what needs a restart.
"""

import attrs
from twisted.logger import Logger

from appliance import logs
from appliance.config import DEFAULT_PATH, SCHEMA, ConfigError, load
from appliance.dbus.objects import InvalidConfig, NotSupported

_log = Logger(observer=logs.observer)

#: (section, key) -> a callable applying the new value at run time.
RELOADABLE = {
    ("appliance", "log_level"): logs.setLevel,
}


class ConfigReloader:
    """
    Compares the configuration file with the configuration the appliance
    runs on. Values are never reported, only the names of the keys that
    changed (a future section may hold keys or passwords).

    @param config: the running L{appliance.config.Config}.
    @param reloadable: C{{(section, key): apply}} (default L{RELOADABLE}).
    """

    def __init__(self, config, reloadable=None):
        self._config = config
        self._reloadable = RELOADABLE if reloadable is None else reloadable

    def __call__(self):
        """
        Re-read the file.

        @return: one line per changed key: C{"[section] key: applied"} or
            C{"[section] key: changed, takes effect after a restart"}.
        @raise NotSupported: when the appliance runs on its embedded
            defaults (there is no file to re-read).
        @raise InvalidConfig: listing every error of the file; nothing is
            applied.
        """
        current = self._config
        if current.path == DEFAULT_PATH:
            raise NotSupported(
                "the appliance runs on its embedded defaults: there is no "
                "configuration file to re-read (start it with --config FILE)"
            )
        try:
            fresh = load(current.path)
        except ConfigError as e:
            raise InvalidConfig("nothing changed: " + "; ".join(e.errors))
        report = []
        for section, (cls, keys) in SCHEMA.items():
            for key in keys:
                before = getattr(getattr(current, section), key)
                after = getattr(getattr(fresh, section), key)
                if before == after:
                    continue
                apply = self._reloadable.get((section, key))
                if apply is None:
                    report.append(
                        "[%s] %s: changed, takes effect after a restart" % (section, key)
                    )
                    continue
                apply(after)
                current = attrs.evolve(
                    current, **{section: attrs.evolve(getattr(current, section), **{key: after})}
                )
                report.append("[%s] %s: applied" % (section, key))
        self._config = current
        _log.info(
            "configuration re-read from {path}: {changes}",
            path=current.path, changes="; ".join(report) or "no changes",
        )
        return report
