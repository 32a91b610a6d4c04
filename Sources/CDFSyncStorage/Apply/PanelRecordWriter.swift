import CDFSyncCore

/// Writes participants' records into `panel` inside one write transaction.
///
/// A panel value is: the length of the participant's first identity key (2 bytes BE) and that key, the version the
/// record was written from (8 bytes BE), then the record — as it is (first byte `{`), as a zstd frame when that is
/// shorter (records of at least the store's compression threshold), or shaped (``RecordShape``: a tag, the shape's
/// id, the values) when that is shorter. Values are written straight into the space LMDB reserves. New participants'
/// ids are greater than every stored one, so their records append through one cursor that stays on the last leaf.
///
/// Not thread-safe; one per write transaction, on its thread.
struct PanelRecordWriter {
    private let txn: WriteTransaction
    private let panel: Database
    private let compressor: ZstdCompressor
    private let threshold: Int
    private let path: String
    /// Appends go through one cursor (opened at the first: a transaction of updates needs none).
    private var appendCursor: LMDBCursor?

    init(store: PanelStore, txn: WriteTransaction) {
        self.txn = txn
        panel = store.panel
        compressor = store.scratch.compressor
        threshold = store.recordCompressionThreshold
        path = store.directory
    }

    /// Writes participant `pid`'s record. `header` is the participant's stored header (its first identity key) when
    /// the record is written through a linked key; without it the record's own key `ownKey` is the header. `frame`
    /// is the record's precomputed zstd frame, `shaped` its shape and values when it has them; `append` says `pid`
    /// is greater than every stored participant.
    @inline(__always)
    mutating func write(
        _ pid: UInt64, key ownKey: UnsafeRawBufferPointer, header: UnsafeRawBufferPointer?, version: Int64,
        frame: [UInt8]?, record: UnsafeRawBufferPointer, shaped: (id: UInt32, values: UnsafeRawBufferPointer)?,
        append: Bool
    ) throws {
        if let shaped, RecordShape.headerCount + shaped.values.count < record.count {
            try store(pid, ownKey, header, version, shaped.values, shapeID: shaped.id, append: append)
        } else if let frame {
            if frame.count < record.count {
                try frame.withUnsafeBytes { try store(pid, ownKey, header, version, $0, shapeID: nil, append: append) }
            } else {
                try store(pid, ownKey, header, version, record, shapeID: nil, append: append)
            }
        } else if record.count >= threshold {
            try compressor.withCompressed(record) { compressed in
                try store(pid, ownKey, header, version, compressed.count < record.count ? compressed : record,
                    shapeID: nil, append: append)
            }
        } else {
            try store(pid, ownKey, header, version, record, shapeID: nil, append: append)
        }
    }

    /// The fill closure captures no variable (a captured `var` is checked for exclusive access on every use, which
    /// showed up in the writer's profile).
    @inline(__always)
    private mutating func store(
        _ pid: UInt64, _ ownKey: UnsafeRawBufferPointer, _ header: UnsafeRawBufferPointer?, _ version: Int64,
        _ body: UnsafeRawBufferPointer, shapeID: UInt32?, append: Bool
    ) throws {
        let headerCount = header?.count ?? 2 + ownKey.count
        let prefix = shapeID == nil ? 0 : RecordShape.headerCount
        let count = headerCount + 8 + prefix + body.count
        try withBE(pid) { key in
            if append {
                if appendCursor == nil { appendCursor = try txn.cursor(panel) }
                try appendCursor!.reserve(key, count: count, flags: .append) { dst in
                    Self.fill(dst, header: header, ownKey: ownKey, headerCount: headerCount, version: version,
                        shapeID: shapeID, prefix: prefix, body: body)
                }
            } else {
                try txn.reserve(panel, key: key, count: count) { dst in
                    Self.fill(dst, header: header, ownKey: ownKey, headerCount: headerCount, version: version,
                        shapeID: shapeID, prefix: prefix, body: body)
                }
            }
        }
    }

    /// Writes a panel value (see the type's documentation) at `dst`.
    @inline(__always)
    private static func fill(
        _ dst: UnsafeMutableRawPointer, header: UnsafeRawBufferPointer?, ownKey: UnsafeRawBufferPointer,
        headerCount: Int, version: Int64, shapeID: UInt32?, prefix: Int, body: UnsafeRawBufferPointer
    ) {
        if let header {
            if headerCount > 0 { dst.copyMemory(from: header.baseAddress!, byteCount: headerCount) }
        } else {
            // The participant's own source key: length (2 bytes BE) and the key.
            dst.storeBytes(of: UInt16(truncatingIfNeeded: ownKey.count).bigEndian, as: UInt16.self)
            (dst + 2).copyMemory(from: ownKey.baseAddress!, byteCount: ownKey.count)
        }
        (dst + headerCount).storeBytes(of: UInt64(bitPattern: version).bigEndian, as: UInt64.self)
        if let shapeID {
            (dst + headerCount + 8).storeBytes(of: RecordShape.tag, as: UInt8.self)
            (dst + headerCount + 9).storeBytes(of: shapeID.bigEndian, as: UInt32.self)
        }
        if body.count > 0 {
            (dst + headerCount + 8 + prefix).copyMemory(from: body.baseAddress!, byteCount: body.count)
        }
    }

    /// The first bytes of participant `pid`'s panel value (length + first identity key), for rewriting it.
    func header(of pid: UInt64) throws -> [UInt8] {
        try withBE(pid) { k in
            try txn.withValue(panel, key: k) { v -> [UInt8] in
                guard let v, v.count >= 2, 2 + (Int(v[0]) << 8 | Int(v[1])) <= v.count else {
                    throw StorageError(
                        code: .corrupted, message: "panel entry for participant \(pid) in \(path) is missing or truncated")
                }
                return Array(v[0..<(2 + (Int(v[0]) << 8 | Int(v[1])))])
            }
        }
    }
}

extension PanelStore {
    /// The id of the shape with `keys`, which is added under the next id if it is not there yet (another process
    /// may have added it since this one loaded them); `nil` once the store holds `RecordShape.maxShapes` shapes (the
    /// record is then stored as it is).
    func registerShape(_ keys: [UInt8], in txn: WriteTransaction) throws -> UInt32? {
        var last: UInt32 = 0
        var found: UInt32?
        try txn.forEach(shapesDB) { k, v in
            guard k.count == 4 else {
                throw StorageError(code: .corrupted, message: "shapes key in \(directory) is not 4 bytes")
            }
            last = RecordShape.id(k)
            if v.elementsEqual(keys) {
                found = last
                return false
            }
            return true
        }
        if let found { return found }
        guard last < RecordShape.maxShapes else { return nil }
        try RecordShape.idBytes(last + 1).withUnsafeBytes { id in
            try keys.withUnsafeBytes { try txn.put(shapesDB, key: id, value: $0) }
        }
        return last + 1
    }
}
