import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage

/// Turns streamed change-feed (or snapshot) rows into panel changes and applies them in batches.
///
/// Rows of chunk 0 can arrive before the manifest that names the columns, so until `manifestReady` they are
/// copied aside and replayed once the positions are known. From then on rows are processed in place,
/// building one compact JSON record per applied row.
final class ChangeCollector: ResultSink {
    enum Source { case changeFeed, snapshot(version: Int64) }

    private let source: Source
    private let keyColumn: String
    private let wantedColumns: [String]?
    private let writer: BatchWriter
    var summary: SyncSummary
    private let batchSize: Int

    // Resolved positions.
    private var dataColumns: [(index: Int, keyJSON: [UInt8])] = []
    private var keyIndex = -1
    private var changeTypeIndex = -1
    private var versionIndex = -1
    private var resolved = false
    private var pendingRows: [[[UInt8]?]] = []

    private var batch: [PanelStore.Change] = []
    private var batchStartCount = 0  // batch size at the start of the current chunk
    private var json = JSONWriter(reservingCapacity: 512)
    private var highestVersionSeen: Int64 = -1
    private var rowsInChunk = 0
    private var countsAtChunkStart = Counts()
    private var counts = Counts()

    struct Counts { var read = 0, deletes = 0, preimages = 0, invalid = 0 }

    init(source: Source, keyColumn: String, columns: [String]?, batchSize: Int, summary: SyncSummary,
         writer: BatchWriter) {
        self.source = source
        self.keyColumn = keyColumn
        self.wantedColumns = columns
        self.batchSize = batchSize
        self.summary = summary
        self.writer = writer
        batch.reserveCapacity(batchSize + 1024)
    }

    func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        let names = (manifest.schema.columns ?? []).sorted { $0.position < $1.position }.map(\.name)
        func index(_ name: String) throws -> Int {
            guard let i = names.firstIndex(where: { $0.caseInsensitiveCompare(name) }) else {
                throw SyncError.column(name, table: summary.table, statementID: statementID, available: names)
            }
            return i
        }
        keyIndex = try index(keyColumn)
        let meta: Set<String> = ["_change_type", "_commit_version", "_commit_timestamp"]
        if case .changeFeed = source {
            changeTypeIndex = try index("_change_type")
            versionIndex = try index("_commit_version")
        }
        let chosen = try (wantedColumns ?? names.filter { !meta.contains($0) }).map { ($0, try index($0)) }
        dataColumns = chosen.map { name, i in
            var key: [UInt8] = []
            JSONWriter.appendEscaped(name, to: &key)
            return (i, key)
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
        batch.removeSubrange(batchStartCount...)
        pendingRows.removeAll()
        counts = countsAtChunkStart
    }

    func chunkCompleted(index: Int, rowCount: Int) throws {
        precondition(resolved, "a chunk completed before the manifest was known")
        if batch.count >= batchSize {
            // Rows arrive ordered by _commit_version, so every version below the highest one seen is complete.
            let complete: Int64? = if case .changeFeed = source { highestVersionSeen - 1 } else { nil }
            try flush(completeThrough: complete)
        }
        batchStartCount = batch.count
        countsAtChunkStart = counts
    }

    /// Applies what is left with the checkpoint `completeThrough`, and waits for the writer.
    func finish(completeThrough: Int64) throws {
        try flush(completeThrough: completeThrough)
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
        counts = Counts()
        countsAtChunkStart = counts
    }

    private func flush(completeThrough: Int64?) throws {
        let changes = batch
        batch = []
        batch.reserveCapacity(batchSize + 1024)
        batchStartCount = 0
        try writer.submit(changes, checkpoint: completeThrough.map { PanelStore.Checkpoint(tableVersion: $0) })
    }

    private func process<R: RowAccess & ~Copyable>(_ row: borrowing R) throws {
        counts.read += 1
        let version: Int64
        switch source {
        case .snapshot(let v):
            version = v
        case .changeFeed:
            guard let v = row.int64(versionIndex) else {
                try invalid(row, "row has no valid _commit_version")
                return
            }
            version = v
            highestVersionSeen = max(highestVersionSeen, v)
            let type = row.withValue(changeTypeIndex) { ChangeType(utf8: $0) } ?? nil
            switch type {
            case .insert?, .updatePostimage?: break
            case .delete?: counts.deletes += 1; return
            case .updatePreimage?: counts.preimages += 1; return
            case nil:
                try invalid(row, "unknown _change_type")
                return
            }
        }
        guard let key = row.string(keyIndex), !key.isEmpty else {
            try invalid(row, "key column '\(keyColumn)' is empty")
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
    }

    private func invalid<R: RowAccess & ~Copyable>(_ row: borrowing R, _ reason: String) throws {
        counts.invalid += 1
        if summary.invalidSamples.count < 20 {
            let key = keyIndex >= 0 ? (row.string(keyIndex) ?? "null") : "?"
            summary.invalidSamples.append("row \(counts.read) (key \(key)): \(reason)")
        }
    }
}

/// Read access shared by a live `RowView` and a copied row.
protocol RowAccess: ~Copyable {
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R?
    func string(_ i: Int) -> String?
    func int64(_ i: Int) -> Int64?
}

extension RowView: RowAccess {}

struct CopiedRow: RowAccess {
    var values: [[UInt8]?]
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let v = values[i] else { return nil }
        return try v.withUnsafeBytes(body)
    }
    func string(_ i: Int) -> String? { values[i].map { String(decoding: $0, as: UTF8.self) } }
    func int64(_ i: Int) -> Int64? { values[i].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } }
}

extension String {
    func caseInsensitiveCompare(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
