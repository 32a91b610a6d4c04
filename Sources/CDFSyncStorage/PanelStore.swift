internal import CLMDB
import CDFSyncCore
import Foundation

/// The deduplicated participant panel, its identity index, per-key versions, checkpoints, outbox and run
/// records, all in one LMDB environment (see docs/storage.md for the layout).
///
/// `PanelStore` is `Sendable`: every method runs its own short LMDB transaction, write transactions are
/// serialised (LMDB's writer lock plus `writerLock`, which also guards the reused zstd context and buffers), and
/// delivery is serialised by `deliveryLock`.
///
/// - Important: Open a directory once per process. Methods are synchronous and block on disk I/O (durable
///   commits fsync); call them from a thread that may block, not from the cooperative pool in a tight loop.
public final class PanelStore: @unchecked Sendable {
    // @unchecked Sendable: the environment is thread-safe (MDB_env); the mutable scratch state is only touched
    // while `writerLock` is held, delivery state only while `deliveryLock` is held; the rest is immutable.

    /// The underlying environment (for inspection and tools; prefer the methods below).
    public let environment: LMDBEnvironment
    let ident: Database
    let panel: Database
    let state: Database
    let meta: Database
    let outbox: Database
    let runsDB: Database
    let segments: Database
    /// zstd level used for panel record values.
    public let recordCompressionLevel: Int32
    /// Records at least this long are stored zstd-compressed (when that makes them smaller); shorter ones are
    /// stored as is, because a zstd frame of a ~100-byte record is larger than the record and costs ~5 µs.
    public let recordCompressionThreshold: Int

    let writerLock = NSLock()
    let deliveryLock = NSLock()
    /// Test hook: called at each step of delivery (set only while no delivery runs).
    nonisolated(unsafe) var deliveryHook: ((DeliveryStep) throws -> Void)?
    private let scratch: WriterScratch

    /// Opens or creates the store in `directory`.
    ///
    /// - Parameters:
    ///   - directory: the LMDB environment directory (created if missing).
    ///   - durable: `true` syncs every commit; `false` opts in to `MDB_NOSYNC | MDB_NOMETASYNC` (a system crash
    ///     may lose recent commits).
    ///   - mapSize: the maximum size of the data file (address space only).
    ///   - recordCompressionLevel: zstd level for stored records.
    ///   - recordCompressionThreshold: records of at least this many bytes are stored zstd-compressed.
    public init(
        directory: String, durable: Bool = true, mapSize: Int = 1 << 36, recordCompressionLevel: Int32 = 3,
        recordCompressionThreshold: Int = 512
    ) throws {
        environment = try LMDBEnvironment(directory: directory, mapSize: mapSize, maxDatabases: 16, durable: durable)
        // One write transaction at startup opens every named database (mdb_dbi_open must not run in concurrent
        // transactions) and writes or checks the layout version.
        let path = environment.path
        let dbs = try environment.write { txn -> [Database] in
            let dbs = try ["ident", "panel", "state", "meta", "outbox", "runs", "segments"].map {
                try txn.openDatabase($0)
            }
            let meta = dbs[3]
            if let stored = try txn.get(meta, key: MetaKey.formatVersion) {
                guard stored == Self.formatVersion else {
                    throw StorageError(
                        code: .versionMismatch,
                        message: "store \(path) has layout version \(String(decoding: stored, as: UTF8.self)); "
                            + "this build reads version \(String(decoding: Self.formatVersion, as: UTF8.self)). Use a "
                            + "matching cdfsync build or resync into a new state directory")
                }
            } else {
                try txn.put(meta, key: MetaKey.formatVersion, value: Self.formatVersion)
            }
            return dbs
        }
        (ident, panel, state, meta, outbox, runsDB, segments) = (dbs[0], dbs[1], dbs[2], dbs[3], dbs[4], dbs[5], dbs[6])
        self.recordCompressionLevel = recordCompressionLevel
        self.recordCompressionThreshold = recordCompressionThreshold
        scratch = try WriterScratch(level: recordCompressionLevel)
    }

    /// The on-disk layout version this build reads and writes (meta `format_version`).
    static let formatVersion: [UInt8] = Array("1".utf8)

    /// The environment directory.
    public var directory: String { environment.path }

    // MARK: Types

    /// One row to apply.
    public struct Change: Sendable {
        /// The identity key (external id), scoped by the `scope` passed to ``PanelStore/apply(_:scope:pipeline:checkpoint:)``.
        public var externalID: String
        /// The `_commit_version` (or watermark ordinal) the row came from.
        public var commitVersion: Int64
        /// Canonical JSON object bytes of the mapped fields (must start with `{` and end with `}`).
        public var record: [UInt8]

        public init(externalID: String, commitVersion: Int64, record: [UInt8]) {
            self.externalID = externalID
            self.commitVersion = commitVersion
            self.record = record
        }
    }

    /// Where a pipeline has got to in its source.
    public struct Checkpoint: Sendable, Codable, Equatable {
        /// The last source table version fully applied (CDF pipelines).
        public var tableVersion: Int64
        /// When the checkpoint was written.
        public var updatedAt: Date?
        /// The watermark value (views / tables without CDF), as text.
        public var watermark: String?
        /// The tie-breaker key that goes with `watermark` (the last external id at that watermark).
        public var watermarkKey: String?

        public init(tableVersion: Int64, updatedAt: Date? = nil, watermark: String? = nil, watermarkKey: String? = nil) {
            self.tableVersion = tableVersion
            self.updatedAt = updatedAt
            self.watermark = watermark
            self.watermarkKey = watermarkKey
        }
    }

    /// What one ``PanelStore/apply(_:scope:pipeline:checkpoint:)`` did.
    ///
    /// `inserted + updated + unchanged + skippedOlder + superseded` equals the number of input changes.
    public struct ApplyOutcome: Sendable, Equatable {
        /// New identities (a participant id was allocated).
        public var inserted: Int
        /// Existing identities whose content changed.
        public var updated: Int
        /// Existing identities with identical content (no outbox entry; the stored version may move forward).
        public var unchanged: Int
        /// Rows older than the stored version for their key (nothing written).
        public var skippedOlder: Int
        /// Rows dropped because a row with a higher (or equal, later) version for the same key was in the batch.
        public var superseded: Int

        public init(inserted: Int = 0, updated: Int = 0, unchanged: Int = 0, skippedOlder: Int = 0, superseded: Int = 0) {
            self.inserted = inserted
            self.updated = updated
            self.unchanged = unchanged
            self.skippedOlder = skippedOlder
            self.superseded = superseded
        }
    }

    /// One stored participant.
    public struct PanelRecord: Sendable, Equatable {
        /// Stable forever once allocated; increasing in allocation order, starting at 1.
        public var participantID: UInt64
        /// The identity scope the record belongs to.
        public var scope: String
        /// The identity key within `scope`.
        public var externalID: String
        /// The version the record was last applied from.
        public var commitVersion: Int64
        /// The record's JSON bytes (decompressed).
        public var record: [UInt8]
    }

    // MARK: Apply

    /// Applies a batch of changes for `scope` and, when `checkpoint` is given, moves the checkpoint of `pipeline`
    /// in the same write transaction.
    ///
    /// Within the batch the highest `commitVersion` per external id wins (ties: the later one in input order).
    /// The batch is sorted by key before LMDB is touched. Per key: a new identity gets the next participant id
    /// and an `insert` outbox entry; an existing one is skipped when older than its stored version, counted as
    /// unchanged (no outbox entry, stored version moved forward) when its content hash is equal, and otherwise
    /// updated with an `update` outbox entry.
    ///
    /// - Parameters:
    ///   - changes: the rows, in any order.
    ///   - scope: the identity scope (connection + source); must not contain NUL.
    ///   - pipeline: whose checkpoint `checkpoint` is.
    ///   - checkpoint: written in the same transaction when not `nil`.
    ///   - run: when given, run record `run.id` (from ``appendRun(_:)``) is replaced by `run.json` in the same
    ///     transaction, so the audit counters never disagree with the panel.
    /// - Throws: ``StorageError``; on any error nothing of the batch (records, index, outbox, checkpoint, run
    ///   record) is written. `.invalidArgument` for a scope containing NUL, a key longer than the LMDB key limit
    ///   or a record that is not a JSON object; `.notFound` for an unknown run id; `.mapFull` when the map is full.
    public func apply(
        _ changes: [Change], scope: String, pipeline: String, checkpoint: Checkpoint?,
        run: (id: UInt64, json: [UInt8])? = nil
    ) throws
        -> ApplyOutcome
    {
        let scopeBytes = Array(scope.utf8)
        guard !scopeBytes.contains(0) else {
            throw StorageError(code: .invalidArgument, message: "scope must not contain a NUL byte")
        }
        let checkpointBytes = try checkpoint.map { try Self.encodeCheckpoint($0) }
        let maxKey = environment.maxKeySize

        // Flat buffer of external id bytes plus offsets, then sort indices by (bytes, input index).
        var flat: [UInt8] = []
        flat.reserveCapacity(changes.count * 16)
        var offsets = [Int](repeating: 0, count: changes.count + 1)
        for (i, change) in changes.enumerated() {
            var id = change.externalID
            id.withUTF8 { flat.append(contentsOf: $0) }
            offsets[i + 1] = flat.count
            let keyLength = scopeBytes.count + 1 + (offsets[i + 1] - offsets[i])
            guard keyLength <= maxKey else {
                throw StorageError(
                    code: .invalidArgument,
                    message: "identity key for an external id of \(offsets[i + 1] - offsets[i]) bytes in scope "
                        + "\(scope) is \(keyLength) bytes, over LMDB's \(maxKey)-byte key limit")
            }
            let r = change.record
            guard r.first == UInt8(ascii: "{"), r.last == UInt8(ascii: "}") else {
                throw StorageError(
                    code: .invalidArgument,
                    message: "record for an external id in scope \(scope) is not a JSON object")
            }
        }
        // Sort by an 8-byte big-endian prefix (taken after the bytes every id shares) first, one integer compare,
        // then by the full bytes, then by input position. Prefix order agrees with memcmp order, so the result is
        // LMDB's key order.
        var sortKeys = [SortKey]()
        sortKeys.reserveCapacity(changes.count)
        flat.withUnsafeBytes { f in
            // Ids in a batch often share a long prefix ("ext-0000…", a tenant prefix); skip what all share so the
            // 8-byte integer prefix discriminates. Keys equal on the first `common` bytes keep their order.
            var common = changes.isEmpty ? 0 : offsets[1] - offsets[0]
            if changes.count > 1 {
                for i in 1..<changes.count where common > 0 {
                    let n = min(common, offsets[i + 1] - offsets[i])
                    var j = 0
                    while j < n && f[offsets[i] + j] == f[j] { j += 1 }
                    common = j
                }
            }
            for i in 0..<changes.count {
                var prefix: UInt64 = 0
                let start = offsets[i] + common
                let n = max(0, min(8, offsets[i + 1] - start))
                for j in 0..<n { prefix |= UInt64(f[start + j]) << (56 - 8 * UInt64(j)) }
                sortKeys.append(SortKey(prefix: prefix, index: i))
            }
            func id(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: f[offsets[i]..<offsets[i + 1]]) }
            sortKeys.sort { a, b in
                if a.prefix != b.prefix { return a.prefix < b.prefix }
                let c = compareBytes(id(a.index), id(b.index))
                return c != 0 ? c < 0 : a.index < b.index
            }
        }
        let order = sortKeys.map(\.index)
        // Pick one winner per key: highest version, ties to the later input (order is by index within a key).
        var winners: [Int] = []
        winners.reserveCapacity(order.count)
        flat.withUnsafeBytes { f in
            func id(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: f[offsets[i]..<offsets[i + 1]]) }
            var k = 0
            while k < order.count {
                var best = order[k]
                var j = k + 1
                while j < order.count, compareBytes(id(order[j]), id(order[k])) == 0 {
                    if changes[order[j]].commitVersion >= changes[best].commitVersion { best = order[j] }
                    j += 1
                }
                winners.append(best)
                k = j
            }
        }
        var outcome = ApplyOutcome(superseded: changes.count - winners.count)

        writerLock.lock()
        defer { writerLock.unlock() }
        let s = scratch
        var escapedScope: [UInt8] = []
        JSONWriter.appendEscaped(scope, to: &escapedScope)
        // Hot loop state lives in locals (no class-property access or retain/release per row); the scratch
        // buffers are swapped out and back so their capacity is reused across batches.
        var key: [UInt8] = []
        var value: [UInt8] = []
        var line: [UInt8] = []
        swap(&key, &s.key)
        swap(&value, &s.value)
        swap(&line, &s.line)
        defer {
            swap(&key, &s.key)
            swap(&value, &s.value)
            swap(&line, &s.line)
        }
        let compressor = s.compressor
        let threshold = recordCompressionThreshold
        let (identDBI, panelDBI, stateDBI, outboxDBI) = (ident.dbi, panel.dbi, state.dbi, outbox.dbi)
        let path = directory

        try environment.write { txn in
            var nextPID = try readCounter(txn, MetaKey.nextParticipantID) ?? 1
            var outboxSeq = try readCounter(txn, MetaKey.outboxSequence) ?? 0
            let startPID = nextPID
            let startSeq = outboxSeq
            let t = txn.handle.pointer

            @inline(__always) func put(_ dbi: MDB_dbi, _ k: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer,
                _ flags: UInt32, _ what: StaticString) throws
            {
                var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var vv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                let rc = mdb_put(t, dbi, &kv, &vv, flags)
                if rc != 0 { throw StorageError.lmdb(rc, "put into \(what)", path: path) }
            }
            @inline(__always) func putBE(_ dbi: MDB_dbi, _ k: UInt64, _ v: UnsafeRawBufferPointer, _ flags: UInt32,
                _ what: StaticString) throws
            {
                var be = k.bigEndian
                try withUnsafeBytes(of: &be) { try put(dbi, $0, v, flags, what) }
            }
            @inline(__always) func putState(_ pid: UInt64, _ version: Int64, _ hash: UInt64, _ flags: UInt32) throws {
                var v = (UInt64(bitPattern: version).bigEndian, hash.bigEndian)
                try withUnsafeBytes(of: &v) { try putBE(stateDBI, pid, $0, flags, "state") }
            }
            /// Panel value: identity key length (2 bytes BE), identity key, then the record: its JSON as is
            /// (first byte `{`) when small or incompressible, else a zstd frame (first byte 0x28).
            func putPanel(
                _ pid: UInt64, _ record: UnsafeRawBufferPointer, _ flags: UInt32, _ key: [UInt8], _ value: inout [UInt8]
            ) throws {
                value.removeAll(keepingCapacity: true)
                value.append(UInt8(truncatingIfNeeded: key.count >> 8))
                value.append(UInt8(truncatingIfNeeded: key.count))
                value.append(contentsOf: key)
                if record.count >= threshold {
                    try compressor.withCompressed(record) { compressed in
                        value.append(contentsOf: compressed.count < record.count ? compressed : record)
                    }
                } else {
                    value.append(contentsOf: record)
                }
                try value.withUnsafeBytes { try putBE(panelDBI, pid, $0, flags, "panel") }
            }

            let append = UInt32(MDB_APPEND)
            // A cursor on `state` lets an update read and then overwrite the entry in place (MDB_CURRENT)
            // with one B-tree descent instead of two.
            var stateCursor: OpaquePointer?
            let crc = mdb_cursor_open(t, stateDBI, &stateCursor)
            if crc != 0 { throw StorageError.lmdb(crc, "cursor on state", path: path) }
            defer { mdb_cursor_close(stateCursor) }
            /// Overwrites the state entry the cursor is positioned on (it must be participant `pid`'s).
            func overwriteState(_ pid: UInt64, _ version: Int64, _ hash: UInt64) throws {
                var be = pid.bigEndian
                var v = (UInt64(bitPattern: version).bigEndian, hash.bigEndian)
                let rc = withUnsafeMutableBytes(of: &be) { k in
                    withUnsafeMutableBytes(of: &v) { vb in
                        var kv = MDB_val(mv_size: 8, mv_data: k.baseAddress)
                        var vv = MDB_val(mv_size: 16, mv_data: vb.baseAddress)
                        return mdb_cursor_put(stateCursor, &kv, &vv, UInt32(MDB_CURRENT))
                    }
                }
                if rc != 0 { throw StorageError.lmdb(rc, "put into state", path: path) }
            }
            try flat.withUnsafeBytes { f in
                try changes.withUnsafeBufferPointer { cs in
                    for index in winners {
                        let externalID = UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]])
                        let version = cs[index].commitVersion
                        // Identity key: scope 0x00 external id.
                        key.removeAll(keepingCapacity: true)
                        key.append(contentsOf: scopeBytes)
                        key.append(0)
                        key.append(contentsOf: externalID)
                        try cs[index].record.withUnsafeBytes { record in
                            var hasher = StableHash()
                            hasher.combine(record)
                            let hash = hasher.value
                            // One descent both probes and inserts: put the next id with MDB_NOOVERWRITE; when the
                            // key exists LMDB returns MDB_KEYEXIST, writes nothing and hands back the stored id.
                            var existing: UInt64?
                            var candidate = nextPID.bigEndian
                            var rc: Int32 = 0
                            var storedSize = 0
                            key.withUnsafeBytes { k in
                                withUnsafeMutableBytes(of: &candidate) { c in
                                    var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                                    var vv = MDB_val(mv_size: 8, mv_data: c.baseAddress)
                                    rc = mdb_put(t, identDBI, &kv, &vv, UInt32(MDB_NOOVERWRITE))
                                    if rc == MDB_KEYEXIST {
                                        storedSize = vv.mv_size
                                        if vv.mv_size == 8 { existing = loadBE(vv.buffer) }
                                    }
                                }
                            }
                            if rc != 0 && rc != MDB_KEYEXIST { throw StorageError.lmdb(rc, "put into ident", path: path) }
                            if rc == MDB_KEYEXIST && existing == nil {
                                throw StorageError(
                                    code: .corrupted, message: "ident entry in \(path) is \(storedSize) bytes, not 8")
                            }

                            let pid: UInt64
                            let insert: Bool
                            if let existing {
                                pid = existing
                                var stored: (version: Int64, hash: UInt64)?
                                var be = pid.bigEndian
                                rc = withUnsafeMutableBytes(of: &be) { k in
                                    var kv = MDB_val(mv_size: 8, mv_data: k.baseAddress)
                                    var vv = MDB_val()
                                    let rc = mdb_cursor_get(stateCursor, &kv, &vv, MDB_SET_KEY)
                                    if rc == 0, vv.mv_size == 16 {
                                        let v = vv.buffer
                                        stored = (Int64(bitPattern: loadBE(v)), loadBE(UnsafeRawBufferPointer(rebasing: v[8..<16])))
                                    }
                                    return rc
                                }
                                if rc != 0 && rc != MDB_NOTFOUND { throw StorageError.lmdb(rc, "get from state", path: path) }
                                guard let stored else {
                                    throw StorageError(
                                        code: .corrupted,
                                        message: "state entry for participant \(pid) in \(path) is missing or not 16 bytes")
                                }
                                if version < stored.version {
                                    outcome.skippedOlder += 1
                                    return
                                }
                                if stored.hash == hash {
                                    outcome.unchanged += 1
                                    if version > stored.version { try overwriteState(pid, version, hash) }
                                    return
                                }
                                try putPanel(pid, record, 0, key, &value)
                                try overwriteState(pid, version, hash)
                                outcome.updated += 1
                                insert = false
                            } else {
                                // The ident entry was written by the NOOVERWRITE put above.
                                pid = nextPID
                                nextPID += 1
                                // New ids are greater than every stored id, so these puts append.
                                try putPanel(pid, record, append, key, &value)
                                try putState(pid, version, hash, append)
                                outcome.inserted += 1
                                insert = true
                            }
                            outboxSeq += 1
                            line.removeAll(keepingCapacity: true)
                            appendOutboxLine(
                                into: &line, seq: outboxSeq, insert: insert, participantID: pid,
                                escapedScope: escapedScope, externalID: externalID, commitVersion: version,
                                record: record)
                            try line.withUnsafeBytes { try putBE(outboxDBI, outboxSeq, $0, append, "outbox") }
                        }
                    }
                }
            }
            if nextPID != startPID { try txn.put(meta, key: MetaKey.nextParticipantID, value: bytesBE(nextPID)) }
            if outboxSeq != startSeq { try txn.put(meta, key: MetaKey.outboxSequence, value: bytesBE(outboxSeq)) }
            if let checkpointBytes {
                try txn.put(meta, key: MetaKey.checkpoint(pipeline), value: checkpointBytes)
            }
            if let run { try replaceRun(txn, id: run.id, json: run.json) }
        }
        return outcome
    }

    // MARK: Checkpoints

    /// The checkpoint of `pipeline`, or `nil` when it has none.
    public func checkpoint(pipeline: String) throws -> Checkpoint? {
        let bytes = try environment.read { try $0.get(meta, key: MetaKey.checkpoint(pipeline)) }
        return try bytes.map { try Self.decodeCheckpoint($0, pipeline: pipeline) }
    }

    /// Sets the checkpoint of `pipeline` on its own (e.g. a run that applied nothing but saw a newer version).
    public func setCheckpoint(_ checkpoint: Checkpoint, pipeline: String) throws {
        let bytes = try Self.encodeCheckpoint(checkpoint)
        try environment.write { try $0.put(meta, key: MetaKey.checkpoint(pipeline), value: bytes) }
    }

    /// Every pipeline that has a checkpoint, with it, in pipeline-name order.
    public func checkpoints() throws -> [(pipeline: String, checkpoint: Checkpoint)] {
        let prefix = Array(MetaKey.checkpointPrefix.utf8)
        var raw: [(String, [UInt8])] = []
        try environment.read { txn in
            try txn.forEach(meta, from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false }
                raw.append((String(decoding: k[prefix.count...], as: UTF8.self), Array(v)))
                return true
            }
        }
        return try raw.map { ($0.0, try Self.decodeCheckpoint($0.1, pipeline: $0.0)) }
    }

    static func encodeCheckpoint(_ checkpoint: Checkpoint) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(checkpoint))
    }

    static func decodeCheckpoint(_ bytes: [UInt8], pipeline: String) throws -> Checkpoint {
        do {
            return try JSONDecoder().decode(Checkpoint.self, from: Data(bytes))
        } catch {
            throw StorageError(
                code: .corrupted, message: "checkpoint of pipeline \(pipeline) does not decode", underlying: error)
        }
    }

    // MARK: Reading the panel

    /// The record for `externalID` in `scope`, or `nil`.
    public func record(externalID: String, scope: String) throws -> PanelRecord? {
        var key = Array(scope.utf8)
        key.append(0)
        key.append(contentsOf: externalID.utf8)
        var decompressor: ZstdDecompressor?  // created only when a record is actually compressed
        return try environment.read { txn -> PanelRecord? in
            guard let pidBytes = try txn.get(ident, key: key), pidBytes.count == 8 else { return nil }
            let pid: UInt64 = pidBytes.withUnsafeBytes { loadBE($0) }
            let version = try storedVersion(txn, pid)
            return try txn.withValue(panel, key: bytesBE(pid)) { value in
                guard let value else {
                    throw StorageError(
                        code: .corrupted, message: "panel entry for participant \(pid) in \(directory) is missing")
                }
                return try decodePanelValue(pid: pid, value: value, version: version, decompressor: &decompressor)
            }
        }
    }

    /// The participant id of `externalID` in `scope`, or `nil` (an index probe only).
    public func participantID(externalID: String, scope: String) throws -> UInt64? {
        var key = Array(scope.utf8)
        key.append(0)
        key.append(contentsOf: externalID.utf8)
        return try environment.read { txn in
            try txn.get(ident, key: key).flatMap { v in v.count == 8 ? v.withUnsafeBytes { loadBE($0) } : nil }
        }
    }

    /// Streams every record (of `scope`, or of all scopes when `nil`) in participant id order.
    ///
    /// Memory is bounded: one record is decoded at a time inside one read transaction (a consistent snapshot).
    /// - Important: the read transaction stays open while `body` runs; keep `body` quick.
    public func forEachRecord(scope: String?, _ body: (PanelRecord) throws -> Void) throws {
        let scopePrefix: [UInt8]? = scope.map { Array($0.utf8) + [0] }
        var decompressor: ZstdDecompressor?  // created only when a record is actually compressed
        try environment.read { txn in
            try txn.forEach(panel) { k, v in
                guard k.count == 8 else {
                    throw StorageError(code: .corrupted, message: "panel key in \(directory) is not 8 bytes")
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
                let pid: UInt64 = loadBE(k)
                let version = try storedVersion(txn, pid)
                try body(try decodePanelValue(pid: pid, value: v, version: version, decompressor: &decompressor))
                return true
            }
        }
    }

    /// The number of participants (all scopes), without a scan.
    public func count() throws -> Int {
        try environment.read { try $0.count(panel) }
    }

    private func storedVersion(_ txn: some ReadableTransaction, _ pid: UInt64) throws -> Int64 {
        try txn.withValue(state, key: bytesBE(pid)) { v in
            guard let v, v.count == 16 else {
                throw StorageError(
                    code: .corrupted, message: "state entry for participant \(pid) in \(directory) is missing")
            }
            return Int64(bitPattern: loadBE(v))
        }
    }

    private func decodePanelValue(
        pid: UInt64, value: UnsafeRawBufferPointer, version: Int64, decompressor: inout ZstdDecompressor?
    ) throws -> PanelRecord {
        guard value.count >= 2 else {
            throw StorageError(code: .corrupted, message: "panel value of participant \(pid) in \(directory) is truncated")
        }
        let keyLength = Int(value[0]) << 8 | Int(value[1])
        guard keyLength <= value.count - 2, let sep = value[2..<(2 + keyLength)].firstIndex(of: 0) else {
            throw StorageError(
                code: .corrupted, message: "panel value of participant \(pid) in \(directory) has a bad identity key")
        }
        let scope = String(decoding: value[2..<sep], as: UTF8.self)
        let externalID = String(decoding: value[(sep + 1)..<(2 + keyLength)], as: UTF8.self)
        let stored = UnsafeRawBufferPointer(rebasing: value[(2 + keyLength)...])
        let record: [UInt8]
        do {
            if stored.first == UInt8(ascii: "{") {
                record = Array(stored)
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

    // MARK: Run records

    /// Stores a new run record (JSON bytes) and returns its id; ids increase and start at 1.
    public func appendRun(_ json: [UInt8]) throws -> UInt64 {
        try environment.write { txn in
            let id: UInt64 = try txn.last(runsDB).map { $0.key.withUnsafeBytes { loadBE($0) } + 1 } ?? 1
            try txn.put(runsDB, key: bytesBE(id), value: json, flags: .append)
            return id
        }
    }

    /// Replaces run record `id`.
    ///
    /// - Throws: `.notFound` when there is no such run.
    public func updateRun(id: UInt64, json: [UInt8]) throws {
        try environment.write { txn in try replaceRun(txn, id: id, json: json) }
    }

    private func replaceRun(_ txn: WriteTransaction, id: UInt64, json: [UInt8]) throws {
        guard try txn.get(runsDB, key: bytesBE(id)) != nil else {
            throw StorageError(code: .notFound, message: "no run record with id \(id) in \(directory)")
        }
        try txn.put(runsDB, key: bytesBE(id), value: json)
    }

    /// Up to `limit` run records, newest first.
    public func runs(limit: Int) throws -> [(id: UInt64, json: [UInt8])] {
        guard limit > 0 else { return [] }
        var result: [(id: UInt64, json: [UInt8])] = []
        try environment.read { txn in
            try txn.forEach(runsDB, reverse: true) { k, v in
                result.append((loadBE(k), Array(v)))
                return result.count < limit
            }
        }
        return result
    }

    /// Run record `id`, or `nil`.
    public func run(id: UInt64) throws -> [UInt8]? {
        try environment.read { try $0.get(runsDB, key: bytesBE(id)) }
    }
}

// MARK: - Internals

/// Buffers and the zstd context reused by every apply; only touched while `writerLock` is held.
final class WriterScratch {
    let compressor: ZstdCompressor
    var key: [UInt8] = []
    var value: [UInt8] = []
    var line: [UInt8] = []

    init(level: Int32) throws {
        compressor = try ZstdCompressor(level: level)
        key.reserveCapacity(512)
        value.reserveCapacity(1024)
        line.reserveCapacity(1024)
    }
}

struct SortKey {
    var prefix: UInt64
    var index: Int
}

enum OutboxOp { case insert, update }

/// Appends one outbox line (no newline):
/// `{"seq":N,"op":"insert"|"update","participant_id":P,"scope":"...","external_id":"...","commit_version":V,"record":{...}}`.
///
/// Byte-for-byte what `JSONWriter` produces for that object (strings escaped with `JSONWriter.appendEscaped`),
/// without its per-key escaping and integer-to-String allocations.
func appendOutboxLine(
    into out: inout [UInt8], seq: UInt64, insert: Bool, participantID: UInt64, escapedScope: [UInt8],
    externalID: UnsafeRawBufferPointer, commitVersion: Int64, record: UnsafeRawBufferPointer
) {
    out.append(contentsOf: OutboxLiterals.seq)
    appendDecimal(seq, to: &out)
    out.append(contentsOf: insert ? OutboxLiterals.opInsert : OutboxLiterals.opUpdate)
    appendDecimal(participantID, to: &out)
    out.append(contentsOf: OutboxLiterals.scope)
    out.append(contentsOf: escapedScope)
    out.append(contentsOf: OutboxLiterals.externalID)
    JSONWriter.appendEscaped(utf8: externalID, to: &out)
    out.append(contentsOf: OutboxLiterals.commitVersion)
    if commitVersion < 0 {
        out.append(UInt8(ascii: "-"))
        appendDecimal(commitVersion.magnitude, to: &out)
    } else {
        appendDecimal(UInt64(commitVersion), to: &out)
    }
    out.append(contentsOf: OutboxLiterals.record)
    out.append(contentsOf: record)
    out.append(UInt8(ascii: "}"))
}

enum OutboxLiterals {
    static let seq = Array(#"{"seq":"#.utf8)
    static let opInsert = Array(#","op":"insert","participant_id":"#.utf8)
    static let opUpdate = Array(#","op":"update","participant_id":"#.utf8)
    static let scope = Array(#","scope":"#.utf8)
    static let externalID = Array(#","external_id":"#.utf8)
    static let commitVersion = Array(#","commit_version":"#.utf8)
    static let record = Array(#","record":"#.utf8)
}

/// Appends the decimal digits of `value`.
@inline(__always)
func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack
    withUnsafeMutableBytes(of: &digits) { buf in
        var v = value
        var i = 24
        repeat {
            i -= 1
            buf[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
            v /= 10
        } while v != 0
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[i..<24]))
    }
}

enum MetaKey {
    static let nextParticipantID = Array("next_participant_id".utf8)
    static let outboxSequence = Array("outbox_seq".utf8)
    static let deliveredSequence = Array("delivered_seq".utf8)
    static let formatVersion = Array("format_version".utf8)
    static let checkpointPrefix = "checkpoint/"
    static func checkpoint(_ pipeline: String) -> [UInt8] { Array((checkpointPrefix + pipeline).utf8) }
}

extension PanelStore {
    /// A big-endian 8-byte counter from `meta`, or `nil` when unset.
    func readCounter(_ txn: some ReadableTransaction, _ key: [UInt8]) throws -> UInt64? {
        guard let bytes = try txn.get(meta, key: key) else { return nil }
        guard bytes.count == 8 else {
            throw StorageError(code: .corrupted, message: "meta counter in \(directory) is not 8 bytes")
        }
        return bytes.withUnsafeBytes { loadBE($0) }
    }
}

@inline(__always)
func bytesBE(_ value: UInt64) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

@inline(__always)
func loadBE(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
    UInt64(bigEndian: buffer.loadUnaligned(as: UInt64.self))
}

/// Lends the 8-byte big-endian encoding of `value` without allocating.
@inline(__always)
func withBE<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var be = value.bigEndian
    return try withUnsafeBytes(of: &be, body)
}

/// memcmp order, shorter first on a common prefix (LMDB's default key order).
@inline(__always)
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return Int(c) }
    }
    return a.count - b.count
}

