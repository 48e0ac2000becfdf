"""The microcontroller mesh: events out to gateways and nodes, button commands back.

One module per job: ``protocol`` (the line protocol, tags, counters), ``auth`` (keys, nonces),
``discovery`` (mDNS advertise/browse of ``_zeke._tcp``), ``pairing`` (per-gateway keys on
disk), ``queue`` (bounded delivery queue, sequence numbers), ``link`` (line transports and the
serial MCU), ``gateway`` (the software gateway), ``forwarder`` (``zeke mesh run``), ``mqtt``
(the fleet sink), ``settings`` (pydantic settings), ``nodesim`` (a node MCU on a pty).
The wire format is specified in ``firmware/PROTOCOL.md``.
"""
