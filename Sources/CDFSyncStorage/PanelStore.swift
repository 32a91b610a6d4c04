import CDFSyncCore
import Foundation
import Synchronization

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
    let meta: Database
    let outbox: Database
    let runsDB: Database
    let segments: Database
    let links: Database
    let emailIndex: Database
    let phoneIndex: Database
    let contacts: Database
    let conflictsDB: Database
    let eventsDB: Database
    /// Record shapes (see ``RecordShape``): 4-byte big-endian id → keys.
    let shapesDB: Database
    /// Where delivery sends what (see ``deliver(to:segmentMaxBytes:fileMode:)``): `e` + an outbox entry's key → the
    /// pipeline that wrote it; `s` + a segment's first sequence → the directory it was delivered into; `d` + a
    /// pipeline → its delivery directory; `m` + a pipeline → the mode of its files, when not the private default.
    let routes: Database
    /// The latest record of each source key of a participant that several keys feed (see ``LinkedRecords``):
    /// identity key → stamp (8 bytes BE, the outbox sequence of the change that wrote it), then the record's JSON.
    let keyRecords: Database
    /// The invitation ledger (`L` + participant + target → entry) and its index of held entries (`H` + pipeline, NUL,
    /// participant, target); see PanelStore+Invitations.swift.
    let invitationsDB: Database
    /// Each pipeline's invitation outbox: pipeline, NUL, sequence (8 bytes BE) → participant (8 bytes BE) + target.
    let invitationQueue: Database
    /// Each pipeline's delivered invitation segments: pipeline, NUL, first sequence → the segment's JSON.
    let invitationSegments: Database
    /// `shapesDB` in memory.
    let shapes = RecordShapes()
    /// zstd level used for panel record values.
    public let recordCompressionLevel: Int32
    /// Records at least this long are stored zstd-compressed (when that makes them smaller); shorter ones are
    /// stored as is, because a zstd frame of a ~100-byte record is larger than the record and costs ~5 µs.
    public let recordCompressionThreshold: Int
    /// zstd level of the frames each apply writes to the outbox (its NDJSON lines).
    public let outboxCompressionLevel: Int32

    let writerLock = Mutex<Void>(())
    let deliveryLock = Mutex<Void>(())
    /// Test hook: called at each step of delivery (set only while no delivery runs).
    nonisolated(unsafe) var deliveryHook: ((DeliveryStep) throws -> Void)?
    let scratch: WriterScratch
    /// In-memory membership filter over every identity key, email and phone value (guarded by `writerLock`).
    var filter: MembershipFilter
    /// Whether opening used the saved filter instead of scanning the indexes (for tests and diagnostics).
    private(set) var filterWasLoaded = false
    /// The state directory's writer lock, held while a writing store is open (nil for ``Access/reader``).
    let directoryLock: WriterLock?
    /// A random id given to the store when it is created: the delivery directories it writes are bound to it.
    public let storeID: String

    /// How a store is opened.
    public enum Access: Sendable {
        /// Reads and writes: holds the state directory's ``WriterLock`` until the store is released, so a second
        /// writing process is refused with ``StorageError/Code/inUse`` before it opens anything.
        case writer
        /// Only reads (status, run records, export): takes no lock and may run beside a writer. A caller that
        /// writes through a reader store is not protected from another writer.
        case reader
    }

    /// Opens or creates the store in `directory`.
    ///
    /// - Parameters:
    ///   - directory: the LMDB environment directory (created if missing).
    ///   - durable: `true` syncs every commit; `false` opts in to `MDB_NOSYNC | MDB_NOMETASYNC` (a system crash
    ///     may lose recent commits).
    ///   - mapSize: the maximum size of the data file (address space only).
    ///   - recordCompressionLevel: zstd level for stored records.
    ///   - recordCompressionThreshold: records of at least this many bytes are stored zstd-compressed.
    ///   - outboxCompressionLevel: zstd level of the per-apply outbox frames.
    ///   - access: ``Access/writer`` (default) takes the directory's writer lock first and throws
    ///     ``StorageError/Code/inUse`` when another process holds it; ``Access/reader`` takes none.
    ///
    /// Opening loads the membership filter saved by the last ``saveFilter()`` when it still describes the
    /// store exactly, and otherwise builds it from the identity, email and phone indexes (one scan; about
    /// 1.25 MB per million keys, see docs/storage.md).
    public init(
        directory: String, durable: Bool = true, mapSize: Int = 1 << 36, recordCompressionLevel: Int32 = 1,
        recordCompressionThreshold: Int = 512, outboxCompressionLevel: Int32 = 1, access: Access = .writer
    ) throws {
        directoryLock = access == .writer ? try WriterLock(directory: directory) : nil
        environment = try LMDBEnvironment(directory: directory, mapSize: mapSize, maxDatabases: 24, durable: durable)
        // One write transaction at startup opens every named database (mdb_dbi_open must not run in concurrent
        // transactions) and writes or checks the layout version.
        let path = environment.path
        let (dbs, savedShapes, id) = try environment.write { txn -> ([Database], [(UInt32, [UInt8])], [UInt8]) in
            let dbs = try [
                "ident", "panel", "meta", "outbox", "runs", "segments", "links", "email", "phone", "contact",
                "conflicts", "events", "shapes", "routes", "keyrecords", "invitations", "invitation_queue",
                "invitation_segments",
            ].map { try txn.openDatabase($0) }
            let meta = dbs[2]
            if let stored = try txn.get(meta, key: MetaKey.formatVersion) {
                // Layout 2 is layout 3 without shaped records: it is upgraded in place (nothing to rewrite).
                if stored == Self.previousFormatVersion {
                    try txn.put(meta, key: MetaKey.formatVersion, value: Self.formatVersion)
                } else if stored != Self.formatVersion {
                    throw StorageError(
                        code: .versionMismatch,
                        message: "store \(path) has layout version \(String(decoding: stored, as: UTF8.self)); "
                            + "this build reads version \(String(decoding: Self.formatVersion, as: UTF8.self)). Use a "
                            + "matching cdfsync build or resync into a new state directory")
                }
            } else {
                try txn.put(meta, key: MetaKey.formatVersion, value: Self.formatVersion)
            }
            // The store's identity, which its delivery directories are bound to (given to stores created before it
            // at their next open).
            var id = try txn.get(meta, key: MetaKey.storeID)
            if id == nil {
                id = Array(UUID().uuidString.lowercased().utf8)
                try txn.put(meta, key: MetaKey.storeID, value: id!)
            }
            var shapes: [(UInt32, [UInt8])] = []
            try txn.forEach(dbs[12]) { k, v in
                guard k.count == 4 else {
                    throw StorageError(code: .corrupted, message: "shapes key in \(path) is not 4 bytes")
                }
                shapes.append((RecordShape.id(k), Array(v)))
                return true
            }
            return (dbs, shapes, id!)
        }
        (ident, panel, meta, outbox, runsDB, segments) = (dbs[0], dbs[1], dbs[2], dbs[3], dbs[4], dbs[5])
        storeID = String(decoding: id, as: UTF8.self)
        (links, emailIndex, phoneIndex, contacts, conflictsDB, eventsDB) = (dbs[6], dbs[7], dbs[8], dbs[9], dbs[10], dbs[11])
        shapesDB = dbs[12]
        routes = dbs[13]
        keyRecords = dbs[14]
        (invitationsDB, invitationQueue, invitationSegments) = (dbs[15], dbs[16], dbs[17])
        for (id, keys) in savedShapes { shapes.add(id: id, keys: keys) }
        self.recordCompressionLevel = recordCompressionLevel
        self.recordCompressionThreshold = recordCompressionThreshold
        self.outboxCompressionLevel = outboxCompressionLevel
        scratch = try WriterScratch(level: recordCompressionLevel, outboxLevel: outboxCompressionLevel)
        filter = MembershipFilter(capacity: 1 << 20)
        filterWasLoaded = loadSavedFilter()
        if !filterWasLoaded { try rebuildFilter(minimumCapacity: 0) }
    }

    /// The on-disk layout version this build reads and writes (meta `format_version`).
    static let formatVersion: [UInt8] = Array("3".utf8)
    /// The layout this build upgrades in place when it opens it (3 only added the `shapes` database).
    static let previousFormatVersion: [UInt8] = Array("2".utf8)

    /// The environment directory.
    public var directory: String { environment.path }

    /// Whether this store was opened as the writer and holds the state directory's writer lock.
    public var isWriter: Bool { directoryLock != nil }

    // MARK: Types

    /// One row to apply.
    public struct Change: Sendable {
        /// The identity key (external id), scoped by the `scope` passed to ``PanelStore/apply(_:scope:pipeline:checkpoint:)``.
        public var externalID: String
        /// The `_commit_version` (or watermark ordinal) the row came from.
        public var commitVersion: Int64
        /// Canonical JSON object bytes of the mapped fields (must start with `{` and end with `}`).
        public var record: [UInt8]
        /// The normalised email (trimmed, lower-cased), or `nil` when the row has none. Panel-wide identity key.
        public var email: String?
        /// The phone number in E.164, or `nil`. Panel-wide identity key, weaker than email.
        public var phone: String?
        /// `StableHash` of `record`, precomputed by ``PanelStore/prepare(_:compressor:threshold:)``; `nil` means
        /// apply computes it.
        public var contentHash: UInt64?
        /// One zstd frame of `record`, precomputed by ``PanelStore/prepare(_:compressor:threshold:)``; `nil`
        /// means apply compresses the record itself when it is at least `recordCompressionThreshold` bytes.
        /// When given, apply never compresses: it stores this frame if it is shorter than `record`, else `record`.
        public var compressedRecord: [UInt8]?
        /// Whether the row's consent value is opted in. A row that is not is applied only when its identity
        /// resolves to a participant the panel already holds (by source key, email or phone) at the moment it is
        /// applied — a withdrawal is never lost — and is otherwise not imported (``ApplyOutcome/consentBlocked``).
        public var optedIn: Bool

        public init(
            externalID: String, commitVersion: Int64, record: [UInt8], email: String? = nil, phone: String? = nil,
            optedIn: Bool = true, contentHash: UInt64? = nil, compressedRecord: [UInt8]? = nil
        ) {
            self.externalID = externalID
            self.commitVersion = commitVersion
            self.record = record
            self.email = email
            self.phone = phone
            self.optedIn = optedIn
            self.contentHash = contentHash
            self.compressedRecord = compressedRecord
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
        /// When the source table the versions belong to was created (`information_schema.tables.created`, as the
        /// warehouse printed it): a table dropped and created again has a new one, and its versions restart at 0.
        /// Nil in checkpoints written before it was recorded.
        public var sourceCreated: String?

        /// `tableVersion` when it names one (a watermark checkpoint, or a view's snapshot, stores -1).
        public var version: Int64? { tableVersion >= 0 ? tableVersion : nil }

        public init(tableVersion: Int64, updatedAt: Date? = nil, watermark: String? = nil, watermarkKey: String? = nil,
                    sourceCreated: String? = nil) {
            self.tableVersion = tableVersion
            self.updatedAt = updatedAt
            self.watermark = watermark
            self.watermarkKey = watermarkKey
            self.sourceCreated = sourceCreated
        }
    }

    /// What one ``PanelStore/apply(_:scope:pipeline:checkpoint:)`` did.
    ///
    /// Every input row is counted once: `inserted + updated + linked + unchanged + skippedOlder + consentBlocked`
    /// equals the number of input changes; `conflicts` counts conflict entries recorded (a row counted elsewhere
    /// may also record conflicts).
    public struct ApplyOutcome: Sendable, Equatable {
        /// New identities (a participant id was allocated).
        public var inserted: Int
        /// Existing identities whose content changed.
        public var updated: Int
        /// Existing identities with identical content (no outbox entry; the stored version may move forward).
        public var unchanged: Int
        /// Rows older than the stored version for their key (nothing written).
        public var skippedOlder: Int
        /// New source keys (scope, external id) attached to an existing participant found by email or phone
        /// (its record is replaced by the row's, with an `update` outbox line).
        public var linked: Int
        /// Rows not opted in whose identity resolved to no participant the panel held: not imported.
        public var consentBlocked: Int
        /// Conflict entries recorded: a weaker key (email, phone) already belongs to another participant.
        public var conflicts: Int
        /// What the pipeline's activation decided (all zero without one); not row counts.
        public var activation = ActivationOutcome()

        public init(
            inserted: Int = 0, updated: Int = 0, unchanged: Int = 0, skippedOlder: Int = 0, linked: Int = 0,
            consentBlocked: Int = 0, conflicts: Int = 0
        ) {
            self.inserted = inserted
            self.updated = updated
            self.unchanged = unchanged
            self.skippedOlder = skippedOlder
            self.linked = linked
            self.consentBlocked = consentBlocked
            self.conflicts = conflicts
        }

        /// Rows the outcome accounts for.
        public var rows: Int { inserted + updated + linked + unchanged + skippedOlder + consentBlocked }

        public static func += (a: inout ApplyOutcome, b: ApplyOutcome) {
            a.inserted += b.inserted
            a.updated += b.updated
            a.unchanged += b.unchanged
            a.skippedOlder += b.skippedOlder
            a.linked += b.linked
            a.consentBlocked += b.consentBlocked
            a.conflicts += b.conflicts
            a.activation += b.activation
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
        /// Every source key of the participant: the one that created it first, then linked ones in key order.
        public var sourceKeys: [SourceKey] = []
    }

    /// One source identity (connection + source scope, external id) of a participant.
    public struct SourceKey: Sendable, Hashable {
        public var scope: String
        public var externalID: String

        public init(scope: String, externalID: String) {
            self.scope = scope
            self.externalID = externalID
        }
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

    func replaceRun(_ txn: WriteTransaction, id: UInt64, json: [UInt8]) throws {
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
    /// Compresses each batch's outbox lines on worker threads while the transaction goes on.
    let outboxFrame: ZstdFrameWorker
    /// The identity key of the row being applied (scope, NUL, external id).
    let key = ByteArena(capacity: 512)
    /// Per winning row of the batch being applied: its identity key's filter probe, and whether the filter may
    /// hold the key.
    var identLookups: [(probe: MembershipFilter.Probe, maybeKnown: Bool)] = []
    /// Per key of the batch being applied, its identity as the batch goes (see `apply`).
    var identState: [IdentValue?] = []
    /// The order the rows of the batch being applied are visited in.
    var applyOrder: [Int] = []

    init(level: Int32, outboxLevel: Int32) throws {
        compressor = try ZstdCompressor(level: level)
        outboxFrame = try ZstdFrameWorker(level: outboxLevel, checksum: true)
    }
}

/// Bytes behind a raw pointer that grows on demand and is reused from batch to batch. The apply loop writes keys
/// and outbox lines through it: an `Array` there cost a retain/release and a uniqueness check per row and access
/// (`swift_retain` was ~10 % of the writer thread in `perf`).
final class ByteArena {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = max(64, capacity)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// Makes room for `count` bytes (the contents are not kept); returns the base, which may have moved.
    @inline(__always)
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutableRawPointer {
        if count > capacity { grow(to: count) }
        return base
    }

    @inline(never)
    private func grow(to count: Int) {
        capacity = max(count, 2 * capacity)
        base.deallocate()
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
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
/// without its per-key escaping and integer-to-String allocations. The apply loop writes the same bytes with
/// ``writeOutboxLine(to:seq:insert:participantID:escapedScope:externalID:commitVersion:record:)``.
func appendOutboxLine(
    into out: inout [UInt8], seq: UInt64, insert: Bool, participantID: UInt64, escapedScope: [UInt8],
    externalID: UnsafeRawBufferPointer, commitVersion: Int64, record: UnsafeRawBufferPointer
) {
    let bound = outboxLineBound(escapedScope: escapedScope.count, externalID: externalID.count, record: record.count)
    let start = out.count
    out.append(contentsOf: repeatElement(0, count: bound))
    let written = escapedScope.withUnsafeBytes { scope in
        out.withUnsafeMutableBytes { o in
            writeOutboxLine(
                to: o.baseAddress! + start, seq: seq, insert: insert, participantID: participantID,
                escapedScope: scope, externalID: externalID, commitVersion: commitVersion, record: record)
        }
    }
    out.removeLast(bound - written)
}

/// The most bytes ``writeOutboxLine(to:seq:insert:participantID:escapedScope:externalID:commitVersion:record:)``
/// writes for these lengths: every number at its widest, the external id escaped at its worst.
@inline(__always)
func outboxLineBound(escapedScope: Int, externalID: Int, record: Int) -> Int {
    OutboxLiterals.fixedCount + 3 * 20 + 1 + escapedScope + JSONWriter.escapedBound(externalID) + record
}

/// Writes one outbox line (no newline) at `dst`, which has room for ``outboxLineBound(escapedScope:externalID:record:)``
/// bytes, and returns how many it wrote: the bytes ``appendOutboxLine`` appends, through a raw pointer (the apply
/// loop writes a line per row; this spares it a dozen capacity and uniqueness checks per line).
@inline(__always)
func writeOutboxLine(
    to dst: UnsafeMutableRawPointer, seq: UInt64, insert: Bool, participantID: UInt64,
    escapedScope: UnsafeRawBufferPointer, externalID: UnsafeRawBufferPointer, commitVersion: Int64,
    record: UnsafeRawBufferPointer
) -> Int {
    var o = 0
    @inline(__always) func put(_ s: StaticString) {
        (dst + o).copyMemory(from: s.utf8Start, byteCount: s.utf8CodeUnitCount)
        o += s.utf8CodeUnitCount
    }
    @inline(__always) func put(_ b: UnsafeRawBufferPointer) {
        if b.count > 0 { (dst + o).copyMemory(from: b.baseAddress!, byteCount: b.count) }
        o += b.count
    }
    put(OutboxLiterals.seq)
    o += writeDecimal(seq, to: dst + o)
    put(insert ? OutboxLiterals.opInsert : OutboxLiterals.opUpdate)
    o += writeDecimal(participantID, to: dst + o)
    put(OutboxLiterals.scope)
    put(escapedScope)
    put(OutboxLiterals.externalID)
    o += JSONWriter.writeEscaped(utf8: externalID, to: dst + o)
    put(OutboxLiterals.commitVersion)
    if commitVersion < 0 {
        dst.storeBytes(of: UInt8(ascii: "-"), toByteOffset: o, as: UInt8.self)
        o += 1
        o += writeDecimal(commitVersion.magnitude, to: dst + o)
    } else {
        o += writeDecimal(UInt64(commitVersion), to: dst + o)
    }
    put(OutboxLiterals.record)
    put(record)
    dst.storeBytes(of: UInt8(ascii: "}"), toByteOffset: o, as: UInt8.self)
    return o + 1
}

enum OutboxLiterals {
    static var seq: StaticString { #"{"seq":"# }
    static var opInsert: StaticString { #","op":"insert","participant_id":"# }
    static var opUpdate: StaticString { #","op":"update","participant_id":"# }
    static var scope: StaticString { #","scope":"# }
    static var externalID: StaticString { #","external_id":"# }
    static var commitVersion: StaticString { #","commit_version":"# }
    static var record: StaticString { #","record":"# }
    /// The literal bytes of a change line: the seven above (the longer op) and the closing brace.
    static var fixedCount: Int {
        seq.utf8CodeUnitCount + opInsert.utf8CodeUnitCount + scope.utf8CodeUnitCount + externalID.utf8CodeUnitCount
            + commitVersion.utf8CodeUnitCount + record.utf8CodeUnitCount + 1
    }
}

extension Array where Element == UInt8 {
    /// Appends a literal's UTF-8 bytes.
    mutating func append(_ s: StaticString) {
        append(contentsOf: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}

/// Writes the decimal digits of `value` at `dst` (room for 20 bytes) and returns how many.
@inline(__always)
func writeDecimal(_ value: UInt64, to dst: UnsafeMutableRawPointer) -> Int {
    var n = 1
    var v = value
    while v >= 10 {
        v /= 10
        n += 1
    }
    v = value
    var i = n
    repeat {
        i -= 1
        dst.storeBytes(of: UInt8(truncatingIfNeeded: v % 10) &+ 0x30, toByteOffset: i, as: UInt8.self)
        v /= 10
    } while v != 0
    return n
}

/// Appends the decimal digits of `value`.
@inline(__always)
func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack
    withUnsafeMutableBytes(of: &digits) { buf in
        let n = writeDecimal(value, to: buf.baseAddress!)
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
    }
}

enum MetaKey {
    static let nextParticipantID = Array("next_participant_id".utf8)
    static let outboxSequence = Array("outbox_seq".utf8)
    static let deliveredSequence = Array("delivered_seq".utf8)
    static let formatVersion = Array("format_version".utf8)
    static let storeID = Array("store_id".utf8)
    static let checkpointPrefix = "checkpoint/"
    static func checkpoint(_ pipeline: String) -> [UInt8] { Array((checkpointPrefix + pipeline).utf8) }
}

extension PanelStore {
    /// The length of the key the checkpoint named `name` is stored under (it must fit
    /// ``LMDBEnvironment/defaultMaxKeySize``).
    public static func checkpointKeyLength(_ name: String) -> Int { MetaKey.checkpoint(name).count }
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

