// zekeproto: the zeke line protocol for Particle gateways and nodes (and any C++11 MCU).
// Include this one header; see firmware/PROTOCOL.md for the protocol itself.
#pragma once

#include "zeke_protocol.h"
#include "zeke_roles.h"
#include "zeke_sha256.h"
