"""`flash-node` options: --dry-run, confirmation, --port with several devices, block size."""

from __future__ import annotations

from zeke.testing.particle_firmware import build_user_app


def test_dry_run_checks_everything_and_sends_no_f(sims, inject, xenon_app, zeke_run):
    sim = sims("xenon", "1.5.2")
    inject(sim)
    run = zeke_run("flash-node", str(xenon_app), "--dry-run")
    assert run.code == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "dry run:" in text and "nothing was sent" in text and "Device OS 1.5.2" in text
    assert sim.transfers == [] and "rx command 'f'" not in sim.events


def test_dry_run_never_triggers_listening_mode(sims, inject, xenon_app, zeke_run):
    sim = sims("xenon", "1.5.2", listening=False)
    inject(sim)
    run = zeke_run("flash-node", str(xenon_app), "--dry-run", "--enter-listening")
    assert run.code == 0, run.stderr
    assert 28800 not in sim.line_speeds and "mode normal" in " ".join(run.stdout.split())


def test_without_yes_on_a_pipe_nothing_is_sent(sims, inject, xenon_app, zeke_run):
    sim = sims("xenon", "1.5.2")
    inject(sim)
    run = zeke_run("flash-node", str(xenon_app))
    assert run.code == 2
    assert "refusing to flash without confirmation" in run.stderr and "--yes" in run.stderr
    assert sim.transfers == []


def test_several_devices_need_port(sims, inject, xenon_app, zeke_run):
    a = sims("xenon", "1.5.2")
    b = sims("xenon", "1.5.2", device_id="e00fce68" + "ab" * 8)
    inject(a, b)
    refused = zeke_run("flash-node", str(xenon_app), "--yes")
    assert refused.code == 2 and "2 Particle devices found" in refused.stderr
    assert "--port" in refused.stderr
    assert a.received == 0 and b.received == 0

    run = zeke_run("flash-node", str(xenon_app), "--yes", "--port", b.port)
    assert run.code == 0, run.stderr
    assert b.app_image == xenon_app.read_bytes() and a.app_image is None


def test_bad_block_size_is_a_usage_error(xenon_app, zeke_run):
    run = zeke_run("flash-node", str(xenon_app), "--block-size", "512", "--yes")
    assert run.code == 2 and "--block-size must be 128 or 1024" in run.stderr


def test_1024_byte_blocks_by_default(sims, inject, tmp_path, zeke_run):
    app = tmp_path / "app.bin"
    app.write_bytes(build_user_app("xenon", 10 * 1024 + 100))
    sim = sims("xenon", "1.5.2")
    inject(sim)
    run = zeke_run("flash-node", str(app), "--yes")
    assert run.code == 0, run.stderr
    lengths = [f[2] for f in sim.transfers[0].frames if f[0] == "data"]
    assert lengths == [1024] * 10 + [128], "a tail of <= 128 bytes goes as a 128-byte block"
    assert sim.app_image == app.read_bytes()
