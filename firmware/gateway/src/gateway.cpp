// zeke gateway for a Particle Argon: the appliance's events in, the nodes' commands out.
//
// Appliance side (either or both):
//   - Wi-Fi: a TCP server on port 4700, advertised over mDNS as _zeke._tcp with TXT id, proto,
//     fw and nodes. The appliance must pass the key handshake before any event is relayed.
//   - UART (Serial1, 115200 baud, as emotion-mesh wired an Argon to the board): the Argon then
//     answers `zeke gateway --serial` like a node would, and relays to its own nodes.
// Node side: Particle Mesh (Device OS 1.5.x, Xenon nodes) or BLE (Device OS 2.x+, the Argon as
// central connecting to nodes that advertise the zeke line service).
// USB serial takes the key (Z2 KEY ...) and prints it at boot when it was generated here.
// All protocol logic lives in the host-tested library (lib/zekeproto); this file is glue.
#include "Particle.h"
// Particle.h first: the MDNS community library relies on it.
#include "MDNS.h"
#include "zekeproto.h"

SYSTEM_THREAD(ENABLED);

namespace {

constexpr uint16_t kPort = 4700;
constexpr uint32_t kHeartbeatMs = 5000;
constexpr uint32_t kHandshakeMs = 5000;
constexpr int kKeyAddress = 0;  // EEPROM: magic byte + 16 key bytes
constexpr uint8_t kKeyMagic = 0x5a;
const char* const kFirmware = "1.0.0";

void randomBytes(uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; i += 4) {
        uint32_t r = HAL_RNG_GetRandomNumber();
        for (size_t j = 0; j < 4 && i + j < len; ++j) out[i + j] = (uint8_t)(r >> (8 * j));
    }
}

char gatewayId[zeke::kMaxId + 1];
zeke::GatewayCore* core = nullptr;  // the TCP appliance session
zeke::NodeLink* uartLink = nullptr;  // the UART appliance side, when wired to `zeke gateway`
uint8_t key[zeke::kKeyBytes];

TCPServer server(kPort);
TCPClient appliance;
uint32_t connectedAt = 0;
zeke::Framer tcpFramer, uartFramer, usbFramer;
mdns::MDNS mdnsResponder;
size_t advertisedNodes = 0;

void printKey() {
    char hex[2 * zeke::kKeyBytes + 1];
    zeke::toHex(key, zeke::kKeyBytes, hex);
    Serial.printlnf("zeke gateway %s key: %s", gatewayId, hex);
}

void loadOrCreateKey() {
    if (EEPROM.read(kKeyAddress) == kKeyMagic) {
        for (size_t i = 0; i < zeke::kKeyBytes; ++i) key[i] = EEPROM.read(kKeyAddress + 1 + i);
        return;
    }
    randomBytes(key, sizeof(key));
    EEPROM.write(kKeyAddress, kKeyMagic);
    for (size_t i = 0; i < zeke::kKeyBytes; ++i) EEPROM.write(kKeyAddress + 1 + i, key[i]);
    printKey();
}

void sendToAppliance(const char* line, size_t len) {
    if (appliance.connected() && core->authenticated()) appliance.write((const uint8_t*)line, len);
    if (uartLink != nullptr) Serial1.write((const uint8_t*)line, len);
}

// --- node side -----------------------------------------------------------------------------------
#if HAL_PLATFORM_MESH
void relayToNodes(const char* line, size_t len) {
    char buf[zeke::kLineBuffer];
    size_t n = len && line[len - 1] == '\n' ? len - 1 : len;
    memcpy(buf, line, n);
    buf[n] = 0;
    Mesh.publish("zeke/evt", buf);
}

void onNodeLine(const char* event, const char* data) {
    (void)event;
    if (data == nullptr) return;
    size_t len = strnlen(data, zeke::kMaxLine + 1);
    if (core->onNodeLine(data, len, millis()) == zeke::Action::ToAppliance) {
        char buf[zeke::kLineBuffer];
        memcpy(buf, data, len);
        buf[len] = '\n';
        sendToAppliance(buf, len + 1);
    }
}

void setupNodes() { Mesh.subscribe("zeke/cmd", onNodeLine); }
void loopNodes() {}
#else
const BleUuid kService("6f2a0001-7a65-6b65-8000-00805f9b34fb");
const BleUuid kRx("6f2a0002-7a65-6b65-8000-00805f9b34fb");
const BleUuid kTx("6f2a0003-7a65-6b65-8000-00805f9b34fb");
constexpr size_t kMaxPeers = 3;  // Device OS allows up to 3 concurrent central connections
BlePeerDevice peers[kMaxPeers];
BleCharacteristic peerRx[kMaxPeers];
BleCharacteristic peerTx[kMaxPeers];
zeke::Framer peerFramers[kMaxPeers];
uint8_t nodeBuffer[512];
volatile size_t nodeHead = 0, nodeTail = 0;
volatile uint8_t nodeSource[512];
uint32_t lastScan = 0;

void onPeerData(const uint8_t* data, size_t len, const BlePeerDevice& peer, void* context) {
    (void)peer;
    uint8_t slot = (uint8_t)(uintptr_t)context;
    for (size_t i = 0; i < len; ++i) {
        size_t next = (nodeHead + 1) % sizeof(nodeBuffer);
        if (next == nodeTail) return;  // dropped; the framer sees a broken line and counts it
        nodeBuffer[nodeHead] = data[i];
        nodeSource[nodeHead] = slot;
        nodeHead = next;
    }
}

void relayToNodes(const char* line, size_t len) {
    for (size_t i = 0; i < kMaxPeers; ++i) {
        if (!peers[i].connected()) continue;
        for (size_t off = 0; off < len; off += 20) {
            peerRx[i].setValue((const uint8_t*)line + off, len - off < 20 ? len - off : 20);
        }
    }
}

void scanForNodes() {
    BleScanResult results[8];
    int found = BLE.scan(results, 8);
    for (int r = 0; r < found; ++r) {
        BleUuid uuids[4];
        size_t n = results[r].advertisingData().serviceUUID(uuids, 4);
        bool isNode = false;
        for (size_t u = 0; u < n; ++u) isNode = isNode || uuids[u] == kService;
        if (!isNode) continue;
        for (size_t i = 0; i < kMaxPeers; ++i) {
            if (peers[i].connected()) continue;
            peers[i] = BLE.connect(results[r].address());
            if (peers[i].connected()) {
                peers[i].getCharacteristicByUUID(peerRx[i], kRx);
                peers[i].getCharacteristicByUUID(peerTx[i], kTx);
                peerTx[i].onDataReceived(onPeerData, (void*)(uintptr_t)i);
            }
            break;
        }
    }
}

void setupNodes() {
    BLE.on();
    BLE.setScanTimeout(50);  // 0.5 s, in units of 10 ms
}

void loopNodes() {
    if (millis() - lastScan > 15000) {
        lastScan = millis();
        scanForNodes();
    }
    while (nodeTail != nodeHead) {
        uint8_t byte = nodeBuffer[nodeTail];
        uint8_t slot = nodeSource[nodeTail];
        nodeTail = (nodeTail + 1) % sizeof(nodeBuffer);
        zeke::Framer& framer = peerFramers[slot];
        if (!framer.push(byte, core->counters)) continue;
        if (core->onNodeLine(framer.line(), framer.length(), millis()) == zeke::Action::ToAppliance) {
            char buf[zeke::kLineBuffer];
            memcpy(buf, framer.line(), framer.length());
            buf[framer.length()] = '\n';
            sendToAppliance(buf, framer.length() + 1);
        }
    }
}
#endif

// --- appliance side ------------------------------------------------------------------------------
void advertise() {
    char nodes[8];
    snprintf(nodes, sizeof(nodes), "%u", (unsigned)advertisedNodes);
    mdnsResponder.setHostname(String("zeke-") + gatewayId);
    mdnsResponder.addService("tcp", "zeke", kPort, String("zeke-") + gatewayId);
    mdnsResponder.addTXTEntry("id", gatewayId);
    mdnsResponder.addTXTEntry("proto", "2");
    mdnsResponder.addTXTEntry("fw", kFirmware);
    mdnsResponder.addTXTEntry("nodes", nodes);
    mdnsResponder.begin(true);
}

void loopTcp() {
    if (!appliance.connected()) {
        TCPClient next = server.available();
        if (next.connected()) {
            appliance = next;
            connectedAt = millis();
            core->applianceConnected();
            tcpFramer.reset(core->counters);
        }
        return;
    }
    if (!core->authenticated() && millis() - connectedAt > kHandshakeMs) {
        appliance.stop();  // no proof of the key in time
        return;
    }
    while (appliance.available() > 0) {
        int c = appliance.read();
        if (c < 0 || !tcpFramer.push((uint8_t)c, core->counters)) continue;
        char reply[zeke::kLineBuffer];
        size_t replyLen = 0;
        zeke::Action a = core->onApplianceLine(tcpFramer.line(), tcpFramer.length(), reply,
                                               sizeof(reply), replyLen);
        if (a == zeke::Action::Forward) {
            char line[zeke::kLineBuffer];
            memcpy(line, tcpFramer.line(), tcpFramer.length());
            line[tcpFramer.length()] = '\n';
            relayToNodes(line, tcpFramer.length() + 1);
        }
        if (replyLen) appliance.write((const uint8_t*)reply, replyLen);
    }
}

void replyUart(const char* line, size_t len) { Serial1.write((const uint8_t*)line, len); }

void loopUart() {
    while (Serial1.available() > 0) {
        int c = Serial1.read();
        if (c < 0 || !uartFramer.push((uint8_t)c, uartLink->counters)) continue;
        char reply[zeke::kLineBuffer];
        size_t replyLen = 0;
        zeke::Action a = uartLink->onLine(uartFramer.line(), uartFramer.length(), false, reply,
                                          sizeof(reply), replyLen);
        if (a == zeke::Action::Reply) replyUart(reply, replyLen);
        if (a == zeke::Action::Show) {  // a new, tagged event: relay it verbatim to the nodes
            char line[zeke::kLineBuffer];
            memcpy(line, uartFramer.line(), uartFramer.length());
            line[uartFramer.length()] = '\n';
            relayToNodes(line, uartFramer.length() + 1);
        }
    }
}

void loopUsb() {
    while (Serial.available() > 0) {
        int c = Serial.read();
        if (c < 0 || !usbFramer.push((uint8_t)c, core->counters)) continue;
        zeke::Message m;
        if (zeke::parse(usbFramer.line(), usbFramer.length(), m) == zeke::Drop::None &&
            m.type == zeke::Type::Key) {  // provisioning over USB, the trusted port
            memcpy(key, m.key.key, sizeof(key));
            EEPROM.write(kKeyAddress, kKeyMagic);
            for (size_t i = 0; i < zeke::kKeyBytes; ++i) EEPROM.write(kKeyAddress + 1 + i, key[i]);
            core->setKey(key);
            uartLink->setKey(key);
            printKey();
        }
    }
}

uint32_t lastHeartbeat = 0;

}  // namespace

void setup() {
    Serial.begin(115200);
    Serial1.begin(115200);
    String id = System.deviceID();
    size_t n = id.length() < 12 ? id.length() : 12;
    memcpy(gatewayId, id.c_str() + id.length() - n, n);
    gatewayId[n] = 0;
    static zeke::GatewayCore gatewayCore(gatewayId, kFirmware, randomBytes);
    static zeke::NodeLink uart(gatewayId, kFirmware, randomBytes);
    core = &gatewayCore;
    uartLink = &uart;
    loadOrCreateKey();
    core->setKey(key);
    uartLink->setKey(key);
    setupNodes();
    waitFor(WiFi.ready, 30000);
    server.begin();
    advertise();
}

void loop() {
    loopUsb();
    loopTcp();
    loopUart();
    loopNodes();
    mdnsResponder.processQueries();
    uint32_t now = millis();
    size_t nodes = core->nodeCount(now);
    if (nodes != advertisedNodes) {  // TXT carries the node count: re-announce on change
        advertisedNodes = nodes;
        advertise();
    }
    if (now - lastHeartbeat >= kHeartbeatMs) {
        lastHeartbeat = now;
        char line[zeke::kLineBuffer];
        size_t len = core->heartbeat(now / 1000, now, line, sizeof(line));
        if (len && appliance.connected() && core->authenticated()) {
            appliance.write((const uint8_t*)line, len);
        }
    }
}
