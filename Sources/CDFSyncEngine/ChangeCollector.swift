import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// How rows become panel changes.
enum RowMapping {
    /// Every selected column copied into the record as a string; the key column is the external id.
    case passthrough(keyColumn: String, columns: [String]?)
    /// A pipeline's mapping: normalised fields, typed attributes, consent, validation.
    case pipeline(Pipeline)

    /// The most membership-filter keys one row can add: its identity key, and for a participant pipeline an email
    /// and a phone (events are not in the filter).
    var filterKeysPerRow: Int {
        switch self {
        case .passthrough: return 1
        case .pipeline(let p): return p.kind == .events ? 0 : 3
        }
    }
}

/// Turns streamed change-feed (or snapshot / watermark) rows into panel changes and hands them, in batches, to
/// the writer thread.
///
/// Rows of chunk 0 can arrive before the manifest that names the columns, so until `manifestReady` they are
/// copied aside and replayed once the positions are known. From then on rows are processed in place.
///
/// A batch goes to the writer as soon as it holds `batchSize` rows or `maxBatchBytes` bytes, in the middle of a
/// chunk if need be, so memory is bounded by the batch limits whatever size of chunk the server sends. If a chunk
/// is then delivered again (its response was cut off and re-requested), its first rows, already handed over, are
/// skipped: a chunk's rows and their order never change.
final class ChangeCollector: ResultSink {
    enum Source {
        /// `table_changes` rows of the versions the statement asked for; every row's `_commit_version` must be one
        /// of them, in ascending order.
        case changeFeed(versions: ClosedRange<Int64>)
        case snapshot(version: Int64)
        /// The version of a row is its cursor value in epoch microseconds (watermark mode).
        case watermark(cursorColumn: String)
    }

    private let source: Source
    private let mapping: RowMapping
    private let writer: BatchWriter
    private let batchSize: Int
    private let maxBatchBytes: Int
    private let maxInvalidRatio: Double?
    private let compressionThreshold: Int
    /// Whether records are stored shaped (see `ChangeBatch.prepare(compressor:threshold:shaping:)`).
    private let shaping: Bool
    /// The run's summary so far, with this statement's counts merged in by `finish`.
    private var base: SyncSummary
    var summary: SyncSummary {
        var s = base
        s.invalidSamples += rows.samples
        return s
    }

    /// Everything the per-row path touches, in one struct: `row` mutates it in place with one access, where
    /// separate stored properties of this class would each cost a dynamic exclusivity check per row.
    private var rows: RowState
    private var resolved = false
    private var pendingRows: [[[UInt8]?]] = []
    /// Hash and compress records on this (the reading) thread, so the writer thread only writes.
    private var compressor: ZstdCompressor?
    private var batchStartCount = 0
    private var countsAtChunkStart = Counts()

    struct Counts { var read = 0, deletes = 0, preimages = 0, invalid = 0, consentBlocked = 0, nullCursor = 0, updatesIgnored = 0 }

    /// Recorded in the change feed's intermediate checkpoints (``PanelStore/Checkpoint/sourceCreated``).
    var sourceCreated: String?
    /// Test hook: varies the reading thread's timing (after each row).
    var jitter: TimingJitter?
    /// Told the rows the manifest announces, and the rows read as they are handed to the writer (a chunk can hold
    /// many batches) and when their chunk completes.
    var progress: (any RunProgressObserver)?
    /// Rows of the current chunk already reported to `progress` (those handed over within it).
    private var reportedInChunk = 0
    /// The last (cursor, key) seen, for watermark checkpoints.
    var lastCursor: (text: String, key: String)? { rows.lastCursor }
    /// A refresh's set of the source's keys: every row's identity key goes in (an invalid row's too, when it has an
    /// external id: the source still has the key). Set before the manifest arrives.
    var seenKeys: ScratchKeySet? {
        get { rows.seen }
        set { rows.seen = newValue }
    }

    init(source: Source, mapping: RowMapping, batchSize: Int, maxBatchBytes: Int = 16 << 20, summary: SyncSummary,
         writer: BatchWriter, store: PanelStore, scope: String, maxInvalidRatio: Double? = nil, shaping: Bool = true) {
        self.shaping = shaping
        self.source = source
        self.mapping = mapping
        self.batchSize = max(1, batchSize)
        self.maxBatchBytes = maxBatchBytes
        base = summary
        self.writer = writer
        self.maxInvalidRatio = maxInvalidRatio
        compressionThreshold = store.recordCompressionThreshold
        rows = RowState(source: source, mapping: mapping, store: store, scope: scope, batchSize: self.batchSize,
            maxBatchBytes: maxBatchBytes,
            rowsBefore: summary.rowsRead, samples: summary.invalidSamples.count, shaping: shaping)
    }

    func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        let names = (manifest.schema.columns ?? []).sorted { $0.position < $1.position }.map(\.name)
        func index(_ name: String) throws -> Int {
            guard let i = names.firstIndex(where: { $0.lowercased() == name.lowercased() }) else {
                throw SyncError.column(name, table: base.table, statementID: statementID, available: names)
            }
            return i
        }
        if case .changeFeed = source {
            rows.changeTypeIndex = try index("_change_type")
            rows.versionIndex = try index("_commit_version")
        }
        if case .watermark(let c) = source { rows.cursorIndex = try index(c) }
        rows.statementID = statementID
        rows.columnCount = names.count
        progress?.announced(rows: max(manifest.totalRowCount, 0))
        // A first load sizes the membership filter for the whole result (identity key, email and phone per row) —
        // within reason: the count comes from the wire, and a larger result grows the filter as it goes.
        let rowsAnnounced = min(max(manifest.totalRowCount, 0), Int64(Self.maxFilterReservation))
        try rows.store.reserveFilterCapacity(forKeys: Int(rowsAnnounced) * mapping.filterKeysPerRow)
        switch mapping {
        case .passthrough(let keyColumn, let columns):
            rows.keyIndex = try index(keyColumn)
            let meta: Set<String> = ["_change_type", "_commit_version", "_commit_timestamp"]
            var template = PassthroughTemplate()
            for name in columns ?? names.filter({ !meta.contains($0) }) {
                template.add(name: name, index: try index(name))
            }
            rows.template = template
        case .pipeline(let p):
            if rows.seen != nil, let column = p.mapping["external_id"] {
                rows.seenKeyIndex = names.firstIndex { $0.lowercased() == column.lowercased() } ?? -1
            }
            do {
                rows.mapper = try RecordMapper(pipeline: p, columns: names)
            } catch {
                throw SyncError("\(error.message) (statement \(statementID))",
                    remedy: "Fix the pipeline's mapping, or check whether the column was renamed or dropped.")
            }
        }
        resolved = true
        let pending = pendingRows
        pendingRows = []
        // Rows that arrived before the manifest are batched like any others: `batchSize` bounds a batch of the
        // first chunk too.
        for row in pending {
            if try rows.take(CopiedRow(values: row)) { try flushWithinChunk() }
            jitter?.reader()
        }
    }

    func row(_ row: borrowing RowView) throws {
        if resolved {
            if try rows.take(row) { try flushWithinChunk() }
            if let jitter { jitter.reader() }
        } else {
            var copy: [[UInt8]?] = []
            copy.reserveCapacity(row.count)
            for i in 0..<row.count { copy.append(row.withValue(i) { Array($0) }) }
            pendingRows.append(copy)
        }
    }

    func discardPartialChunk() {
        rows.truncate(to: batchStartCount)
        pendingRows.removeAll()
        rows.counts = countsAtChunkStart
        // Rows of this chunk already handed to the writer are skipped when the chunk comes again.
        rows.skipInChunk = rows.handedOverInChunk
        rows.rowsInChunk = 0
    }

    /// Hands the batch over before the chunk ends (see the type's documentation).
    private func flushWithinChunk() throws {
        try checkInvalidRatio()
        let complete: Int64? = if case .changeFeed = source { rows.highestVersionSeen - 1 } else { nil }
        try flush(checkpoint: complete.map { PanelStore.Checkpoint(tableVersion: $0, sourceCreated: sourceCreated) })
        rows.handedOverInChunk = rows.rowsInChunk
        countsAtChunkStart = rows.counts
        // A chunk delivered again counts its rows from 0, skipping those handed over: only rows past them are new.
        if rows.handedOverInChunk > reportedInChunk {
            progress?.read(rows: rows.handedOverInChunk - reportedInChunk)
            reportedInChunk = rows.handedOverInChunk
        }
    }

    func chunkCompleted(index: Int, rowCount: Int) throws {
        precondition(resolved, "a chunk completed before the manifest was known")
        progress?.read(rows: max(0, rowCount - reportedInChunk))
        reportedInChunk = 0
        rows.chunkIndex = index + 1
        rows.rowsInChunk = 0
        rows.skipInChunk = 0
        rows.handedOverInChunk = 0
        try checkInvalidRatio()
        if rows.pendingCount >= batchSize {
            // Change-feed rows arrive ordered by _commit_version: every version below the highest seen is complete.
            let complete: Int64? = if case .changeFeed = source { rows.highestVersionSeen - 1 } else { nil }
            try flush(checkpoint: complete.map { PanelStore.Checkpoint(tableVersion: $0, sourceCreated: sourceCreated) })
        }
        batchStartCount = rows.pendingCount
        countsAtChunkStart = rows.counts
    }

    /// Hands the rest to the writer with `checkpoint`, and waits for it to finish.
    func finish(checkpoint: PanelStore.Checkpoint?) throws {
        try checkInvalidRatio()
        try flush(checkpoint: checkpoint)
        fold(try writer.finish())
    }

    /// After a failure: waits for the writer (the batches handed to it are complete and carry only checkpoints
    /// their rows justify), and returns the run's summary with what it did apply — a failed run's record counts
    /// the rows that stay in the panel.
    func abandon() -> SyncSummary {
        fold(writer.drain())
        return summary
    }

    private func fold(_ outcome: PanelStore.ApplyOutcome) {
        base.counts += outcome
        base.noteActivation(outcome.activation)
        base.counts += rows.counts
        base.invalidSamples += rows.samples
        rows.samples = []
        rows.samplesBefore = base.invalidSamples.count
        rows.counts = Counts()
        rows.rowsBefore = base.rowsRead
        countsAtChunkStart = rows.counts
    }

    /// The most identity keys a manifest's row count may reserve filter room for up front (about 320 MB of filter).
    static let maxFilterReservation = 1 << 28

    /// Rows handed over so far in this statement (for watermark paging).
    var rowsSeen: Int { rows.counts.read }

    /// Sends the batch so far to the writer (watermark pages checkpoint after every page).
    func flush(checkpoint: PanelStore.Checkpoint?) throws {
        batchStartCount = 0
        if case .pipeline(let p) = mapping, p.kind == .events {
            let batch = rows.takeEvents()
            let (store, scope, identity) = (rows.store, rows.scope, p.identityPipeline)
            try writer.submit(rows: batch.count, version: checkpoint?.tableVersion) {
                let o = try store.applyEvents(batch, scope: scope, identityScope: identity, pipeline: scope, checkpoint: checkpoint)
                return PanelStore.ApplyOutcome(inserted: o.inserted, unchanged: o.duplicates)
            }
            return
        }
        var changes = rows.takeBatch(reusing: writer.takeSpare())
        if compressor == nil { compressor = try ZstdCompressor(level: 3) }
        try changes.prepare(compressor: compressor!, threshold: compressionThreshold, shaping: shaping)
        try writer.submit(changes, checkpoint: checkpoint)
    }

    private func checkInvalidRatio() throws {
        let counts = rows.counts
        guard let max = maxInvalidRatio, counts.read >= 100 else { return }
        let ratio = Double(base.invalid + counts.invalid) / Double(base.rowsRead + counts.read)
        if ratio > max {
            throw SyncError(
                "\(counts.invalid) of \(counts.read) rows are invalid (\(String(format: "%.1f", ratio * 100)) %, above the pipeline's limit of \(String(format: "%.1f", max * 100)) %); e.g. \((base.invalidSamples + rows.samples).first ?? "")",
                remedy: "Fix the source data or the mapping (see the samples in the run record), or raise validation.max_invalid_ratio.")
        }
    }
}

/// The JSON object keys of a passthrough record, escaped once: `{"a":` for the first column, `,"b":` after.
struct PassthroughTemplate {
    private(set) var bytes: [UInt8] = []
    /// Per column: the row index and the end of its key bytes in `bytes`.
    private(set) var columns: [(index: Int, keyEnd: Int)] = []
    /// The keys in the saved form of a record shape (`PanelStore.ChangeBatch.append(…keys:values:…)`): each
    /// escaped key with its quotes after its length (2 bytes big-endian); `nil` when a key is too long for it.
    private(set) var shapeKeys: [UInt8]? = []

    mutating func add(name: String, index: Int) {
        bytes.append(columns.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
        let keyStart = bytes.count
        JSONWriter.appendEscaped(name, to: &bytes)
        if shapeKeys != nil, !ShapeKeys.append(bytes[keyStart...], to: &shapeKeys!) { shapeKeys = nil }
        bytes.append(UInt8(ascii: ":"))
        columns.append((index, bytes.count))
    }
}

/// The per-row state of a ``ChangeCollector``: positions resolved from the manifest, the batch being filled and
/// the counters.
private struct RowState {
    let source: ChangeCollector.Source
    let mapping: RowMapping
    let store: PanelStore
    let scope: String
    let batchSize: Int
    let maxBatchBytes: Int

    var keyIndex = -1
    var changeTypeIndex = -1
    var versionIndex = -1
    var cursorIndex = -1
    var template = PassthroughTemplate()
    var mapper: RecordMapper?
    /// Whether passthrough records are handed over with their shaped form.
    let shaping: Bool

    var batch: PanelStore.ChangeBatch
    var events: [PanelStore.Event] = []
    var json = JSONWriter(reservingCapacity: 512)
    /// Passthrough records are written here (see `passthrough`); its count is its capacity.
    var recordScratch = [UInt8](repeating: 0, count: 4096)
    /// Where each value of the passthrough record being written starts and ends (two offsets per column).
    var valueMarks: [Int] = []
    var highestVersionSeen: Int64 = -1
    /// Where the rows come from, for the protocol errors that name them.
    var statementID = ""
    var chunkIndex = 0
    var columnCount = 0
    var counts = ChangeCollector.Counts()
    /// Rows of the current chunk seen so far, of them already handed to the writer, and to skip (a chunk delivered
    /// again after `handedOverInChunk` of its rows went to the writer).
    var rowsInChunk = 0
    var handedOverInChunk = 0
    var skipInChunk = 0
    var lastCursor: (text: String, key: String)?
    /// A refresh's set of the keys read (``ChangeCollector/seenKeys``), and the external id's column.
    var seen: ScratchKeySet?
    var seenKeyIndex = -1
    /// Rows read by earlier statements of the run (for the row numbers in samples).
    var rowsBefore: Int
    /// Invalid-row samples of this statement, and how many the run already holds (at most 20 in all).
    var samples: [String] = []
    var samplesBefore: Int

    init(source: ChangeCollector.Source, mapping: RowMapping, store: PanelStore, scope: String, batchSize: Int,
         maxBatchBytes: Int, rowsBefore: Int, samples: Int, shaping: Bool) {
        self.shaping = shaping
        self.maxBatchBytes = maxBatchBytes
        self.source = source
        self.mapping = mapping
        self.store = store
        self.scope = scope
        self.batchSize = batchSize
        self.rowsBefore = rowsBefore
        samplesBefore = samples
        batch = PanelStore.ChangeBatch(reservingRows: batchSize + 1024)
    }

    var pendingCount: Int { batch.count + events.count }

    /// Hands over the batch so far and starts the next in `spare` (one the writer applied and emptied), unless
    /// that one grew far beyond a batch's bounds (a huge record: a batch holds at most `maxBatchBytes` plus one
    /// record, and its buffers grow by doubling, so a normal batch reserves up to about twice that: four times is
    /// a batch that held a huge record); else in a new batch reserving what this one grew to.
    mutating func takeBatch(reusing spare: PanelStore.ChangeBatch?) -> PanelStore.ChangeBatch {
        var next = spare.flatMap { $0.reservedBytes <= 4 * maxBatchBytes ? $0 : nil }
            ?? PanelStore.ChangeBatch(reservingRows: batchSize + 1024, like: batch)
        swap(&next, &batch)
        return next
    }

    mutating func takeEvents() -> [PanelStore.Event] {
        defer { events = [] }
        return events
    }

    mutating func truncate(to n: Int) {
        if case .pipeline(let p) = mapping, p.kind == .events {
            events.removeSubrange(min(n, events.count)...)
        } else {
            batch.truncate(to: min(n, batch.count))
        }
    }

    /// Processes `row`; returns whether the batch is now full.
    mutating func take<R: RowValueAccess & ~Copyable>(_ row: borrowing R) throws -> Bool {
        try process(row)
        return batch.count + events.count >= batchSize || batch.byteCount >= maxBatchBytes
    }

    mutating func process<R: RowValueAccess & ~Copyable>(_ row: borrowing R) throws {
        rowsInChunk += 1
        if rowsInChunk <= skipInChunk { return }
        counts.read += 1
        if let width = row.width, width != columnCount {
            throw protocolError("the row has \(width) values, the manifest \(columnCount) columns")
        }
        let version: Int64
        switch source {
        case .snapshot(let v):
            version = v
        case .watermark:
            guard let text = row.string(cursorIndex) else {
                counts.nullCursor += 1
                return
            }
            guard let micros = Timestamps.micros(text) else {
                // Not NULL, yet no timestamp: the row cannot be placed in the watermark order, and skipping it
                // would lose it for good once the watermark passes.
                throw SyncError(
                    "statement \(statementID), chunk \(chunkIndex), row \(rowsBefore + counts.read): the cursor value "
                        + "\(Self.describe(text)) is not a timestamp",
                    remedy: "Use a TIMESTAMP (or DATE) column as the watermark cursor, or fix the value in the source. "
                        + "The watermark has not moved past this row.")
            }
            version = micros
        case .changeFeed(let versions):
            guard let v = row.withValue(versionIndex, { Self.version($0) }) ?? nil else {
                throw protocolError("_commit_version is \(Self.describe(row.string(versionIndex)))")
            }
            guard versions.contains(v) else {
                throw protocolError("_commit_version \(v) is outside v\(versions.lowerBound)…v\(versions.upperBound), the "
                    + "versions the statement asked for")
            }
            guard v >= highestVersionSeen else {
                throw protocolError("_commit_version \(v) comes after a row of v\(highestVersionSeen) (rows are ordered by "
                    + "version)")
            }
            highestVersionSeen = v
            version = v
            guard let type = row.withValue(changeTypeIndex, { ChangeType(utf8: $0) }) ?? nil else {
                throw protocolError("_change_type is \(Self.describe(row.string(changeTypeIndex)))")
            }
            if case .pipeline(let p) = mapping, p.kind == .events, type == .updatePostimage {
                counts.updatesIgnored += 1  // events are immutable: only inserts are taken
                return
            }
            switch type {
            case .insert, .updatePostimage: break
            case .delete: counts.deletes += 1; return
            case .updatePreimage: counts.preimages += 1; return
            }
        }
        switch mapping {
        case .passthrough:
            try passthrough(row, version: version)
        case .pipeline:
            switch mapper!.map(row, into: &json) {
            case .participant(let id, let email, let phone, let optedIn, let record):
                // Whether a row that is not opted in is imported depends on what the panel holds when it is
                // applied: the writer decides, in its transaction (PanelStore.apply), never this thread.
                // Handed over with its shaped form when the mapper says where its values are (see `passthrough`).
                if shaping, let keys = mapper!.shapeKeys, record.count < store.recordCompressionThreshold,
                    !json.marks.isEmpty
                {
                    record.withUnsafeBytes { r in
                        json.marks.withUnsafeBufferPointer { marks in
                            batch.append(
                                externalID: id, commitVersion: version, record: r, shape: keys, valueRanges: marks,
                                email: email, phone: phone, optedIn: optedIn)
                        }
                    }
                } else {
                    record.withUnsafeBytes { r in
                        batch.append(
                            externalID: id, commitVersion: version, record: r, email: email, phone: phone, optedIn: optedIn)
                    }
                }
                noteCursor(row, key: id)
                if let seen { try seen.insert(PanelStore.sourceIdentityKey(scope: scope, externalID: id)) }
            case .event(let id, let user, let record):
                events.append(PanelStore.Event(eventID: id, userExternalID: user, commitVersion: version, record: record))
            case .invalid(let why):
                invalid(why)
                if let seen, seenKeyIndex >= 0, let key = row.string(seenKeyIndex) {
                    try seen.insertSourceKey(key, scope: scope)
                }
            }
        }
    }

    /// Every selected column copied into the record as a JSON string (or null), keyed by its name.
    private mutating func passthrough<R: RowValueAccess & ~Copyable>(_ row: borrowing R, version: Int64) throws {
        guard let keyCount = row.withValue(keyIndex, { $0.count }), keyCount > 0 else {
            // A change without a key cannot be applied, and a sync of a table by its key has no validation policy to
            // count it under: skipping it would lose the change for good.
            throw SyncError(
                "statement \(statementID), chunk \(chunkIndex), row \(rowsBefore + counts.read)"
                    + (version >= 0 ? " (v\(version))" : "") + ": the key column is "
                    + (row.withValue(keyIndex, { _ in true }) == nil ? "NULL" : "empty"),
                remedy: "Fix the row in the source, or sync with a pipeline file, whose validation counts rows without "
                    + "an external id as invalid (validation.max_invalid_ratio). The checkpoint has not moved past it.")
        }
        // The record is written into one scratch buffer sized for the worst case up front (every value fully
        // escaped), through a raw pointer: no per-append capacity or uniqueness checks in the per-column loop.
        // A verbatim row (no value was escaped in the result) is copied between quotes without scanning.
        let verbatim = row.isVerbatim
        var bound = template.bytes.count + 2
        for c in template.columns {
            let n = row.withValue(c.index) { $0.count } ?? 2
            bound += verbatim ? n + 2 : JSONWriter.escapedBound(n)
        }
        if recordScratch.count < bound {
            recordScratch = [UInt8](repeating: 0, count: max(bound, 2 * recordScratch.count))
        }
        // Where each value starts and ends in the record, so the batch can store it shaped without splitting it
        // again (`ChangeBatch.append(…shape:valueRanges:…)`).
        if valueMarks.count < 2 * template.columns.count {
            valueMarks = [Int](repeating: 0, count: 2 * template.columns.count)
        }
        let length = template.bytes.withUnsafeBytes { keys in
            valueMarks.withUnsafeMutableBufferPointer { marks in
              recordScratch.withUnsafeMutableBytes { out -> Int in
                let dst = out.baseAddress!
                var o = 0
                var keyStart = 0
                for (n, c) in template.columns.enumerated() {
                    (dst + o).copyShort(from: keys.baseAddress! + keyStart, count: c.keyEnd - keyStart)
                    o += c.keyEnd - keyStart
                    keyStart = c.keyEnd
                    let w = row.withValue(c.index, { v -> Int in
                        guard verbatim else { return JSONWriter.writeEscaped(utf8: v, to: dst + o) }
                        dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o, as: UInt8.self)
                        if v.count > 0 { (dst + o + 1).copyShort(from: v.baseAddress!, count: v.count) }
                        dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o + 1 + v.count, as: UInt8.self)
                        return v.count + 2
                    }) ?? {
                        dst.storeBytes(of: UInt8(ascii: "n"), toByteOffset: o, as: UInt8.self)
                        dst.storeBytes(of: UInt8(ascii: "u"), toByteOffset: o + 1, as: UInt8.self)
                        dst.storeBytes(of: UInt8(ascii: "l"), toByteOffset: o + 2, as: UInt8.self)
                        dst.storeBytes(of: UInt8(ascii: "l"), toByteOffset: o + 3, as: UInt8.self)
                        return 4
                    }()
                    marks[2 * n] = o
                    marks[2 * n + 1] = o + w
                    o += w
                }
                if template.columns.isEmpty {
                    dst.storeBytes(of: UInt8(ascii: "{"), toByteOffset: o, as: UInt8.self)
                    o += 1
                }
                dst.storeBytes(of: UInt8(ascii: "}"), toByteOffset: o, as: UInt8.self)
                return o + 1
              }
            }
        }
        let shaped = shaping && !template.columns.isEmpty && length < store.recordCompressionThreshold
        let markCount = 2 * template.columns.count
        recordScratch.withUnsafeBytes { scratch in
            valueMarks.withUnsafeBufferPointer { allMarks in
                let record = UnsafeRawBufferPointer(rebasing: scratch[..<length])
                let marks = UnsafeBufferPointer(rebasing: allMarks[..<markCount])
                _ = row.withValue(keyIndex) { keyBytes in
                    // An ASCII key's bytes are what a String of them holds: handed over as they are, without making a
                    // String of every row's key. Any other key goes through String, which repairs invalid UTF-8.
                    let shapeKeys = shaped ? template.shapeKeys : nil
                    if keyBytes.isASCII {
                        Self.append(
                            to: &batch, externalIDBytes: keyBytes, version: version, record: record, shape: shapeKeys,
                            valueRanges: marks)
                    } else {
                        var key = String(decoding: keyBytes, as: UTF8.self)
                        key.withUTF8 {
                            Self.append(
                                to: &batch, externalIDBytes: UnsafeRawBufferPointer($0), version: version,
                                record: record, shape: shapeKeys, valueRanges: marks)
                        }
                    }
                }
            }
        }
        if cursorIndex >= 0, let key = row.string(keyIndex) { noteCursor(row, key: key) }
    }

    /// Appends a passthrough record to `batch`, with its shaped values when it has a shape (records of the
    /// compression threshold or more are compressed by `prepare` instead).
    @inline(__always)
    private static func append(
        to batch: inout PanelStore.ChangeBatch, externalIDBytes key: UnsafeRawBufferPointer, version: Int64,
        record: UnsafeRawBufferPointer, shape keys: [UInt8]?, valueRanges: UnsafeBufferPointer<Int>
    ) {
        if let keys {
            batch.append(
                externalIDBytes: key, commitVersion: version, record: record, shape: keys, valueRanges: valueRanges)
        } else {
            batch.append(externalIDBytes: key, commitVersion: version, record: record)
        }
    }

    private mutating func noteCursor<R: RowValueAccess & ~Copyable>(_ row: borrowing R, key: String) {
        if cursorIndex >= 0, let t = row.string(cursorIndex) { lastCursor = (t, key) }
    }

    /// A row the warehouse could not have produced: the run stops here (design §2.8), naming where the row is.
    private func protocolError(_ what: String) -> DatabricksError {
        DatabricksError(.protocolError,
            "statement \(statementID), chunk \(chunkIndex), row \(rowsBefore + counts.read): \(what)",
            remedy: "The warehouse, or a proxy between it and cdfsync, sent a row it could not have produced; the run "
                + "stopped and the checkpoint stays before it. Check for a proxy that alters responses, then run the "
                + "sync again.",
            statementID: statementID)
    }

    /// A `_commit_version` as the warehouse writes it: decimal digits only (a BIGINT ≥ 0), no sign, no overflow.
    static func version(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var v: Int64 = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(b - 0x30))
            guard !o1 && !o2 else { return nil }
            v = a
        }
        return v
    }

    /// A value for an error message: `null`, or quoted and cut to 40 characters.
    static func describe(_ value: String?) -> String {
        guard let value else { return "null" }
        if value.isEmpty { return "empty" }
        let cut = value.count > 40 ? String(value.prefix(40)) + "…" : value
        return "'" + cut.unicodeScalars.map { $0.value < 0x20 || $0 == "'" ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined() + "'"
    }

    private mutating func invalid(_ reason: String) {
        counts.invalid += 1
        if samplesBefore + samples.count < 20 {
            samples.append("row \(rowsBefore + counts.read): \(reason)")
        }
    }
}

struct CopiedRow: RowValueAccess {
    var values: [[UInt8]?]
    var width: Int? { values.count }
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let v = values[i] else { return nil }
        return try v.withUnsafeBytes(body)
    }
    func string(_ i: Int) -> String? { values[i].map { String(decoding: $0, as: UTF8.self) } }
    func int64(_ i: Int) -> Int64? { values[i].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } }
}
