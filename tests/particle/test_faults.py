"""Every simulated fault ends in recovery or its catalogue error, in time, without a traceback.

Each case runs the real ``zeke flash-node`` entry point in-process against a simulated Xenon
1.5.2 with that fault injected, under a hard deadline. Recovered means exit 0, the device
stored exactly the file and the node came back; otherwise the exit code and a phrase of the
one-line message are the catalogue's.
"""

from __future__ import annotations

import pytest

from zeke.particle.flash import flash_node
from zeke.testing.particle_sim import FAULTS

from .support import call_with_deadline, host_timeouts

RECOVERED = 0
# fault -> (extra flash-node options, expected exit code, phrase in the message)
OUTCOMES: dict[str, tuple[tuple[str, ...], int, str]] = {
    "not-listening": ((), 4, "is not in listening mode"),
    "trigger-ignored": (("--enter-listening",), 4, "did not enter listening mode within 3.0 s"),
    "no-ready-line": ((), RECOVERED, ""),
    "log-noise": ((), RECOVERED, ""),
    "resend": ((), RECOVERED, ""),
    "nak": ((), 9, "refused block 3 of 11 with NAK"),
    "cancel": ((), 9, "CAN CAN): Failed to receive the file!"),
    "swallow-block": ((), RECOVERED, ""),
    "bad-seq": ((), RECOVERED, ""),
    "modem-manager": ((), 3, "ModemManager"),
    "slow-final-ack": ((), RECOVERED, ""),
    "reject-crc": ((), 8, "Validation failed: 0x2 (integrity: CRC-32 mismatch)"),
    "reject-platform": ((), 8, "Validation failed: 0x10 (platform mismatch)"),
    "reject-range": ((), 8, "Validation failed: 0x8 (address range outside the slot)"),
    "save-failure": ((), 9, "Failed to save chunk!"),
    "updates-disabled": ((), 9, "higher than the allowed space memory"),
    "disconnect-mid-transfer": ((), 9, "disconnected during the transfer (device reports"),
    "disconnect-after-ack": ((), RECOVERED, ""),
    "dos6-refusal": ((), 6, "Serial/YModem flashing is no longer supported"),
    "protected-silent": ((), 4, "Protected Device"),
}
CASES = [(fault, *OUTCOMES[fault]) for fault in FAULTS] + [
    ("not-listening", ("--enter-listening",), RECOVERED, ""),
]


def test_every_fault_has_an_expected_outcome():
    assert set(OUTCOMES) == set(FAULTS)
    assert len(FAULTS) >= 12


@pytest.mark.parametrize(
    ("fault", "options", "code", "phrase"),
    CASES,
    ids=[f"{c[0]}{'+' + '+'.join(c[1]) if c[1] else ''}" for c in CASES],
)
def test_fault_outcome(sims, inject, xenon_app, zeke_run, fault, options, code, phrase):
    sim = sims("xenon", "1.5.2", fault=fault)
    inject(sim)

    run = zeke_run("flash-node", str(xenon_app), "--yes", *options)

    output = run.stdout + run.stderr
    assert "Traceback" not in output
    assert run.code == code, output
    if code == RECOVERED:
        assert sim.app_image == xenon_app.read_bytes()
        assert "back on" in run.stdout
        return
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: "), run.stderr
    message = " ".join(line.strip() for line in run.stderr.splitlines())
    assert phrase in message
    assert any(line.startswith("hint: ") for line in lines), "every catalogue error names a fix"
    if code in (3, 4, 6, 8, 9):
        assert sim.app_image is None, "a refused flash installs nothing"


def test_log_noise_is_skipped_not_misread(sims, xenon_app):
    """The noise fault really puts text (including 'C' at line starts) between replies."""
    sim = sims("xenon", "1.5.2", fault="log-noise")
    box = call_with_deadline(
        lambda: flash_node(xenon_app, comports=sim.comports, timeouts=host_timeouts())
    )
    result = box["value"]
    assert result.noise_bytes > 0 and result.resends == 0
    assert b"Cloud connected" in bytes(sim.outputs[0])


def test_resend_requests_are_counted(sims, xenon_app):
    sim = sims("xenon", "1.5.2", fault="resend")
    box = call_with_deadline(
        lambda: flash_node(xenon_app, comports=sim.comports, timeouts=host_timeouts())
    )
    assert box["value"].resends == 2
    assert [f[1] for f in sim.transfers[0].frames if f[0] == "data"] == list(range(1, 12))


def test_block_timeout_names_the_block_within_its_budget(
    sims, inject, xenon_app, zeke_run, monkeypatch
):
    """A swallowed block with the device's real 5 s timer outlasts a 1 s host budget."""
    sim = sims("xenon", "1.5.2", fault="swallow-block", time_scale=1.0)
    inject(sim)
    monkeypatch.setenv("ZEKE_PARTICLE_TIMEOUT_SCALE", "0.1")  # block timeout 1 s
    run = zeke_run("flash-node", str(xenon_app), "--yes")
    assert run.code == 7, run.stderr
    assert "timed out after 1.0 s waiting for the ACK of block 3 (block 3 of 11)" in run.stderr
    assert run.elapsed < 10
    assert sim.transfers[0].frames[-1] == ("cancel",), "the host cancelled with CAN CAN"


def test_final_validation_timeout(sims, inject, xenon_app, zeke_run, monkeypatch):
    sim = sims("xenon", "1.5.2", fault="slow-final-ack", time_scale=0.2)  # 12 s to validate
    inject(sim)
    monkeypatch.setenv("ZEKE_PARTICLE_TIMEOUT_SCALE", "0.05")  # 4.5 s for validation
    run = zeke_run("flash-node", str(xenon_app), "--yes")
    assert run.code == 7, run.stderr
    assert "waiting for the final validation" in run.stderr


def test_node_that_never_comes_back(sims, inject, xenon_app, zeke_run):
    sim = sims("xenon", "1.5.2", reenumerate_delay=1000.0)
    inject(sim)
    run = zeke_run("flash-node", str(xenon_app), "--yes")
    assert run.code == 7, run.stderr
    assert "node to come back" in run.stderr and "image was accepted" in run.stderr
    assert sim.app_image == xenon_app.read_bytes()
