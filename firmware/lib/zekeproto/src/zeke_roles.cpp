#include "zeke_roles.h"

#include <string.h>

namespace zeke {
namespace {

void copyBounded(char* dst, const char* src, size_t cap) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

void newNonce(RandomFn random, char out[kNonceHex + 1]) {
    uint8_t raw[kNonceHex / 2];
    random(raw, sizeof(raw));
    toHex(raw, sizeof(raw), out);
}

}  // namespace

// --- NodeLink ----------------------------------------------------------------------------------

NodeLink::NodeLink(const char* id, const char* fw, RandomFn random)
    : random_(random), hasKey_(false), lastSeq_(0), commandSeq_(0), showing_(false) {
    copyBounded(id_, id, sizeof(id_));
    copyBounded(fw_, fw, sizeof(fw_));
    memset(key_, 0, sizeof(key_));
    memset(&shown_, 0, sizeof(shown_));
    counters.clear();
}

void NodeLink::setKey(const uint8_t key[kKeyBytes]) {
    memcpy(key_, key, kKeyBytes);
    hasKey_ = true;
}

Action NodeLink::onLine(const char* line, size_t len, bool trusted, char* reply, size_t cap,
                        size_t& replyLen) {
    replyLen = 0;
    Message m;
    // The tagged lines a node takes are the appliance's events, relayed verbatim.
    Drop d = hasKey_ ? check(line, len, key_, fromApp(), m) : parse(line, len, m);
    if (d == Drop::None && !hasKey_ && m.hasTag) d = Drop::Tag;  // cannot verify: not ours
    if (d == Drop::None && m.type == Type::Key && !trusted) d = Drop::Tag;
    if (d != Drop::None) {
        counters.drop(d);
        return Action::None;
    }
    switch (m.type) {
        case Type::Key:
            counters.ok++;
            setKey(m.key.key);
            lastSeq_ = 0;
            showing_ = false;
            return Action::KeyChanged;
        case Type::Hello: {
            counters.ok++;
            if (m.hello.peer[0] != 0) return Action::None;  // a proof meant for someone else
            Hello h;
            h.role = Role::Node;
            copyBounded(h.id, id_, sizeof(h.id));
            copyBounded(h.fw, fw_, sizeof(h.fw));
            newNonce(random_, h.nonce);
            // Without a key the answer is an opening hello: it tells the peer to provision us.
            if (hasKey_) {
                memcpy(h.peer, m.hello.nonce, sizeof(h.peer));
            } else {
                h.peer[0] = 0;
            }
            h.last = lastSeq_;
            replyLen = encodeHello(reply, cap, h, hasKey_ ? key_ : nullptr);
            return replyLen ? Action::Reply : Action::None;
        }
        case Type::Event:
            if (m.event.seq <= lastSeq_) {
                counters.drop(Drop::Duplicate);
                return Action::None;
            }
            counters.ok++;
            lastSeq_ = m.event.seq;
            if (m.event.kind == Kind::Leave) {
                if (showing_ && shown_.track == m.event.track) showing_ = false;
                return Action::Show;
            }
            shown_ = m.event;
            showing_ = true;
            return Action::Show;
        default:
            counters.ok++;
            return Action::None;
    }
}

size_t NodeLink::command(Cmd cmd, char* out, size_t cap) {
    if (!hasKey_) return 0;
    Command c;
    c.seq = ++commandSeq_;
    copyBounded(c.node, id_, sizeof(c.node));
    c.cmd = cmd;
    c.track = showing_ ? shown_.track : 0;
    return encodeCommand(out, cap, c, key_);
}

size_t NodeLink::heartbeat(uint32_t uptime, char* out, size_t cap) {
    if (!hasKey_) return 0;
    Heartbeat h;
    h.uptime = uptime;
    h.nodes = 1;
    h.dropped = counters.totalDropped();
    return encodeHeartbeat(out, cap, h, key_, fromNode());
}

// --- GatewayCore -------------------------------------------------------------------------------

GatewayCore::GatewayCore(const char* id, const char* fw, RandomFn random)
    : random_(random), hasKey_(false), state_(State::Idle), nextIssued_(0), lastSeq_(0) {
    copyBounded(id_, id, sizeof(id_));
    copyBounded(fw_, fw, sizeof(fw_));
    memset(key_, 0, sizeof(key_));
    nonce_[0] = 0;
    appNonce_[0] = 0;
    appId_[0] = 0;
    for (size_t i = 0; i < kIssuedNonces; ++i) issued_[i][0] = 0;
    for (size_t i = 0; i < kMaxNodes; ++i) nodes_[i][0] = 0;
    memset(seenMs_, 0, sizeof(seenMs_));
    counters.clear();
}

void GatewayCore::setKey(const uint8_t key[kKeyBytes]) {
    memcpy(key_, key, kKeyBytes);
    hasKey_ = true;
}

bool GatewayCore::issued(const char* nonce) const {
    for (size_t i = 0; i < kIssuedNonces; ++i) {
        if (issued_[i][0] != 0 && strcmp(issued_[i], nonce) == 0) return true;
    }
    return false;
}

Action GatewayCore::onApplianceLine(const char* line, size_t len, char* reply, size_t cap,
                                    size_t& replyLen) {
    replyLen = 0;
    Message m;
    // Everything on this connection must be the appliance's own: a gateway's tagged answer
    // (ours, reflected) never verifies as the appliance's.
    Drop d = hasKey_ ? check(line, len, key_, fromApp(), m) : parse(line, len, m);
    if (d == Drop::None && !hasKey_ && m.hasTag) d = Drop::Tag;
    // Only a handshake is taken before the appliance has proven the key, and only once.
    if (d == Drop::None && state_ != State::Authenticated && m.type != Type::Hello) d = Drop::Tag;
    if (d == Drop::None && state_ == State::Authenticated && m.type == Type::Hello) d = Drop::Tag;
    if (d == Drop::None && m.type == Type::Key) d = Drop::Tag;  // never over the network
    if (d != Drop::None) {
        counters.drop(d);
        return Action::None;
    }
    if (m.type == Type::Hello) {
        if (m.hello.role != Role::App || !hasKey_) {
            counters.drop(Drop::Tag);
            return Action::None;
        }
        if (m.hello.peer[0] == 0) {  // opening: answer with our proof and a fresh nonce
            if (issued(m.hello.nonce)) {  // our own challenge offered back as theirs
                counters.drop(Drop::Tag);
                state_ = State::Idle;
                return Action::None;
            }
            counters.ok++;
            Hello h;
            h.role = Role::Gateway;
            copyBounded(h.id, id_, sizeof(h.id));
            copyBounded(h.fw, fw_, sizeof(h.fw));
            newNonce(random_, nonce_);
            copyBounded(issued_[nextIssued_], nonce_, sizeof(issued_[0]));
            nextIssued_ = (nextIssued_ + 1) % kIssuedNonces;
            memcpy(h.nonce, nonce_, sizeof(h.nonce));
            memcpy(h.peer, m.hello.nonce, sizeof(h.peer));
            memcpy(appNonce_, m.hello.nonce, sizeof(appNonce_));
            copyBounded(appId_, m.hello.id, sizeof(appId_));
            h.last = lastSeq_;
            state_ = State::Challenged;
            replyLen = encodeHello(reply, cap, h, key_);
            return replyLen ? Action::Reply : Action::None;
        }
        // The proof: the challenged appliance's, for its nonce and ours.
        if (state_ == State::Challenged && strcmp(m.hello.peer, nonce_) == 0 &&
            strcmp(m.hello.nonce, appNonce_) == 0 && strcmp(m.hello.id, appId_) == 0) {
            counters.ok++;
            state_ = State::Authenticated;
        } else {
            counters.drop(Drop::Tag);  // a replayed or stray proof
        }
        return Action::None;
    }
    if (m.type == Type::Event) {
        if (m.event.seq <= lastSeq_) {
            counters.drop(Drop::Duplicate);
            replyLen = encodeAck(reply, cap, lastSeq_, key_, appNonce_);
            return replyLen ? Action::Reply : Action::None;
        }
        counters.ok++;
        lastSeq_ = m.event.seq;
        replyLen = encodeAck(reply, cap, lastSeq_, key_, appNonce_);
        return Action::Forward;
    }
    counters.ok++;
    return Action::None;
}

Action GatewayCore::onNodeLine(const char* line, size_t len, uint32_t nowMs) {
    Message m;
    Drop d = hasKey_ ? check(line, len, key_, fromNode(), m) : parse(line, len, m);
    if (d == Drop::None && !m.hasTag) d = Drop::Tag;  // nodes speak only tagged lines here
    if (d != Drop::None) {
        counters.drop(d);
        return Action::None;
    }
    counters.ok++;
    if (m.type == Type::Command) {
        noteNode(m.command.node, nowMs);
        return Action::ToAppliance;
    }
    if (m.type == Type::Hello && m.hello.role == Role::Node) noteNode(m.hello.id, nowMs);
    return Action::None;
}

void GatewayCore::noteNode(const char* id, uint32_t nowMs) {
    size_t free = kMaxNodes;
    size_t oldest = 0;
    for (size_t i = 0; i < kMaxNodes; ++i) {
        if (strcmp(nodes_[i], id) == 0) {
            seenMs_[i] = nowMs;
            return;
        }
        if (nodes_[i][0] == 0 && free == kMaxNodes) free = i;
        if (nowMs - seenMs_[i] > nowMs - seenMs_[oldest]) oldest = i;
    }
    size_t slot = free != kMaxNodes ? free : oldest;
    copyBounded(nodes_[slot], id, sizeof(nodes_[slot]));
    seenMs_[slot] = nowMs;
}

size_t GatewayCore::nodeCount(uint32_t nowMs) const {
    size_t n = 0;
    for (size_t i = 0; i < kMaxNodes; ++i) {
        if (nodes_[i][0] != 0 && nowMs - seenMs_[i] <= kNodeTimeoutMs) ++n;
    }
    return n;
}

size_t GatewayCore::heartbeat(uint32_t uptime, uint32_t nowMs, char* out, size_t cap) {
    if (!hasKey_ || state_ != State::Authenticated) return 0;  // bound to a proven session
    Heartbeat h;
    h.uptime = uptime;
    h.nodes = (uint16_t)nodeCount(nowMs);
    h.dropped = counters.totalDropped();
    return encodeHeartbeat(out, cap, h, key_, fromGateway(appNonce_));
}

}  // namespace zeke
