import CDFSyncClient
import CDFSyncCore
import Foundation

/// What `cdfsync pipeline preview` shows: the query a pipeline builds (never user SQL) and the first rows it reads,
/// each as the sync would map it. Reads the source only; writes nothing.
public struct PipelinePreview: Sendable {
    /// One row as the pipeline's mapping sees it.
    public struct Row: Sendable, Equatable {
        public enum Outcome: Sendable, Equatable {
            /// Imported (or updated) as this participant.
            case participant(externalID: String)
            /// Not opted in: not imported, or — for a participant the panel already holds — marked not contactable.
            case notOptedIn(externalID: String)
            /// Imported as this event.
            case event(eventID: String)
            /// Counted as invalid and skipped; the reason names the field and the value.
            case invalid(String)
        }
        public var outcome: Outcome
        /// The record the panel would store (participants) or the event's record; nil for invalid rows.
        public var record: [UInt8]?
    }

    /// The statement sent, with `:name` markers for the bound filter values in `parameters`.
    public var sql: String
    public var parameters: [StatementParameter]
    public var statementID: String
    /// The source columns read, in order.
    public var columns: [String]
    public var rows: [Row]

    /// Runs the pipeline's query on its source's current data with `LIMIT limit` and maps what comes back.
    /// - Throws: the client's `DatabricksError`s; `SyncError` naming a mapped column the result does not have.
    public static func run(client: StatementClient, pipeline: Pipeline, limit: Int) throws -> PipelinePreview {
        let options = try SyncOptions(pipeline: pipeline)
        var (conditions, parameters) = CDFSync.filterSQL(pipeline.filters)
        // The snapshot query a sync without change data runs, cut to `limit` rows (an integer we format ourselves;
        // around custom SQL, a bound parameter like every value the engine adds to it).
        let sql: String
        if let custom = options.customSQL {
            sql = SQL.customSnapshot(custom, columns: options.selectedColumns, conditions: conditions) + " LIMIT :n"
            parameters.append(StatementParameter(name: "n", value: String(max(1, limit)), type: "INT"))
        } else {
            sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: nil, conditions: conditions)
                + " LIMIT \(max(1, limit))"
        }
        let sink = CollectingSink()
        try client.execute(Statement(sql: sql, parameters: parameters, disposition: .inline), sink: sink)
        return PipelinePreview(sql: sql, parameters: parameters, statementID: sink.statementID, columns: sink.columns,
            rows: try mapRows(pipeline: pipeline, columns: sink.columns, rows: sink.rows))
    }

    /// `rows` (with `columns`) as the pipeline's mapping sees them.
    /// - Throws: `SyncError` naming a mapped column `columns` does not have.
    static func mapRows(pipeline: Pipeline, columns: [String], rows: [[String?]]) throws -> [Row] {
        let mapper: RecordMapper
        do {
            mapper = try RecordMapper(pipeline: pipeline, columns: columns)
        } catch {
            throw SyncError(error.message, remedy: "Fix the mapping, or restore the column in the source.")
        }
        var json = JSONWriter()
        return rows.map { values -> Row in
            let row = CopiedRow(values: values.map { $0.map { Array($0.utf8) } })
            switch mapper.map(row, into: &json) {
            case .participant(let id, _, _, let optedIn, let record):
                return Row(outcome: optedIn ? .participant(externalID: id) : .notOptedIn(externalID: id), record: record)
            case .event(let id, _, let record):
                return Row(outcome: .event(eventID: id), record: record)
            case .invalid(let why):
                return Row(outcome: .invalid(why), record: nil)
            }
        }
    }
}

/// What `cdfsync pipeline test-sql` shows for a custom SQL source: the statement sent (the guarded query wrapped as
/// `SELECT * FROM (<sql>) AS src LIMIT :n`), the columns it returns with their types, each column the pipeline reads
/// found or not, and the first rows as the sync would map them. Reads the source only; writes nothing.
public struct CustomSQLTest: Sendable {
    public var sql: String
    public var parameters: [StatementParameter]
    public var statementID: String
    public var columns: [CDFSync.SourceColumn]
    /// Every column the pipeline reads (mapping, attributes, consent, filters, cursor), checked against `columns`.
    public var coverage: [CDFSync.ColumnCoverage]
    /// How a sync reads the query (watermark or snapshot) and why.
    public var mode: CDFSync.ModeDecision
    /// The rows as the mapping sees them; empty when a column it needs is missing (`mappingProblem`).
    public var rows: [PipelinePreview.Row]
    /// The rows as the query returned them (one value per column, NULL as nil).
    public var values: [[String?]]
    /// Why the rows could not be mapped, or nil.
    public var mappingProblem: String?

    /// Whether every column the pipeline reads is there, once, with a type it can take.
    public var covered: Bool { coverage.allSatisfy(\.ok) }

    /// Guards the pipeline's query, runs it wrapped with `LIMIT :n` (`n` = `limit`) and maps what comes back.
    /// - Throws: `SyncError` for a pipeline without custom SQL or one the guard refuses; the client's
    ///   `DatabricksError`s (a query the warehouse cannot plan: an unknown table or column, missing SELECT).
    public static func run(client: StatementClient, pipeline: Pipeline, limit: Int) throws -> CustomSQLTest {
        guard pipeline.hasCustomSQL else {
            throw SyncError("pipeline \(pipeline.name) reads the table \(pipeline.source), not custom SQL",
                remedy: "Use `cdfsync pipeline preview` to see a table source's first rows mapped.")
        }
        let options = try SyncOptions(pipeline: pipeline)
        let cursor = CDFSync.cursorColumn(pipeline) != nil
        let mode = try CDFSync.customSQLMode(pipeline, cursor: cursor)
        let run = SQL.customTestRun(options.customSQL!, limit: max(0, limit))
        let parameters = run.parameters.map(CDFSync.statementParameter)
        let sink = CollectingSink(limit: max(0, limit))
        try client.execute(Statement(sql: run.sql, parameters: parameters, disposition: .inline), sink: sink)
        let columns = zip(sink.columns, sink.columnTypes).map { CDFSync.SourceColumn(name: $0, type: $1.uppercased()) }
        let coverage = CDFSync.coverage(of: pipeline, in: columns, watermark: mode.mode == .watermark)
        var rows: [PipelinePreview.Row] = []
        var problem: String?
        do {
            rows = try PipelinePreview.mapRows(pipeline: pipeline, columns: sink.columns, rows: sink.rows)
        } catch let e as SyncError {
            problem = e.message
        }
        return CustomSQLTest(sql: run.sql, parameters: parameters, statementID: sink.statementID, columns: columns,
            coverage: coverage, mode: mode, rows: rows, values: sink.rows, mappingProblem: problem)
    }
}
