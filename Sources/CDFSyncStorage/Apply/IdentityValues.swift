import CDFSyncCore

/// The email and phone of one change, with the hash stored per source key (0 when neither is given).
struct ContactValues {
    var email: [UInt8]?
    var phone: [UInt8]?
    var hash: UInt64

    init(email: String?, phone: String?) {
        self.email = email.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.phone = phone.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        if self.email == nil && self.phone == nil {
            hash = 0
        } else {
            var h = StableHash()
            h.combine(self.email ?? [])
            h.combine([self.email == nil ? 0 : 1, self.phone == nil ? 0 : 1])
            h.combine(self.phone ?? [])
            hash = h.value | 1
        }
    }

    var provided: Bool { email != nil || phone != nil }
}

/// The `ident` value: participant id, version, content hash, contact hash (8 bytes BE each) and flags
/// (bit 0: linked, i.e. not the key that created the participant; bit 1: absent, i.e. a refresh found the key no
/// longer in its source and marked the record `"in_source": false` — the next row applied for it clears it).
struct IdentValue {
    var pid: UInt64
    var version: Int64
    var hash: UInt64
    var contactHash: UInt64
    var linked: Bool
    /// Marked absent from the source by a refresh (``PanelStore/markAbsent(scope:pipeline:seen:dryRun:chunk:afterChunk:onAbsent:)``).
    var absent = false

    static let size = 33

    init(pid: UInt64, version: Int64, hash: UInt64, contactHash: UInt64, linked: Bool, absent: Bool = false) {
        self.pid = pid
        self.version = version
        self.hash = hash
        self.contactHash = contactHash
        self.linked = linked
        self.absent = absent
    }

    init?(_ v: UnsafeRawBufferPointer) {
        guard v.count == Self.size else { return nil }
        pid = loadBE(v)
        version = Int64(bitPattern: loadBE(UnsafeRawBufferPointer(rebasing: v[8..<16])))
        hash = loadBE(UnsafeRawBufferPointer(rebasing: v[16..<24]))
        contactHash = loadBE(UnsafeRawBufferPointer(rebasing: v[24..<32]))
        linked = v[32] & 1 != 0
        absent = v[32] & 2 != 0
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var t = (
            pid.bigEndian, UInt64(bitPattern: version).bigEndian, hash.bigEndian, contactHash.bigEndian,
            UInt8(linked ? 1 : 0) | UInt8(absent ? 2 : 0)
        )
        return try withUnsafeBytes(of: &t) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<Self.size])) }
    }
}
