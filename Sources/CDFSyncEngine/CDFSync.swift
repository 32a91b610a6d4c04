import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Options of a change-data-feed sync of one participants table.
public struct SyncOptions: Sendable {
    public var table: QualifiedName
    /// The column holding the participant's external id (the identity key).
    public var keyColumn: String
    /// Columns to carry into the panel record; nil = every column of the table.
    public var columns: [String]?
    /// The state key of this sync (checkpoint, identity scope). Defaults to the table name.
    public var pipeline: String
    /// Directory of the NDJSON output segments.
    public var outputDirectory: String
    /// Rows per LMDB write transaction.
    public var batchSize = 50_000
    /// At most this many versions per `table_changes` statement; longer ranges are split.
    public var maxVersionsPerStatement: Int64 = 500
    /// At most about this many change rows per statement (estimated from the history's operation metrics).
    public var maxRowsPerStatement: Int64 = 5_000_000
    /// Force INLINE or EXTERNAL_LINKS; nil picks per statement by expected size.
    public var disposition: Statement.Disposition?
    /// Version to start from when there is no checkpoint (default 0, the table's first version).
    public var startVersion: Int64 = 0
    /// Take a snapshot at the latest version when change data for the range is gone.
    public var fallBackToSnapshot = true

    public init(table: QualifiedName, keyColumn: String, columns: [String]? = nil, pipeline: String? = nil,
                outputDirectory: String) {
        self.table = table
        self.keyColumn = keyColumn
        self.columns = columns
        self.pipeline = pipeline ?? table.description
        self.outputDirectory = outputDirectory
    }
}

/// One sync run: read the checkpoint, find the latest version, read `table_changes` from checkpoint+1 to it
/// (pinned, in bounded statements), apply `insert` / `update_postimage` rows in batches, each batch in one
/// LMDB transaction with the checkpoint, then deliver the outbox and record the run (design §3).
public final class CDFSync {
    let client: StatementClient
    let store: PanelStore
    public let options: SyncOptions
    /// Progress lines ("read 120000 rows ...").
    public var onProgress: @Sendable (String) -> Void = { _ in }

    public init(client: StatementClient, store: PanelStore, options: SyncOptions) {
        self.client = client
        self.store = store
        self.options = options
    }

    /// Runs the sync. Always records the run, also when it fails; the error is rethrown after recording.
    public func run() throws -> SyncSummary {
        let started = Date()
        var summary = SyncSummary(pipeline: options.pipeline, table: options.table.description)
        let checkpoint = try store.checkpoint(pipeline: options.pipeline)
        summary.fromVersion = checkpoint?.tableVersion
        summary.runID = try store.appendRun(summary.auditJSON())
        do {
            try perform(&summary, checkpoint: checkpoint?.tableVersion)
            summary.seconds = Date().timeIntervalSince(started)
            try store.updateRun(id: summary.runID, json: summary.auditJSON())
            return summary
        } catch {
            summary.error = "\(error)"
            summary.seconds = Date().timeIntervalSince(started)
            try? store.updateRun(id: summary.runID, json: summary.auditJSON())
            throw SyncFailure(summary: summary, underlying: error)
        }
    }

    private func perform(_ summary: inout SyncSummary, checkpoint: Int64?) throws {
        // Deliver anything a crashed earlier run committed but did not write out.
        try deliver(&summary)
        let latest = try latestVersion()
        summary.latestVersion = latest
        let next = checkpoint.map { $0 + 1 } ?? options.startVersion
        guard next <= latest else { return }

        // The history of the range sizes the statements (and picks INLINE or EXTERNAL_LINKS for each).
        let history = try self.history(limit: min(latest - next + 1, 10_000))
        var planner = RangePlanner()
        planner.maxVersionsPerStatement = options.maxVersionsPerStatement
        planner.maxRowsPerStatement = options.maxRowsPerStatement
        if let forced = options.disposition { planner.externalLinksThreshold = forced == .inline ? .max : -1 }
        for range in planner.plan(start: next, end: latest, history: history) {
            do {
                try readChanges(range, summary: &summary)
            } catch let e as DatabricksError where e.isHistoryLost && options.fallBackToSnapshot {
                summary.warnings.append(
                    "change data for v\(range.start)…v\(range.end) is unavailable (\(e.errorClass ?? e.category.name)); resynced from a snapshot at v\(latest)")
                summary.mode = "snapshot"
                try readSnapshot(at: latest, summary: &summary)
                break
            }
            summary.toVersion = range.end
        }
        try deliver(&summary)
    }

    /// `DESCRIBE HISTORY t LIMIT 1` → the `version` of the first row.
    func latestVersion() throws -> Int64 {
        let sink = FirstValueSink(column: "version")
        try client.execute(Statement(sql: SQL.latestVersion(of: options.table)), sink: sink)
        guard let text = sink.value, let v = Int64(text) else {
            throw SyncError("DESCRIBE HISTORY \(options.table) returned no version",
                remedy: "Check that \(options.table) is a Delta table with history.")
        }
        return v
    }

    /// `DESCRIBE HISTORY t LIMIT n`, newest first.
    func history(limit: Int64) throws -> [HistoryEntry] {
        let sink = CollectingSink()
        try client.execute(Statement(sql: "DESCRIBE HISTORY \(options.table.quoted) LIMIT \(max(1, limit))"), sink: sink)
        return RangePlanner.entries(from: sink)
    }

    private func readChanges(_ range: PlannedRange, summary: inout SyncSummary) throws {
        let sql = SQL.tableChanges(of: options.table, columns: selectedColumns, startVersion: range.start, endVersion: range.end)
        onProgress("reading v\(range.start)…v\(range.end)" + (range.estimatedRows.map { " (~\($0) rows" } ?? " (size unknown")
            + ", \(range.disposition.rawValue))")
        try read(Statement(sql: sql, disposition: range.disposition), source: .changeFeed, completeThrough: range.end,
            summary: &summary)
    }

    private func readSnapshot(at version: Int64, summary: inout SyncSummary) throws {
        let sql = SQL.snapshot(of: options.table, columns: selectedColumns, version: version)
        try read(Statement(sql: sql, disposition: options.disposition ?? .externalLinks), source: .snapshot(version: version), completeThrough: version, summary: &summary)
        summary.toVersion = version
    }

    private var selectedColumns: [String]? {
        options.columns.map { $0.contains(options.keyColumn) ? $0 : [options.keyColumn] + $0 }
    }

    /// Streams one statement into the collector (this thread: download and decode) and the writer (its own
    /// thread: LMDB). On failure the writer still finishes the batches already handed to it — each is complete
    /// and carries only a checkpoint its rows justify — and the error is rethrown.
    private func read(_ statement: Statement, source: ChangeCollector.Source, completeThrough: Int64,
                      summary: inout SyncSummary) throws {
        let writer = BatchWriter(store: store, scope: options.pipeline, pipeline: options.pipeline)
        let progress = onProgress
        writer.onApplied = { n, v in progress("applied \(n) changes" + (v.map { " (checkpoint v\($0))" } ?? "")) }
        let collector = ChangeCollector(
            source: source, keyColumn: options.keyColumn, columns: options.columns, batchSize: options.batchSize,
            summary: summary, writer: writer)
        do {
            let outcome = try client.execute(statement, sink: collector)
            try collector.finish(completeThrough: completeThrough)
            summary = collector.summary
            summary.statementIDs.append(outcome.statementID)
            summary.bytesReceived += outcome.bytesReceived
        } catch {
            _ = try? writer.finish()
            summary = collector.summary
            throw error
        }
    }

    private func deliver(_ summary: inout SyncSummary) throws {
        guard try store.pendingOutboxCount() > 0 else { return }
        try FileManager.default.createDirectory(atPath: options.outputDirectory, withIntermediateDirectories: true)
        let outcome = try store.deliver(to: options.outputDirectory)
        summary.delivered += outcome.recordsDelivered
        summary.outputFiles += outcome.files
    }
}

/// A failed run: the summary as recorded, and the cause.
public struct SyncFailure: Error, CustomStringConvertible {
    public var summary: SyncSummary
    public var underlying: any Error
    public var description: String { "\(underlying)" }
}

/// Keeps the first value of one named column.
final class FirstValueSink: ResultSink {
    let column: String
    var index: Int?
    var value: String?
    private var firstRow: [String?]?

    init(column: String) { self.column = column }

    func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        index = manifest.schema.columns?.first { $0.name.lowercased() == column.lowercased() }?.position
        if let i = index, let row = firstRow, i < row.count { value = row[i] }
    }

    func row(_ row: borrowing RowView) throws {
        guard firstRow == nil else { return }
        var values: [String?] = []
        for i in 0..<row.count { values.append(row.string(i)) }
        firstRow = values
    }

    func discardPartialChunk() { firstRow = nil }
    func chunkCompleted(index: Int, rowCount: Int) throws {}
}
