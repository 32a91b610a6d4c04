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
}

/// Turns streamed change-feed (or snapshot / watermark) rows into panel changes and hands them, in batches, to
/// the writer thread.
///
/// Rows of chunk 0 can arrive before the manifest that names the columns, so until `manifestReady` they are
/// copied aside and replayed once the positions are known. From then on rows are processed in place.
final class ChangeCollector: ResultSink {
    enum Source {
        case changeFeed
        case snapshot(version: Int64)
        /// The version of a row is its cursor value in epoch microseconds (watermark mode).
        case watermark(cursorColumn: String)
    }

    private let source: Source
    private let mapping: RowMapping
    private let writer: BatchWriter
    private let store: PanelStore
    private let scope: String
    private let batchSize: Int
    private let maxInvalidRatio: Double?
    var summary: SyncSummary

    // Resolved positions.
    private var dataColumns: [(index: Int, keyJSON: [UInt8])] = []
    private var keyIndex = -1
    private var changeTypeIndex = -1
    private var versionIndex = -1
    private var cursorIndex = -1
    private var mapper: RecordMapper?
    private var resolved = false
    private var pendingRows: [[[UInt8]?]] = []

    private var batch: [PanelStore.Change] = []
    private var events: [PanelStore.Event] = []
    /// Hash and compress records on this (the reading) thread, so the writer thread only writes.
    private var compressor: ZstdCompressor?
    private var batchKeys = Set<String>()
    private var batchStartCount = 0
    private var json = JSONWriter(reservingCapacity: 512)
    private var highestVersionSeen: Int64 = -1
    private var counts = Counts()
    private var countsAtChunkStart = Counts()
    /// The last (cursor, key) seen, for watermark checkpoints.
    private(set) var lastCursor: (text: String, key: String)?

    struct Counts { var read = 0, deletes = 0, preimages = 0, invalid = 0, consentBlocked = 0, nullCursor = 0, updatesIgnored = 0 }

    init(source: Source, mapping: RowMapping, batchSize: Int, summary: SyncSummary, writer: BatchWriter, store: PanelStore,
         scope: String, maxInvalidRatio: Double? = nil) {
        self.source = source
        self.mapping = mapping
        self.batchSize = batchSize
        self.summary = summary
        self.writer = writer
        self.store = store
        self.scope = scope
        self.maxInvalidRatio = maxInvalidRatio
        batch.reserveCapacity(batchSize + 1024)
    }

    func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        let names = (manifest.schema.columns ?? []).sorted { $0.position < $1.position }.map(\.name)
        func index(_ name: String) throws -> Int {
            guard let i = names.firstIndex(where: { $0.lowercased() == name.lowercased() }) else {
                throw SyncError.column(name, table: summary.table, statementID: statementID, available: names)
            }
            return i
        }
        if case .changeFeed = source {
            changeTypeIndex = try index("_change_type")
            versionIndex = try index("_commit_version")
        }
        if case .watermark(let c) = source { cursorIndex = try index(c) }
        switch mapping {
        case .passthrough(let keyColumn, let columns):
            keyIndex = try index(keyColumn)
            let meta: Set<String> = ["_change_type", "_commit_version", "_commit_timestamp"]
            dataColumns = try (columns ?? names.filter { !meta.contains($0) }).map { name in
                var key: [UInt8] = []
                JSONWriter.appendEscaped(name, to: &key)
                return (try index(name), key)
            }
        case .pipeline(let p):
            do {
                mapper = try RecordMapper(pipeline: p, columns: names)
            } catch {
                throw SyncError("\(error.message) (statement \(statementID))",
                    remedy: "Fix the pipeline's mapping, or check whether the column was renamed or dropped.")
            }
        }
        resolved = true
        let pending = pendingRows
        pendingRows = []
        for row in pending { try process(CopiedRow(values: row)) }
    }

    func row(_ row: borrowing RowView) throws {
        if resolved {
            try process(row)
        } else {
            var copy: [[UInt8]?] = []
            copy.reserveCapacity(row.count)
            for i in 0..<row.count { copy.append(row.withValue(i) { Array($0) }) }
            pendingRows.append(copy)
        }
    }

    func discardPartialChunk() {
        if case .pipeline(let p) = mapping, p.kind == .events {
            events.removeSubrange(min(batchStartCount, events.count)...)
        } else {
            for c in batch[batchStartCount...] { batchKeys.remove(c.externalID) }
            batch.removeSubrange(batchStartCount...)
        }
        pendingRows.removeAll()
        counts = countsAtChunkStart
    }

    func chunkCompleted(index: Int, rowCount: Int) throws {
        precondition(resolved, "a chunk completed before the manifest was known")
        try checkInvalidRatio()
        if batch.count + events.count >= batchSize {
            // Change-feed rows arrive ordered by _commit_version: every version below the highest seen is complete.
            let complete: Int64? = if case .changeFeed = source { highestVersionSeen - 1 } else { nil }
            try flush(checkpoint: complete.map { PanelStore.Checkpoint(tableVersion: $0) })
        }
        batchStartCount = batch.count + events.count
        countsAtChunkStart = counts
    }

    /// Hands the rest to the writer with `checkpoint`, and waits for it to finish.
    func finish(checkpoint: PanelStore.Checkpoint?) throws {
        try checkInvalidRatio()
        try flush(checkpoint: checkpoint)
        let outcome = try writer.finish()
        summary.inserted += outcome.inserted
        summary.updated += outcome.updated
        summary.unchanged += outcome.unchanged
        summary.skippedOlder += outcome.skippedOlder
        summary.superseded += outcome.superseded
        summary.rowsRead += counts.read
        summary.deletesIgnored += counts.deletes
        summary.preimagesIgnored += counts.preimages
        summary.invalid += counts.invalid
        summary.consentBlocked += counts.consentBlocked
        summary.nullCursor += counts.nullCursor
        summary.eventUpdatesIgnored += counts.updatesIgnored
        summary.linked += outcome.linked
        summary.conflicts += outcome.conflicts
        counts = Counts()
        countsAtChunkStart = counts
    }

    /// Rows handed over so far in this statement (for watermark paging).
    var rowsSeen: Int { counts.read }

    /// Sends the batch so far to the writer (watermark pages checkpoint after every page).
    func flush(checkpoint: PanelStore.Checkpoint?) throws {
        if case .pipeline(let p) = mapping, p.kind == .events {
            let batch = events
            events = []
            batchStartCount = 0
            let (store, scope, identity) = (store, scope, p.identityPipeline)
            try writer.submit(rows: batch.count, version: checkpoint?.tableVersion) {
                let o = try store.applyEvents(batch, scope: scope, identityScope: identity, pipeline: scope, checkpoint: checkpoint)
                return PanelStore.ApplyOutcome(inserted: o.inserted, unchanged: o.duplicates)
            }
            return
        }
        var changes = batch
        batch = []
        batch.reserveCapacity(batchSize + 1024)
        batchKeys.removeAll(keepingCapacity: true)
        batchStartCount = 0
        if compressor == nil { compressor = try ZstdCompressor(level: 3) }
        try PanelStore.prepare(&changes, compressor: compressor!)
        try writer.submit(changes, checkpoint: checkpoint)
    }

    private func checkInvalidRatio() throws {
        guard let max = maxInvalidRatio, counts.read >= 100 else { return }
        let ratio = Double(summary.invalid + counts.invalid) / Double(summary.rowsRead + counts.read)
        if ratio > max {
            throw SyncError(
                "\(counts.invalid) of \(counts.read) rows are invalid (\(String(format: "%.1f", ratio * 100)) %, above the pipeline's limit of \(String(format: "%.1f", max * 100)) %); e.g. \(summary.invalidSamples.first ?? "")",
                remedy: "Fix the source data or the mapping (see the samples in the run record), or raise validation.max_invalid_ratio.")
        }
    }

    private func process<R: RowValueAccess & ~Copyable>(_ row: borrowing R) throws {
        counts.read += 1
        let version: Int64
        switch source {
        case .snapshot(let v):
            version = v
        case .watermark:
            guard let text = row.string(cursorIndex), let micros = Timestamps.micros(text) else {
                counts.nullCursor += 1
                return
            }
            version = micros
        case .changeFeed:
            guard let v = row.int64(versionIndex) else {
                invalid("row has no valid _commit_version")
                return
            }
            version = v
            highestVersionSeen = max(highestVersionSeen, v)
            let type = row.withValue(changeTypeIndex) { ChangeType(utf8: $0) } ?? nil
            if case .pipeline(let p) = mapping, p.kind == .events, type == .updatePostimage {
                counts.updatesIgnored += 1  // events are immutable: only inserts are taken
                return
            }
            switch type {
            case .insert?, .updatePostimage?: break
            case .delete?: counts.deletes += 1; return
            case .updatePreimage?: counts.preimages += 1; return
            case nil:
                invalid("unknown _change_type")
                return
            }
        }
        switch mapping {
        case .passthrough:
            guard let key = row.string(keyIndex), !key.isEmpty else {
                invalid("key column is empty")
                return
            }
            json.reset()
            json.bytes.append(UInt8(ascii: "{"))
            var first = true
            for c in dataColumns {
                if !first { json.bytes.append(UInt8(ascii: ",")) }
                first = false
                json.bytes.append(contentsOf: c.keyJSON)
                json.bytes.append(UInt8(ascii: ":"))
                let wrote: Bool? = row.withValue(c.index) { v in
                    JSONWriter.appendEscaped(utf8: v, to: &json.bytes)
                    return true
                }
                if wrote == nil { json.bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C]) }
            }
            json.bytes.append(UInt8(ascii: "}"))
            batch.append(PanelStore.Change(externalID: key, commitVersion: version, record: json.bytes))
            noteCursor(row, key: key)
        case .pipeline:
            switch mapper!.map(row, into: &json) {
            case .participant(let id, let email, let phone, let optedIn, let record):
                // Not opted in: a participant we already hold becomes not contactable (never deleted);
                // one we do not hold is not imported.
                if try !optedIn && !batchKeys.contains(id) && store.participantID(externalID: id, scope: scope) == nil {
                    counts.consentBlocked += 1
                    return
                }
                batch.append(PanelStore.Change(externalID: id, commitVersion: version, record: record, email: email, phone: phone))
                batchKeys.insert(id)
                noteCursor(row, key: id)
            case .event(let id, let user, let record):
                events.append(PanelStore.Event(eventID: id, userExternalID: user, commitVersion: version, record: record))
            case .invalid(let why):
                invalid(why)
            }
        }
    }

    private func noteCursor<R: RowValueAccess & ~Copyable>(_ row: borrowing R, key: String) {
        if cursorIndex >= 0, let t = row.string(cursorIndex) { lastCursor = (t, key) }
    }

    private func invalid(_ reason: String) {
        counts.invalid += 1
        if summary.invalidSamples.count < 20 {
            summary.invalidSamples.append("row \(summary.rowsRead + counts.read): \(reason)")
        }
    }
}

struct CopiedRow: RowValueAccess {
    var values: [[UInt8]?]
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let v = values[i] else { return nil }
        return try v.withUnsafeBytes(body)
    }
    func string(_ i: Int) -> String? { values[i].map { String(decoding: $0, as: UTF8.self) } }
    func int64(_ i: Int) -> Int64? { values[i].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } }
}
