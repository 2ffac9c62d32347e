#!/usr/bin/python3
"""A stand-in for systemd's manager, on a private bus, for test_systemd.py.

    fake_systemd.py ADDRESS CGROUP_ROOT MODE LOG READY

It owns org.freedesktop.systemd1 on the bus at ADDRESS and answers
org.freedesktop.systemd1.Manager.StartTransientUnit as systemd does for a scope: it makes
the scope's cgroup (CGROUP_ROOT/SLICE/NAME, SLICE system.slice by default), moves the PIDs
into it, answers with a job path, and then emits JobRemoved(id, job, unit, "done").  Each
call is appended to LOG as a JSON line.  MODE changes what it does:

    ok        as above
    fail      answers with org.freedesktop.systemd1.UnitExists, moves nothing
    jobfail   answers with a job, moves nothing, and the job ends "failed"
    nosignal  moves the PIDs and answers, but sends no JobRemoved

It never removes a scope's cgroup (systemd does once it is empty): the test sees that
tether leaves it alone, and removes it itself.  READY is written once the name is owned.
"""
import json
import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

MANAGER = "org.freedesktop.systemd1.Manager"


def plain(v):
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, (dbus.Array, list)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Struct, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (int, dbus.UInt32, dbus.Int32, dbus.UInt64, dbus.Int64)):
        return int(v)
    return str(v)


class Manager(dbus.service.Object):
    def __init__(self, bus, root, mode, log):
        super().__init__(bus, "/org/freedesktop/systemd1")
        self.root, self.mode, self.log = root, mode, log
        self.jobs = 0

    @dbus.service.method(MANAGER, in_signature="ssa(sv)a(sa(sv))", out_signature="o",
                         sender_keyword="sender")
    def StartTransientUnit(self, name, mode, properties, aux, sender=None):
        props = {str(k): plain(v) for k, v in properties}
        with open(self.log, "a") as f:
            f.write(json.dumps({"name": str(name), "mode": str(mode), "properties": props,
                                "property_order": [str(k) for k, _ in properties],
                                "aux": plain(aux)}) + "\n")
        if self.mode == "fail":
            raise dbus.exceptions.DBusException("Unit %s already exists." % name,
                                                name="org.freedesktop.systemd1.UnitExists")
        self.jobs += 1
        job = dbus.ObjectPath("/org/freedesktop/systemd1/job/%d" % self.jobs)
        result = "done"
        if self.mode == "jobfail":
            result = "failed"
        else:
            d = os.path.join(self.root, props.get("Slice", "system.slice"), str(name))
            os.makedirs(d)
            for pid in props.get("PIDs", []):
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("%d\n" % pid)
        if self.mode != "nosignal":
            # After the answer, as systemd runs the job in a later turn of its loop.
            GLib.idle_add(self.JobRemoved, dbus.UInt32(self.jobs), job, name, result)
        return job

    @dbus.service.signal(MANAGER, signature="uoss")
    def JobRemoved(self, job_id, job, unit, result):
        pass


def main():
    address, root, mode, log, ready = sys.argv[1:6]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    Manager(bus, root, mode, log)
    with open(ready, "w") as f:
        f.write(name.get_name())
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
