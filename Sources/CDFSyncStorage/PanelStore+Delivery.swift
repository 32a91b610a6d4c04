import CDFSyncCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension PanelStore {
    /// What one ``PanelStore/deliver(to:segmentMaxBytes:fileMode:)`` wrote.
    public struct DeliveryOutcome: Sendable, Equatable {
        /// New segment files written by this call.
        public var segmentsWritten: Int
        /// Outbox entries delivered by this call.
        public var recordsDelivered: Int
        /// The new segment file names in the delivery directory, in sequence order.
        public var files: [String]
        /// The paths of the new segments that went to another pipeline's directory (changes a run of that pipeline
        /// applied and did not deliver), in sequence order.
        public var elsewhere: [String] = []
        /// What this call repaired of an earlier delivery that was killed part-way (a committed segment given its
        /// final name, leftovers of an uncommitted attempt removed, a missing or stale manifest rewritten), one
        /// phrase each; empty when there was nothing to repair.
        public var repairs: [String] = []

        public init(segmentsWritten: Int = 0, recordsDelivered: Int = 0, files: [String] = []) {
            self.segmentsWritten = segmentsWritten
            self.recordsDelivered = recordsDelivered
            self.files = files
        }
    }

    /// One delivered segment file, as recorded in LMDB and listed in `manifest.json`.
    public struct SegmentInfo: Sendable, Equatable {
        /// File name inside the delivery directory: `changes-<first 12 digits>-<last 12 digits>.ndjson.zst`.
        public var file: String
        /// The first outbox sequence in the file.
        public var firstSeq: UInt64
        /// The last outbox sequence in the file (the range is contiguous).
        public var lastSeq: UInt64
        /// The number of NDJSON lines (`lastSeq - firstSeq + 1`).
        public var records: Int
        /// Bytes of NDJSON, newlines included.
        public var bytesUncompressed: Int
        /// Bytes of the `.zst` file.
        public var bytesCompressed: Int
        /// The directory it was delivered into (nil: delivered before directories were recorded).
        public var directory: String? = nil
    }

    /// The file name of the segment holding outbox sequences `first...last`.
    public static func segmentFileName(first: UInt64, last: UInt64) -> String {
        "changes-\(pad12(first))-\(pad12(last)).ndjson.zst"
    }

    /// Parses a segment file name back into its sequence range (`nil` when `name` is not one).
    public static func parseSegmentFileName(_ name: String) -> (first: UInt64, last: UInt64)? {
        let prefix = "changes-"
        let suffix = ".ndjson.zst"
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let middle = name.dropFirst(prefix.count).dropLast(suffix.count)
        let parts = middle.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count >= 12, parts[1].count >= 12,
            let first = UInt64(parts[0]), let last = UInt64(parts[1])
        else { return nil }
        return (first, last)
    }

    /// The number of outbox lines (changes and events) not yet delivered.
    ///
    /// Sequences are contiguous, so this is the last sequence handed out minus the delivered cursor.
    public func pendingOutboxCount() throws -> Int {
        try environment.read { txn in try pendingOutboxLines(txn) }
    }

    func pendingOutboxLines(_ txn: some ReadableTransaction) throws -> Int {
        let last = try readCounter(txn, MetaKey.outboxSequence) ?? 0
        let delivered = try readCounter(txn, MetaKey.deliveredSequence) ?? 0
        return Int(last - delivered)
    }

    /// The highest outbox sequence delivered so far (0 when nothing has been delivered).
    public func deliveredSequence() throws -> UInt64 {
        try environment.read { try readCounter($0, MetaKey.deliveredSequence) } ?? 0
    }

    /// Every delivered segment, in sequence order.
    public func deliveredSegments() throws -> [SegmentInfo] {
        var result: [SegmentInfo] = []
        try environment.read { txn in
            try txn.forEach(segments) { _, v in
                var info = try Self.decodeSegment(v)
                info.directory = try segmentDirectory(txn, first: info.firstSeq)
                result.append(info)
                return true
            }
        }
        return result
    }

    // MARK: Routes (several pipelines, one store)

    /// `tag` + 8-byte big-endian `seq`: `e` outbox entry → pipeline, `s` segment → directory.
    static func routeKey(_ tag: Character, _ seq: UInt64) -> [UInt8] { [tag.asciiValue!] + bytesBE(seq) }
    /// `d` + pipeline → its delivery directory.
    static func routeKey(pipeline: String) -> [UInt8] { [UInt8(ascii: "d")] + Array(pipeline.utf8) }
    /// `m` + pipeline → the mode of its delivered files (octal text), when not ``PrivateFiles/fileMode``.
    static func routeKey(fileModeOf pipeline: String) -> [UInt8] { [UInt8(ascii: "m")] + Array(pipeline.utf8) }

    /// A directory as recorded and compared: absolute and standardised.
    public static func absolute(_ directory: String) -> String { URL(fileURLWithPath: directory).standardizedFileURL.path }

    /// Records which pipeline wrote the outbox entry the transaction just finished (nothing when it wrote no line).
    /// Inside every apply: key and value are built on the stack (no allocation; `make bench-check` counts them).
    func recordRoute(_ txn: WriteTransaction, after startSeq: UInt64, through lastSeq: UInt64, pipeline: String) throws {
        guard lastSeq != startSeq else { return }
        var key: (UInt64, UInt64) = (0, 0)  // 16 bytes on the stack; the key is the first 9
        var name = pipeline
        try withUnsafeMutableBytes(of: &key) { k in
            k[0] = UInt8(ascii: "e")
            k.storeBytes(of: (startSeq + 1).bigEndian, toByteOffset: 1, as: UInt64.self)
            try name.withUTF8 { v in
                try txn.put(routes, key: UnsafeRawBufferPointer(rebasing: k[0..<9]), value: UnsafeRawBufferPointer(v))
            }
        }
    }

    /// Makes `directory` the one delivery sends `pipeline`'s changes to, whichever pipeline of the store delivers
    /// them (a run of another pipeline delivers what a crashed run of this one left in the outbox), with files of
    /// `fileMode` (its directories get ``PrivateFiles/directoryMode(forFileMode:)``).
    public func setDeliveryDirectory(_ directory: String, pipeline: String, fileMode: mode_t = PrivateFiles.fileMode)
        throws
    {
        let path = Array(Self.absolute(directory).utf8)
        let key = Self.routeKey(pipeline: pipeline)
        let modeKey = Self.routeKey(fileModeOf: pipeline)
        let mode = fileMode == PrivateFiles.fileMode ? nil : Array(PrivateFiles.octal(fileMode).utf8)
        guard try environment.read({ try $0.get(routes, key: key) != path || $0.get(routes, key: modeKey) != mode })
        else { return }
        try environment.write { txn in
            try txn.put(routes, key: key, value: path)
            if let mode {
                try txn.put(routes, key: modeKey, value: mode)
            } else {
                _ = try txn.delete(routes, key: modeKey)
            }
        }
    }

    /// Each pipeline's delivery directory (as recorded: absolute) and the mode of its files.
    public func deliveryDirectories() throws -> [(pipeline: String, directory: String, fileMode: mode_t)] {
        try environment.read { txn in
            let modes = try deliveryFileModes(txn)
            var out: [(pipeline: String, directory: String, fileMode: mode_t)] = []
            try txn.forEach(routes, from: [UInt8(ascii: "d")]) { k, v in
                guard k.first == UInt8(ascii: "d") else { return false }
                let dir = String(decoding: v, as: UTF8.self)
                out.append((String(decoding: k.dropFirst(), as: UTF8.self), dir, modes[dir] ?? PrivateFiles.fileMode))
                return true
            }
            return out
        }
    }

    /// The file mode of each pipeline's delivery directory that is not ``PrivateFiles/fileMode``, by directory.
    func deliveryFileModes(_ txn: some ReadableTransaction) throws -> [String: mode_t] {
        var modes: [String: mode_t] = [:]
        try txn.forEach(routes, from: [UInt8(ascii: "m")]) { k, v in
            guard k.first == UInt8(ascii: "m") else { return false }
            let pipeline = Array(k.dropFirst())
            if let mode = mode_t(String(decoding: v, as: UTF8.self), radix: 8),
                let dir = try txn.get(routes, key: [UInt8(ascii: "d")] + pipeline)
            {
                modes[String(decoding: dir, as: UTF8.self)] = mode
            }
            return true
        }
        return modes
    }

    func segmentDirectory(_ txn: some ReadableTransaction, first: UInt64) throws -> String? {
        try txn.get(routes, key: Self.routeKey("s", first)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Delivers the outbox, exactly once, as zstd-compressed NDJSON segment files in `directory`.
    ///
    /// Protocol (see docs/storage.md): finish the rename of a segment committed just before a crash, delete
    /// leftovers of a crashed attempt (temporary files, segment files past the delivered cursor); then, segment by
    /// segment: stream outbox lines from the delivered cursor + 1 into a temporary file until `segmentMaxBytes`
    /// uncompressed bytes and fsync it; in ONE LMDB transaction delete those outbox entries, advance the delivered
    /// cursor and record the segment; then rename the file to `changes-<first>-<last>.ndjson.zst` and fsync the
    /// directory. Finally rewrite `manifest.json` atomically when it is missing or differs. A crash at any point
    /// followed by another `deliver` yields the same files, with no duplicates and no gaps, and a file with a final
    /// name is always committed. The repair steps run on every call, also with nothing pending (say what they did in
    /// ``DeliveryOutcome/repairs``; ``deliveryRepairs()`` finds the same without writing); a directory this store never
    /// delivered into and has nothing for is left untouched.
    ///
    /// Calls are serialised within the process; do not deliver one store to one directory from two processes.
    ///
    /// - Parameters:
    ///   - directory: the delivery directory (created if missing). Use one directory per store.
    ///   - segmentMaxBytes: a segment is closed once its uncompressed size reaches this (each holds ≥ 1 line).
    ///   - fileMode: the mode of the files written into `directory` (segments, manifest, owner file) and, with x
    ///     where r is set, of the directories created for it. Another pipeline's directory gets the mode recorded
    ///     by ``setDeliveryDirectory(_:pipeline:fileMode:)``.
    /// - Throws: ``StorageError`` (`.permissionDenied` naming the directory, `.io`, `.corrupted`, ...). Whatever
    ///   was committed before the error stays delivered; the rest stays in the outbox for the next call.
    public func deliver(to directory: String, segmentMaxBytes: Int = 64 << 20, fileMode: mode_t = PrivateFiles.fileMode)
        throws -> DeliveryOutcome
    {
        precondition(segmentMaxBytes > 0, "segmentMaxBytes must be positive")
        return try deliveryLock.withLock { _ in
            // Entries of a pipeline with a recorded directory go there; the rest (entries written before routes were
            // recorded, pipelines that never set one) go to `directory`.
            let fallback = Self.absolute(directory)
            var delivered = try deliveredSequence()
            var modes = try environment.read { try deliveryFileModes($0) }
            modes[fallback] = fileMode
            func mode(_ dir: String) -> mode_t { modes[dir] ?? PrivateFiles.fileMode }
            var outcome = DeliveryOutcome()
            // The repair of a delivery killed part-way runs on every call, also when nothing is pending: the engine
            // calls this at every run, so a quiet source still gets its committed segment renamed and its manifest.
            if let renamed = try completeLastSegment(fallback: fallback) {
                outcome.repairs.append(
                    "renamed segment \(renamed), committed by a delivery that stopped before renaming it")
            }
            func removeLeftovers(in dir: String) throws {
                let removed = try removeStrayFiles(in: dir, deliveredSequence: delivered)
                guard !removed.isEmpty else { return }
                outcome.repairs.append("removed \(removed.count) leftover file(s) of an uncommitted delivery from \(dir): "
                    + removed.joined(separator: ", "))
            }
            // Each directory a segment goes to is checked, claimed and cleaned once, before its first segment.
            var prepared: [String] = []
            func prepare(_ dir: String) throws {
                guard !prepared.contains(dir) else { return }
                try PrivateFiles.makeDirectory(dir, mode: PrivateFiles.directoryMode(forFileMode: mode(dir)))
                if try deliveryDirectoryOwner(dir, delivered: delivered) == .free { try claim(dir, mode: mode(dir)) }
                try removeLeftovers(in: dir)
                prepared.append(dir)
            }
            // A directory this store has delivered nothing into and has nothing for is left untouched, not even claimed:
            // a run that fails before it applies anything must not take its output directory from another store.
            if try deliveryDirectoryOwner(fallback, delivered: delivered) == .thisStore
                || manifestBytes(for: fallback, deliveredSequence: delivered).segments > 0
            {
                try prepare(fallback)
            }

            var directories: [String: String] = [:]  // pipeline → directory, for this call
            func destination(_ txn: some ReadableTransaction, entry seq: UInt64) throws -> String {
                guard let owner = try txn.get(routes, key: Self.routeKey("e", seq)).map({ String(decoding: $0, as: UTF8.self) })
                else { return fallback }
                if let known = directories[owner] { return known }
                let dir = try txn.get(routes, key: Self.routeKey(pipeline: owner)).map { String(decoding: $0, as: UTF8.self) }
                    ?? fallback
                directories[owner] = dir
                return dir
            }
            while true {
                let first = delivered + 1
                // The first pending entry's directory is the segment's; the segment ends before an entry bound elsewhere.
                let target = try environment.read { txn -> String? in
                    if try txn.get(outbox, key: bytesBE(first)) != nil { return try destination(txn, entry: first) }
                    // Nothing at the cursor: done, unless sequences were handed out past it (a gap, reported below).
                    return try pendingOutboxLines(txn) > 0 ? fallback : nil
                }
                guard let target else { break }
                try prepare(target)
                let tempPath = target + "/" + Self.temporaryFileName(first: first)
                var file: SegmentFile?
                var last = delivered
                var records = 0
                var entries = 0
                var bytesIn = 0
                do {
                    // Each outbox entry is complete zstd frames of NDJSON lines; concatenated frames are a valid zstd
                    // stream, so a segment is the entries' frames copied as they are, cut at entry boundaries.
                    try environment.read { txn in
                        var mapped = environment.mappedPageBudget(every: MappedPageBudget.largeValues)
                        try txn.forEach(outbox, from: bytesBE(first)) { k, v in
                            mapped.tick()
                            let seq = loadBE(k)
                            guard seq == last + 1, v.count > 16 else {
                                throw StorageError(
                                    code: .corrupted,
                                    message: "outbox of \(self.directory) has a gap or a damaged entry: expected sequence "
                                        + "\(last + 1), found \(seq)")
                            }
                            if entries > 0, try destination(txn, entry: seq) != target { return false }
                            let entryLast: UInt64 = loadBE(v)
                            let rawLength = Int(loadBE(UnsafeRawBufferPointer(rebasing: v[8..<16])) as UInt64)
                            guard entryLast >= seq else {
                                throw StorageError(code: .corrupted, message: "outbox entry \(seq) of \(self.directory) is damaged")
                            }
                            if file == nil { file = try SegmentFile(path: tempPath, mode: mode(target)) }
                            try file!.write(UnsafeRawBufferPointer(rebasing: v[16...]))
                            last = entryLast
                            records += Int(entryLast - seq + 1)
                            entries += 1
                            bytesIn += rawLength
                            return bytesIn < segmentMaxBytes
                        }
                    }
                    guard let file else { break }
                    try file.finish()  // fsyncs the temporary file
                    try step(.segmentWritten(tempPath))
                } catch {
                    unlink(tempPath)
                    throw error
                }
                let info = SegmentInfo(
                    file: Self.segmentFileName(first: first, last: last), firstSeq: first, lastSeq: last,
                    records: records, bytesUncompressed: bytesIn, bytesCompressed: file!.bytesWritten)
                let entry = Self.encodeSegment(info)
                let newCursor = last
                // The commit point: the lines leave the outbox and the segment is recorded, atomically.
                do {
                    try environment.write { txn in
                        let removed = try txn.deleteRange(outbox, from: bytesBE(first), upTo: bytesBE(newCursor + 1))
                        guard removed == entries else {
                            // Nothing else removes outbox entries (delivery is serialised), so this is damage.
                            throw StorageError(
                                code: .corrupted,
                                message: "outbox of \(self.directory) changed during delivery (\(removed) of \(entries) removed)")
                        }
                        _ = try txn.deleteRange(routes, from: Self.routeKey("e", first), upTo: Self.routeKey("e", newCursor + 1))
                        try txn.put(meta, key: MetaKey.deliveredSequence, value: bytesBE(newCursor))
                        try txn.put(segments, key: bytesBE(first), value: entry)
                        try txn.put(routes, key: Self.routeKey("s", first), value: Array(target.utf8))
                    }
                } catch {
                    unlink(tempPath)
                    throw error
                }
                delivered = newCursor
                try step(.segmentCommitted(info.file))
                // Only now does the segment get its final name, so a file with a final name is always committed.
                // A crash before this rename is repaired by `completeLastSegment` on the next call; the temporary file
                // is complete and fsynced, so it must not be deleted on failure here.
                let finalPath = target + "/" + info.file
                try deliveryRename(tempPath, to: finalPath)
                try fsyncDirectory(target)
                try step(.segmentRenamed(info.file))
                outcome.segmentsWritten += 1
                outcome.recordsDelivered += records
                if target == fallback { outcome.files.append(info.file) } else { outcome.elsewhere.append(finalPath) }
            }
            try step(.beforeManifest)
            // The manifests of this call's directories, and of the other pipelines' directories this store owns (a
            // delivery that crashed before its manifests may have written segments there); those are cleaned too, so
            // a run of any pipeline of the store repairs every directory the store owns.
            var manifests = prepared
            for (dir, _) in try pipelineDirectories() where !manifests.contains(dir) { manifests.append(dir) }
            // With no new segment, a manifest that differs from the segments database is one a killed delivery left.
            let nothingNew = outcome.segmentsWritten == 0
            for dir in manifests {
                if !prepared.contains(dir) {
                    guard (try? deliveryDirectoryOwner(dir, delivered: delivered)) == .thisStore else { continue }
                    try removeLeftovers(in: dir)
                }
                let (was, listed) = try writeManifest(in: dir, deliveredSequence: delivered, mode: mode(dir))
                if nothingNew, was == .stale || (was == .missing && listed > 0) {
                    outcome.repairs.append("rewrote the \(was.rawValue) manifest.json of \(dir)")
                }
            }
            return outcome
        }
    }

    /// Every pipeline's delivery directory (`routes` `d`), in pipeline order, with the pipelines that use it.
    func pipelineDirectories() throws -> [(directory: String, pipelines: [String])] {
        var result: [(directory: String, pipelines: [String])] = []
        try environment.read { txn in
            try txn.forEach(routes, from: [UInt8(ascii: "d")]) { k, v in
                guard k.first == UInt8(ascii: "d") else { return false }
                let dir = String(decoding: v, as: UTF8.self)
                let pipeline = String(decoding: k.dropFirst(), as: UTF8.self)
                if let i = result.firstIndex(where: { $0.directory == dir }) {
                    result[i].pipelines.append(pipeline)
                } else {
                    result.append((dir, [pipeline]))
                }
                return true
            }
        }
        return result
    }

    /// The file in a delivery directory that names the store whose segments it holds.
    public static let ownerFileName = "cdfsync-store.json"

    /// Refuses a delivery directory that holds another store's segments (``StorageError/Code/directoryTaken``), or
    /// that cannot be created or written (a file in the way, no permission, a read-only or full file system: the
    /// error names the directory and why); ``deliver(to:segmentMaxBytes:fileMode:)`` checks the same and claims a
    /// free directory. Call it before a run, to fail before reading anything rather than after applying everything.
    /// Creates the directory when it is missing.
    public func checkDeliveryDirectory(_ directory: String, fileMode: mode_t = PrivateFiles.fileMode) throws {
        _ = try deliveryDirectoryOwner(directory, delivered: try deliveredSequence())
        try Self.checkWritable(directory, mode: PrivateFiles.directoryMode(forFileMode: fileMode))
    }

    /// Creates `directory` if needed (with `mode`) and proves a file can be created in it, by creating and removing
    /// one.
    static func checkWritable(_ directory: String, mode: mode_t = PrivateFiles.directoryMode) throws {
        do {
            try PrivateFiles.makeDirectory(directory, mode: mode)
            let probe = directory + "/.cdfsync-write-check-\(getpid())"
            let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            if fd < 0 { throw StorageError.system(errno, "creating a file in", path: directory) }
            close(fd)
            unlink(probe)
        } catch let e as StorageError {
            throw StorageError(code: e.code,
                message: "delivery directory \(FilePaths.shown(directory)) cannot be written (\(e.message)); nothing was "
                    + "read. Give the pipeline an output directory this user may create and write (the ndjson sink's "
                    + "directory, or --output-dir)",
                underlying: e.underlying)
        }
    }

    enum DirectoryOwner { case thisStore, free }

    /// Whose `directory` is: this store's (its owner file names this store), free (no owner file, and nothing in it
    /// this store did not deliver: empty, or written by this store before owner files existed), or another's (throws).
    ///
    /// Two stores delivering into one directory would each take the other's segment files for leftovers of a crash
    /// and delete them, and both number their segments from 1 (the same file names). A new state directory pointed
    /// at the output of an earlier one is the same case.
    func deliveryDirectoryOwner(_ directory: String, delivered: UInt64) throws -> DirectoryOwner {
        let ownerPath = directory + "/" + Self.ownerFileName
        let remedy = "Give this pipeline its own output directory (the ndjson sink's directory, or --output-dir), or run "
            + "it with the state directory that wrote those files"
        if let data = FileManager.default.contents(atPath: ownerPath) {
            let owner = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            guard let id = owner?["store_id"] as? String else {
                throw StorageError(code: .corrupted,
                    message: "\(ownerPath) does not name a store; if this directory holds no segments you still need, "
                        + "remove the file and run again")
            }
            if id == storeID { return .thisStore }
            let stateDir = owner?["state_dir"] as? String ?? "?"
            throw StorageError(code: .directoryTaken,
                message: "delivery directory \(directory) belongs to another state store (state directory \(stateDir), "
                    + "store \(id)); delivering \(self.directory)'s changes into it would overwrite or delete its "
                    + "segment files. \(remedy)")
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return .free }
        var foreign: UInt64?
        if let data = FileManager.default.contents(atPath: directory + "/manifest.json"),
            let manifest = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let seq = (manifest["delivered_seq"] as? NSNumber)?.uint64Value, seq != delivered
        {
            foreign = seq
        }
        for name in names {
            if let range = Self.parseSegmentFileName(name), range.last > delivered { foreign = max(foreign ?? 0, range.last) }
        }
        if let foreign {
            throw StorageError(code: .directoryTaken,
                message: "delivery directory \(directory) holds segments through change \(foreign) that the store in "
                    + "\(self.directory) did not write (it has delivered through change \(delivered)): another state "
                    + "store's, or an earlier one's of this state directory; delivering into it would overwrite or "
                    + "delete them. \(remedy), or move those files (and manifest.json) away once they are consumed")
        }
        return .free
    }

    /// Writes the owner file naming this store (atomically), with `mode`.
    func claim(_ directory: String, mode: mode_t = PrivateFiles.fileMode) throws {
        var json = JSONWriter()
        json.beginObject()
        json.key("store_id"); json.string(storeID)
        json.key("state_dir"); json.string(Self.absolute(self.directory))
        json.endObject()
        json.bytes.append(0x0A)
        try writeFileAtomically(json.bytes, to: directory + "/" + Self.ownerFileName, directory: directory, mode: mode,
            rename: deliveryRename)
    }

    /// The temporary name a segment starting at `first` is written under until it is committed.
    static func temporaryFileName(first: UInt64) -> String { "changes-\(pad12(first)).ndjson.zst.tmp" }

    /// Gives the most recently committed segment its final name when a crash came between the LMDB commit and
    /// the rename (the temporary file is complete and fsynced before the commit). Only the last segment can be
    /// in that state: delivery renames each segment before starting the next. Returns the segment's file name when
    /// it renamed one.
    ///
    /// A missing final file with no temporary file is left alone: a consumer may have moved it away.
    private func completeLastSegment(fallback: String) throws -> String? {
        guard let pending = try unrenamedLastSegment(fallback: fallback) else { return nil }
        try deliveryRename(pending.temporaryPath, to: pending.directory + "/" + pending.file)
        try fsyncDirectory(pending.directory)
        return pending.file
    }

    /// The last committed segment when it still has its temporary name (and no final file): what
    /// ``completeLastSegment(fallback:)`` renames. `fallback` is the directory of a segment with no recorded one.
    func unrenamedLastSegment(fallback: String) throws -> (file: String, directory: String, temporaryPath: String)? {
        let found = try environment.read { txn -> (value: [UInt8], directory: String?)? in
            guard let last = try txn.last(segments) else { return nil }
            return (last.value, try segmentDirectory(txn, first: last.key.withUnsafeBytes { loadBE($0) }))
        }
        guard let found else { return nil }
        let info = try found.value.withUnsafeBytes { try Self.decodeSegment($0) }
        let directory = found.directory ?? fallback
        let tempPath = directory + "/" + Self.temporaryFileName(first: info.firstSeq)
        guard access(directory + "/" + info.file, F_OK) != 0, access(tempPath, F_OK) == 0 else { return nil }
        return (info.file, directory, tempPath)
    }

    /// Points in ``deliver(to:segmentMaxBytes:fileMode:)`` where tests inject a crash (a thrown error stops delivery
    /// exactly there, as a killed process would).
    enum DeliveryStep: Equatable {
        /// The temporary segment file is complete and fsynced; the LMDB commit has not happened.
        case segmentWritten(String)
        /// The LMDB transaction for the segment committed; the file still has its temporary name.
        case segmentCommitted(String)
        /// The segment has its final name (directory fsynced).
        case segmentRenamed(String)
        /// All segments are committed; `manifest.json` is not yet rewritten.
        case beforeManifest
        /// Just before a `rename(2)` of delivery (a segment, a manifest, the owner file) to the named file.
        case beforeRename(String)
        /// Just after that `rename(2)`, before the directory is fsynced.
        case afterRename(String)
    }

    /// Reports a step of delivery to the test hook (and, in debug builds, to ``DeliveryKillSwitch``).
    func step(_ step: DeliveryStep) throws {
        try deliveryHook?(step)
        #if DEBUG
        DeliveryKillSwitch.fromEnvironment?.reached(step)
        #endif
    }

    /// `rename(2)` of a file delivery wrote under a temporary name, with its steps reported around it.
    func deliveryRename(_ from: String, to path: String) throws {
        let name = (path as NSString).lastPathComponent
        try step(.beforeRename(name))
        if rename(from, path) != 0 { throw StorageError.system(errno, "renaming \(from) to", path: path) }
        try step(.afterRename(name))
    }

    /// The files in `directory` that ``removeStrayFiles(in:deliveredSequence:)`` deletes: temporary files (once
    /// ``completeLastSegment(fallback:)`` has renamed a committed one, every remaining one belongs to an attempt
    /// that crashed before its commit) and segment files whose first sequence is past the delivered cursor (which
    /// this protocol never leaves behind, but an older one or a copy might). Throws when it cannot be listed.
    func strayFileNames(in directory: String, deliveredSequence: UInt64) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw StorageError(
                code: .io, message: "cannot list delivery directory \(directory)", underlying: error)
        }
        return names.filter { name in
            if let range = Self.parseSegmentFileName(name) { return range.first > deliveredSequence }
            return name.hasPrefix("changes-") && name.hasSuffix(".tmp") || name == "manifest.json.tmp"
        }.sorted()
    }

    /// Deletes the leftovers ``strayFileNames(in:deliveredSequence:)`` names; returns their names.
    private func removeStrayFiles(in directory: String, deliveredSequence: UInt64) throws -> [String] {
        let stray = try strayFileNames(in: directory, deliveredSequence: deliveredSequence)
        for name in stray {
            let path = directory + "/" + name
            if unlink(path) != 0 && errno != ENOENT { throw StorageError.system(errno, "removing stray", path: path) }
        }
        if !stray.isEmpty { try fsyncDirectory(directory) }
        return stray
    }

    /// How a directory's `manifest.json` compares with what the segments database says it must hold.
    public enum ManifestState: String, Sendable, Equatable {
        /// It holds exactly what the next delivery would write.
        case current
        /// There is none.
        case missing
        /// It differs (a delivery was killed after committing segments and before rewriting it).
        case stale
    }

    /// Rewrites `manifest.json` (temporary file, fsync, rename, directory fsync) from the segments database when it
    /// is missing or differs; returns what it was before and how many segments it lists.
    @discardableResult
    private func writeManifest(in directory: String, deliveredSequence: UInt64, mode: mode_t) throws
        -> (was: ManifestState, segments: Int)
    {
        let (bytes, listed) = try manifestBytes(for: directory, deliveredSequence: deliveredSequence)
        let was = Self.manifestState(of: directory, expected: bytes)
        if was != .current {
            try writeFileAtomically(
                bytes, to: directory + "/manifest.json", directory: directory, mode: mode, rename: deliveryRename)
        }
        return (was, listed)
    }

    /// Whether `directory/manifest.json` holds `expected`.
    static func manifestState(of directory: String, expected: [UInt8]) -> ManifestState {
        guard let current = FileManager.default.contents(atPath: directory + "/manifest.json") else { return .missing }
        return current.elementsEqual(expected) ? .current : .stale
    }

    /// The `manifest.json` of `directory` as delivery writes it, and the number of segments it lists.
    func manifestBytes(for directory: String, deliveredSequence: UInt64) throws -> (bytes: [UInt8], segments: Int) {
        var json = JSONWriter(reservingCapacity: 4096)
        var listed = 0
        json.beginObject()
        json.key("version")
        json.int(1)
        json.key("delivered_seq")
        json.uint(deliveredSequence)
        json.key("segments")
        json.beginArray()
        try environment.read { txn in
            try txn.forEach(segments) { k, v in
                // This directory's segments, and those delivered before directories were recorded.
                if let dir = try segmentDirectory(txn, first: loadBE(k)), dir != directory { return true }
                json.raw(UnsafeRawBufferPointer(v))
                listed += 1
                return true
            }
        }
        json.endArray()
        json.endObject()
        json.bytes.append(0x0A)
        return (json.bytes, listed)
    }

    static let newline: [UInt8] = [0x0A]

    static func pad12(_ value: UInt64) -> String {
        let digits = String(value)
        return digits.count >= 12 ? digits : String(repeating: "0", count: 12 - digits.count) + digits
    }

    static func encodeSegment(_ info: SegmentInfo) -> [UInt8] {
        var json = JSONWriter(reservingCapacity: 192)
        json.beginObject()
        json.key("file")
        json.string(info.file)
        json.key("first_seq")
        json.uint(info.firstSeq)
        json.key("last_seq")
        json.uint(info.lastSeq)
        json.key("records")
        json.int(Int64(info.records))
        json.key("bytes_uncompressed")
        json.int(Int64(info.bytesUncompressed))
        json.key("bytes_compressed")
        json.int(Int64(info.bytesCompressed))
        json.endObject()
        return json.bytes
    }

    static func decodeSegment(_ bytes: UnsafeRawBufferPointer) throws -> SegmentInfo {
        struct Wire: Decodable {
            var file: String
            var first_seq: UInt64
            var last_seq: UInt64
            var records: Int
            var bytes_uncompressed: Int
            var bytes_compressed: Int
        }
        do {
            let w = try JSONDecoder().decode(Wire.self, from: Data(bytes))
            return SegmentInfo(
                file: w.file, firstSeq: w.first_seq, lastSeq: w.last_seq, records: w.records,
                bytesUncompressed: w.bytes_uncompressed, bytesCompressed: w.bytes_compressed)
        } catch {
            throw StorageError(code: .corrupted, message: "a delivered-segment record does not decode", underlying: error)
        }
    }
}

/// A segment file being written: plain writes of ready-made zstd frames, fsynced by ``finish()``.
final class SegmentFile {
    let path: String
    private var fd: Int32
    private(set) var bytesWritten = 0

    init(path: String, mode: mode_t) throws {
        self.path = path
        fd = try PrivateFiles.open(path, flags: O_WRONLY | O_TRUNC, mode: mode)
    }

    deinit { if fd >= 0 { close(fd) } }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try writeAll(fd, bytes, path)
        bytesWritten += bytes.count
    }

    func finish() throws {
        if fsync(fd) != 0 { throw StorageError.system(errno, "fsync of", path: path) }
        let rc = close(fd)
        fd = -1
        if rc != 0 { throw StorageError.system(errno, "closing", path: path) }
    }
}

/// The result of ``PanelStore/deliver(to:segmentMaxBytes:fileMode:)`` (also reachable as `PanelStore.DeliveryOutcome`).
public typealias DeliveryOutcome = PanelStore.DeliveryOutcome
