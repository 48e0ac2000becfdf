// The zeke line protocol, version 2 (see firmware/PROTOCOL.md): parse, check, encode, frame.
//
// Portable C++11 for MCUs: no heap, no exceptions, no RTTI, no stdio. Every entry point takes
// caller-owned fixed buffers. A line that breaks a rule is reported as a Drop reason, which the
// caller counts in a Counters; nothing here can fail in any other way.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace zeke {

constexpr int kProtocolVersion = 2;
constexpr size_t kMaxLine = 127;  // bytes, not counting CR/LF
constexpr size_t kLineBuffer = kMaxLine + 2;  // room for "\n" and a NUL
constexpr size_t kTagBytes = 8;
constexpr size_t kKeyBytes = 16;
constexpr size_t kNonceHex = 16;
constexpr size_t kMaxId = 24;
constexpr size_t kMaxFw = 16;
constexpr uint64_t kMaxTs = 999999999999999ULL;

enum class Drop : uint8_t {
    None = 0,
    Oversize,
    Encoding,
    Version,
    Syntax,
    Unknown,
    Tag,
    Partial,
    Duplicate,
    Count,
};

enum class Type : uint8_t { Hello, Event, Command, Ack, Heartbeat, Key };
enum class Role : uint8_t { App, Gateway, Node };
enum class Kind : uint8_t { Enter, Change, Update, Leave };
enum class Emotion : uint8_t { Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral };
enum class Cmd : uint8_t { Yes, No, Capture, Reset };

const char* dropName(Drop d);
const char* typeName(Type t);
const char* roleName(Role r);
const char* kindName(Kind k);
const char* emotionName(Emotion e);
const char* cmdName(Cmd c);

struct Hello {
    Role role;
    char id[kMaxId + 1];
    char fw[kMaxFw + 1];
    char nonce[kNonceHex + 1];
    char peer[kNonceHex + 1];  // empty for an opening hello ("-" on the wire)
    uint32_t last;
};

struct Event {
    uint32_t seq;
    Kind kind;
    uint32_t track;
    Emotion emotion;
    uint16_t score;  // permille
    uint64_t ts;     // milliseconds since the epoch
};

struct Command {
    uint32_t seq;
    char node[kMaxId + 1];
    Cmd cmd;
    uint32_t track;
};

struct Ack {
    uint32_t seq;
};

struct Heartbeat {
    uint32_t uptime;
    uint16_t nodes;
    uint32_t dropped;
};

struct KeyLine {
    uint8_t key[kKeyBytes];
};

struct Message {
    Type type;
    union {
        Hello hello;
        Event event;
        Command command;
        Ack ack;
        Heartbeat heartbeat;
        KeyLine key;
    };
    bool hasTag;
    uint8_t tag[kTagBytes];
    size_t bodyLen;  // the tag covers line[0, bodyLen)
};

// Who made a tag (PROTOCOL.md, "Tags"). A receiver names the sender it expects, never the
// line's own claim, so one role's line never passes as another's. A gateway's lines to an
// appliance are bound to the nonce that appliance opened its session with.
struct Sender {
    Role role;
    const char* session;  // kNonceHex hex digits for Role::Gateway, else nullptr
};
inline Sender fromApp() { return Sender{Role::App, nullptr}; }
inline Sender fromNode() { return Sender{Role::Node, nullptr}; }
inline Sender fromGateway(const char* appNonce) { return Sender{Role::Gateway, appNonce}; }

// Parse one line without its LF (a CR before the LF already stripped by the Framer).
Drop parse(const char* line, size_t len, Message& out);

// True if sender tagged the message with key over the line it was parsed from.
bool verify(const char* line, const Message& msg, const uint8_t key[kKeyBytes],
            const Sender& sender);

// parse, then verify the tag if there is one: the full acceptance test.
Drop check(const char* line, size_t len, const uint8_t key[kKeyBytes], const Sender& sender,
           Message& out);

// Tag bytes for body (the line before " #") made by sender.
void computeTag(const uint8_t key[kKeyBytes], const Sender& sender, const char* body, size_t len,
                uint8_t tag[kTagBytes]);

// Encoders write a complete line including "\n" and a NUL terminator; they return the length
// without the NUL, or 0 if cap is too small or a field is out of range. Tagged where required:
// events as the appliance's, commands as a node's, acks as a gateway's to the session opened
// with appNonce, heartbeats as sender's, hellos as their role's (a gateway's bound to h.peer).
size_t encodeEvent(char* buf, size_t cap, const Event& e, const uint8_t key[kKeyBytes]);
size_t encodeCommand(char* buf, size_t cap, const Command& c, const uint8_t key[kKeyBytes]);
size_t encodeAck(char* buf, size_t cap, uint32_t seq, const uint8_t key[kKeyBytes],
                 const char* appNonce);
size_t encodeHeartbeat(char* buf, size_t cap, const Heartbeat& h, const uint8_t key[kKeyBytes],
                       const Sender& sender);
// key may be null only for an opening hello (empty peer).
size_t encodeHello(char* buf, size_t cap, const Hello& h, const uint8_t* key);

bool parseHex(const char* text, size_t len, uint8_t* out);  // len must be even
void toHex(const uint8_t* data, size_t len, char* out);       // writes 2*len chars + NUL

struct Counters {
    uint32_t ok;
    uint32_t dropped[(int)Drop::Count];
    void clear();
    void drop(Drop d);
    uint32_t totalDropped() const;
};

// Splits a byte stream into lines in a fixed buffer. push() returns true when a line is ready
// (line()/length() stay valid until the next push). Oversize lines are skipped to the next LF
// and counted once; empty lines are ignored; reset() counts a partial line left behind.
class Framer {
public:
    Framer() : len_(0), discarding_(false) { buf_[0] = 0; }
    bool push(uint8_t byte, Counters& counters);
    void reset(Counters& counters);
    const char* line() const { return buf_; }
    size_t length() const { return len_; }

private:
    char buf_[kLineBuffer];
    size_t len_;
    bool discarding_;
    bool ready_ = false;
};

}  // namespace zeke
