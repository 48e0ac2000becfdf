"""`zeke nodes [--json]` and `zeke nodes info PORT` against simulated devices."""

from __future__ import annotations

import hashlib
import json

DEVICE_KEYS = {"port", "platform", "platform_id", "device_id", "mode", "device_os", "usb", "error"}
INFO_KEYS = {
    "port",
    "mode",
    "device_os",
    "device_id",
    "serial_number",
    "imei",
    "iccid",
    "platform",
    "platform_id",
    "modules",
}


def test_nodes_json_contract(sims, inject, zeke_run):
    xenon = sims("xenon", "1.5.2")
    argon = sims("argon", "4.2.0", listening=False)
    inject(xenon, argon)

    run = zeke_run("nodes", "--json")

    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert set(doc) == {"devices", "unidentified_ports"}
    assert doc["unidentified_ports"] == []
    by_platform = {d["platform"]: d for d in doc["devices"]}
    assert set(by_platform) == {"xenon", "argon"}
    for device in doc["devices"]:
        assert set(device) == DEVICE_KEYS
        assert set(device["usb"]) == {"vid", "pid", "product"}
        assert device["error"] is None
    x, a = by_platform["xenon"], by_platform["argon"]
    assert (x["port"], x["platform_id"], x["device_id"]) == (xenon.port, 14, xenon.device_id)
    assert (x["mode"], x["device_os"]) == ("listening", "1.5.2")
    assert x["usb"] == {"vid": "2b04", "pid": "c00e", "product": "Xenon CDC Mode"}
    assert (a["port"], a["platform_id"]) == (argon.port, 12)
    assert (a["mode"], a["device_os"]) == ("normal", None)
    assert argon.state.value == "normal", "listing never switches a device into listening mode"


def test_nodes_json_reports_a_busy_port_instead_of_failing(sims, inject, zeke_run):
    import serial

    xenon = sims("xenon", "1.5.2")
    inject(xenon)
    with serial.Serial(xenon.port, 9600, exclusive=True):
        run = zeke_run("nodes", "--json")
    (device,) = json.loads(run.stdout)["devices"]
    assert run.code == 0
    assert device["mode"] == "unknown" and "is busy" in device["error"]


def test_nodes_without_devices(inject, zeke_run):
    inject()
    run = zeke_run("nodes", "--json")
    assert run.code == 0 and json.loads(run.stdout) == {"devices": [], "unidentified_ports": []}
    human = zeke_run("nodes")
    assert "No Particle device found" in human.stdout


def test_nodes_no_probe_does_not_open_ports(sims, inject, zeke_run):
    xenon = sims("xenon", "1.5.2")
    inject(xenon)
    run = zeke_run("nodes", "--json", "--no-probe")
    (device,) = json.loads(run.stdout)["devices"]
    assert device["mode"] == "unknown" and device["device_id"] == xenon.device_id
    assert xenon.received == 0 and xenon.line_speeds == []


def test_nodes_human_table(sims, inject, zeke_run):
    xenon = sims("xenon", "1.5.2")
    inject(xenon)
    run = zeke_run("nodes")
    assert run.code == 0
    assert "xenon" in run.stdout and "listening" in run.stdout and "1.5.2" in run.stdout


def test_nodes_info_json_contract(sims, xenon_app, inject, zeke_run):
    boron = sims("boron", "4.2.0")
    inject(boron)

    run = zeke_run("nodes", "info", boron.port, "--json")

    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert set(doc) == INFO_KEYS
    assert doc["device_os"] == "4.2.0" and doc["mode"] == "listening"
    assert doc["device_id"] == boron.device_id
    assert (doc["platform"], doc["platform_id"]) == ("boron", 13)
    assert doc["imei"] and doc["iccid"], "a Boron reports its modem ids"
    functions = [module["f"] for module in doc["modules"]]
    assert functions == ["b", "s"], "no user app yet: empty slots are skipped"


def test_nodes_info_needs_listening_mode_or_the_trigger(sims, inject, zeke_run):
    xenon = sims("xenon", "1.5.2", listening=False)
    inject(xenon)
    refused = zeke_run("nodes", "info", xenon.port)
    assert refused.code == 4 and "not in listening mode" in refused.stderr
    run = zeke_run("nodes", "info", xenon.port, "--enter-listening")
    assert run.code == 0, run.stderr
    assert "Device OS 1.5.2" in run.stdout and xenon.device_id in run.stdout


def test_nodes_info_shows_the_flashed_app(sims, inject, xenon_app, zeke_run):
    xenon = sims("xenon", "1.5.2", setup_done=False)  # reboots into listening mode
    inject(xenon)
    assert zeke_run("flash-node", str(xenon_app), "--yes").code == 0
    run = zeke_run("nodes", "info", xenon.port, "--json")
    modules = json.loads(run.stdout)["modules"]
    (user,) = [m for m in modules if m["f"] == "u"]
    assert user["u"] == hashlib.sha256(xenon_app.read_bytes()[:-38]).hexdigest()
