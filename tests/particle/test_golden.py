"""The spec's golden transcript: an 11,012-byte Xenon app to a simulated Xenon 1.5.2."""

from __future__ import annotations

from zeke.particle.ymodem import build_block, crc16_xmodem, header_payload

RESTARTING = b"Restarting system to apply firmware update...\r\n"


def test_golden_transcript_with_128_byte_blocks(sims, inject, xenon_app, zeke_run):
    sim = sims("xenon", "1.5.2")
    inject(sim)

    run = zeke_run("flash-node", str(xenon_app), "--block-size", "128", "--yes")

    assert run.code == 0, run.stdout + run.stderr
    (transfer,) = sim.transfers
    kinds = [frame[0] for frame in transfer.frames]
    # 1 header + 87 data blocks + EOT + end-of-batch block, in that order.
    assert kinds == ["header"] + ["data"] * 87 + ["eot", "end"]
    assert transfer.frames[0] == ("header", "tinker-xenon.bin", 11012)
    data = transfer.frames[1:88]
    assert [seq for _, seq, _ in data] == list(range(1, 88))
    assert {length for _, _, length in data} == {128}
    assert transfer.validation == "ok"
    # What the device printed during the flash boot, ending as the spec says, then the hang-up.
    first_boot = bytes(sim.outputs[0])
    assert first_boot.endswith(b"Name: tinker-xenon.bin\r\nSize: 11012 bytes\r\n" + RESTARTING)
    assert b"\x06\r\nDownloaded file successfully!\r\n" in first_boot
    assert sim.boots == 2, "the reset re-enumerates as a new pty"
    assert sim.app_image == xenon_app.read_bytes()
    # The node came back and its version was read again before exit 0.
    assert "back on" in run.stdout and "1.5.2" in run.stdout
    assert "11012 bytes in 87 blocks of 128" in run.stdout
    assert 14400 not in sim.line_speeds, "never the DFU trigger"


def test_header_block_bytes_match_the_spec():
    payload = header_payload("binary", 11012)
    assert payload[:13] == b"binary\x0011012 " and payload[13:] == bytes(115)
    block = build_block(0, payload, 128)
    assert block[:3] == b"\x01\x00\xff" and len(block) == 133
    assert block[-2:] == b"\xb3\x59"


def test_crc16_xmodem_vectors():
    assert crc16_xmodem(b"123456789") == 0x31C3
    assert crc16_xmodem(bytes(128)) == 0


def test_sequence_numbers_wrap_at_256():
    assert build_block(256, b"x")[1:3] == b"\x00\xff"
    assert build_block(255, b"x")[1:3] == b"\xff\x00"
    assert build_block(1, b"y" * 1000)[:1] == b"\x02" and len(build_block(1, b"y" * 1000)) == 1029
