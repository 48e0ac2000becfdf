// Host tests of firmware/lib/zekeproto, built with g++ and the sanitizers (see Makefile).
//
//   host_tests vectors VECTORS      shared vectors, SHA-256/HMAC known answers, role scenarios
//   host_tests fuzz VECTORS N SEED  N random and mutated lines: no crash, every line counted,
//                                   every accepted line re-encodes to itself
//   host_tests verdict VECTORS [SENDER]  escaped lines on stdin, one verdict a line on stdout
//                                   (ok:<TYPE> or the drop reason), tags checked as SENDER's
//                                   (app, node or gw:<nonce>; default app), for differential tests
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "zekeproto.h"

using namespace zeke;

namespace {

int failures = 0;
int checks = 0;

void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

std::string hex(const uint8_t* p, size_t n) {
    char buf[2 * 64 + 1];
    toHex(p, n, buf);
    return buf;
}

std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'x') {
            out += (char)strtol(s.substr(i + 1, 2).c_str(), nullptr, 16);
            i += 2;
        } else {
            out += c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : '\\';
        }
    }
    return out;
}

std::string escape(const std::string& s) {
    std::string out;
    char buf[8];
    for (unsigned char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c >= 0x20 && c <= 0x7e) {
            out += (char)c;
        } else {
            snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

// A vectors file's sender field: app, node or gw:<appliance nonce>. The nonce text lives in
// the returned holder so the Sender can point at it.
struct SenderText {
    Sender sender;
    std::string session;
};

SenderText parseSender(const std::string& text) {
    SenderText out;
    if (text == "node") {
        out.sender = fromNode();
    } else if (text.compare(0, 3, "gw:") == 0) {
        out.session = text.substr(3);
        out.sender = fromGateway(nullptr);
    } else {
        out.sender = fromApp();
    }
    return out;
}

Sender senderOf(const SenderText& t) {
    Sender s = t.sender;
    if (s.role == Role::Gateway) s.session = t.session.c_str();
    return s;
}

// The canonical dump of a message, the same text as zeke.mesh.protocol.describe().
std::string describe(const Message& m) {
    char buf[256];
    switch (m.type) {
        case Type::Hello:
            snprintf(buf, sizeof(buf), "HELLO role=%s id=%s fw=%s nonce=%s peer=%s last=%u",
                     roleName(m.hello.role), m.hello.id, m.hello.fw, m.hello.nonce,
                     m.hello.peer[0] ? m.hello.peer : "-", (unsigned)m.hello.last);
            break;
        case Type::Event:
            snprintf(buf, sizeof(buf), "EVT seq=%u kind=%s track=%u emotion=%s score=%u ts=%llu",
                     (unsigned)m.event.seq, kindName(m.event.kind), (unsigned)m.event.track,
                     emotionName(m.event.emotion), (unsigned)m.event.score,
                     (unsigned long long)m.event.ts);
            break;
        case Type::Command:
            snprintf(buf, sizeof(buf), "CMD seq=%u node=%s cmd=%s track=%u",
                     (unsigned)m.command.seq, m.command.node, cmdName(m.command.cmd),
                     (unsigned)m.command.track);
            break;
        case Type::Ack:
            snprintf(buf, sizeof(buf), "ACK seq=%u", (unsigned)m.ack.seq);
            break;
        case Type::Heartbeat:
            snprintf(buf, sizeof(buf), "HB uptime=%u nodes=%u dropped=%u",
                     (unsigned)m.heartbeat.uptime, (unsigned)m.heartbeat.nodes,
                     (unsigned)m.heartbeat.dropped);
            break;
        case Type::Key:
            snprintf(buf, sizeof(buf), "KEY key=%s", hex(m.key.key, kKeyBytes).c_str());
            break;
    }
    return buf;
}

std::string verdict(const std::string& line, const uint8_t* key, const Sender& sender) {
    Message m;
    Drop d = check(line.data(), line.size(), key, sender, m);
    if (d != Drop::None) return dropName(d);
    return std::string("ok:") + typeName(m.type);
}

// Re-encodes an accepted message; a valid line has exactly one encoding, so this must match.
// The encoders tag as the role that normally sends each type; the tag is then made again as
// the sender the line was checked against, so any valid (type, sender) pair round-trips.
std::string reencode(const Message& m, const uint8_t* key, const Sender& sender) {
    static const char* const kAnySession = "0000000000000000";
    char buf[kLineBuffer];
    size_t n = 0;
    switch (m.type) {
        case Type::Hello:
            n = encodeHello(buf, sizeof(buf), m.hello, key);
            break;
        case Type::Event:
            n = encodeEvent(buf, sizeof(buf), m.event, key);
            break;
        case Type::Command:
            n = encodeCommand(buf, sizeof(buf), m.command, key);
            break;
        case Type::Ack:
            n = encodeAck(buf, sizeof(buf), m.ack.seq, key, kAnySession);
            break;
        case Type::Heartbeat:
            n = encodeHeartbeat(buf, sizeof(buf), m.heartbeat, key, fromGateway(kAnySession));
            break;
        case Type::Key: {
            std::string s = "Z2 KEY " + hex(m.key.key, kKeyBytes) + "\n";
            return s.substr(0, s.size() - 1);
        }
    }
    if (!n) return "<encode failed>";
    std::string line(buf, n - 1);
    if (!m.hasTag) return line;
    std::string body = line.substr(0, line.size() - (2 + 2 * kTagBytes));
    uint8_t tag[kTagBytes];
    computeTag(key, sender, body.data(), body.size(), tag);
    return body + " #" + hex(tag, kTagBytes);
}

struct Vectors {
    uint8_t key[kKeyBytes];
    std::vector<std::string> kind, sender, expect, data;
};

bool loadVectors(const char* path, Vectors& v) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    char raw[4096];
    while (fgets(raw, sizeof(raw), f)) {
        std::string line(raw);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        size_t t1 = line.find('\t');
        if (line.substr(0, t1) == "key") {
            parseHex(line.c_str() + t1 + 1, 2 * kKeyBytes, v.key);
            continue;
        }
        size_t t2 = line.find('\t', t1 + 1);
        size_t t3 = line.find('\t', t2 + 1);
        v.kind.push_back(line.substr(0, t1));
        v.sender.push_back(line.substr(t1 + 1, t2 - t1 - 1));
        v.expect.push_back(line.substr(t2 + 1, t3 - t2 - 1));
        v.data.push_back(unescape(line.substr(t3 + 1)));
    }
    fclose(f);
    return true;
}

void testSha256() {
    struct Case {
        const char* msg;
        const char* digest;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (const Case& c : cases) {
        Sha256 h;
        h.update((const uint8_t*)c.msg, strlen(c.msg));
        uint8_t out[kSha256Bytes];
        h.finish(out);
        expect(hex(out, kSha256Bytes) == c.digest, std::string("sha256 of '") + c.msg + "'");
    }
    // One million 'a' fed in uneven chunks exercises the block boundary handling.
    Sha256 h;
    std::string chunk(997, 'a');
    size_t left = 1000000;
    while (left) {
        size_t n = left < chunk.size() ? left : chunk.size();
        h.update((const uint8_t*)chunk.data(), n);
        left -= n;
    }
    uint8_t out[kSha256Bytes];
    h.finish(out);
    expect(hex(out, kSha256Bytes) ==
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "sha256 of a million 'a'");
}

void testHmac() {
    // RFC 4231 test cases 1, 2 and 6 (a key longer than a block).
    uint8_t key1[20];
    memset(key1, 0x0b, sizeof(key1));
    uint8_t key6[131];
    memset(key6, 0xaa, sizeof(key6));
    struct Case {
        const uint8_t* key;
        size_t keyLen;
        const char* msg;
        const char* mac;
    } cases[] = {
        {key1, 20, "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {(const uint8_t*)"Jefe", 4, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {key6, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    for (const Case& c : cases) {
        HmacSha256 mac(c.key, c.keyLen);
        mac.update((const uint8_t*)c.msg, strlen(c.msg));
        uint8_t out[kSha256Bytes];
        mac.finish(out);
        expect(hex(out, kSha256Bytes) == c.mac, std::string("hmac-sha256 of '") + c.msg + "'");
    }
}

void runVectors(const Vectors& v) {
    int lines = 0, streams = 0;
    for (size_t i = 0; i < v.kind.size(); ++i) {
        const std::string& data = v.data[i];
        SenderText senderText = parseSender(v.sender[i]);
        Sender sender = senderOf(senderText);
        if (v.kind[i] == "ok" || v.kind[i] == "drop") {
            ++lines;
            Message m;
            Drop d = check(data.data(), data.size(), v.key, sender, m);
            std::string got = d == Drop::None ? "ok " + describe(m) : "drop " + std::string(dropName(d));
            std::string want = v.kind[i] + " " + v.expect[i];
            expect(got == want, "vector '" + escape(data) + "': got " + got + ", want " + want);
            if (d == Drop::None) {
                expect(reencode(m, v.key, sender) == data, "re-encoding of '" + escape(data) + "'");
            }
            continue;
        }
        // stream: feed byte by byte; record a verdict for each line or counted framer drop.
        ++streams;
        Framer framer;
        Counters counters;
        counters.clear();
        std::string got;
        auto note = [&got](const std::string& s) { got += (got.empty() ? "" : ",") + s; };
        for (unsigned char c : data) {
            uint32_t before = counters.totalDropped();
            if (framer.push(c, counters)) {
                note(verdict(std::string(framer.line(), framer.length()), v.key, sender));
            } else if (counters.totalDropped() != before) {
                note("oversize");
            }
        }
        uint32_t before = counters.totalDropped();
        framer.reset(counters);
        if (counters.totalDropped() != before) note("partial");
        expect(got == v.expect[i], "stream '" + escape(data) + "': got " + got + ", want " + v.expect[i]);
    }
    printf("vectors: %d lines, %d streams\n", lines, streams);
}

uint32_t rngState = 1;
uint32_t nextRandom() {  // xorshift32: deterministic, no libc state
    rngState ^= rngState << 13;
    rngState ^= rngState >> 17;
    rngState ^= rngState << 5;
    return rngState;
}
void fillRandom(uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; ++i) out[i] = (uint8_t)nextRandom();
}

void testRoles(const Vectors& v) {
    char reply[kLineBuffer];
    size_t replyLen = 0;
    // A node without a key answers an opening hello with its own opening hello.
    NodeLink node("node-1", "0.1.0", fillRandom);
    const char* hello = "Z2 HELLO gw gw1 1.0 0123456789abcdef - 0";
    Action a = node.onLine(hello, strlen(hello), false, reply, sizeof(reply), replyLen);
    expect(a == Action::Reply && strstr(reply, " - 0\n") != nullptr, "keyless node asks for a key");
    // A KEY is taken only on the trusted (USB) port.
    std::string keyLine = "Z2 KEY " + hex(v.key, kKeyBytes);
    a = node.onLine(keyLine.data(), keyLine.size(), false, reply, sizeof(reply), replyLen);
    expect(a == Action::None && !node.hasKey(), "KEY over an untrusted transport is refused");
    a = node.onLine(keyLine.data(), keyLine.size(), true, reply, sizeof(reply), replyLen);
    expect(a == Action::KeyChanged && node.hasKey(), "KEY over USB sets the key");
    a = node.onLine(hello, strlen(hello), false, reply, sizeof(reply), replyLen);
    Message m;
    expect(a == Action::Reply && check(reply, replyLen - 1, v.key, fromNode(), m) == Drop::None &&
               m.hasTag && strcmp(m.hello.peer, "0123456789abcdef") == 0,
           "keyed node proves the key in its hello");
    expect(check(reply, replyLen - 1, v.key, fromApp(), m) == Drop::Tag,
           "a node's hello never passes as the appliance's");
    // Events: shown once, in order; duplicates and forged ones counted and ignored.
    Event e = {5, Kind::Enter, 7, Emotion::Happy, 900, 1700000000000ULL};
    char line[kLineBuffer];
    size_t n = encodeEvent(line, sizeof(line), e, v.key);
    a = node.onLine(line, n - 1, false, reply, sizeof(reply), replyLen);
    expect(a == Action::Show && node.showing() && node.shown().emotion == Emotion::Happy,
           "node shows a tagged event");
    a = node.onLine(line, n - 1, false, reply, sizeof(reply), replyLen);
    expect(a == Action::None && node.counters.dropped[(int)Drop::Duplicate] == 1,
           "a repeated event is a counted duplicate");
    uint8_t other[kKeyBytes];
    memset(other, 0x42, sizeof(other));
    e.seq = 6;
    n = encodeEvent(line, sizeof(line), e, other);
    a = node.onLine(line, n - 1, false, reply, sizeof(reply), replyLen);
    expect(a == Action::None && node.counters.dropped[(int)Drop::Tag] == 2,
           "an event from another appliance is counted and ignored");
    n = node.command(Cmd::Yes, line, sizeof(line));
    expect(n > 0 && check(line, n - 1, v.key, fromNode(), m) == Drop::None &&
               m.type == Type::Command && m.command.track == 7 && m.command.seq == 1,
           "button press makes a tagged CMD about the shown track");
    // A node's command reflected back at it as if it were an event source: not taken.
    a = node.onLine(line, n - 1, false, reply, sizeof(reply), replyLen);
    expect(a == Action::None && node.counters.dropped[(int)Drop::Tag] == 3,
           "a node's own tagged line is not taken back as the appliance's");
    e.seq = 7;
    e.kind = Kind::Leave;
    n = encodeEvent(line, sizeof(line), e, v.key);
    node.onLine(line, n - 1, false, reply, sizeof(reply), replyLen);
    expect(!node.showing(), "leave of the shown track clears the ring");

    // Gateway: no event is relayed before the appliance has proven the key.
    GatewayCore gw("gw1", "1.0", fillRandom);
    gw.setKey(v.key);
    gw.applianceConnected();
    e.seq = 1;
    e.kind = Kind::Enter;
    n = encodeEvent(line, sizeof(line), e, v.key);
    a = gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(a == Action::None && gw.counters.dropped[(int)Drop::Tag] == 1,
           "gateway refuses events before the handshake");
    expect(gw.heartbeat(1, 0, line, sizeof(line)) == 0, "no heartbeat before a proven session");
    const char* appNonce = "1111111111111111";
    const char* appHello = "Z2 HELLO app cam 0.1.0 1111111111111111 - 0";
    a = gw.onApplianceLine(appHello, strlen(appHello), reply, sizeof(reply), replyLen);
    expect(a == Action::Reply &&
               check(reply, replyLen - 1, v.key, fromGateway(appNonce), m) == Drop::None,
           "gateway answers with a hello tagged for this session");
    std::string gwAnswer(reply, replyLen - 1);
    char challenge[kNonceHex + 1];
    memcpy(challenge, m.hello.nonce, sizeof(challenge));
    expect(check(reply, replyLen - 1, v.key, fromApp(), m) == Drop::Tag,
           "the gateway's answer never verifies as the appliance's");

    // The reflection attack: a second connection opens with the challenge of the first as its
    // own nonce, hoping for a gateway line it can replay as the first connection's proof.
    GatewayCore gw2("gw1", "1.0", fillRandom);
    gw2.setKey(v.key);
    gw2.applianceConnected();
    a = gw2.onApplianceLine(appHello, strlen(appHello), reply, sizeof(reply), replyLen);
    check(reply, replyLen - 1, v.key, fromGateway(appNonce), m);
    std::string challenged = m.hello.nonce;
    std::string reflect = std::string("Z2 HELLO app x 1 ") + challenged + " - 0";
    gw2.applianceConnected();  // the attacker's second connection (one core, one session slot)
    uint32_t tagDrops = gw2.counters.dropped[(int)Drop::Tag];
    a = gw2.onApplianceLine(reflect.data(), reflect.size(), reply, sizeof(reply), replyLen);
    expect(a == Action::None && replyLen == 0 &&
               gw2.counters.dropped[(int)Drop::Tag] == tagDrops + 1,
           "reflection: the gateway's own challenge is refused as a peer's nonce");
    // Even if another gateway answered it, that answer (a gateway's line) is no proof.
    GatewayCore helper("gw1", "1.0", fillRandom);
    helper.setKey(v.key);
    helper.applianceConnected();
    a = helper.onApplianceLine(reflect.data(), reflect.size(), reply, sizeof(reply), replyLen);
    std::string reflected(reply, replyLen ? replyLen - 1 : 0);
    gw2.applianceConnected();
    gw2.onApplianceLine(appHello, strlen(appHello), reply, sizeof(reply), replyLen);
    gw2.onApplianceLine(reflected.data(), reflected.size(), reply, sizeof(reply), replyLen);
    expect(!gw2.authenticated(), "reflection: a gateway's answer replayed as a proof fails");
    gw2.onApplianceLine(gwAnswer.data(), gwAnswer.size(), reply, sizeof(reply), replyLen);
    expect(!gw2.authenticated(), "reflection: the gateway's own answer replayed fails");

    Hello proof;
    proof.role = Role::App;
    strcpy(proof.id, "cam");
    strcpy(proof.fw, "0.1.0");
    strcpy(proof.nonce, appNonce);
    strcpy(proof.peer, challenge);
    proof.last = 0;
    n = encodeHello(line, sizeof(line), proof, other);
    gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(!gw.authenticated(), "a proof with the wrong key fails");
    Hello wrongNonce = proof;
    strcpy(wrongNonce.nonce, "2222222222222222");
    n = encodeHello(line, sizeof(line), wrongNonce, v.key);
    gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(!gw.authenticated(), "a proof for another opening nonce fails");
    Hello wrongId = proof;
    strcpy(wrongId.id, "intruder");
    n = encodeHello(line, sizeof(line), wrongId, v.key);
    gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(!gw.authenticated(), "a proof from another appliance id fails");
    n = encodeHello(line, sizeof(line), proof, v.key);
    std::string goodProof(line, n - 1);
    gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(gw.authenticated(), "the appliance's proof authenticates the session");
    n = encodeEvent(line, sizeof(line), e, v.key);
    a = gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(a == Action::Forward &&
               check(reply, replyLen - 1, v.key, fromGateway(appNonce), m) == Drop::None &&
               m.type == Type::Ack && m.ack.seq == 1,
           "an authenticated event is forwarded and acknowledged for this session");
    expect(check(reply, replyLen - 1, v.key, fromGateway("3333333333333333"), m) == Drop::Tag,
           "an ack of one session is no ack in another");
    a = gw.onApplianceLine(line, n - 1, reply, sizeof(reply), replyLen);
    expect(a == Action::Reply && gw.counters.dropped[(int)Drop::Duplicate] == 1,
           "a resent event is acknowledged but not forwarded again");
    n = gw.heartbeat(1, 0, line, sizeof(line));
    expect(n > 0 && check(line, n - 1, v.key, fromGateway(appNonce), m) == Drop::None,
           "heartbeats are bound to the proven session");
    a = gw.onApplianceLine(appHello, strlen(appHello), reply, sizeof(reply), replyLen);
    expect(a == Action::None && gw.authenticated(),
           "a proven session is not reopened by a hello inside it");

    // Replay across sessions: the old proof is worthless against a new challenge.
    gw.applianceConnected();
    gw.onApplianceLine(appHello, strlen(appHello), reply, sizeof(reply), replyLen);
    gw.onApplianceLine(goodProof.data(), goodProof.size(), reply, sizeof(reply), replyLen);
    expect(!gw.authenticated(), "replay: a proof from an earlier session fails");

    n = node.command(Cmd::No, line, sizeof(line));
    expect(gw.onNodeLine(line, n - 1, 1000) == Action::ToAppliance && gw.nodeCount(1000) == 1,
           "a node command goes to the appliance");
    n = encodeEvent(line, sizeof(line), e, v.key);
    expect(gw.onNodeLine(line, n - 1, 1000) == Action::None,
           "an appliance's event offered as a node's line is dropped");
    n = node.command(Cmd::No, line, sizeof(line));
    line[n - 3] = line[n - 3] == '0' ? '1' : '0';  // corrupt the tag
    expect(gw.onNodeLine(line, n - 1, 1000) == Action::None, "a command with a bad tag is dropped");
    expect(gw.nodeCount(1000 + GatewayCore::kNodeTimeoutMs + 1) == 0, "silent nodes expire");

    // Downgrade: a valid version 1 line is dropped as another version, never understood.
    const char* v1 = "Z1 HELLO app cam 0.1.0 1111111111111111 - 0";
    gw.applianceConnected();
    a = gw.onApplianceLine(v1, strlen(v1), reply, sizeof(reply), replyLen);
    expect(a == Action::None && replyLen == 0, "downgrade: a version 1 hello gets no answer");
}

// One random or mutated line from the seeds.
std::string fuzzLine(const std::vector<std::string>& seeds, size_t& seed) {
    seed = seeds.size();  // none: a random line
    static const char* const words[] = {"Z2", "EVT", "HELLO", "CMD", "ACK", "HB", "KEY",
                                        "#",  "-",   "happy", "0",   " ",   "4294967296"};
    std::string s;
    uint32_t r = nextRandom() % 8;
    if (r == 0) {  // pure random bytes
        size_t n = nextRandom() % 200;
        for (size_t i = 0; i < n; ++i) s += (char)nextRandom();
    } else if (r == 1) {  // random printable words
        size_t n = 1 + nextRandom() % 10;
        for (size_t i = 0; i < n; ++i) {
            if (i) s += ' ';
            s += words[nextRandom() % (sizeof(words) / sizeof(words[0]))];
        }
    } else {  // mutate a seed: flips, inserts, deletes, truncations, splices
        seed = nextRandom() % seeds.size();
        s = seeds[seed];
        size_t edits = 1 + nextRandom() % 4;
        for (size_t e = 0; e < edits; ++e) {
            size_t pos = s.empty() ? 0 : nextRandom() % s.size();
            switch (nextRandom() % 6) {
                case 0:
                    if (!s.empty()) s[pos] = (char)(s[pos] ^ (1 << (nextRandom() % 8)));
                    break;
                case 1:
                    s.insert(pos, 1, (char)(0x20 + nextRandom() % 95));
                    break;
                case 2:
                    if (!s.empty()) s.erase(pos, 1);
                    break;
                case 3:
                    s = s.substr(0, pos);
                    break;
                case 4:
                    s += seeds[nextRandom() % seeds.size()].substr(0, nextRandom() % 40);
                    break;
                default:
                    if (!s.empty()) s[pos] = "0123456789abcdef #-"[nextRandom() % 19];
                    break;
            }
        }
    }
    for (char& c : s) {
        if (c == '\n') c = ' ';  // one line per fuzz case; the framer tests cover LF
    }
    return s;
}

int runFuzz(const Vectors& v, long count) {
    std::vector<std::string> seeds;
    std::vector<SenderText> senders;
    for (size_t i = 0; i < v.kind.size(); ++i) {
        if (v.kind[i] != "stream") {
            seeds.push_back(v.data[i]);
            senders.push_back(parseSender(v.sender[i]));
        }
    }
    SenderText app = parseSender("app");
    Framer framer;
    Counters counters;
    counters.clear();
    long expected = 0, accepted = 0;
    for (long i = 0; i < count; ++i) {
        size_t seed = 0;
        std::string s = fuzzLine(seeds, seed);
        Sender sender = senderOf(seed < seeds.size() ? senders[seed] : app);
        std::string stripped = s;
        if (!stripped.empty() && stripped.back() == '\r') stripped.pop_back();
        if (!stripped.empty()) ++expected;
        uint32_t before = counters.ok + counters.totalDropped();
        s += '\n';
        for (unsigned char c : s) {
            if (framer.push(c, counters)) {
                Message m;
                Drop d = check(framer.line(), framer.length(), v.key, sender, m);
                if (d == Drop::None) {
                    counters.ok++;
                    ++accepted;
                    std::string line(framer.line(), framer.length());
                    expect(reencode(m, v.key, sender) == line, "fuzz: accepted line re-encodes: " + escape(line));
                } else {
                    counters.drop(d);
                }
            }
        }
        uint32_t after = counters.ok + counters.totalDropped();
        if (after - before != (stripped.empty() ? 0u : 1u)) {
            expect(false, "fuzz: line not counted exactly once: " + escape(s));
        }
    }
    printf("fuzz: %ld lines, %ld counted, %u ok, %ld accepted, dropped:", count, expected,
           counters.ok, accepted);
    for (int d = 1; d < (int)Drop::Count; ++d) {
        printf(" %s=%u", dropName((Drop)d), counters.dropped[d]);
    }
    printf("\n");
    expect((long)(counters.ok + counters.totalDropped()) == expected, "fuzz: every line counted");
    return 0;
}

int runVerdicts(const uint8_t* key, const Sender& sender) {
    char raw[8192];
    while (fgets(raw, sizeof(raw), stdin)) {
        std::string line(raw);
        if (!line.empty() && line.back() == '\n') line.pop_back();
        printf("%s\n", verdict(unescape(line), key, sender).c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: host_tests vectors|fuzz|verdict VECTORS [N SEED]\n");
        return 2;
    }
    Vectors v;
    if (!loadVectors(argv[2], v)) return 2;
    std::string mode = argv[1];
    if (mode == "vectors") {
        testSha256();
        testHmac();
        runVectors(v);
        testRoles(v);
    } else if (mode == "fuzz") {
        long count = argc > 3 ? atol(argv[3]) : 100000;
        rngState = argc > 4 ? (uint32_t)strtoul(argv[4], nullptr, 10) | 1u : 1u;
        runFuzz(v, count);
    } else if (mode == "verdict") {
        SenderText sender = parseSender(argc > 3 ? argv[3] : "app");
        return runVerdicts(v.key, senderOf(sender));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode.c_str());
        return 2;
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
