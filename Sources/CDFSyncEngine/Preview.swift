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
        let (conditions, parameters) = CDFSync.filterSQL(pipeline.filters)
        // The snapshot query a sync without change data runs, cut to `limit` rows (an integer we format ourselves).
        let sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: nil, conditions: conditions)
            + " LIMIT \(max(1, limit))"
        let sink = CollectingSink()
        try client.execute(Statement(sql: sql, parameters: parameters, disposition: .inline), sink: sink)
        let mapper: RecordMapper
        do {
            mapper = try RecordMapper(pipeline: pipeline, columns: sink.columns)
        } catch {
            throw SyncError(error.message, remedy: "Fix the mapping, or restore the column in the source.")
        }
        var json = JSONWriter()
        let rows = sink.rows.map { values -> Row in
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
        return PipelinePreview(sql: sql, parameters: parameters, statementID: sink.statementID, columns: sink.columns,
            rows: rows)
    }
}
