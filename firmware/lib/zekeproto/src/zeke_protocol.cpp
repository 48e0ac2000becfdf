#include "zeke_protocol.h"

#include <string.h>

#include "zeke_sha256.h"

namespace zeke {
namespace {

const char* const kDropNames[] = {"none",    "oversize", "encoding", "version",  "syntax",
                                  "unknown", "tag",      "partial",  "duplicate"};
const char* const kTypeNames[] = {"HELLO", "EVT", "CMD", "ACK", "HB", "KEY"};
const char* const kRoleNames[] = {"app", "gw", "node"};
const char* const kKindNames[] = {"enter", "change", "update", "leave"};
const char* const kEmotionNames[] = {"angry", "disgust", "fear",   "happy",
                                     "sad",   "surprise", "neutral"};
const char* const kCmdNames[] = {"yes", "no", "capture", "reset"};

// A field of a line: a pointer into the caller's line and its length.
struct Span {
    const char* p;
    size_t n;
};

constexpr size_t kMaxFields = 10;

bool spanIs(const Span& s, const char* word) {
    size_t n = strlen(word);
    return s.n == n && memcmp(s.p, word, n) == 0;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isLowerHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f'); }
bool isIdChar(char c) {
    return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '-';
}

// Unsigned decimal without leading zeros, within [minimum, maximum].
bool parseUint(const Span& s, uint64_t minimum, uint64_t maximum, uint64_t& out) {
    if (s.n == 0 || s.n > 20) return false;
    if (s.n > 1 && s.p[0] == '0') return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; ++i) {
        if (!isDigit(s.p[i])) return false;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (v > (maximum - d) / 10) return false;  // would exceed maximum (no overflow)
        v = v * 10 + d;
    }
    if (v < minimum) return false;
    out = v;
    return true;
}

bool parseU32(const Span& s, uint32_t minimum, uint32_t maximum, uint32_t& out) {
    uint64_t v;
    if (!parseUint(s, minimum, maximum, v)) return false;
    out = (uint32_t)v;
    return true;
}

template <typename E, size_t N>
bool parseWord(const Span& s, const char* const (&names)[N], E& out) {
    for (size_t i = 0; i < N; ++i) {
        if (spanIs(s, names[i])) {
            out = (E)i;
            return true;
        }
    }
    return false;
}

bool parseIdent(const Span& s, size_t maxLen, bool allowPlus, char* out) {
    if (s.n == 0 || s.n > maxLen) return false;
    for (size_t i = 0; i < s.n; ++i) {
        if (!isIdChar(s.p[i]) && !(allowPlus && s.p[i] == '+')) return false;
    }
    memcpy(out, s.p, s.n);
    out[s.n] = 0;
    return true;
}

bool parseNonce(const Span& s, char* out) {
    if (s.n != kNonceHex) return false;
    for (size_t i = 0; i < s.n; ++i) {
        if (!isLowerHex(s.p[i])) return false;
    }
    memcpy(out, s.p, s.n);
    out[s.n] = 0;
    return true;
}

uint8_t hexValue(char c) { return isDigit(c) ? (uint8_t)(c - '0') : (uint8_t)(c - 'a' + 10); }

bool parseFields(Type type, const Span* f, size_t n, Message& m) {
    switch (type) {
        case Type::Hello: {
            Hello& h = m.hello;
            if (n != 6) return false;
            if (!parseWord(f[0], kRoleNames, h.role)) return false;
            if (!parseIdent(f[1], kMaxId, false, h.id)) return false;
            if (!parseIdent(f[2], kMaxFw, true, h.fw)) return false;
            if (!parseNonce(f[3], h.nonce)) return false;
            if (f[4].n == 1 && f[4].p[0] == '-') {
                h.peer[0] = 0;
            } else if (!parseNonce(f[4], h.peer)) {
                return false;
            }
            return parseU32(f[5], 0, 0xFFFFFFFFu, h.last);
        }
        case Type::Event: {
            Event& e = m.event;
            uint32_t score;
            if (n != 6) return false;
            if (!parseU32(f[0], 1, 0xFFFFFFFFu, e.seq)) return false;
            if (!parseWord(f[1], kKindNames, e.kind)) return false;
            if (!parseU32(f[2], 0, 0xFFFFFFFFu, e.track)) return false;
            if (!parseWord(f[3], kEmotionNames, e.emotion)) return false;
            if (!parseU32(f[4], 0, 1000, score)) return false;
            e.score = (uint16_t)score;
            return parseUint(f[5], 0, kMaxTs, e.ts);
        }
        case Type::Command: {
            Command& c = m.command;
            if (n != 4) return false;
            if (!parseU32(f[0], 1, 0xFFFFFFFFu, c.seq)) return false;
            if (!parseIdent(f[1], kMaxId, false, c.node)) return false;
            if (!parseWord(f[2], kCmdNames, c.cmd)) return false;
            return parseU32(f[3], 0, 0xFFFFFFFFu, c.track);
        }
        case Type::Ack:
            return n == 1 && parseU32(f[0], 0, 0xFFFFFFFFu, m.ack.seq);
        case Type::Heartbeat: {
            uint32_t nodes;
            if (n != 3) return false;
            if (!parseU32(f[0], 0, 0xFFFFFFFFu, m.heartbeat.uptime)) return false;
            if (!parseU32(f[1], 0, 65535, nodes)) return false;
            m.heartbeat.nodes = (uint16_t)nodes;
            return parseU32(f[2], 0, 0xFFFFFFFFu, m.heartbeat.dropped);
        }
        case Type::Key:
            if (n != 1 || f[0].n != kKeyBytes * 2) return false;
            return parseHex(f[0].p, f[0].n, m.key.key);
    }
    return false;
}

bool tagRequired(const Message& m) {
    if (m.type == Type::Key) return false;
    if (m.type == Type::Hello) return m.hello.peer[0] != 0;
    return true;
}

// Small bounded writer for the encoders: stops (and remembers) on overflow.
class Writer {
public:
    Writer(char* buf, size_t cap) : buf_(buf), cap_(cap), len_(0), ok_(cap > 0) {}
    void str(const char* s) {
        while (*s) chr(*s++);
    }
    void chr(char c) {
        if (len_ + 1 >= cap_) {
            ok_ = false;
            return;
        }
        buf_[len_++] = c;
    }
    void u64(uint64_t v) {
        char tmp[21];
        size_t i = 0;
        do {
            tmp[i++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (i) chr(tmp[--i]);
    }
    // Appends " #<tag>" (if key), "\n" and the NUL; returns the length or 0.
    size_t finish(const uint8_t* key, const Sender& sender) {
        if (key && ok_) {
            uint8_t tag[kTagBytes];
            computeTag(key, sender, buf_, len_, tag);
            char hex[kTagBytes * 2 + 1];
            toHex(tag, kTagBytes, hex);
            str(" #");
            str(hex);
        }
        chr('\n');
        if (!ok_ || len_ - 1 > kMaxLine) return 0;
        buf_[len_] = 0;
        return len_;
    }

private:
    char* buf_;
    size_t cap_;
    size_t len_;
    bool ok_;
};

}  // namespace

const char* dropName(Drop d) {
    return (size_t)d < sizeof(kDropNames) / sizeof(kDropNames[0]) ? kDropNames[(size_t)d] : "?";
}
const char* typeName(Type t) { return kTypeNames[(size_t)t]; }
const char* roleName(Role r) { return kRoleNames[(size_t)r]; }
const char* kindName(Kind k) { return kKindNames[(size_t)k]; }
const char* emotionName(Emotion e) { return kEmotionNames[(size_t)e]; }
const char* cmdName(Cmd c) { return kCmdNames[(size_t)c]; }

bool parseHex(const char* text, size_t len, uint8_t* out) {
    if (len % 2) return false;
    for (size_t i = 0; i < len; ++i) {
        if (!isLowerHex(text[i])) return false;
    }
    for (size_t i = 0; i < len / 2; ++i) {
        out[i] = (uint8_t)(hexValue(text[2 * i]) << 4 | hexValue(text[2 * i + 1]));
    }
    return true;
}

void toHex(const uint8_t* data, size_t len, char* out) {
    static const char kDigits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; ++i) {
        out[2 * i] = kDigits[data[i] >> 4];
        out[2 * i + 1] = kDigits[data[i] & 15];
    }
    out[2 * len] = 0;
}

Drop parse(const char* line, size_t len, Message& m) {
    if (len > kMaxLine) return Drop::Oversize;
    for (size_t i = 0; i < len; ++i) {
        if ((uint8_t)line[i] < 0x20 || (uint8_t)line[i] > 0x7e) return Drop::Encoding;
    }
    // Split on single spaces. Only the first kMaxFields are kept (no type has more); the last
    // field is kept apart because it may be the tag.
    Span f[kMaxFields];
    Span lastField = {line, 0};
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; ++i) {
        if (i == len || line[i] == ' ') {
            lastField.p = line + start;
            lastField.n = i - start;
            if (n < kMaxFields) f[n] = lastField;
            ++n;
            start = i + 1;
        }
    }
    // Version head: 'Z' and 1-3 digits without a leading zero.
    const Span& head = f[0];
    if (head.n < 2 || head.n > 4 || head.p[0] != 'Z') return Drop::Syntax;
    for (size_t i = 1; i < head.n; ++i) {
        if (!isDigit(head.p[i])) return Drop::Syntax;
    }
    if (head.n > 2 && head.p[1] == '0') return Drop::Syntax;
    if (head.n != 2 || head.p[1] != '0' + kProtocolVersion) return Drop::Version;
    if (n < 2 || f[1].n == 0) return Drop::Syntax;
    size_t t = 0;
    for (; t < sizeof(kTypeNames) / sizeof(kTypeNames[0]); ++t) {
        if (spanIs(f[1], kTypeNames[t])) break;
    }
    if (t == sizeof(kTypeNames) / sizeof(kTypeNames[0])) return Drop::Unknown;
    m.type = (Type)t;
    m.hasTag = false;
    m.bodyLen = len;
    if (lastField.n >= 1 && lastField.p[0] == '#') {
        const Span& tag = lastField;
        if (tag.n != 1 + kTagBytes * 2 || !parseHex(tag.p + 1, kTagBytes * 2, m.tag)) {
            return Drop::Tag;
        }
        m.hasTag = true;
        m.bodyLen = len - tag.n - 1;
        --n;
    }
    // Fields with empty spans (double or trailing spaces) never pass a field parser.
    if (n > kMaxFields || !parseFields(m.type, f + 2, n - 2, m)) return Drop::Syntax;
    if (tagRequired(m)) {
        if (!m.hasTag) return Drop::Tag;
    } else if (m.hasTag) {
        return Drop::Syntax;
    }
    return Drop::None;
}

void computeTag(const uint8_t key[kKeyBytes], const Sender& sender, const char* body, size_t len,
                uint8_t tag[kTagBytes]) {
    HmacSha256 mac(key, kKeyBytes);
    const char* role = roleName(sender.role);
    mac.update((const uint8_t*)role, strlen(role));
    if (sender.session != nullptr) {
        mac.update((const uint8_t*)" ", 1);
        mac.update((const uint8_t*)sender.session, strlen(sender.session));
    }
    mac.update((const uint8_t*)"\n", 1);
    mac.update((const uint8_t*)body, len);
    uint8_t full[kSha256Bytes];
    mac.finish(full);
    memcpy(tag, full, kTagBytes);
}

bool verify(const char* line, const Message& m, const uint8_t key[kKeyBytes],
            const Sender& sender) {
    if (!m.hasTag) return false;
    uint8_t expected[kTagBytes];
    computeTag(key, sender, line, m.bodyLen, expected);
    return equalConstantTime(expected, m.tag, kTagBytes);
}

Drop check(const char* line, size_t len, const uint8_t key[kKeyBytes], const Sender& sender,
           Message& m) {
    Drop d = parse(line, len, m);
    if (d != Drop::None) return d;
    if (m.hasTag && !verify(line, m, key, sender)) return Drop::Tag;
    return Drop::None;
}

size_t encodeEvent(char* buf, size_t cap, const Event& e, const uint8_t key[kKeyBytes]) {
    if (e.seq == 0 || e.score > 1000 || e.ts > kMaxTs || (int)e.kind > 3 || (int)e.emotion > 6) {
        return 0;
    }
    Writer w(buf, cap);
    w.str("Z2 EVT ");
    w.u64(e.seq);
    w.chr(' ');
    w.str(kindName(e.kind));
    w.chr(' ');
    w.u64(e.track);
    w.chr(' ');
    w.str(emotionName(e.emotion));
    w.chr(' ');
    w.u64(e.score);
    w.chr(' ');
    w.u64(e.ts);
    return w.finish(key, fromApp());
}

size_t encodeCommand(char* buf, size_t cap, const Command& c, const uint8_t key[kKeyBytes]) {
    Span node = {c.node, strlen(c.node)};
    char check[kMaxId + 1];
    if (c.seq == 0 || (int)c.cmd > 3 || !parseIdent(node, kMaxId, false, check)) return 0;
    Writer w(buf, cap);
    w.str("Z2 CMD ");
    w.u64(c.seq);
    w.chr(' ');
    w.str(c.node);
    w.chr(' ');
    w.str(cmdName(c.cmd));
    w.chr(' ');
    w.u64(c.track);
    return w.finish(key, fromNode());
}

size_t encodeAck(char* buf, size_t cap, uint32_t seq, const uint8_t key[kKeyBytes],
                 const char* appNonce) {
    if (appNonce == nullptr || strlen(appNonce) != kNonceHex) return 0;
    Writer w(buf, cap);
    w.str("Z2 ACK ");
    w.u64(seq);
    return w.finish(key, fromGateway(appNonce));
}

size_t encodeHeartbeat(char* buf, size_t cap, const Heartbeat& h, const uint8_t key[kKeyBytes],
                       const Sender& sender) {
    if (sender.role == Role::Gateway &&
        (sender.session == nullptr || strlen(sender.session) != kNonceHex)) {
        return 0;
    }
    Writer w(buf, cap);
    w.str("Z2 HB ");
    w.u64(h.uptime);
    w.chr(' ');
    w.u64(h.nodes);
    w.chr(' ');
    w.u64(h.dropped);
    return w.finish(key, sender);
}

size_t encodeHello(char* buf, size_t cap, const Hello& h, const uint8_t* key) {
    bool opening = h.peer[0] == 0;
    if (!opening && key == nullptr) return 0;
    char scratch[kMaxId + 1];
    Span id = {h.id, strlen(h.id)};
    Span fw = {h.fw, strlen(h.fw)};
    Span nonce = {h.nonce, strlen(h.nonce)};
    if ((int)h.role > 2 || !parseIdent(id, kMaxId, false, scratch) ||
        !parseIdent(fw, kMaxFw, true, scratch) || !parseNonce(nonce, scratch)) {
        return 0;
    }
    if (!opening) {
        Span peer = {h.peer, strlen(h.peer)};
        if (!parseNonce(peer, scratch)) return 0;
    }
    Writer w(buf, cap);
    w.str("Z2 HELLO ");
    w.str(roleName(h.role));
    w.chr(' ');
    w.str(h.id);
    w.chr(' ');
    w.str(h.fw);
    w.chr(' ');
    w.str(h.nonce);
    w.chr(' ');
    w.str(opening ? "-" : h.peer);
    w.chr(' ');
    w.u64(h.last);
    Sender sender = {h.role, h.role == Role::Gateway ? h.peer : nullptr};
    return w.finish(opening ? nullptr : key, sender);
}

void Counters::clear() {
    ok = 0;
    for (size_t i = 0; i < (size_t)Drop::Count; ++i) dropped[i] = 0;
}

void Counters::drop(Drop d) {
    if (d != Drop::None && d < Drop::Count) ++dropped[(size_t)d];
}

uint32_t Counters::totalDropped() const {
    uint32_t total = 0;
    for (size_t i = 1; i < (size_t)Drop::Count; ++i) total += dropped[i];
    return total;
}

bool Framer::push(uint8_t byte, Counters& counters) {
    if (ready_) {
        len_ = 0;
        ready_ = false;
    }
    if (byte == '\n') {
        if (discarding_) {
            discarding_ = false;
            len_ = 0;
            counters.drop(Drop::Oversize);
            return false;
        }
        if (len_ > 0 && buf_[len_ - 1] == '\r') --len_;
        if (len_ == 0) return false;
        buf_[len_] = 0;
        ready_ = true;
        return true;
    }
    if (discarding_) return false;
    if (len_ == kMaxLine + 1) {  // one byte of slack for a CR before the LF
        discarding_ = true;
        len_ = 0;
        return false;
    }
    buf_[len_++] = (char)byte;
    return false;
}

void Framer::reset(Counters& counters) {
    if ((len_ > 0 && !ready_) || discarding_) counters.drop(Drop::Partial);
    len_ = 0;
    discarding_ = false;
    ready_ = false;
}

}  // namespace zeke
