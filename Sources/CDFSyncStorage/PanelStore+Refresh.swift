import CDFSyncCore
import Foundation
import Synchronization

/// The set of identity keys a refresh read from its source, kept on disk in an LMDB environment of its own (a
/// scratch directory), so that a refresh of any size holds at most one buffer of keys in memory.
///
/// Keys arrive from the reading side (``insert(_:)``, buffered and written sorted, `flushEvery` at a time) and are
/// asked for by the sweep (``contains(_:)``) once the whole source was read. The directory is the refresh's own:
/// nothing else reads it, a refresh killed midway leaves it behind (the next one removes it, ``removeStale(in:)``),
/// and it is deleted when the set is ``close()``d. Commits are not synced: the set is rebuilt by any rerun.
///
/// Thread-safe: `insert` and `flush` take a lock (the reading thread and the caller's thread both call them).
public final class ScratchKeySet: @unchecked Sendable {
    // @unchecked Sendable: the environment is thread-safe; the buffer is guarded by `pending`.
    private var environment: LMDBEnvironment?
    private let db: Database
    /// The scratch directory.
    public let directory: String
    private let pending = Mutex<[[UInt8]]>([])
    private let flushEvery: Int
    /// Keys inserted (duplicates counted once they reach the set; an estimate until ``flush()``).
    public private(set) var inserted = 0

    /// The prefix of scratch directories' names inside a state directory.
    public static let directoryPrefix = "refresh-scratch-"

    /// Creates an empty set in a new scratch directory inside `parent` (the state directory).
    public init(parent: String, flushEvery: Int = 50_000) throws {
        directory = (parent as NSString).appendingPathComponent(Self.directoryPrefix + UUID().uuidString.lowercased())
        let env = try LMDBEnvironment(directory: directory, mapSize: 1 << 36, maxDatabases: 2, durable: false)
        db = try env.write { try $0.openDatabase("seen") }
        environment = env
        self.flushEvery = max(1, flushEvery)
    }

    /// Removes scratch directories a killed refresh left in `parent`.
    public static func removeStale(in parent: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for name in names where name.hasPrefix(directoryPrefix) {
            try? FileManager.default.removeItem(atPath: (parent as NSString).appendingPathComponent(name))
        }
    }

    /// Adds `key` (written with the next flush).
    public func insert(_ key: [UInt8]) throws {
        let full = pending.withLock { p -> [[UInt8]]? in
            p.append(key)
            guard p.count >= flushEvery else { return nil }
            defer { p = [] }
            return p
        }
        if let full { try write(full) }
    }

    /// Writes the keys buffered so far.
    public func flush() throws {
        let keys = pending.withLock { p -> [[UInt8]] in
            defer { p = [] }
            return p
        }
        try write(keys)
    }

    private func write(_ keys: [[UInt8]]) throws {
        guard !keys.isEmpty, let environment else { return }
        // In key order: LMDB puts in order are several times faster than random ones.
        let sorted = keys.sorted { a, b in a.lexicographicallyPrecedes(b) }
        let maxKey = environment.maxKeySize
        try environment.write { txn in
            for k in sorted where !k.isEmpty && k.count <= maxKey { try txn.put(db, key: k, value: []) }
        }
        inserted += keys.count
    }

    /// Whether `key` was inserted and flushed.
    public func contains(_ key: some Collection<UInt8>) throws -> Bool {
        guard let environment else { return false }
        let k = Array(key)
        guard !k.isEmpty, k.count <= environment.maxKeySize else { return false }
        return try environment.read { try $0.get(db, key: k) } != nil
    }

    /// Closes the environment and deletes the scratch directory.
    public func close() {
        environment = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { if environment != nil { close() } }
}

/// The `in_source` field a refresh gives a record: `false` while the source no longer has its key, `true` on the
/// change that brings it back. It is always the record's last top-level key.
enum InSource {
    static let key = Array(#""in_source":"#.utf8)

    /// `record` (a JSON object) without a trailing `in_source` the engine added.
    static func strip(_ record: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        let bytes = Array(record)[...]
        for value in ["false", "true"] {
            let tail = key + Array(value.utf8) + [UInt8(ascii: "}")]
            guard bytes.count > tail.count, bytes.suffix(tail.count).elementsEqual(tail) else { continue }
            let before = bytes.dropLast(tail.count)
            if before.last == UInt8(ascii: ",") { return before.dropLast() + [UInt8(ascii: "}")] }
            if before.last == UInt8(ascii: "{") { return before + [UInt8(ascii: "}")] }
        }
        return bytes
    }

    /// `record` with its `in_source` set to `value` (replacing one the engine added before).
    static func set(_ value: Bool, in record: UnsafeRawBufferPointer) -> [UInt8] {
        var out = Array(strip(record))
        guard out.last == UInt8(ascii: "}") else { return out }
        out.removeLast()
        let empty = out.last(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x09 && $0 != 0x0D }) == UInt8(ascii: "{")
        if !empty { out.append(UInt8(ascii: ",")) }
        out += key
        out += Array((value ? "true" : "false").utf8)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

extension PanelStore {
    /// The identity key of source key (`scope`, `externalID`) as the store keys it (what a ``ScratchKeySet`` of a
    /// refresh holds).
    public static func sourceIdentityKey(scope: String, externalID: String) -> [UInt8] {
        identityKey(scope: scope, externalID: externalID)
    }

    /// One source key a refresh found absent from its source.
    public struct AbsentKey: Sendable, Equatable {
        public var externalID: String
        public var participantID: UInt64
        /// Whether this refresh marked it (false: an earlier refresh did, and the source still lacks it).
        public var newlyMarked: Bool
    }

    /// What ``markAbsent(scope:pipeline:seen:dryRun:chunk:afterChunk:onAbsent:)`` found.
    public struct AbsentOutcome: Sendable, Equatable {
        /// Source keys of the scope in the panel.
        public var keys = 0
        /// Of them, absent from the source (newly marked or still marked).
        public var absent = 0
        /// Of them, marked by this call (their record changed to `"in_source": false` and that change was put in the
        /// outbox); in a dry run, those it would mark.
        public var newlyMarked = 0
        public init() {}
    }

    /// After a refresh read its whole source: every source key of `scope` the source no longer has — not in `seen`,
    /// and no other key of its participant in the scope is — is absent. A key not yet marked gets its record's
    /// `"in_source": false` (an `update` line in the outbox, delivered like any other change; the record's version
    /// stays) and the `absent` flag on its identity; nobody is deleted. The next row applied for the key clears the
    /// flag and its change says `"in_source": true` (``apply(_:scope:pipeline:checkpoint:run:commit:)-(ChangeBatch,_,_,_,_,_)``).
    ///
    /// The keys are walked in `chunk`s, each in one write transaction (one read transaction in a `dryRun`, which
    /// writes nothing): memory holds one chunk, whatever the panel's size. A process killed between chunks has
    /// marked only keys the source lacked; running the refresh again completes the rest.
    /// - Parameters:
    ///   - afterChunk: called after each chunk is committed, with its number (from 1).
    ///   - onAbsent: called for each absent key, in key order, after its chunk is committed.
    public func markAbsent(
        scope: String, pipeline: String, seen: ScratchKeySet, dryRun: Bool, chunk: Int = 1000,
        afterChunk: (Int) throws -> Void = { _ in }, onAbsent: (AbsentKey) throws -> Void
    ) throws -> AbsentOutcome {
        let prefix = Array(scope.utf8) + [0]
        var outcome = AbsentOutcome()
        var position = prefix
        var first = true
        var chunks = 0
        let escapedScope: [UInt8] = {
            var e: [UInt8] = []
            JSONWriter.appendEscaped(scope, to: &e)
            return e
        }()
        while true {
            var found: [AbsentKey] = []
            var visited = 0
            /// One chunk's keys after `position`; the absent ones are marked (or, in a dry run, counted).
            func walk(
                _ txn: some ReadableTransaction, marking: Bool,
                _ mark: (UnsafeRawBufferPointer, IdentValue) throws -> Void
            ) throws {
                var entries: [(key: [UInt8], value: IdentValue)] = []
                try txn.forEach(ident, from: position) { k, v in
                    guard k.starts(with: prefix) else { return false }
                    if !first && k.elementsEqual(position) { return true }
                    guard let value = IdentValue(v) else {
                        throw StorageError(code: .corrupted, message: "ident entry in \(directory) is \(v.count) bytes")
                    }
                    entries.append((Array(k), value))
                    return entries.count < chunk
                }
                visited = entries.count
                guard let last = entries.last else { return }
                position = last.key
                first = false
                for (key, value) in entries where try !seen.contains(key) {
                    if try presentThroughAnotherKey(txn, pid: value.pid, key: key, prefix: prefix, seen: seen) { continue }
                    let id = String(decoding: key[prefix.count...], as: UTF8.self)
                    found.append(AbsentKey(externalID: id, participantID: value.pid, newlyMarked: !value.absent))
                    if !value.absent, marking { try key.withUnsafeBytes { try mark($0, value) } }
                }
            }
            if dryRun {
                try environment.read { try walk($0, marking: false) { _, _ in } }
            } else {
                try writerLock.withLock { _ in
                    try environment.write { txn in
                        try checkSoleWriter(txn)
                        var panelWriter = PanelRecordWriter(store: self, txn: txn)
                        var framer = try OutboxFramer(store: self, txn: txn)
                        var decompressor: ZstdDecompressor?
                        try escapedScope.withUnsafeBytes { escapedScope in
                        try walk(txn, marking: true) { key, value in
                            let stored = try txn.withValue(panel, key: bytesBE(value.pid)) { v in
                                guard let v else {
                                    throw StorageError(code: .corrupted,
                                        message: "panel entry for participant \(value.pid) in \(directory) is missing")
                                }
                                return try decodePanelValue(pid: value.pid, value: v, decompressor: &decompressor, txn)
                            }
                            let marked = stored.record.withUnsafeBytes { InSource.set(false, in: $0) }
                            if marked != stored.record {
                                let header = try panelWriter.header(of: value.pid)
                                try header.withUnsafeBytes { h in
                                    try marked.withUnsafeBytes { r in
                                        try panelWriter.write(value.pid, key: key, header: h,
                                            version: stored.commitVersion, frame: nil, record: r, shaped: nil,
                                            append: false)
                                        framer.appendChange(
                                            insert: false, participantID: value.pid,
                                            escapedScope: escapedScope,
                                            externalID: UnsafeRawBufferPointer(rebasing: key[prefix.count...]),
                                            commitVersion: value.version, record: r)
                                    }
                                }
                            }
                            var next = value
                            next.absent = true
                            // The row the source gave last differs from what the record now holds: a row with the
                            // same content, back in the source, is a change (the one that says "in_source": true).
                            next.hash = marked.withUnsafeBytes { r in
                                var h = StableHash()
                                h.combine(r)
                                return h.value
                            }
                            try next.withBytes { try txn.put(ident, key: key, value: $0) }
                        }
                        }
                        let (startSeq, lastSeq) = (framer.startSeq, framer.seq)
                        try framer.finish(txn)
                        try recordRoute(txn, after: startSeq, through: lastSeq, pipeline: pipeline)
                    }
                }
            }
            guard visited > 0 else { break }
            chunks += 1
            outcome.keys += visited
            outcome.absent += found.count
            outcome.newlyMarked += found.filter(\.newlyMarked).count
            for a in found { try onAbsent(a) }
            if !dryRun { try afterChunk(chunks) }
            if visited < chunk { break }
        }
        return outcome
    }

    /// Whether participant `pid` has another source key in the scope (`prefix`) that the refresh read.
    private func presentThroughAnotherKey(
        _ txn: some ReadableTransaction, pid: UInt64, key: [UInt8], prefix: [UInt8], seen: ScratchKeySet
    ) throws -> Bool {
        var keys: [[UInt8]] = []
        try txn.withValue(panel, key: bytesBE(pid)) { v in
            guard let v, v.count >= 2 else { return }
            let n = Int(v[0]) << 8 | Int(v[1])
            if 2 + n <= v.count { keys.append(Array(v[2..<(2 + n)])) }
        }
        let pidKey = bytesBE(pid)
        try txn.forEach(links, from: pidKey) { k, _ in
            guard k.count > 8, k.starts(with: pidKey) else { return false }
            keys.append(Array(k[8...]))
            return true
        }
        for k in keys where k != key && k.starts(with: prefix) {
            if try seen.contains(k) { return true }
        }
        return false
    }
}
