import CDFSyncCore
import Foundation

extension PanelStore {
    // MARK: Reading the panel

    /// The participant that the source key (`scope`, `externalID`) resolves to, or `nil`.
    ///
    /// `scope` and `externalID` of the result are the ones asked for, `commitVersion` is that source key's stored
    /// version, and `sourceKeys` lists every source key of the participant.
    public func record(externalID: String, scope: String) throws -> PanelRecord? {
        let key = Self.identityKey(scope: scope, externalID: externalID)
        var decompressor: ZstdDecompressor?  // created only when a record is actually compressed
        return try environment.read { txn -> PanelRecord? in
            guard let v = try txn.get(ident, key: key) else { return nil }
            guard let stored = v.withUnsafeBytes({ IdentValue($0) }) else {
                throw StorageError(code: .corrupted, message: "ident entry in \(directory) is \(v.count) bytes")
            }
            let pid = stored.pid
            var record = try txn.withValue(panel, key: bytesBE(pid)) { value in
                guard let value else {
                    throw StorageError(
                        code: .corrupted, message: "panel entry for participant \(pid) in \(directory) is missing")
                }
                return try decodePanelValue(pid: pid, value: value, decompressor: &decompressor, txn)
            }
            record.sourceKeys = [SourceKey(scope: record.scope, externalID: record.externalID)]
                + (try linkedKeys(txn, pid))
            record.scope = scope
            record.externalID = externalID
            record.commitVersion = stored.version
            return record
        }
    }

    /// The participant id of `externalID` in `scope`, or `nil` (an index probe only).
    public func participantID(externalID: String, scope: String) throws -> UInt64? {
        let key = Self.identityKey(scope: scope, externalID: externalID)
        return try environment.read { txn in
            try txn.withValue(ident, key: key) { v in v.flatMap { IdentValue($0)?.pid } }
        }
    }

    /// Every source key of participant `participantID` (the first one, then linked ones in key order); empty when
    /// there is no such participant.
    public func sourceKeys(participantID: UInt64) throws -> [(scope: String, externalID: String)] {
        try environment.read { txn -> [SourceKey] in
            guard let first = try txn.withValue(panel, key: bytesBE(participantID), { v in
                try v.map { try primaryKey(pid: participantID, value: $0) }
            }) else { return [] }
            return [first] + (try linkedKeys(txn, participantID))
        }.map { ($0.scope, $0.externalID) }
    }

    /// Up to `limit` conflict entries (JSON), newest first: `{"seq","scope","external_id","commit_version","key",
    /// "value","participant_id","other_participant_id"}`.
    public func conflicts(limit: Int) throws -> [[UInt8]] {
        guard limit > 0 else { return [] }
        var result: [[UInt8]] = []
        try environment.read { txn in
            try txn.forEach(conflictsDB, reverse: true) { _, v in
                result.append(Array(v))
                return result.count < limit
            }
        }
        return result
    }

    /// Streams every record (of `scope`, or of all scopes when `nil`) in participant id order.
    ///
    /// `scope`/`externalID` are the participant's first source key, `commitVersion` the version its record was last
    /// written from, `sourceKeys` all of its source keys. Memory is bounded: one record is decoded at a time inside
    /// one read transaction (a consistent snapshot); linked keys are merged in from a second cursor.
    /// - Important: the read transaction stays open while `body` runs; keep `body` quick.
    public func forEachRecord(scope: String?, _ body: (PanelRecord) throws -> Void) throws {
        let scopePrefix: [UInt8]? = scope.map { Array($0.utf8) + [0] }
        var decompressor: ZstdDecompressor?  // created only when a record is actually compressed
        try environment.read { txn in
            // `links` is ordered by participant id too: walk it alongside `panel`.
            try txn.withCursor(links) { linkCursor in
                var link = try linkCursor.first()
                // A whole-panel walk: keep the map's resident pages bounded (panel export of any size).
                var mapped = environment.mappedPageBudget(every: MappedPageBudget.rows)
                try txn.forEach(panel) { k, v in
                    mapped.tick()
                    guard k.count == 8 else {
                        throw StorageError(code: .corrupted, message: "panel key in \(directory) is not 8 bytes")
                    }
                    let pid: UInt64 = loadBE(k)
                    var linked: [SourceKey] = []
                    while let l = link, l.key.count > 8, loadBE(l.key) <= pid {
                        if loadBE(l.key) == pid {
                            linked.append(try Self.sourceKey(UnsafeRawBufferPointer(rebasing: l.key[8...])))
                        }
                        link = try linkCursor.next()
                    }
                    if let scopePrefix {
                        guard v.count >= 2 else {
                            throw StorageError(code: .corrupted, message: "panel value in \(directory) is truncated")
                        }
                        let keyLength = Int(v[0]) << 8 | Int(v[1])
                        guard keyLength <= v.count - 2,
                            UnsafeRawBufferPointer(rebasing: v[2..<(2 + keyLength)]).starts(with: scopePrefix)
                        else { return true }
                    }
                    var record = try decodePanelValue(pid: pid, value: v, decompressor: &decompressor, txn)
                    record.sourceKeys = [SourceKey(scope: record.scope, externalID: record.externalID)] + linked
                    try body(record)
                    return true
                }
            }
        }
    }

    /// The number of participants (all scopes), without a scan.
    public func count() throws -> Int {
        try environment.read { try $0.count(panel) }
    }

    static func identityKey(scope: String, externalID: String) -> [UInt8] {
        var key = Array(scope.utf8)
        key.append(0)
        key.append(contentsOf: externalID.utf8)
        return key
    }

    static func sourceKey(_ identKey: UnsafeRawBufferPointer) throws -> SourceKey {
        guard let sep = identKey.firstIndex(of: 0) else {
            throw StorageError(code: .corrupted, message: "an identity key has no scope separator")
        }
        return SourceKey(
            scope: String(decoding: identKey[..<sep], as: UTF8.self),
            externalID: String(decoding: identKey[(sep + 1)...], as: UTF8.self))
    }

    /// The linked (non-first) source keys of `pid`, in key order.
    func linkedKeys(_ txn: some ReadableTransaction, _ pid: UInt64) throws -> [SourceKey] {
        let prefix = bytesBE(pid)
        var keys: [SourceKey] = []
        try txn.forEach(links, from: prefix) { k, _ in
            guard k.count > 8, k.starts(with: prefix) else { return false }
            keys.append(try Self.sourceKey(UnsafeRawBufferPointer(rebasing: k[8...])))
            return true
        }
        return keys
    }

    private func primaryKey(pid: UInt64, value: UnsafeRawBufferPointer) throws -> SourceKey {
        guard value.count >= 2, 2 + (Int(value[0]) << 8 | Int(value[1])) <= value.count else {
            throw StorageError(code: .corrupted, message: "panel value of participant \(pid) in \(directory) is truncated")
        }
        return try Self.sourceKey(UnsafeRawBufferPointer(rebasing: value[2..<(2 + (Int(value[0]) << 8 | Int(value[1])))]))
    }

    /// Panel value: u16 BE identity-key length, the first identity key, the version (8 bytes BE), the record: as
    /// is (first byte `{`), shaped (``RecordShape``; its shape read through `txn` if this process has not seen
    /// it) or a zstd frame.
    func decodePanelValue(
        pid: UInt64, value: UnsafeRawBufferPointer, decompressor: inout ZstdDecompressor?,
        _ txn: some ReadableTransaction
    ) throws -> PanelRecord {
        guard value.count >= 2 else {
            throw StorageError(code: .corrupted, message: "panel value of participant \(pid) in \(directory) is truncated")
        }
        let keyLength = Int(value[0]) << 8 | Int(value[1])
        guard 2 + keyLength + 8 <= value.count, let sep = value[2..<(2 + keyLength)].firstIndex(of: 0) else {
            throw StorageError(
                code: .corrupted, message: "panel value of participant \(pid) in \(directory) has a bad identity key")
        }
        let scope = String(decoding: value[2..<sep], as: UTF8.self)
        let externalID = String(decoding: value[(sep + 1)..<(2 + keyLength)], as: UTF8.self)
        let version = Int64(bitPattern: loadBE(UnsafeRawBufferPointer(rebasing: value[(2 + keyLength)...])))
        let stored = UnsafeRawBufferPointer(rebasing: value[(2 + keyLength + 8)...])
        var record: [UInt8]
        do {
            if stored.first == UInt8(ascii: "{") {
                record = Array(stored)
            } else if stored.first == RecordShape.tag {
                guard stored.count > RecordShape.headerCount else {
                    throw StorageError(code: .corrupted, message: "shaped record is truncated")
                }
                let id = RecordShape.id(UnsafeRawBufferPointer(rebasing: stored[1...]))
                guard let keys = try shapes.keys(id: id) ?? loadShape(id, txn) else {
                    throw StorageError(code: .corrupted, message: "shaped record names shape \(id), which is not in shapes")
                }
                let values = UnsafeRawBufferPointer(rebasing: stored[RecordShape.headerCount...])
                record = []
                guard keys.withUnsafeBytes({ RecordShape.join(keys: $0, values: values, into: &record) }) else {
                    throw StorageError(code: .corrupted, message: "shaped record does not fit its shape \(id)")
                }
            } else {
                if decompressor == nil { decompressor = try ZstdDecompressor() }
                record = try decompressor!.decompress(stored)
            }
        } catch var error as StorageError {
            error.message += " (record of participant \(pid) in \(directory))"
            throw error
        }
        return PanelRecord(
            participantID: pid, scope: scope, externalID: externalID, commitVersion: version, record: record)
    }

    /// Shape `id` from `shapes` (one another process added after this one opened), remembered for next time.
    private func loadShape(_ id: UInt32, _ txn: some ReadableTransaction) throws -> [UInt8]? {
        guard let keys = try txn.get(shapesDB, key: RecordShape.idBytes(id)) else { return nil }
        shapes.add(id: id, keys: keys)
        return keys
    }
}

extension PanelStore {
    /// What the panel holds for one source key: its participant, and the version and content hash it was last
    /// applied from (what `apply` compares against). `nil` when the key is unknown.
    public func sourceKeyState(externalID: String, scope: String) throws -> (participantID: UInt64, version: Int64, contentHash: UInt64)? {
        let key = Self.identityKey(scope: scope, externalID: externalID)
        return try environment.read { txn in
            guard let v = try txn.get(ident, key: key) else { return nil }
            guard let s = v.withUnsafeBytes({ IdentValue($0) }) else {
                throw StorageError(code: .corrupted, message: "ident entry in \(directory) is \(v.count) bytes")
            }
            return (s.pid, s.version, s.hash)
        }
    }
}
