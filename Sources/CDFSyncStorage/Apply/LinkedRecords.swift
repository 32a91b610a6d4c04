import CDFSyncCore

/// The records of participants that several source keys feed, inside one write transaction of apply.
///
/// A participant with one source key stores only its record in `panel`. Once a second key is linked to it, each of
/// its keys keeps its own latest record in `keyrecords` (stamped with the outbox sequence of the change that wrote
/// it), and the participant's record is their field-by-field merge (``RecordMerge``), rewritten whenever one of
/// them changes. The first key's entry is made when the second key links, from the record `panel` held then (stamp
/// 0: it was applied before the link). A participant linked before `keyrecords` existed gets the entries of its
/// keys the same way, from its record at the time, the next time a linked key of it changes.
///
/// Not thread-safe; one per write transaction, on its thread.
struct LinkedRecords {
    private let txn: WriteTransaction
    private let store: PanelStore
    /// Whether `keyrecords` may hold an entry (it was not empty when the transaction began, or a key linked since):
    /// while it is false, no participant has several keys with entries and nothing is probed.
    private(set) var inUse: Bool
    private var decompressor: ZstdDecompressor?

    init(store: PanelStore, txn: WriteTransaction) throws {
        self.txn = txn
        self.store = store
        inUse = try txn.count(store.keyRecords) > 0
    }

    /// Whether source key `key` (not linked itself) is the first key of a participant that several keys feed.
    func isShared(_ key: UnsafeRawBufferPointer) throws -> Bool {
        guard inUse else { return false }
        return try txn.withValue(store.keyRecords, key: key) { $0 != nil }
    }

    /// Stores `record` as the latest of source key `key` of participant `pid` (stamp `stamp`) and returns the
    /// participant's merged record. Keys of `pid` without an entry get one from the participant's current record
    /// first (call this before `panel` is rewritten). `header` is the participant's panel header (length and first
    /// identity key).
    mutating func update(
        pid: UInt64, key: UnsafeRawBufferPointer, header: [UInt8], stamp: UInt64, record: UnsafeRawBufferPointer
    ) throws -> [UInt8] {
        inUse = true
        let firstKey = Array(header[2...])
        var keys: [[UInt8]] = [firstKey]
        let prefix = bytesBE(pid)
        try txn.forEach(store.links, from: prefix) { k, _ in
            guard k.count > 8, k.starts(with: prefix) else { return false }
            keys.append(Array(k[8...]))
            return true
        }
        let own = Array(key)
        if !keys.contains(own) { keys.append(own) }
        var current: [UInt8]?
        var sources: [RecordMerge.Source] = []
        for k in keys {
            if k == own {
                sources.append(.init(stamp: stamp, record: Array(record), isFirst: k == firstKey))
                continue
            }
            if let entry = try txn.get(store.keyRecords, key: k) {
                guard entry.count >= 8 else {
                    throw StorageError(code: .corrupted, message: "a keyrecords entry in \(store.directory) is truncated")
                }
                let s: UInt64 = entry.withUnsafeBytes { loadBE($0) }
                sources.append(.init(stamp: s, record: Array(entry[8...]), isFirst: k == firstKey))
            } else {
                if current == nil { current = try currentRecord(pid) }
                try put(k, stamp: 0, record: current!)
                sources.append(.init(stamp: 0, record: current!, isFirst: k == firstKey))
            }
        }
        try put(own, stamp: stamp, record: Array(record))
        // A record that is not an object this reader takes apart is kept as the newest record is (never lost).
        return RecordMerge.merge(sources) ?? Array(record)
    }

    /// ``update(pid:key:header:stamp:record:)``, then the merge written as participant `pid`'s panel record (at
    /// `version`, through `writer`); returns the merge, which is what the change delivers.
    mutating func updateAndWrite(
        pid: UInt64, key: UnsafeRawBufferPointer, version: Int64, stamp: UInt64, record: UnsafeRawBufferPointer,
        to writer: inout PanelRecordWriter
    ) throws -> [UInt8] {
        let header = try writer.header(of: pid)
        let merged = try update(pid: pid, key: key, header: header, stamp: stamp, record: record)
        try header.withUnsafeBytes { h in
            try merged.withUnsafeBytes {
                try writer.write(pid, key: key, header: h, version: version, frame: nil, record: $0, shaped: nil,
                    append: false)
            }
        }
        return merged
    }

    private func put(_ key: [UInt8], stamp: UInt64, record: [UInt8]) throws {
        try txn.put(store.keyRecords, key: key, value: bytesBE(stamp) + record)
    }

    /// Participant `pid`'s record as `panel` holds it now.
    private mutating func currentRecord(_ pid: UInt64) throws -> [UInt8] {
        try withBE(pid) { k in
            try txn.withValue(store.panel, key: k) { v -> [UInt8] in
                guard let v else {
                    throw StorageError(code: .corrupted, message: "panel entry for participant \(pid) in \(store.directory) is missing")
                }
                return try store.decodePanelValue(pid: pid, value: v, decompressor: &decompressor, txn).record
            }
        }
    }
}
