import CDFSyncCore

/// A `ResultSink` that keeps every row as strings: for small control-plane results only (discovery, checks),
/// never for change data.
public final class RowCollector: ResultSink {
    /// Column names from the manifest, in position order.
    public private(set) var columns: [String] = []
    /// Rows in arrival order; `nil` is SQL NULL.
    public private(set) var rows: [[String?]] = []
    /// Rows of the chunk still in transfer (dropped if the chunk is fetched again).
    private var pendingStart = 0
    /// Refuses results larger than this many rows.
    public let rowLimit: Int

    public init(rowLimit: Int = 1_000_000) { self.rowLimit = rowLimit }

    public func manifestReady(_ manifest: ResultManifest, statementID: String) throws {
        columns = (manifest.schema.columns ?? []).sorted { $0.position < $1.position }.map(\.name)
    }

    public func row(_ row: borrowing RowView) throws {
        guard rows.count < rowLimit else {
            throw DatabricksError(.invalidResponse, "the result has more than \(rowLimit) rows",
                remedy: "Narrow the request (e.g. --catalog / --schema).")
        }
        rows.append(row.strings())
    }

    public func discardPartialChunk() { rows.removeSubrange(pendingStart...) }

    public func chunkCompleted(index: Int, rowCount: Int) throws { pendingStart = rows.count }

    /// The position of a column, matched case-insensitively (information_schema names arrive in lower case).
    public func index(of column: String) -> Int? {
        let want = column.lowercased()
        return columns.firstIndex { $0.lowercased() == want }
    }

    /// The value of `column` in row `row`, or nil when NULL or the column is missing.
    public func value(_ row: Int, _ column: String) -> String? {
        guard let i = index(of: column), i < rows[row].count else { return nil }
        return rows[row][i]
    }
}

extension StatementClient {
    /// Runs a small statement and returns its rows whole.
    public func collect(_ statement: Statement) throws -> RowCollector {
        let sink = RowCollector()
        try execute(statement, sink: sink)
        return sink
    }
}
