// The protocol roles an MCU plays, transport-agnostic so the host tests can drive them:
// NodeLink (a node: shows events, sends button commands) and GatewayCore (a gateway: checks
// the appliance's handshake and events, relays them to nodes, relays node commands back).
// Firmware owns one Framer per transport and hands complete lines to these classes.
#pragma once

#include "zeke_protocol.h"

namespace zeke {

// Fills out with len random bytes (the firmware passes HAL_RNG / random(), tests a PRNG).
typedef void (*RandomFn)(uint8_t* out, size_t len);

enum class Action : uint8_t {
    None,        // nothing to do (the line may have been dropped and counted)
    Reply,       // send the reply line back on the same transport
    Show,        // a new event to display (NodeLink::shown())
    KeyChanged,  // persist the new key (NodeLink::key())
    Forward,     // relay this line verbatim to the nodes; the reply (an ACK) goes back
    ToAppliance  // relay this line verbatim to the appliance session
};

class NodeLink {
public:
    NodeLink(const char* id, const char* fw, RandomFn random);
    void setKey(const uint8_t key[kKeyBytes]);
    void clearKey() { hasKey_ = false; }
    bool hasKey() const { return hasKey_; }
    const uint8_t* key() const { return key_; }

    // trusted: the line came over the node's USB serial port, the only place a KEY is taken.
    Action onLine(const char* line, size_t len, bool trusted, char* reply, size_t cap,
                  size_t& replyLen);

    // A tagged CMD about the track on display (track 0 if none); 0 if there is no key.
    size_t command(Cmd cmd, char* out, size_t cap);
    size_t heartbeat(uint32_t uptime, char* out, size_t cap);

    bool showing() const { return showing_; }
    const Event& shown() const { return shown_; }
    uint32_t lastSeq() const { return lastSeq_; }
    const char* id() const { return id_; }
    Counters counters;

private:
    char id_[kMaxId + 1];
    char fw_[kMaxFw + 1];
    RandomFn random_;
    uint8_t key_[kKeyBytes];
    bool hasKey_;
    uint32_t lastSeq_;
    uint32_t commandSeq_;
    Event shown_;
    bool showing_;
};

class GatewayCore {
public:
    static constexpr size_t kMaxNodes = 16;
    static constexpr uint32_t kNodeTimeoutMs = 30000;
    // Nonces issued lately: none of them is ever taken as an appliance's nonce (reflection).
    static constexpr size_t kIssuedNonces = 8;

    GatewayCore(const char* id, const char* fw, RandomFn random);
    void setKey(const uint8_t key[kKeyBytes]);
    bool hasKey() const { return hasKey_; }

    // A new appliance connection: the session starts unauthenticated. The caller keeps at most
    // one connection in the handshake at a time and never drops a proven one for it.
    void applianceConnected() {
        state_ = State::Idle;
        appNonce_[0] = 0;
    }
    bool authenticated() const { return state_ == State::Authenticated; }
    Action onApplianceLine(const char* line, size_t len, char* reply, size_t cap,
                           size_t& replyLen);

    // A line from a node (mesh, BLE or serial): CMDs that verify go to the appliance.
    Action onNodeLine(const char* line, size_t len, uint32_t nowMs);
    size_t nodeCount(uint32_t nowMs) const;
    size_t heartbeat(uint32_t uptime, uint32_t nowMs, char* out, size_t cap);

    uint32_t lastSeq() const { return lastSeq_; }
    Counters counters;

private:
    enum class State : uint8_t { Idle, Challenged, Authenticated };
    void noteNode(const char* id, uint32_t nowMs);
    bool issued(const char* nonce) const;

    char id_[kMaxId + 1];
    char fw_[kMaxFw + 1];
    RandomFn random_;
    uint8_t key_[kKeyBytes];
    bool hasKey_;
    State state_;
    char nonce_[kNonceHex + 1];     // the challenge of this session
    char appNonce_[kNonceHex + 1];  // the appliance's nonce: binds our lines to this session
    char appId_[kMaxId + 1];
    char issued_[kIssuedNonces][kNonceHex + 1];
    size_t nextIssued_;
    uint32_t lastSeq_;
    char nodes_[kMaxNodes][kMaxId + 1];
    uint32_t seenMs_[kMaxNodes];
};

}  // namespace zeke
