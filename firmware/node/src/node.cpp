// zeke node: shows the appliance's emotion events on a NeoPixel ring, sends button feedback.
//
// Transports (see ../../PROTOCOL.md, "Transports"):
//   - Device OS 1.5.x Xenon on a Particle Mesh network: lines arrive as Mesh events "zeke/evt",
//     commands leave as "zeke/cmd".
//   - Device OS 2.x+ (Argon, Boron, Photon 2, ...): a BLE peripheral with the zeke line service;
//     the gateway writes lines to RX and receives commands as TX notifications.
//   - USB serial, always: the trusted port where the node takes its key (Z2 KEY ...) and where
//     `zeke gateway --serial` or `zeke mesh run --serial` can drive it directly.
// All protocol logic lives in the host-tested library (lib/zekeproto); this file is glue.
#include "Particle.h"
#include "neopixel.h"
#include "zekeproto.h"

SYSTEM_THREAD(ENABLED);

namespace {

constexpr uint16_t kPixelPin = D2;
constexpr uint16_t kPixelCount = 12;
constexpr uint8_t kPixelType = WS2812B;
constexpr uint16_t kButtonPins[] = {D3, D4, D5, D6};  // yes, no, capture, reset
constexpr zeke::Cmd kButtonCommands[] = {zeke::Cmd::Yes, zeke::Cmd::No, zeke::Cmd::Capture,
                                         zeke::Cmd::Reset};
constexpr uint32_t kDebounceMs = 40;
constexpr uint32_t kHeartbeatMs = 10000;
constexpr int kKeyAddress = 0;  // EEPROM: magic byte + 16 key bytes
constexpr uint8_t kKeyMagic = 0x5a;

Adafruit_NeoPixel ring(kPixelCount, kPixelPin, kPixelType);

void randomBytes(uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; i += 4) {
        uint32_t r = HAL_RNG_GetRandomNumber();
        for (size_t j = 0; j < 4 && i + j < len; ++j) out[i + j] = (uint8_t)(r >> (8 * j));
    }
}

char nodeId[zeke::kMaxId + 1];
zeke::NodeLink* link = nullptr;  // constructed in setup() once the device id is known
zeke::Framer usbFramer;

// Colour per emotion (R, G, B), scaled by the score.
const uint8_t kColours[7][3] = {
    {255, 0, 0},      // angry
    {0, 160, 0},      // disgust
    {140, 0, 255},    // fear
    {255, 200, 0},    // happy
    {0, 0, 255},      // sad
    {255, 100, 0},    // surprise
    {180, 180, 180},  // neutral
};

void showRing() {
    if (!link->showing()) {
        ring.clear();
        ring.show();
        return;
    }
    const zeke::Event& e = link->shown();
    const uint8_t* c = kColours[(int)e.emotion];
    uint32_t level = 40 + (uint32_t)e.score * 215 / 1000;
    uint32_t colour = ring.Color(c[0] * level / 255, c[1] * level / 255, c[2] * level / 255);
    for (uint16_t i = 0; i < kPixelCount; ++i) ring.setPixelColor(i, colour);
    ring.show();
}

void persistKey() {
    EEPROM.write(kKeyAddress, kKeyMagic);
    for (size_t i = 0; i < zeke::kKeyBytes; ++i) EEPROM.write(kKeyAddress + 1 + i, link->key()[i]);
}

void loadKey() {
    if (EEPROM.read(kKeyAddress) != kKeyMagic) return;
    uint8_t key[zeke::kKeyBytes];
    for (size_t i = 0; i < zeke::kKeyBytes; ++i) key[i] = EEPROM.read(kKeyAddress + 1 + i);
    link->setKey(key);
}

// Sends a line on the transport that carries events (mesh or BLE), and on USB.
void sendUpstream(const char* line, size_t len);

void handleLine(const char* line, size_t len, bool trusted, void (*reply)(const char*, size_t)) {
    char out[zeke::kLineBuffer];
    size_t outLen = 0;
    switch (link->onLine(line, len, trusted, out, sizeof(out), outLen)) {
        case zeke::Action::Show:
            showRing();
            break;
        case zeke::Action::KeyChanged:
            persistKey();
            showRing();
            break;
        case zeke::Action::Reply:
            reply(out, outLen);
            break;
        default:
            break;
    }
}

void replyUsb(const char* line, size_t len) { Serial.write((const uint8_t*)line, len); }

#if HAL_PLATFORM_MESH
// --- Device OS 1.5.x: Particle Mesh ----------------------------------------------------------
void replyMesh(const char* line, size_t len) {
    char buf[zeke::kLineBuffer];
    size_t n = len && line[len - 1] == '\n' ? len - 1 : len;  // Mesh events carry one line
    memcpy(buf, line, n);
    buf[n] = 0;
    Mesh.publish("zeke/cmd", buf);
}

void onMeshLine(const char* event, const char* data) {
    (void)event;
    if (data != nullptr) handleLine(data, strnlen(data, zeke::kMaxLine + 1), false, replyMesh);
}

void setupTransport() { Mesh.subscribe("zeke/evt", onMeshLine); }
void loopTransport() {}
void sendUpstream(const char* line, size_t len) {
    replyMesh(line, len);
    replyUsb(line, len);
}
#else
// --- Device OS 2.x+: BLE peripheral -------------------------------------------------------------
const BleUuid kService("6f2a0001-7a65-6b65-8000-00805f9b34fb");
const BleUuid kRx("6f2a0002-7a65-6b65-8000-00805f9b34fb");  // gateway writes lines here
const BleUuid kTx("6f2a0003-7a65-6b65-8000-00805f9b34fb");  // node notifies commands here
BleCharacteristic txCharacteristic("tx", BleCharacteristicProperty::NOTIFY, kTx, kService);
zeke::Framer bleFramer;
// BLE callbacks run on the system thread: hand bytes to loop() through a small ring buffer.
uint8_t bleBuffer[512];
volatile size_t bleHead = 0, bleTail = 0;

void onBleData(const uint8_t* data, size_t len, const BlePeerDevice& peer, void* context) {
    (void)peer;
    (void)context;
    for (size_t i = 0; i < len; ++i) {
        size_t next = (bleHead + 1) % sizeof(bleBuffer);
        if (next == bleTail) {
            link->counters.drop(zeke::Drop::Oversize);  // reader fell behind: counted
            return;
        }
        bleBuffer[bleHead] = data[i];
        bleHead = next;
    }
}
BleCharacteristic rxCharacteristic("rx", BleCharacteristicProperty::WRITE_WO_RSP, kRx, kService,
                                   onBleData, nullptr);

void replyBle(const char* line, size_t len) {
    // Notifications carry at most the negotiated MTU; the gateway's framer reassembles lines.
    const size_t chunk = 20;
    for (size_t off = 0; off < len; off += chunk) {
        txCharacteristic.setValue((const uint8_t*)line + off, len - off < chunk ? len - off : chunk);
    }
}

void setupTransport() {
    BLE.on();
    BLE.addCharacteristic(rxCharacteristic);
    BLE.addCharacteristic(txCharacteristic);
    BleAdvertisingData adv;
    adv.appendServiceUUID(kService);
    adv.appendLocalName("zeke");
    BLE.advertise(&adv);
}

void loopTransport() {
    while (bleTail != bleHead) {
        uint8_t byte = bleBuffer[bleTail];
        bleTail = (bleTail + 1) % sizeof(bleBuffer);
        if (bleFramer.push(byte, link->counters)) {
            handleLine(bleFramer.line(), bleFramer.length(), false, replyBle);
        }
    }
}

void sendUpstream(const char* line, size_t len) {
    if (BLE.connected()) replyBle(line, len);
    replyUsb(line, len);
}
#endif

// --- buttons -----------------------------------------------------------------------------------
bool lastLevel[4] = {true, true, true, true};
uint32_t changedAt[4] = {0, 0, 0, 0};

void pollButtons() {
    for (int i = 0; i < 4; ++i) {
        bool level = digitalRead(kButtonPins[i]) == HIGH;
        uint32_t now = millis();
        if (level == lastLevel[i] || now - changedAt[i] < kDebounceMs) continue;
        lastLevel[i] = level;
        changedAt[i] = now;
        if (!level) {  // pressed (active low)
            char line[zeke::kLineBuffer];
            size_t n = link->command(kButtonCommands[i], line, sizeof(line));
            if (n) sendUpstream(line, n);
        }
    }
}

uint32_t lastHeartbeat = 0;

}  // namespace

void setup() {
    Serial.begin(115200);
    String id = System.deviceID();
    size_t n = id.length() < zeke::kMaxId ? id.length() : zeke::kMaxId;
    memcpy(nodeId, id.c_str(), n);
    nodeId[n] = 0;
    static zeke::NodeLink nodeLink(nodeId, "1.0.0", randomBytes);
    link = &nodeLink;
    loadKey();
    ring.begin();
    ring.clear();
    ring.show();
    for (uint16_t pin : kButtonPins) pinMode(pin, INPUT_PULLUP);
    setupTransport();
}

void loop() {
    while (Serial.available() > 0) {
        int c = Serial.read();
        if (c >= 0 && usbFramer.push((uint8_t)c, link->counters)) {
            handleLine(usbFramer.line(), usbFramer.length(), true, replyUsb);
        }
    }
    loopTransport();
    pollButtons();
    if (millis() - lastHeartbeat >= kHeartbeatMs) {
        lastHeartbeat = millis();
        char line[zeke::kLineBuffer];
        size_t n = link->heartbeat(millis() / 1000, line, sizeof(line));
        if (n) sendUpstream(line, n);
    }
}
